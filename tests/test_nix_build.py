"""`nixcrate build` against real Nix: a real (isolated) store, a real file:// binary cache.

The flakes are doubles of generated crane flakes (`FakeCraneFlake`): plain `/bin/sh`
derivations shaped like the real outputs (one `-deps` closure, services and a Lambda
handler depending on it, a vendoring derivation below), so no nixpkgs and no network.
Each test gets its own store (NIX_STORE_DIR & co. under tmp_path) and its own salt.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_flakes import write_plain_flake
from remote_builder import RemoteBuilder, remote_builder_missing

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
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the closures' memory, per test
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
    assert states(first) == dict.fromkeys(
        [
            "api-0.1.0",
            "billing-0.1.0",
            "lambda-ingest-0.1.0",
            "deploy-lambda-ingest",
            "worker-0.1.0",
            "deploy-deps-0.0.0",
            "lambda-deploy-deps-0.0.0",
            "inheritCargoArtifactsHook",
            "vendor-cargo-deps",
        ],
        "built",
    )
    assert [d["group"] for d in first["derivations"]][-1] == "source"  # vendoring listed apart, last
    assert first["summary"]["cache_reuse"] == 0
    assert first["summary"]["compiling"]["total"] == 6
    assert_sizes_are_nix_nar_sizes(first)
    assert {c["output"]: c["reused"] for c in first["closures"]} == {"deployCargoArtifacts": False, "lambdaDeployCargoArtifacts": False}
    assert {c["reason"] for c in first["closures"]} == {"first"}
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
    assert states(third) == dict.fromkeys(["api-0.1.0", "billing-0.1.0", "deploy-lambda-ingest", "worker-0.1.0"], "fetched")
    assert {d["cache"] for d in third["derivations"]} == {cache}
    assert third["summary"]["fetched_from"] == {cache: 4}
    assert third["summary"]["cache_reuse"] == 1  # 3 cargo builds fetched (the zip is not one)
    assert third["summary"]["compiling"]["total"] == 3
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
    assert states(closure) == {"deploy-deps-0.0.0": "built", "inheritCargoArtifactsHook": "built", "vendor-cargo-deps": "built"}

    code, doc, err = build("--flake", str(flake.root), "api")
    assert code == 0
    assert states(doc) == {"api-0.1.0": "built", "deploy-deps-0.0.0": "present", "inheritCargoArtifactsHook": "present", "vendor-cargo-deps": "present"}
    assert [(c["output"], c["reused"]) for c in doc["closures"]] == [("deployCargoArtifacts", True)]
    assert "note:" not in err
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
    assert "cargo builds: 0 of 2 reused (0%): built 1 (" in result.stdout  # the closure below it did build


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
    assert "| `worker-0.1.0` | compile | built | local |" in text
    assert "--max-jobs 1 --cores" in result.stderr  # a chain: one build at a time
    assert "worker: " in result.stdout
    assert "cargo builds: 0 of 2 reused (0%)" in result.stdout
    assert "closures: deployCargoArtifacts built" in result.stdout
    assert "note: deployCargoArtifacts was built, not reused: no binary cache had it" in result.stderr
    assert "- deployCargoArtifacts was built, not reused: no binary cache had it" in text


def test_outputs_and_max_jobs_start_nix_before_the_plan(store: Path, system: str, request: pytest.FixtureRequest) -> None:
    flake = FakeCraneFlake(store / "flake", system, salt_of(request), sleep=0.5)
    code, doc, err = build("--flake", str(flake.root), "-v", "--max-jobs", "2", "api", "deploy-lambda-ingest")
    assert code == 0, err
    echoed = [line.split()[1:3] for line in err.splitlines() if line.startswith("$ ")]
    assert echoed[0] == ["nix", "build"]  # the plan's queries come after
    assert ["nix", "show-derivation"] in echoed
    assert "--max-jobs 2 --cores" in err
    # The plan read validity while nix built: what nix built is still reported built.
    assert set(states(doc)) == {
        "api-0.1.0",
        "deploy-lambda-ingest",
        "lambda-ingest-0.1.0",
        "deploy-deps-0.0.0",
        "lambda-deploy-deps-0.0.0",
        "inheritCargoArtifactsHook",
        "vendor-cargo-deps",
    }
    assert set(states(doc).values()) == {"built"}
    assert all(d["seconds"] >= 0.5 for d in doc["derivations"]), str([(d["name"], d["seconds"]) for d in doc["derivations"]])
    assert sorted(o["output"] for o in doc["outputs"]) == ["api", "deploy-lambda-ingest"]

    code, doc, _ = build("--flake", str(flake.root), "--max-jobs", "1", "api", "worker")
    assert code == 0
    assert states(doc) == {
        "api-0.1.0": "present",
        "worker-0.1.0": "built",
        "deploy-deps-0.0.0": "present",
        "inheritCargoArtifactsHook": "present",
        "vendor-cargo-deps": "present",
    }


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


def start_slow_build(store: Path, system: str, request: pytest.FixtureRequest, jobs: tuple[str, ...]) -> tuple[subprocess.Popen[str], int]:
    """`nixcrate build slow`, returned once nix runs its builder (which sleeps until killed),
    with that builder's pid."""
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
    return proc, int(pidfile.read_text())


