"""Negative control for the closures' one-cargo-command-per-member rule, outside Nix.

The real builds (tests/test_layout_builds.py) show that no package compiles a third-party
crate after its closure. This replay of cargo commands (real cargo on Debian's vendored
crates, the way two sandboxed builds run) shows what the rule prevents: a unified
`cargo build -p a -p b` closure leaves a service recompiling dependencies.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cargo_sim import Sandbox, cargo_home, third_party
from conftest import copy_workspace, needs_cargo, needs_debian_crates

from nixcrate import config as config_mod
from nixcrate import flake_gen, workspace

pytestmark = [needs_cargo, needs_debian_crates, pytest.mark.cargo, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "monorepo"


def _services_only(tmp_path: Path) -> workspace.Workspace:
    ws_dir = copy_workspace(EXAMPLE, tmp_path / "ws")
    (ws_dir / "nixcrate.toml").unlink()  # every bin member a service: the service closure only
    return workspace.load(ws_dir)


def test_unified_closure_command_would_recompile(tmp_path: Path) -> None:
    """Negative control: one `cargo build -p a -p b` closure (crane#396) leaves work behind.

    The example's services enable different features of smallvec and serde_json, so the
    unified build compiles other variants than each service's own build asks for.
    """
    ws = _services_only(tmp_path)
    ctx = flake_gen.build_context(ws, config_mod.Config())
    unified = "cargoWithProfile build --locked " + " ".join(f"-p {o.member}" for o in ctx.services)
    box = Sandbox(tmp_path / "sbx", cargo_home(tmp_path))
    box.closure_step(ws, unified)
    # what crane's buildPackage runs for api on top of it (the library's mkService)
    step = box.package_step(ws, "api", f"cargoWithProfile build {flake_gen.cargo_args('api', config_mod.Config())}")
    assert third_party(ws, step.compiled), "feature unification should have forced a recompile"
