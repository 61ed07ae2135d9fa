"""Negative control for the checks' closure, replayed with real cargo outside Nix.

That no check compiles a third-party crate after its closure is measured on real crane
builds (tests/test_real_build.py, with a test and a dev-dependency that unifies a feature
in api). What a real build of the generated flake cannot show is why the checks' closure
exists: without its lines, `cargo test -p api` on the deploy closure alone recompiles
serde_json (the dev-unified `float_roundtrip` variant). Replayed as
tests/test_closure_cargo.py does.
"""

# ruff: noqa: T201 - prints record the measured figures
from __future__ import annotations

from pathlib import Path

import pytest
from cargo_sim import Sandbox, cargo_home, third_party
from conftest import EXAMPLE, copy_workspace, needs_cargo, needs_debian_crates

from nixcrate import config as config_mod
from nixcrate import flake_gen, workspace

pytestmark = [needs_cargo, needs_debian_crates, pytest.mark.cargo, pytest.mark.slow]

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


def workspace_with_tests(tmp_path: Path, toml_extra: str = "") -> workspace.Workspace:
    ws_dir = copy_workspace(EXAMPLE, tmp_path / "ws")
    api = ws_dir / "services" / "api"
    with (api / "Cargo.toml").open("a") as f:
        f.write('\n[dev-dependencies]\nserde_json = { workspace = true, features = ["float_roundtrip"] }\n')
    main = api / "src" / "main.rs"
    main.write_text(main.read_text() + API_TEST)
    if toml_extra:
        cfg = ws_dir / "nixcrate.toml"
        cfg.write_text(toml_extra + "\n" + cfg.read_text())
    return workspace.load(ws_dir)


def test_negative_control_the_deploy_closure_alone_leaves_work_for_the_checks(tmp_path: Path) -> None:
    """Without the checks closure's lines, `cargo test -p api` recompiles on the deploy closure."""
    ws = workspace_with_tests(tmp_path)
    cfg = config_mod.load(ws.root)
    ctx = flake_gen.build_context(ws, cfg)
    # the deploy closure's lines and test-api's command, as the library writes them (default.nix)
    closure = "\n".join(f"cargoWithProfile build {flake_gen.cargo_args(o.member, cfg)}" for o in ctx.services)
    box = Sandbox(tmp_path / "sbx", cargo_home(tmp_path))
    box.closure_step(ws, closure)
    step = box.package_step(ws, "api", f"cargoWithProfile test {flake_gen.cargo_args('api', cfg)}", dev=True)
    print("test-api on the deploy closure alone recompiles:", third_party(ws, step.compiled))
    assert "serde_json 1.0.87" in " ".join(third_party(ws, step.compiled))