@pytest.mark.parametrize("jobs", [(), ("--max-jobs", "1")], ids=["plan-first", "nix-first"])
def test_ctrl_c_stops_nix_and_exits_130(store: Path, system: str, request: pytest.FixtureRequest, jobs: tuple[str, ...]) -> None:
    proc, builder = start_slow_build(store, system, request, jobs)
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


def sigint_blocked(pid: int, tid: int) -> bool:
    """Whether thread tid of process pid blocks SIGINT (the SigBlk mask in /proc)."""
    status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
    mask = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("SigBlk:")), 16)
    return bool(mask & (1 << (signal.SIGINT - 1)))


@pytest.mark.parametrize("jobs", [(), ("--max-jobs", "1")], ids=["plan-first", "nix-first"])
def test_ctrl_c_is_delivered_to_the_main_thread(store: Path, system: str, request: pytest.FixtureRequest, jobs: tuple[str, ...]) -> None:
    """Every thread but the main one blocks SIGINT, so the kernel hands Ctrl-C to the main
    thread and interrupts its read of nix's log. A helper thread that took it left that read
    waiting for nix's next line (seen in CI: the Ctrl-C test above hung 20 s on a quiet build)."""
    proc, _ = start_slow_build(store, system, request, jobs)
    try:
        time.sleep(0.5)  # the status ticker and the report's queries are running by now
        helpers = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != proc.pid]
        assert helpers, "no helper thread while nix builds: nothing to check"
        assert not sigint_blocked(proc.pid, proc.pid)
        assert [t for t in helpers if not sigint_blocked(proc.pid, t)] == []
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)


def test_v_echoes_a_long_list_of_store_paths_cut_to_its_first_ones() -> None:
    """-v echoed every store path nix's queries take (230 on the example): the first three,
    then how many more, each run of paths cut apart; the other arguments kept."""
    paths = [f"/nix/store/{c * 32}-p{c}" for c in "abcdefg"]
    argv = ["nix", "path-info", "--json", *paths, "--option", "x", "y", *paths[:3], "/nix/store/" + "h" * 32 + "-last.drv^*"]
    assert runner.shown_argv(argv) == ["nix", "path-info", "--json", *paths[:3], "...(4 more store paths)", "--option", "x", "y", *paths[:3], "...(1 more store path)"]
    assert runner.shown_argv(["nix", "build", *paths[:3]]) == ["nix", "build", *paths[:3]]


def test_query_args_keep_evaluation_and_settings_flags_with_their_arguments() -> None:
    extra = ["--rebuild", "--override-input", "nixpkgs", "path:/x", "--keep-going", "--option", "substituters", "file:///c", "--impure", "-L"]
    args = nix.QueryArgs.of(extra)
    assert args.evaluation == ("--override-input", "nixpkgs", "path:/x", "--option", "substituters", "file:///c", "--impure")
    assert args.settings == ("--option", "substituters", "file:///c")


