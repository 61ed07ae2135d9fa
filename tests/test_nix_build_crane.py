"""`nixcrate build` on real crane builds of the example (through crane-build's inputs).

Its plan and report were made against plain stand-in derivations (fake_flakes.py); here
they meet the real graph: crane's closures, its hooks, Cargo.toml copies, dummy sources.
The workspace gets a fresh `[services] env` value per session, so that its closure and
packages are new derivations, built for real whatever the store already holds.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from conftest import EXAMPLE, copy_workspace, git_init
from crane_build import Staged, crane_build_missing, stage
from nixcrate import generate, nix

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.nix, pytest.mark.xdist_group("nixcrate-build-crane")]


@dataclass(frozen=True)
class Fresh:
    staged: Staged
    plan_services: nix.BuildPlan  # planned before anything was built
    plan_all: nix.BuildPlan


@pytest.fixture(scope="session")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fresh]:
    missing = crane_build_missing(EXAMPLE)
    if missing:
        pytest.skip(missing)
    ws = copy_workspace(EXAMPLE, tmp_path_factory.mktemp("nixcrate-build") / "monorepo")
    config = ws / "nixcrate.toml"
    nonce = uuid.uuid4().hex[:12]
    config.write_text(config.read_text().replace("[services]\n", f'[services]\nenv = {{ NIXCRATE_TEST_RUN = "{nonce}" }}\n', 1))
    # and new Cargo.toml copies and dummy sources, as after a dependency bump
    with (ws / "Cargo.toml").open("a") as f:
        f.write(f'\n[workspace.metadata.nixcrate-test]\nrun = "{nonce}"\n')
    generate.run_init(ws)
    git_init(ws)
    staged = stage(ws)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NIX_CONFIG", staged.nix_config)
        plans = (nix.plan_build(staged.ref, ["api", "worker"], staged.nix_args()), nix.plan_build(staged.ref, [], staged.nix_args()))
    yield Fresh(staged, *plans)
    staged.cleanup()


def nixcrate_build(fresh: Fresh, *args: str, nix_args: tuple[str, ...] = ()) -> tuple[dict, str]:
    """`nixcrate build --flake <staged> --json -v ARGS -- <crane-build's overrides>`: (report, stderr)."""
    argv = [sys.executable, "-m", "nixcrate.cli", "build", "--flake", fresh.staged.ref, "--json", "-v", *args, "--", *fresh.staged.nix_args(), *nix_args]
    proc = subprocess.run(argv, capture_output=True, text=True, env=fresh.staged.env(), check=False, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout), proc.stderr


def states(report: dict) -> dict[str, tuple[str, str]]:
    """derivation name -> (state, cache) for the crane builds of the report."""
    return {d["name"]: (d["state"], d["cache"]) for d in report["derivations"]}


def names(plan: nix.BuildPlan, drvs: tuple[str, ...]) -> list[str]:
    return sorted(plan.derivations[d].name for d in drvs)


def empty_store(plan: nix.BuildPlan) -> nix.BuildPlan:
    """The same plan as on a fresh machine: nothing in the store yet (hooks, tools, sources)."""
    return dataclasses.replace(plan, valid=frozenset())


def test_the_plan_tells_compiling_builds_from_trivial_ones(fresh: Fresh) -> None:
    plan = fresh.plan_services
    assert names(plan, plan.compiling()) == ["api-0.3.1", "deploy-deps-0.0.0", "worker-0.3.1"]  # what this session's nonce made new
    fresh_store = empty_store(plan)
    compiling = names(fresh_store, fresh_store.compiling())
    assert compiling == ["api-0.3.1", "deploy-deps-0.0.0", "worker-0.3.1"]
    trivial = {d.name for d in plan.derivations.values()} - set(compiling)
    # what the plan counted as buildable at once: Cargo.toml copies, dummy sources, hooks
    assert {"Cargo.toml", "dummy.rs", "source", "inheritCargoArtifactsHook", "vendor-cargo-deps"} <= trivial


def test_the_deps_closure_gets_the_cores(fresh: Fresh) -> None:
    """On 16 cores and a fresh store: one compiling build at a time for the services (their
    closure, then the packages waiting on it), two for everything (both closures start
    together). Counting every derivation, the closure got one core."""
    services, everything = empty_store(fresh.plan_services), empty_store(fresh.plan_all)
    assert nix.parallelism(16, services.max_parallel()) == (16, 1)  # the split before
    assert nix.parallelism(16, services.compiling_at_once()) == (1, 16)
    assert nix.parallelism(16, everything.compiling_at_once()) == (2, 8)
    # and with this store (the trivial ones present): the same
    assert fresh.plan_services.compiling_at_once() == 1


def test_first_build_builds_the_closure_then_a_second_service_reuses_it(fresh: Fresh) -> None:
    report, err = nixcrate_build(fresh, "api")
    cores = nix.available_cores()
    assert f"--max-jobs 1 --cores {cores}" in err  # the closure's build got every core
    s = states(report)
    assert s["deploy-deps-0.0.0"][0] == "built"
    assert s["api-0.3.1"][0] == "built"
    assert [(c["output"], c["reused"]) for c in report["closures"]] == [("deployCargoArtifacts", False)]

    report, _ = nixcrate_build(fresh, "worker")
    s = states(report)
    assert s["deploy-deps-0.0.0"][0] == "present"
    assert s["worker-0.3.1"][0] == "built"
    assert [(c["output"], c["reused"]) for c in report["closures"]] == [("deployCargoArtifacts", True)]
    assert report["summary"]["cache_reuse"] == 0.5  # the closure reused, worker built


def test_a_file_binary_cache_is_reported_as_fetched(fresh: Fresh, tmp_path: Path) -> None:
    report, _ = nixcrate_build(fresh, "api")
    out = next(o["path"] for o in report["outputs"] if o["output"] == "api")
    cache = f"file://{tmp_path / 'cache'}"
    env = fresh.staged.env()
    subprocess.run(["nix", "copy", "--to", cache, out], check=True, env=env, capture_output=True)
    subprocess.run(["nix-store", "--delete", out], check=True, env=env, capture_output=True)
    assert not Path(out).exists()

    report, _ = nixcrate_build(fresh, "api", nix_args=("--option", "substituters", cache, "--option", "require-sigs", "false"))
    s = states(report)
    assert s["api-0.3.1"] == ("fetched", cache)
    assert "deploy-deps-0.0.0" not in s  # not needed: api is substituted whole
    assert Path(out).exists()


def test_a_rebuilt_closure_is_counted_and_named_with_its_cause(fresh: Fresh) -> None:
    """Last in this module (it changes the staged workspace): a new `[services] env` value
    rebuilds the services' closure and api, and nothing else. Counting every derivation
    (crane's hooks, Cargo.toml copies, dummy sources, present), this run was "mostly
    reused"; of its cargo builds, none was."""
    report, _ = nixcrate_build(fresh, "deployCargoArtifacts")  # this session's nonce's closure, present
    before = next(c for c in report["closures"] if c["output"] == "deployCargoArtifacts")

    config = fresh.staged.flake / "nixcrate.toml"
    old = re.search(r'NIXCRATE_TEST_RUN = "(\w+)"', config.read_text()).group(1)
    new = uuid.uuid4().hex[:12]
    config.write_text(config.read_text().replace(old, new))
    generate.run_init(fresh.staged.flake)
    subprocess.run(["git", "add", "-A"], cwd=fresh.staged.flake, check=True)

    summary = fresh.staged.flake.parent / "summary.md"
    report, err = nixcrate_build(fresh, "--summary-file", str(summary), "api")
    s = states(report)
    compiling = {d["name"]: d["state"] for d in report["derivations"] if d["group"] == "compile"}
    assert compiling == {"api-0.3.1": "built", "deploy-deps-0.0.0": "built"}
    assert report["summary"]["cache_reuse"] == 0
    everything = report["summary"]
    assert (everything["present"] + everything["fetched"]) / everything["total"] > 0.8  # what "reuse" used to say
    assert s["inheritCargoArtifactsHook"][0] == "present"

    note = next(c for c in report["closures"] if c["output"] == "deployCargoArtifacts")
    assert (note["state"], note["reused"], note["reason"]) == ("built", False, "changed")
    assert note["previous_drv"] == before["drv"]
    assert note["changes"] == [{"kind": "settings", "text": f'env NIXCRATE_TEST_RUN "{old}" -> "{new}"'}]
    assert f'note: deployCargoArtifacts was built, not reused: changed since its last build here: settings: env NIXCRATE_TEST_RUN "{old}" -> "{new}"' in err

    # The tables (the terminal's have the same rows): the headline one lists the two cargo
    # builds, by the names users know; -v's every derivation, crane's hooks among them.
    headline, every = summary.read_text().split("<details>")
    rows = [ln for ln in headline.splitlines() if ln.startswith("| `")]
    assert rows[0].startswith("| `api-0.3.1` | compile | built | local | ")
    assert rows[1].startswith("| `deployCargoArtifacts` | compile | built | local | ")
    assert len(rows) == 2
    assert "| `inheritCargoArtifactsHook` | other | present | store |  | " in every
    assert "**cargo builds: 0 of 2 reused (0%): built 2 (" in headline
    # -v's echoes: the queries' hundreds of store paths cut to three and a count
    echoes = [ln for ln in err.splitlines() if ln.startswith("$ ")]
    assert max(ln.count("/nix/store/") for ln in echoes) <= 3
    assert any(re.search(r"'\.\.\.\(\d{2,} more store paths\)'", ln) for ln in echoes), echoes
