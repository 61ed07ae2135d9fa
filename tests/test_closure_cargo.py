"""The closure's cargo commands, run for real, leave nothing for a service build to recompile.

This is the property the whole tool exists for: after `deployCargoArtifacts`, each
service's own build compiles its workspace crates and no third-party crate. Measured
with real cargo on Debian's vendored crates, outside Nix, the way two sandboxed builds
run: same build path, the closure's target/ inherited, the package's filtered source.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cargo_sim import Sandbox, cargo_home, third_party
from conftest import add_standalone_library, copy_workspace, needs_cargo, needs_debian_crates

from nixcrate import config as config_mod
from nixcrate import flake_gen, workspace

pytestmark = [needs_cargo, needs_debian_crates, pytest.mark.cargo, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "monorepo"


def _services_only(tmp_path: Path) -> workspace.Workspace:
    ws_dir = copy_workspace(EXAMPLE, tmp_path / "ws")
    (ws_dir / "nixcrate.toml").unlink()  # every bin member a service: the service closure only
    return workspace.load(ws_dir)


def _service_command(output: flake_gen.Output) -> str:
    # what crane's buildPackage runs (lib/buildPackage.nix buildPhaseCargoCommand)
    return f"cargoWithProfile build --message-format json-render-diagnostics {output.cargo_args}"


@pytest.mark.parametrize("standalone_library", [False, True], ids=["example", "with-standalone-library"])
def test_each_service_build_compiles_no_third_party_crate(tmp_path: Path, standalone_library: bool) -> None:
    ws = _services_only(tmp_path)
    if standalone_library:
        add_standalone_library(ws.root)
        ws = workspace.load(ws.root)
    ctx = flake_gen.build_context(ws, config_mod.Config())
    assert ctx.service_closure is not None
    box = Sandbox(tmp_path / "sbx", cargo_home(tmp_path))
    closure = box.closure_step(ws, ctx.service_closure.commands)
    assert third_party(ws, closure.compiled), "the closure compiled the third-party crates"
    recompiled = {}
    for output in ctx.services:
        step = box.package_step(ws, output.member, _service_command(output))
        recompiled[output.name] = third_party(ws, step.compiled)
        assert output.member in " ".join(step.compiled)  # the service itself was built
    print("third-party crates recompiled per service build:", {k: len(v) for k, v in recompiled.items()})
    assert recompiled == {o.name: [] for o in ctx.services}
    assert ("sdk" in recompiled) is standalone_library


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
    api = next(o for o in ctx.services if o.member == "api")
    step = box.package_step(ws, "api", _service_command(api))
    assert third_party(ws, step.compiled), "feature unification should have forced a recompile"


def _zigbuild_ready() -> str | None:
    import shutil

    if shutil.which("cargo-zigbuild") is None:
        return "cargo-zigbuild is not installed (pip install cargo-zigbuild ziglang)"
    return None


@pytest.mark.skipif(_zigbuild_ready() is not None, reason=str(_zigbuild_ready()))
def test_each_handler_zigbuild_compiles_no_third_party_crate(tmp_path: Path) -> None:
    """lambdaDeployCargoArtifacts' commands, then each handler's own zigbuild link: 0 recompiles."""
    ws = workspace.load(copy_workspace(EXAMPLE, tmp_path / "ws"))
    ctx = flake_gen.build_context(ws, config_mod.load(ws.root))
    lam = ctx.lambda_closure
    assert lam is not None and ctx.lambdas
    box = Sandbox(tmp_path / "sbx", cargo_home(tmp_path))
    # the env attributes of lambdaArgs, as the derivation exports them, then its preBuild
    prelude = "".join(f"export {k}={v}\n" for k, v in lam.env) + lam.prebuild
    closure = box.closure_step(ws, lam.commands, prelude)
    assert third_party(ws, closure.compiled)
    recompiled = {}
    for output in ctx.lambdas:
        step = box.package_step(ws, output.member, output.build_command, prelude)
        recompiled[output.name] = third_party(ws, step.compiled)
        binary = box.top / "source" / output.binary
        assert binary.is_file(), f"{output.name}: the handler binary was not linked at {binary}"
    print("third-party crates recompiled per handler build:", {k: len(v) for k, v in recompiled.items()})
    assert recompiled == {o.name: [] for o in ctx.lambdas}