# --------------------------------------------------------------------------- closures not reused


def closure(doc: dict, output: str = "deployCargoArtifacts") -> dict:
    return next(c for c in doc["closures"] if c["output"] == output)


def notes(stderr: str) -> list[str]:
    return [line.removeprefix("note: ") for line in stderr.splitlines() if line.startswith("note: ")]


def test_a_closure_rebuilt_after_a_settings_change_names_the_change(store: Path, system: str, request: pytest.FixtureRequest) -> None:
    salt = salt_of(request)
    flake = FakeCraneFlake(store / "flake", system, salt, closure_env={"NIXCRATE_TEST": "one"})
    code, first, err = build("--flake", str(flake.root), "api")
    assert code == 0, err
    assert closure(first)["reason"] == "first"
    assert notes(err) == [
        "deployCargoArtifacts was built, not reused: no binary cache had it, and no earlier build of it is recorded on this machine "
        "to compare with: push it to a binary cache your builds use (nixcrate ci's warm-deps jobs do) so that they fetch it"
    ]

    FakeCraneFlake(store / "flake", system, salt, closure_env={"NIXCRATE_TEST": "two"})  # as after an edit of [services] env
    code, second, err = build("--flake", str(flake.root), "api")
    assert code == 0, err
    assert states(second)["deploy-deps-0.0.0"] == "built"
    assert states(second)["inheritCargoArtifactsHook"] == "present"
    note = closure(second)
    assert (note["reason"], note["previous_drv"]) == ("changed", closure(first)["drv"])
    assert note["changes"] == [{"kind": "settings", "text": 'env NIXCRATE_TEST "one" -> "two"'}]
    assert notes(err) == [
        'deployCargoArtifacts was built, not reused: changed since its last build here: settings: env NIXCRATE_TEST "one" -> "two": '
        "expected after such a change; later builds reuse it until they change again"
    ]
    assert second["summary"]["cache_reuse"] == 0  # the closure and api; the hook and vendoring do not count

    FakeCraneFlake(store / "flake", system, salt, closure_env={"NIXCRATE_TEST": "one"})  # back: the first closure is present
    code, third, err = build("--flake", str(flake.root), "deployCargoArtifacts")
    assert code == 0, err
    assert (closure(third)["state"], closure(third)["reused"], closure(third)["reason"]) == ("present", True, None)
    assert notes(err) == []


def test_a_closure_whose_output_was_collected_says_so(store: Path, system: str, request: pytest.FixtureRequest) -> None:
    flake = FakeCraneFlake(store / "flake", system, salt_of(request), lambdas=())
    code, first, _ = build("--flake", str(flake.root), "deployCargoArtifacts")
    assert code == 0
    (out,) = [o["path"] for o in first["outputs"]]
    subprocess.run(["nix-store", "--delete", out], check=True, capture_output=True)
    code, second, err = build("--flake", str(flake.root), "deployCargoArtifacts")
    assert code == 0
    drv = closure(second)["drv"]
    assert (closure(second)["reason"], closure(second)["previous_drv"]) == ("collected", drv)
    assert notes(err) == [
        "deployCargoArtifacts was built, not reused: same derivation as its last build here, but its output had been garbage-collected "
        f"and no binary cache had it: keep it with a GC root (nix-store --add-root <link> --realise {drv}) or push it to a binary cache"
    ]


