"""Real crane builds of the example (`../shared/crane-build/build`): what a user gets.

One build per test session of every package, closure and check of `examples/monorepo`
(`nixcrate init` on a copy, built by attribute name), shared by the tests below: the
services run, each handler's `bootstrap.zip` holds one executable `bootstrap` that answers
a sample event, and no package or check compiles a third-party crate after its closure
(from each derivation's own `nix log`). These are the README's "Measured on the example"
figures. A handler's zip packages a binary of its crate's build (`<zip>.crateBuild`, one
zigbuild for all the crate's bins): that build is the one whose log must show no
third-party crate.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import EXAMPLE, copy_workspace, git_init
from crane_build import Result, build, crane_build_missing, stage
from nixcrate import generate

SYSTEM = "x86_64-linux"
CLOSURES = ["deployCargoArtifacts", "lambdaDeployCargoArtifacts"]
SERVICES = ["api", "worker"]
HANDLERS = {"deploy-lambda-ingest": "ingest", "deploy-lambda-report-export": "report-export"}
# textwrap-lite: the vendored path dependency, a member as cargo has it (with its checks)
MEMBERS = ["api", "common", "ingest", "report-export", "textwrap-lite", "worker"]
# What the README says `nix flake check` runs: per member clippy-<m> and test-<m>, fmt, and
# lambda-verify-<bin> per handler; nothing else.
EXPECTED_CHECKS = sorted([f"clippy-{m}" for m in MEMBERS] + [f"test-{m}" for m in MEMBERS] + ["fmt"] + [f"lambda-verify-{b}" for b in HANDLERS.values()])

pytestmark = [pytest.mark.nix, pytest.mark.xdist_group("real-build")]


@dataclass(frozen=True)
class RealBuild:
    results: dict[str, Result]
    check_names: list[str]
    seconds: float


@pytest.fixture(scope="session")
def real(tmp_path_factory: pytest.TempPathFactory) -> RealBuild:
    missing = crane_build_missing(EXAMPLE)
    if missing:
        pytest.skip(missing)
    ws = copy_workspace(EXAMPLE, tmp_path_factory.mktemp("real-build") / "monorepo")
    generate.run_init(ws)
    git_init(ws)
    staged = stage(ws)
    try:
        names = subprocess.run(
            ["nix", "eval", "--json", *staged.nix_args(), f"{staged.ref}#checks.{SYSTEM}", "--apply", "builtins.attrNames"],
            capture_output=True, text=True, check=True, env=staged.env(),
        )
    finally:
        staged.cleanup()
    check_names = json.loads(names.stdout)
    started = time.monotonic()
    attrs = CLOSURES + SERVICES + list(HANDLERS) + [f"{h}.crateBuild" for h in HANDLERS] + [f"checks.{SYSTEM}.{c}" for c in check_names]
    results = build(ws, attrs, log_dir=tmp_path_factory.mktemp("real-build-logs"))
    return RealBuild(results, check_names, time.monotonic() - started)


def test_the_checks_are_exactly_what_the_readme_lists(real: RealBuild) -> None:
    assert sorted(real.check_names) == EXPECTED_CHECKS


@pytest.mark.parametrize("attr", CLOSURES + SERVICES)
def test_closures_and_services_build(real: RealBuild, attr: str) -> None:
    r = real.results[attr]
    assert r.ok, r.error_tail


@pytest.mark.parametrize("check", EXPECTED_CHECKS)
def test_every_check_passes(real: RealBuild, check: str) -> None:
    r = real.results[f"checks.{SYSTEM}.{check}"]
    assert r.ok, r.error_tail


def test_the_services_run(real: RealBuild) -> None:
    api = Path(str(real.results["api"].out))
    worker = Path(str(real.results["worker"].out))
    assert sorted(p.name for p in (api / "bin").iterdir()) == ["api"]
    assert sorted(p.name for p in (worker / "bin").iterdir()) == ["worker", "worker-admin"]
    out = subprocess.run([api / "bin/api"], capture_output=True, text=True, check=True, timeout=30).stdout.splitlines()
    assert out == ['{"ids":[1,2,3],"service":"api"}', "hello, api"]
    out = subprocess.run([worker / "bin/worker"], capture_output=True, text=True, check=True, timeout=30).stdout
    assert out == "worker (release) 1 job(s): hello, worker\n"  # build.rs saw the release profile
    out = subprocess.run([worker / "bin/worker-admin"], capture_output=True, text=True, check=True, timeout=30).stdout
    assert out == "hello, admin\n"


@pytest.mark.parametrize("attr", list(HANDLERS))
def test_handler_zip_holds_one_executable_bootstrap(real: RealBuild, attr: str) -> None:
    r = real.results[attr]
    assert r.ok, r.error_tail
    with zipfile.ZipFile(Path(str(r.out)) / "bootstrap.zip") as z:
        infos = z.infolist()
        assert [i.filename for i in infos] == ["bootstrap"]
        assert stat.S_IMODE(infos[0].external_attr >> 16) == 0o755


SAMPLE = {
    # handler -> (event on stdin, what it prints)
    "deploy-lambda-ingest": ('{"order": 7}', '{"ingested":{"order":7}}\n'),
    "deploy-lambda-report-export": ("", '{"rows":"42"}\n'),
}


@pytest.mark.parametrize("attr", list(HANDLERS))
def test_handler_bootstrap_answers_a_sample_event(real: RealBuild, attr: str, tmp_path: Path) -> None:
    r = real.results[attr]
    assert r.ok, r.error_tail
    with zipfile.ZipFile(Path(str(r.out)) / "bootstrap.zip") as z:
        z.extract("bootstrap", tmp_path)
    bootstrap = tmp_path / "bootstrap"
    bootstrap.chmod(0o755)  # zipfile does not restore modes (checked from the zip above)
    event, expected = SAMPLE[attr]
    assert subprocess.run([bootstrap], input=event, capture_output=True, text=True, check=True, timeout=30).stdout == expected


# What compiles: services, each handler crate's build, clippy and test checks (a handler's zip
# and its lambda-verify check only package and inspect that build's binary).
COMPILING = SERVICES + [f"{h}.crateBuild" for h in HANDLERS] + [f"checks.{SYSTEM}.{c}" for c in EXPECTED_CHECKS if c.startswith(("clippy-", "test-"))]


@pytest.mark.parametrize("attr", COMPILING)
def test_no_third_party_crate_is_compiled_after_the_closure(real: RealBuild, attr: str) -> None:
    """From the derivation's own build log: only the workspace's crates are compiled."""
    r = real.results[attr]
    assert r.ok, r.error_tail
    assert r.third_party == ()
    assert r.checked_third_party == ()
    assert r.local or r.checked_local, "no Compiling or Checking line at all: the log was not read"


def test_the_closures_compile_the_third_party_crates(real: RealBuild) -> None:
    """The counterpart of the test above: the crates are compiled, once, in the closures
    (three twice in the services' one: api and worker ask for other features)."""
    deploy = real.results["deployCargoArtifacts"].third_party
    lambda_ = real.results["lambdaDeployCargoArtifacts"].third_party
    assert len(deploy) == 10 and len(set(deploy)) == 7, deploy
    assert len(lambda_) == 5 and len(set(lambda_)) == 5, lambda_


# --------------------------------------------------------------------------- checks with dev-dependencies

API_TEST = """
#[cfg(test)]
mod tests {
    #[test]
    fn floats_round_trip() {
        let x: f64 = serde_json::from_str("0.30000000000000004").unwrap();
        assert_eq!(serde_json::to_string(&x).unwrap(), "0.30000000000000004");
    }
}
"""
CHECK_VARIANTS = {
    # the checks' closure chained on the deploy closure (the default), or standalone in the dev profile
    "chained": "",
    "standalone-dev-closure": "[checks]\nclosure = true\n",
}


@dataclass(frozen=True)
class CheckBuild:
    results: dict[str, Result]
    logs: Path


@pytest.fixture(scope="session", params=sorted(CHECK_VARIANTS))
def dev_checks(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> CheckBuild:
    """The example plus a test in api and a dev-dependency that unifies a feature for api's
    tests only (`serde_json/float_roundtrip`): its checks need a variant no deploy build
    compiles. Every clippy/test check built for real."""
    missing = crane_build_missing(EXAMPLE)
    if missing:
        pytest.skip(missing)
    ws = copy_workspace(EXAMPLE, tmp_path_factory.mktemp(f"dev-checks-{request.param}") / "monorepo")
    api = ws / "services" / "api"
    with (api / "Cargo.toml").open("a") as f:
        f.write('\n[dev-dependencies]\nserde_json = { workspace = true, features = ["float_roundtrip"] }\n')
    (api / "src/main.rs").write_text((api / "src/main.rs").read_text() + API_TEST)
    cfg = ws / "nixcrate.toml"
    cfg.write_text(CHECK_VARIANTS[request.param] + "\n" + cfg.read_text())
    generate.run_init(ws)
    git_init(ws)
    logs = tmp_path_factory.mktemp(f"dev-checks-logs-{request.param}")
    attrs = [f"checks.{SYSTEM}.{kind}-{m}" for m in MEMBERS for kind in ("clippy", "test")]
    return CheckBuild(build(ws, attrs, log_dir=logs), logs)


def test_checks_with_a_dev_unified_feature_compile_no_third_party_crate(dev_checks: CheckBuild) -> None:
    assert sorted(dev_checks.results) == sorted(f"checks.{SYSTEM}.{k}-{m}" for m in MEMBERS for k in ("clippy", "test"))
    for attr, r in dev_checks.results.items():
        assert r.ok, f"{attr}: {r.error_tail}"
        assert (r.third_party, r.checked_third_party) == ((), ()), attr
    # api's test ran, with the feature only its dev-dependency enables
    log = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", (dev_checks.logs / f"checks.{SYSTEM}.test-api.log").read_text())  # cargo's colours
    assert "test tests::floats_round_trip ... ok" in log, log[-3000:]


# --------------------------------------------------------------------------- a handler with includes


@pytest.fixture(scope="session")
def handler_with_include(tmp_path_factory: pytest.TempPathFactory) -> Result:
    """ingest with `include = ["assets"]` (a folder: a file and an executable script)."""
    missing = crane_build_missing(EXAMPLE)
    if missing:
        pytest.skip(missing)
    ws = copy_workspace(EXAMPLE, tmp_path_factory.mktemp("include") / "monorepo")
    assets = ws / "assets"  # include paths are relative to the workspace root
    assets.mkdir()
    (assets / "schema.json").write_text('{"type": "object"}\n')
    (assets / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (assets / "run.sh").chmod(0o755)
    cfg = ws / "nixcrate.toml"
    cfg.write_text(cfg.read_text().replace("[members.ingest]\n", '[members.ingest]\ninclude = ["assets"]\n', 1))
    assert 'include = ["assets"]' in cfg.read_text()
    generate.run_init(ws)
    git_init(ws)
    return build(ws, ["deploy-lambda-ingest"])["deploy-lambda-ingest"]


def test_a_handler_zip_holds_bootstrap_and_exactly_the_declared_includes(handler_with_include: Result) -> None:
    r = handler_with_include
    assert r.ok, r.error_tail
    with zipfile.ZipFile(Path(str(r.out)) / "bootstrap.zip") as z:
        modes = {i.filename: stat.S_IMODE(i.external_attr >> 16) for i in z.infolist() if not i.is_dir()}
        schema = z.read("assets/schema.json") if "assets/schema.json" in modes else None
    assert schema == b'{"type": "object"}\n'
    assert modes == {"bootstrap": 0o755, "assets/run.sh": 0o755, "assets/schema.json": 0o644}
    assert r.third_party == ()
