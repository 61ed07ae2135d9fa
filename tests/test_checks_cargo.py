"""The checks' cargo commands, run for real after their closure's, recompile no third-party crate.

As tests/test_closure_cargo.py does for packages: the closures' command lines (from
FlakeContext, the strings the flake holds) run on a dummified copy of the workspace at a
fixed build path, then each check's own command (crane's cargoClippy / cargoTest line) on
the member's check source with that target/ inherited. The example gets a test and a
dev-dependency that unifies a feature (`serde_json/float_roundtrip` for api's tests only), so
the test build needs a variant the deploy closure never compiled.
"""

# ruff: noqa: T201 - prints record the measured figures
from __future__ import annotations

import shutil
import subprocess
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


def clippy_missing() -> str | None:
    if shutil.which("cargo") is None:
        return "cargo is not installed"
    proc = subprocess.run(["cargo", "clippy", "--version"], capture_output=True, text=True, check=False)
    return None if proc.returncode == 0 else "cargo clippy is not installed (rustup component add clippy)"


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


def _prelude(env: tuple[tuple[str, str], ...]) -> str:
    # the derivation's env attributes, as bash sees them (values are rendered Nix strings)
    return "".join(f"export {k}={v}\n" for k, v in env)


def run_checks(tmp_path: Path, ws: workspace.Workspace) -> tuple[dict[str, int], int]:
    """(third-party crates recompiled per check, crates the checks closure compiled)."""
    ctx = flake_gen.build_context(ws, config_mod.load(ws.root))
    checks = ctx.checks
    assert checks is not None
    box = Sandbox(tmp_path / "sbx", cargo_home(tmp_path))
    prelude = _prelude(checks.closure.env)
    if checks.chained_on == flake_gen.SERVICE_CLOSURE:
        assert ctx.service_closure is not None
        box.closure_step(ws, ctx.service_closure.commands, _prelude(ctx.service_closure.env))
        closure = box.chained_closure_step(ws, checks.closure.commands, prelude)
    else:
        closure = box.closure_step(ws, checks.closure.commands, prelude)
    recompiled = {}
    for check in checks.outputs:
        step = box.package_step(ws, check.member, check.command, prelude, dev=True)
        recompiled[check.name] = len(third_party(ws, step.compiled))
        if check.function == "cargoTest":
            assert "test result: ok" in step.output, step.output[-2000:]
    return recompiled, len(third_party(ws, closure.compiled))


@pytest.mark.skipif(clippy_missing() is not None, reason=str(clippy_missing()))
def test_checks_chained_on_the_deploy_closure_recompile_nothing(tmp_path: Path) -> None:
    ws = workspace_with_tests(tmp_path)
    recompiled, closure_compiled = run_checks(tmp_path, ws)
    print("checks closure (on deployCargoArtifacts) compiled", closure_compiled, "third-party crate units")
    print("third-party crates recompiled per check:", recompiled)
    assert closure_compiled > 0  # check metadata and the dev-unified serde_json variant
    assert set(recompiled) >= {"clippy-api", "test-api", "clippy-ingest", "test-common"}
    assert recompiled == dict.fromkeys(recompiled, 0)


@pytest.mark.skipif(clippy_missing() is not None, reason=str(clippy_missing()))
def test_dev_profile_checks_closure_recompiles_nothing(tmp_path: Path) -> None:
    ws = workspace_with_tests(tmp_path, "[checks]\nclosure = true\n")
    recompiled, closure_compiled = run_checks(tmp_path, ws)
    print("standalone dev checks closure compiled", closure_compiled, "third-party crate units")
    print("third-party crates recompiled per check:", recompiled)
    assert recompiled == dict.fromkeys(recompiled, 0)


def test_negative_control_the_deploy_closure_alone_leaves_work_for_the_checks(tmp_path: Path) -> None:
    """Without the checks closure's lines, `cargo test -p api` recompiles on the deploy closure."""
    ws = workspace_with_tests(tmp_path)
    ctx = flake_gen.build_context(ws, config_mod.load(ws.root))
    assert ctx.service_closure is not None and ctx.checks is not None
    box = Sandbox(tmp_path / "sbx", cargo_home(tmp_path))
    box.closure_step(ws, ctx.service_closure.commands)
    test_api = next(c for c in ctx.checks.outputs if c.name == "test-api")
    step = box.package_step(ws, "api", test_api.command, dev=True)
    print("test-api on the deploy closure alone recompiles:", third_party(ws, step.compiled))
    assert "serde_json 1.0.87" in " ".join(third_party(ws, step.compiled))
