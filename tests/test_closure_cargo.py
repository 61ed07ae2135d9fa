"""Negative control for the closures, replayed with real cargo outside Nix.

That each service and handler compiles no third-party crate after its closure is measured
on real crane builds (tests/test_real_build.py, tests/test_layout_builds.py). What a real build of the generated flake
cannot show is what a *different* closure would leave behind: here one unified
`cargo build -p a -p b` (crane#396) runs on Debian's vendored crates, the way two
sandboxed builds run (same build path, the closure's target/ inherited), and a service
build after it does recompile.
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
