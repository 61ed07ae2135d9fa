"""Messages that kept the cause: nix's `error:` lines (not its last line), a BOM cargo accepts,
an empty Cargo.lock named as empty.

The nix stderr fixtures are captured from real Nix 2.8 (tests/fixtures/nix-errors/): a flake
with a syntax error, one whose input cannot be fetched, and an evaluation `throw` with and
without --show-trace.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_errors_catalogue import BASE, write

from nixcrate.cli import cli
from nixcrate.errors import CommandFailed, error_summary

FIXTURES = Path(__file__).parent / "fixtures" / "nix-errors"


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        pytest.param("syntax-error.stderr", "syntax error, unexpected '}', expecting ';' (at flake.nix:4:3)", id="syntax"),
        pytest.param(
            "unfetchable-input.stderr",
            "program 'git' failed with exit code 128: fatal: '/nonexistent/repo' does not appear to be a git repository fatal: Could not read from remote repository.",
            id="unfetchable-input",
        ),
        pytest.param("throw.stderr", "no such thing: b", id="throw"),
        pytest.param("throw-show-trace.stderr", "no such thing: b", id="throw-show-trace"),
    ],
)
def test_nix_error_keeps_the_cause(fixture: str, expected: str) -> None:
    stderr = (FIXTURES / fixture).read_text()
    assert error_summary(stderr) == expected
    message = CommandFailed(["nix", "eval", "--json"], 1, stderr).message
    assert message.endswith(expected) and "\n" not in message and "--show-trace" not in message


def test_other_tools_keep_their_last_line() -> None:
    assert error_summary("compiling\nsomething broke\n") == "something broke"
    assert error_summary("") == "no output"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr


@pytest.mark.parametrize("rel", ["Cargo.toml", "services/api/Cargo.toml", "Cargo.lock"])
def test_a_utf8_bom_is_accepted_as_cargo_accepts_it(tmp_path: Path, rel: str) -> None:
    ws = tmp_path / "ws"
    write(ws, dict(BASE))
    write(ws, {rel: b"\xef\xbb\xbf" + BASE[rel].encode()})
    if shutil.which("cargo") and rel != "Cargo.lock":
        cargo = subprocess.run(["cargo", "metadata", "--no-deps", "--offline", "--format-version", "1"], cwd=ws, capture_output=True, text=True, check=False)
        assert cargo.returncode == 0, cargo.stderr  # the premise: cargo takes it
    code, stderr = run("init", str(ws))
    assert code == 0, stderr


@pytest.mark.parametrize("content", ["", "\n\n", "# nothing yet\n"])
def test_an_empty_lockfile_is_called_empty(tmp_path: Path, content: str) -> None:
    ws = tmp_path / "ws"
    write(ws, {**BASE, "Cargo.lock": content})
    code, stderr = run("init", str(ws))
    assert code == 1
    assert stderr.strip() == "error: Cargo.lock: is empty: run 'cargo generate-lockfile' and commit Cargo.lock"
    assert not (ws / "nix").exists()


# --------------------------------------------------------------------------- Ctrl-C during a build


def test_a_build_stopped_by_ctrl_c_is_interrupted_on_the_live_line_and_in_the_table() -> None:
    """Replays a real Nix 2.8 log, with Ctrl-C after the last build started: nix's stops on
    exit are not finished builds, so neither the notices nor the report call it built."""
    from test_build_report import LOGS  # noqa: PLC0415

    from nixcrate.build_report import BuildTracker, State  # noqa: PLC0415
    from nixcrate.nix import BuildPlan, BuildRun, PathInfo, parse_derivations  # noqa: PLC0415

    doc = json.loads((LOGS / "one-service-built.json").read_text())
    plan = BuildPlan(doc["flake"], doc["system"], tuple(map(tuple, doc["outputs"])), parse_derivations(doc["derivations"]), frozenset(doc["valid"]))
    lines = (LOGS / "one-service-built.log").read_text().splitlines(keepends=True)
    last_start = max(i for i, ln in enumerate(lines) if '"action":"start"' in ln and '"type":105' in ln)
    drv = json.loads(lines[last_start].removeprefix("@nix "))["fields"][0]
    tracker = BuildTracker(plan, clock=lambda: 1.0)
    before = [n for ln in lines[: last_start + 1] if (n := tracker.feed(ln))]
    tracker.interrupt()
    after = [n for ln in lines[last_start + 1 :] if (n := tracker.feed(ln))]
    name = plan.derivations[drv].name
    assert not any(n.startswith(f"built {name}") for n in after), after
    assert any(n.startswith(f"interrupted {name}") for n in after), after
    assert before  # the builds before Ctrl-C still say built
    stopped_outputs = set(plan.derivations[drv].out_paths)
    infos = {p: PathInfo(size, when) for p, (size, when) in doc["path_info"].items() if p not in stopped_outputs}
    report = tracker.report(BuildRun(130, "", interrupted=True, started=0.0, finished=2.0), infos)
    states = {i.drv: i.state for i in report.items}
    assert states[drv] is State.INTERRUPTED
    assert tracker.done == sum(1 for s in states.values() if s is State.BUILT) + sum(1 for i in report.items if i.state is State.FETCHED)


def test_a_bom_in_nixcrate_toml_is_read_and_kept_by_hashes(tmp_path: Path) -> None:
    import tomllib  # noqa: PLC0415

    from nixcrate import config  # noqa: PLC0415

    (tmp_path / "nixcrate.toml").write_bytes(b"\xef\xbb\xbf# mine\n[members.api]\nkind = \"service\"\n")
    assert config.load(tmp_path).member("api").kind is not None
    config.set_git_hashes(tmp_path, {"git+https://example.com/x#0": "sha256-x"})
    raw = (tmp_path / "nixcrate.toml").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf# mine\n")
    assert tomllib.loads(raw.decode().removeprefix("\ufeff"))["git-hashes"] == {"git+https://example.com/x#0": "sha256-x"}
