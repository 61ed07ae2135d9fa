"""`[services] unify-features = true`, built for real with ../shared/crane-build.

The example's two services ask serde_json and its dependencies for different features: by
default the services' closure compiles those crates once per feature set (10 crate builds
for 7 crates), so that each service's own build finds exactly its variant. Unified, the
closure runs the one command that selects every service and compiles each crate once; each
service's build runs that command too, narrowed to its binaries by `--bin`, and so compiles
no third-party crate and none of the other service's code. The binaries still run, and a
leaf edit rebuilds the edited service alone.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import EXAMPLE, copy_workspace, git_init
from crane_build import Result, build, crane_build_missing, drv_paths

from nixcrate import generate

pytestmark = [pytest.mark.nix, pytest.mark.slow, pytest.mark.xdist_group("unified-build")]

ATTRS = ["deployCargoArtifacts", "api", "worker"]


@dataclass(frozen=True)
class Unified:
    ws: Path
    results: dict[str, Result]


@pytest.fixture(scope="module")
def unified(tmp_path_factory: pytest.TempPathFactory) -> Unified:
    if why := crane_build_missing(EXAMPLE):
        pytest.skip(why)
    ws = copy_workspace(EXAMPLE, tmp_path_factory.mktemp("unified") / "monorepo")
    toml = ws / "nixcrate.toml"
    assert "\n[services]\n" in toml.read_text()
    toml.write_text(toml.read_text().replace("\n[services]\n", "\n[services]\nunify-features = true\n", 1))
    generate.run_init(ws, refresh_base=True)  # the example's base is of per-service commands
    git_init(ws)
    results = build(ws, ATTRS)
    failed = {a: r.error_tail for a, r in results.items() if not r.ok}
    assert not failed, failed
    return Unified(ws, results)


def test_the_closure_compiles_each_third_party_crate_once(unified: Unified) -> None:
    compiled = Counter(c.split(" ")[0] for c in unified.results["deployCargoArtifacts"].third_party)
    assert compiled == dict.fromkeys(("anyhow", "itoa", "memchr", "ryu", "serde", "serde_json", "smallvec"), 1), compiled


@pytest.mark.parametrize(("service", "local"), [("api", {"api", "common", "textwrap-lite"}), ("worker", {"worker", "common"})])
def test_each_service_compiles_no_third_party_crate_and_only_its_own_code(unified: Unified, service: str, local: set[str]) -> None:
    r = unified.results[service]
    assert r.third_party == ()
    assert {c.split(" ")[0] for c in r.local} == local


def test_the_unified_binaries_run(unified: Unified) -> None:
    api = subprocess.run([f"{unified.results['api'].out}/bin/api"], capture_output=True, text=True, check=True)
    assert api.stdout.splitlines()[:2] == ['{"ids":[1,2,3],"service":"api"}', "hello, api"]
    assert sorted(p.name for p in Path(unified.results["worker"].out, "bin").iterdir()) == ["worker", "worker-admin"]


def test_a_leaf_edit_rebuilds_the_edited_service_alone(unified: Unified, tmp_path: Path) -> None:
    before = drv_paths(unified.ws)
    edited = copy_workspace(unified.ws, tmp_path / "monorepo")
    main = edited / "services" / "api" / "src" / "main.rs"
    main.write_text(main.read_text() + "\n// edited\n")
    git_init(edited)
    after = drv_paths(edited)
    moved = sorted(a for a in before if after[a] != before[a] and not a.startswith("checks."))
    assert moved == ["api"], moved


def test_the_base_snapshot_records_the_command_the_closure_ran(unified: Unified) -> None:
    """The library starts a package from the base closure only when its command is one the
    base recorded: nixcrate's copy of the line (base.nix) and the library's must agree."""
    log = subprocess.run(
        ["nix", "log", unified.results["deployCargoArtifacts"].drv], capture_output=True, text=True, check=True
    ).stdout
    assert "cargo build --release --locked -p api -p worker\n" in log
    base = (unified.ws / "nix" / "nixcrate" / "base" / "base.nix").read_text()
    assert 'services = [ "--locked -p api -p worker" ];' in base
