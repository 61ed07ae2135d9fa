"""Messages that kept the cause: nix's `error:` lines (not its last line), a BOM cargo accepts,
an empty Cargo.lock named as empty.

The nix stderr fixtures are captured from real Nix 2.8 (tests/fixtures/nix-errors/): a flake
with a syntax error, one whose input cannot be fetched, and an evaluation `throw` with and
without --show-trace.
"""

from __future__ import annotations

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
