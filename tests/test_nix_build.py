"""`nixcrate build` against real Nix: a real (isolated) store, a real file:// binary cache.

The flakes are doubles of generated crane flakes (`FakeCraneFlake`): plain `/bin/sh`
derivations shaped like the real outputs (one `-deps` closure, services and a Lambda
handler depending on it, a vendoring derivation below), so no nixpkgs and no network.
Each test gets its own store (NIX_STORE_DIR & co. under tmp_path) and its own salt.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_flakes import write_plain_flake

from nixcrate import nix, runner
from nixcrate.cli_build import build_command
from nixcrate.errors import BuildFailed, NixTooOld, ToolNotFound, UsageError

pytestmark = [
    pytest.mark.nix,
    pytest.mark.skipif(shutil.which("nix") is None, reason="nix is not installed"),
]

REPO = Path(__file__).resolve().parent.parent
# Builds run as root (no nixbld user): pytest's tmp_path is not readable by build users.
NIX_CONFIG = "experimental-features = nix-command flakes\nsandbox = false\nsubstituters =\nbuild-users-group =\n"


def isolated_env(root: Path, config: str = NIX_CONFIG) -> dict[str, str]:
    """Environment for a private Nix store under root (the store dir is part of every path)."""
    return {
        "NIX_STORE_DIR": str(root / "nix/store"),
        "NIX_STATE_DIR": str(root / "nix/var/nix"),
        "NIX_LOG_DIR": str(root / "nix/var/log/nix"),
        "NIX_CONFIG": config,
        "XDG_CACHE_HOME": str(root / "cache"),  # nix's fetcher cache names store paths
    }


class FakeCraneFlake:
    """A double of a generated crane flake: the same output names, plain derivations with
    the variables crane sets (so the plan tells its cargo builds from the rest).

    `vendor-cargo-deps` <- `deploy-deps-0.0.0` (deployCargoArtifacts, a deps closure) <-
    services; `lambda-deploy-deps-0.0.0` (lambdaDeployCargoArtifacts) <- `lambda-<name>` <-
    `deploy-lambda-<name>` (a zip, not a cargo build); a setup hook beside them. Plus
    optional `broken` (fails after 30 log lines) and `slow` (sleeps, writes its pid to
    pidfile). `closure_env` goes into the services' closure's environment, as nixcrate.toml's
    `[services] env` does; `prefer_local` marks the vendoring and the hook preferLocalBuild
    (as nixpkgs' small derivations are), so that a remote builder gets the cargo builds only.
    """

    def __init__(
        self,
        root: Path,
        system: str,
        salt: str,
        *,
        services: tuple[str, ...] = ("api", "worker", "billing"),
        lambdas: tuple[str, ...] = ("ingest",),
        sleep: float = 0,
        broken: bool = False,
        slow_pidfile: Path | None = None,
        closure_env: dict[str, str] | None = None,
        prefer_local: bool = False,
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        local = " preferLocalBuild = true;" if prefer_local else ""
        env = "".join(f" {k} = {json.dumps(v)};" for k, v in sorted((closure_env or {}).items()))
        bindings = [
            f'vendor = mkWith "vendor-cargo-deps" [] "echo vendored > $out" {{{local} }};',
            f'hook = mkWith "inheritCargoArtifactsHook" [] "echo hook > $out" {{{local} }};',
            f'deps = mkWith "deploy-deps-0.0.0" [vendor hook] "echo compiled > $out" {{ cargoVendorDir = vendor; CRANE_BUILD_DEPS_ONLY = "1";{env} }};',
            'lambdaDeps = mkWith "lambda-deploy-deps-0.0.0" [vendor hook] "echo compiled > $out" { cargoVendorDir = vendor; CRANE_BUILD_DEPS_ONLY = "1"; };',
            'crate = name: closure: script: mkWith name [closure hook] script { cargoVendorDir = vendor; cargoArtifacts = closure; };',
        ]
        outputs = ["deployCargoArtifacts = deps;"]
        # A service's output has what a real one has: a directory, an executable, a symlink.
        outputs += [
            f'{s} = crate "{s}-0.1.0" deps "mkdir -p $out/bin; echo {s} > $out/bin/{s}; chmod +x $out/bin/{s}; ln -s bin/{s} $out/main";'
            for s in services
        ]
        if lambdas:
            outputs.append("lambdaDeployCargoArtifacts = lambdaDeps;")
        outputs += [
            f'deploy-lambda-{h} = mk "deploy-lambda-{h}" [(crate "lambda-{h}-0.1.0" lambdaDeps "echo {h} > $out")] "mkdir $out; echo zip > $out/bootstrap.zip";'
            for h in lambdas
        ]
        if broken:
            outputs.append('broken = crate "broken-0.1.0" deps "for i in $(seq 1 30); do echo log line $i; done; exit 3";')
        if slow_pidfile is not None:
            outputs.append(f'slow = mk "slow-0.1.0" [] "echo $$ > {slow_pidfile}; exec sleep 60";')
        write_plain_flake(root, system, salt=salt, bindings=bindings, outputs=outputs, prelude=f"echo building ${{name}}; sleep {sleep}; ")
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        subprocess.run(["git", "add", "-A"], cwd=root, check=True)


@pytest.fixture(scope="session")
def system() -> str:
    argv = ["nix", "eval", "--raw", "--impure", "--expr", "builtins.currentSystem"]
    return runner.run(argv, env={"NIX_CONFIG": NIX_CONFIG}).stdout


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key, value in isolated_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(runner, "VERBOSE", False)
    return tmp_path


def salt_of(request: pytest.FixtureRequest) -> str:
    return f"{request.node.name}-{time.time_ns()}"


def build(*args: str) -> tuple[int, dict, str]:
    result = CliRunner().invoke(build_command, ["--json", *args])
    if result.exception and not isinstance(result.exception, (SystemExit, BuildFailed)):
        raise result.exception
    doc = json.loads(result.stdout) if result.stdout.strip() else {}
    assert doc or result.exit_code != 0, result.stderr
    return result.exit_code, doc, result.stderr


def states(doc: dict) -> dict[str, str]:
    return {d["name"]: d["state"] for d in doc["derivations"]}


def assert_sizes_are_nix_nar_sizes(doc: dict) -> None:
    """Each derivation's size is what `nix path-info` says of its outputs (narSize)."""
    for item in doc["derivations"]:
        outputs = runner.run(["nix-store", "--query", "--outputs", item["drv"]]).stdout.split()
        infos = json.loads(runner.run(["nix", "path-info", "--json", *outputs]).stdout)
        assert item["size"] == sum(i["narSize"] for i in infos), item


def test_built_then_present_then_fetched_from_cache(store: Path, system: str, request: pytest.FixtureRequest) -> None:
    flake = FakeCraneFlake(store / "flake", system, salt_of(request))

    code, first, err = build("--flake", str(flake.root))
    assert code == 0, err
    assert states(first) == {
        "api-0.1.0": "built",
        "billing-0.1.0": "built",
        "ingest-0.1.0": "built",
        "worker-0.1.0": "built",
        "workspace-deps-0.0.0": "built",
        "vendor-cargo-deps": "built",
    }
    assert [d["group"] for d in first["derivations"]][0] == "source"  # vendoring listed apart, first
    assert first["summary"]["cache_reuse"] == 0
    assert_sizes_are_nix_nar_sizes(first)
    assert first["summary"]["deps_closure_reused"] is False
    outputs = {o["output"]: o for o in first["outputs"]}
    assert sorted(outputs) == ["api", "billing", "deploy-lambda-ingest", "worker"]  # no deployCargoArtifacts
    assert Path(outputs["deploy-lambda-ingest"]["bootstrap_zip"]).read_text() == "zip\n"
    assert outputs["api"]["bootstrap_zip"] is None

    code, second, _ = build("--flake", str(flake.root))
    assert code == 0
    assert set(states(second).values()) == {"present"}
    assert second["summary"]["cache_reuse"] == 1
    assert_sizes_are_nix_nar_sizes(second)

    cache = f"file://{store}/binary-cache"
    paths = [o["path"] for o in first["outputs"]]
    subprocess.run(["nix", "copy", "--to", cache, *paths], check=True, capture_output=True)
    subprocess.run(["nix", "store", "delete", *paths], check=True, capture_output=True)
    code, third, _ = build("--flake", str(flake.root), "--", "--option", "substituters", cache, "--option", "require-sigs", "false")
    assert code == 0
    # Fetched outputs need nothing below them: the deps closure is not even looked at.
    assert states(third) == dict.fromkeys(["api-0.1.0", "billing-0.1.0", "ingest-0.1.0", "worker-0.1.0"], "fetched")
    assert {d["cache"] for d in third["derivations"]} == {cache}
    assert third["summary"]["fetched_from"] == {cache: 4}
    assert_sizes_are_nix_nar_sizes(third)


def test_outputs_too_big_to_walk_are_sized_by_nix(store: Path, system: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nix, "NAR_WALK_MAX_ENTRIES", 1)  # every service output has 4 entries
    flake = FakeCraneFlake(store / "flake", system, salt_of(request), lambdas=())
    code, doc, err = build("--flake", str(flake.root))
    assert code == 0, err
    assert set(states(doc).values()) == {"built"}
    assert_sizes_are_nix_nar_sizes(doc)


@pytest.mark.parametrize("max_jobs", [(), ("--max-jobs", "2")], ids=["plan-first", "plan-during-build"])
def test_nix_args_that_change_the_evaluation_reach_the_plan(
    store: Path, system: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, max_jobs: tuple[str, ...]
) -> None:
    """`-- --impure` (or --override-input...) changes which derivations nix builds: the plan
    must read the same ones, or the report would call them all 'not built'."""
    monkeypatch.setenv("NIXCRATE_TEST_SALT", salt_of(request))
    root = store / "flake"
    root.mkdir()
    (root / "flake.nix").write_text(
        f"""{{
  outputs = {{ self }}: {{
    packages.{system}.api = derivation {{
      name = "api-0.1.0";
      system = "{system}";
      builder = "/bin/sh";
      args = [ "-c" "echo > $out" ];
      salt = builtins.getEnv "NIXCRATE_TEST_SALT"; # "" unless --impure
    }};
  }};
}}
"""
    )
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    code, doc, err = build("--flake", str(root), *max_jobs, "api", "--", "--impure")
    assert code == 0, err
    assert states(doc) == {"api-0.1.0": "built"}
    (drv,) = [d["drv"] for d in doc["derivations"]]
    shown = json.loads(runner.run(["nix", "show-derivation", drv]).stdout)
    assert shown[drv]["env"]["salt"] == os.environ["NIXCRATE_TEST_SALT"]  # the impure one


def test_one_service_reuses_the_deps_closure(store: Path, system: str, request: pytest.FixtureRequest) -> None:
    flake = FakeCraneFlake(store / "flake", system, salt_of(request))
    code, closure, _ = build("--flake", str(flake.root), "deployCargoArtifacts")
    assert code == 0
    assert states(closure) == {"workspace-deps-0.0.0": "built", "vendor-cargo-deps": "built"}

    code, doc, _ = build("--flake", str(flake.root), "api")
    assert code == 0
    assert states(doc) == {"api-0.1.0": "built", "workspace-deps-0.0.0": "present"}
    assert doc["summary"]["deps_closure_reused"] is True
    assert doc["summary"]["cache_reuse"] == 0.5
    assert [o["output"] for o in doc["outputs"]] == ["api"]


def test_failed_derivation_prints_its_log_tail_and_nix_status(store: Path, system: str, request: pytest.FixtureRequest) -> None:
    flake = FakeCraneFlake(store / "flake", system, salt_of(request), services=("api",), lambdas=(), broken=True)
    result = CliRunner().invoke(build_command, ["--flake", str(flake.root), "broken"])
    assert isinstance(result.exception, BuildFailed)
    assert result.exception.exit_code == 1  # nix build's own status
    assert "broken-0.1.0 failed" in result.exception.message
    assert "failed: broken-0.1.0" in result.stderr
    tail = [line.strip() for line in result.stderr.splitlines() if "> log line" in line]
    assert tail == [f"> log line {i}" for i in range(6, 31)]  # the last 25 lines
    assert "failed" in result.stdout  # the table
    assert "built 2" in result.stdout  # the closure below it did build


def test_summary_file_appends_markdown_and_verbose_prints_parallelism(
    store: Path, system: str, request: pytest.FixtureRequest
) -> None:
    flake = FakeCraneFlake(store / "flake", system, salt_of(request))
    summary = store / "summary.md"
    summary.write_text("earlier step\n")
    result = CliRunner().invoke(build_command, ["--flake", str(flake.root), "--summary-file", str(summary), "-v", "worker"])
    assert result.exit_code == 0, result.output
    text = summary.read_text()
    assert text.startswith("earlier step\n### nixcrate build\n")
    assert "| `worker-0.1.0` | build | built |" in text
    assert "--max-jobs 1 --cores" in result.stderr  # a chain: one build at a time
    assert "worker: " in result.stdout
    assert "cache reuse 0% (0/3); deps closure not reused" in result.stdout


def test_outputs_and_max_jobs_start_nix_before_the_plan(store: Path, system: str, request: pytest.FixtureRequest) -> None:
    flake = FakeCraneFlake(store / "flake", system, salt_of(request), sleep=0.5)
    code, doc, err = build("--flake", str(flake.root), "-v", "--max-jobs", "2", "api", "deploy-lambda-ingest")
    assert code == 0, err
    echoed = [line.split()[1:3] for line in err.splitlines() if line.startswith("$ ")]
    assert echoed[0] == ["nix", "build"]  # the plan's queries come after
    assert ["nix", "show-derivation"] in echoed
    assert "--max-jobs 2 --cores" in err
    # The plan read validity while nix built: what nix built is still reported built.
    assert states(doc) == {
        "api-0.1.0": "built",
        "ingest-0.1.0": "built",
        "workspace-deps-0.0.0": "built",
        "vendor-cargo-deps": "built",
    }
    assert all(d["seconds"] >= 0.5 for d in doc["derivations"])
    assert sorted(o["output"] for o in doc["outputs"]) == ["api", "deploy-lambda-ingest"]

    code, doc, _ = build("--flake", str(flake.root), "--max-jobs", "1", "api", "worker")
    assert code == 0
    assert states(doc) == {"api-0.1.0": "present", "worker-0.1.0": "built", "workspace-deps-0.0.0": "present"}


def test_unknown_output_with_max_jobs_stops_nix_and_names_the_closest(store: Path, system: str, request: pytest.FixtureRequest) -> None:
    flake = FakeCraneFlake(store / "flake", system, salt_of(request))
    result = CliRunner().invoke(build_command, ["--flake", str(flake.root), "--max-jobs", "1", "api", "deploy-lambda-ingst"])
    assert isinstance(result.exception, UsageError)
    assert result.exception.message == "'deploy-lambda-ingst' is not an output of the flake: did you mean deploy-lambda-ingest?"


def test_unknown_output_names_the_closest(store: Path, system: str, request: pytest.FixtureRequest) -> None:
    flake = FakeCraneFlake(store / "flake", system, salt_of(request))
    result = CliRunner().invoke(build_command, ["--flake", str(flake.root), "deploy-lambda-ingst"])
    assert isinstance(result.exception, UsageError)
    assert result.exception.message == "'deploy-lambda-ingst' is not an output of the flake: did you mean deploy-lambda-ingest?"


def test_flakes_disabled_is_explained(store: Path, system: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    flake = FakeCraneFlake(store / "flake", system, salt_of(request))
    monkeypatch.setenv("NIX_CONFIG", "experimental-features = nix-command\nsandbox = false\n")
    result = CliRunner().invoke(build_command, ["--flake", str(flake.root)])
    assert isinstance(result.exception, NixTooOld)
    assert result.exception.message.startswith("nix: the experimental feature 'flakes' is disabled: add 'experimental-features = nix-command flakes'")


def test_fake_old_nix_is_refused(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = store / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nix"  # FakeNix: a Nix 2.3, which has no `nix eval --expr`
    fake.write_text("#!/bin/sh\n[ \"$1\" = --version ] && exec echo 'nix (Nix) 2.3.16'\necho \"error: unrecognised flag '--json'\" >&2; exit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    result = CliRunner().invoke(build_command, ["--flake", str(store)])
    assert isinstance(result.exception, NixTooOld)
    assert result.exception.message == "nix 2.3.16 is older than 2.8: upgrade Nix (https://nixos.org/download)"


def test_missing_nix_is_one_line(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(store / "empty"))
    result = CliRunner().invoke(build_command, ["--flake", str(store)])
    assert isinstance(result.exception, ToolNotFound)
    assert result.exception.message.startswith("nix: not found on PATH: install Nix")


@pytest.mark.parametrize("jobs", [(), ("--max-jobs", "1")], ids=["plan-first", "nix-first"])
def test_ctrl_c_stops_nix_and_exits_130(store: Path, system: str, request: pytest.FixtureRequest, jobs: tuple[str, ...]) -> None:
    pidfile = store / "builder.pid"
    flake = FakeCraneFlake(store / "flake", system, salt_of(request), services=(), lambdas=(), slow_pidfile=pidfile)
    proc = subprocess.Popen(
        [sys.executable, "-m", "nixcrate.cli_build", "--flake", str(flake.root), *jobs, "slow"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    builder = int(pidfile.read_text())
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert "slow-0.1.0" in stdout and "interrupted" in stdout  # the partial report
    slow_row = next(ln for ln in stdout.splitlines() if "slow-0.1.0" in ln)
    assert "interrupted" in slow_row and "built" not in slow_row.replace("not built", "")
    assert "built slow-0.1.0" not in stderr  # the live line agrees with the table
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(builder, 0)  # nix took its builder down with it


def test_query_args_keep_evaluation_and_settings_flags_with_their_arguments() -> None:
    extra = ["--rebuild", "--override-input", "nixpkgs", "path:/x", "--keep-going", "--option", "substituters", "file:///c", "--impure", "-L"]
    args = nix.QueryArgs.of(extra)
    assert args.evaluation == ("--override-input", "nixpkgs", "path:/x", "--option", "substituters", "file:///c", "--impure")
    assert args.settings == ("--option", "substituters", "file:///c")