def test_a_closure_whose_last_derivation_was_collected_cannot_be_compared(
    store: Path, system: str, request: pytest.FixtureRequest
) -> None:
    flake = FakeCraneFlake(store / "flake", system, salt_of(request), lambdas=())
    # What nixcrate remembers after a build whose .drv has since been garbage-collected.
    gone = f"{store}/nix/store/{'0' * 32}-deploy-deps-0.0.0.drv"
    memory = store / "state" / "nixcrate" / "closures.json"
    memory.parent.mkdir(parents=True)
    memory.write_text(json.dumps({"version": 1, "flakes": {f"{flake.root}#{system}": {"deploy-deps-0.0.0": gone}}}))
    code, doc, err = build("--flake", str(flake.root), "deployCargoArtifacts")
    assert code == 0
    assert (closure(doc)["reason"], closure(doc)["previous_drv"]) == ("unknown", gone)
    assert notes(err) == [
        f"deployCargoArtifacts was built, not reused: its derivation changed, and the one of its last build here ({gone}) has been "
        "garbage-collected, so what changed cannot be told: the next rebuild will name the change"
    ]
    assert json.loads(memory.read_text())["flakes"][f"{flake.root}#{system}"]["deploy-deps-0.0.0"] == closure(doc)["drv"]


def test_a_damaged_memory_is_replaced_not_an_error(store: Path, system: str, request: pytest.FixtureRequest) -> None:
    flake = FakeCraneFlake(store / "flake", system, salt_of(request), lambdas=())
    memory = store / "state" / "nixcrate" / "closures.json"
    memory.parent.mkdir(parents=True)
    memory.write_text("{not json")
    code, doc, err = build("--flake", str(flake.root), "deployCargoArtifacts")
    assert code == 0, err
    assert closure(doc)["reason"] == "first"
    assert json.loads(memory.read_text())["version"] == 1


def test_an_unwritable_memory_is_a_warning(store: Path, system: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    flake = FakeCraneFlake(store / "flake", system, salt_of(request), lambdas=())
    (store / "state-file").write_text("a file where a directory should be")
    monkeypatch.setenv("XDG_STATE_HOME", str(store / "state-file"))
    code, _, err = build("--flake", str(flake.root), "deployCargoArtifacts")
    assert code == 0
    (line,) = [ln for ln in err.splitlines() if ln.startswith("warning: ")]
    assert line.startswith(f"warning: {store}/state-file/nixcrate/closures.json: cannot record the closures built (")
    assert line.endswith("the next rebuild of a closure cannot say what changed; fix its permissions, or set XDG_STATE_HOME to a writable directory")


# --------------------------------------------------------------------------- a remote builder


def test_a_real_remote_builder_is_named_for_what_it_built(store: Path, system: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nix's `builders`, an ssh-ng:// machine: sshd on 127.0.0.1 with a nix-daemon and a
    store of its own behind it (tests/remote_builder.py). The cargo builds go there; the
    vendoring and the hook, preferLocalBuild, are built here."""
    missing = remote_builder_missing()
    if missing:
        pytest.skip(missing)
    builder = RemoteBuilder(store / "builder", str(store / "nix/store"), system)
    try:
        for key, value in builder.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("NIX_CONFIG", NIX_CONFIG + builder.nix_config())
        flake = FakeCraneFlake(store / "flake", system, salt_of(request), services=("api",), lambdas=(), prefer_local=True)
        summary = store / "summary.md"
        code, doc, err = build("--flake", str(flake.root), "--summary-file", str(summary), "api")
        assert code == 0, err
        where = {d["name"]: d["built_on"] for d in doc["derivations"]}
        assert where == {
            "api-0.1.0": builder.uri,
            "deploy-deps-0.0.0": builder.uri,
            "inheritCargoArtifactsHook": "local",
            "vendor-cargo-deps": "local",
        }
        assert doc["summary"]["compiling"]["built_on"] == {builder.uri: 2}
        assert "building deploy-deps-0.0.0 on ssh-ng://root@127.0.0.1" in err
        assert (store / "builder/remote-store/store").is_dir()  # built there, then copied back
        assert set(states(doc).values()) == {"built"}
        text = summary.read_text()  # the table as the terminal's: the machine without its query
        assert "| `api-0.1.0` | compile | built | ssh-ng://root@127.0.0.1 |" in text
        assert "| `vendor-cargo-deps` | source | built | local |" in text
        assert "**cargo builds: 0 of 2 reused (0%): built 2 (" in text and ", 2 on ssh-ng://root@127.0.0.1)" in text
    finally:
        builder.stop()


# --------------------------------------------------------------------------- progress while nix runs


def run_on_a_terminal(argv: list[str], env: dict[str, str], timeout: float = 120) -> str:
    """argv's output with stdout and stderr on a real pseudo-terminal (as in a shell)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin, stdout and stderr are the pty
        os.chdir(REPO)
        os.execve(sys.executable, [sys.executable, *argv], env)  # noqa: S606
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out.decode(errors="replace")[-3000:]
    return out.decode(errors="replace")


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_live_progress_on_a_terminal(store: Path, system: str, request: pytest.FixtureRequest) -> None:
    """Under a real pty: a block redrawn while nix builds (elapsed time, cargo builds done
    of total, derivations done of total, what builds now and its last log line), the cargo
    builds that ended printed above it, then the report."""
    flake = FakeCraneFlake(store / "flake", system, salt_of(request), services=("api",), lambdas=(), sleep=1.5)
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "150", "LINES": "40", "PYTHONPATH": str(REPO)}
    env.pop("CI", None)  # rich reads CI and GITHUB_ACTIONS to decide on colours, not on terminals
    raw = run_on_a_terminal(["-m", "nixcrate.cli", "build", "--flake", str(flake.root), "--max-jobs", "2", "api"], env)
    assert "\x1b[2K" in raw or "\x1b[1A" in raw, raw[:2000]  # the block is erased and redrawn
    frames = ANSI.sub("", raw.replace("\r", "\n")).splitlines()
    headers = [ln for ln in frames if re.match(r"^\d+s cargo builds \d/2 · derivations \d/4", ln)]
    assert len({h.split()[0] for h in headers}) >= 3, headers  # elapsed time moves: 0s, 1s, 2s...
    assert any("cargo builds 1/2 · derivations 3/4" in h for h in headers), headers
    running = [ln for ln in frames if ln.strip().startswith("deploy-deps-0.0.0")]
    assert any("building deploy-deps-0.0.0" in ln.split("deploy-deps-0.0.0", 1)[1] for ln in running), running  # its log's last line
    assert any(ln.startswith("built deploy-deps-0.0.0 (") for ln in frames)  # kept above the block
    assert not any(ln.startswith("building ") for ln in frames)  # the block shows what builds, not a line each
    assert any(ln.startswith("cargo builds: 0 of 2 reused (0%)") for ln in frames)


def test_plain_status_lines_when_not_a_terminal(store: Path, system: str, request: pytest.FixtureRequest) -> None:
    """Piped (a CI log): a line per cargo build's start and end, a status line every
    --progress-interval seconds, no line per hook or source, no terminal codes."""
    flake = FakeCraneFlake(store / "flake", system, salt_of(request), services=("api",), lambdas=(), sleep=1.5)
    argv = [sys.executable, "-m", "nixcrate.cli", "build", "--flake", str(flake.root), "--max-jobs", "2", "--progress-interval", "0.5", "api"]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stderr
    lines = proc.stderr.splitlines()
    status = [ln for ln in lines if ln.startswith("[")]
    assert len(status) >= 4, lines
    # `?` until the plan, read while nix builds, is known; then the counts
    pattern = re.compile(r"^\[\d+s\] cargo builds (\d/2|\?), derivations \d/(4|\?); (building .+|waiting for nix)$")
    assert all(pattern.match(ln) for ln in status), status
    counted = [n for n, ln in enumerate(status) if "cargo builds ?" not in ln]
    assert len(counted) >= 3 and counted == list(range(counted[0], len(status))), status
    assert any(re.search(r"building deploy-deps-0\.0\.0 \(\ds: building deploy-deps-0\.0\.0\)", ln) for ln in status), status
    events = [ln for ln in lines if not ln.startswith(("[", "note: "))]
    assert events == ["building deploy-deps-0.0.0", events[1], "building api-0.1.0", events[3]], lines
    assert events[1].startswith("built deploy-deps-0.0.0 (") and events[3].startswith("built api-0.1.0 (")
