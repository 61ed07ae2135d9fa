"""A pinned toolchain and the checks, evaluated with the real crane and the real rust-overlay.

The workspace is the example plus a `rust-toolchain.toml` (channel, components, targets) and
an arm64 handler. rust-overlay is a remote input, which crane-eval refuses offline: it is
given as `--override-input rust-overlay path:<git archive of .mirror/oxalica+rust-overlay>`,
and nixpkgs as the harness's stub plus what rust-overlay's derivations name
(tests/fixtures/stub-nixpkgs-rust-overlay). Derivations are then read with
`nix show-derivation`: every package and closure uses the pinned toolchain, every check
depends on a closure.
"""

# ruff: noqa: T201 - prints record the measured figures
from __future__ import annotations

import importlib.machinery
import importlib.util
import io
import json
import shutil
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import CRANE_EVAL, EXAMPLE, REPO, copy_workspace, handler_build_drv, input_drvs, mirror_repo, needs_crane_eval

from nixcrate.cli import cli

pytestmark = [needs_crane_eval, pytest.mark.nix]

CHANNEL = "1.85.0"
TOOLCHAIN_TOML = f"""\
[toolchain]
channel = "{CHANNEL}"
components = ["clippy", "rustfmt", "rust-src"]
targets = ["x86_64-unknown-linux-gnu"]
"""
PINNED = f"rust-default-{CHANNEL}.drv"
STUB_ADDITIONS = REPO / "tests" / "fixtures" / "stub-nixpkgs-rust-overlay"


def _rust_overlay_mirror() -> Path | None:
    return mirror_repo("oxalica+rust-overlay")


needs_rust_overlay = pytest.mark.skipif(
    _rust_overlay_mirror() is None, reason="oxalica/rust-overlay is not fetched into .mirror/ (the toolchain input)"
)


def _harness() -> Any:
    sys.path.insert(0, str(CRANE_EVAL))
    import _harness  # type: ignore[import-not-found]  # noqa: PLC0415

    return _harness


@pytest.fixture(scope="module")
def overrides(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    """--override-input pairs: a local rust-overlay, and the stub nixpkgs it can evaluate with."""
    base = tmp_path_factory.mktemp("inputs")
    mirror = _rust_overlay_mirror()
    assert mirror is not None
    overlay = base / "rust-overlay"
    overlay.mkdir()
    archive = subprocess.run(["git", "-C", str(mirror), "archive", "HEAD"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(overlay)], input=archive, check=True)
    stub = base / "stub-nixpkgs"
    shutil.copytree(_harness().setup().stub_nixpkgs, stub)
    stub.chmod(0o755)
    for path in stub.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.copytree(STUB_ADDITIONS, stub, dirs_exist_ok=True)
    flake = stub / "flake.nix"
    text = flake.read_text()
    old = "import ./. { inherit system; }"
    assert old in text
    flake.write_text(text.replace(old, "import ./. { inherit system; overlays = [ (import ./extra-tools.nix) ]; }"))
    return [("rust-overlay", f"path:{overlay}"), ("nixpkgs", f"path:{stub}")]


def pinned_workspace(tmp_path: Path, toml_extra: str = "") -> Path:
    ws = copy_workspace(EXAMPLE, tmp_path / "monorepo")
    (ws / "rust-toolchain.toml").write_text(TOOLCHAIN_TOML)
    cfg = ws / "nixcrate.toml"
    text = cfg.read_text()
    assert '# arch = "arm64"' in text
    cfg.write_text(toml_extra + text.replace('# arch = "arm64"', 'arch = "arm64"'))
    (ws / "flake.nix").unlink()
    result = CliRunner().invoke(cli, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    return ws


def eval_flake(ws: Path, overrides: list[tuple[str, str]], *args: str) -> dict[str, Any]:
    flags = [a for name, ref in overrides for a in ("--override-input", name, ref)]
    proc = subprocess.run(
        [str(CRANE_EVAL / "eval-flake"), *flags, *args, str(ws)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def eval_checks(ws: Path, overrides: list[tuple[str, str]], tmp_path: Path) -> dict[str, str]:
    """{check: drvPath} of checks.x86_64-linux (eval-flake reads packages only)."""
    h = _harness()
    inputs = h.setup()
    staged = h.stage(ws, tmp_path / "staged-checks")
    cmd = [
        "nix", "eval", "--json", "--no-write-lock-file",
        *h.override_args(inputs, h.flake_inputs(staged), list(overrides)),
        f"git+file://{staged}#checks.{h.SYSTEM}", "--apply", "cs: builtins.mapAttrs (n: c: c.drvPath) cs",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=h.nix_env(), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def _named(drvs: list[str], suffix: str) -> list[str]:
    return [d for d in drvs if d.split("-", 1)[1] == suffix or d.endswith("-" + suffix)]


@needs_rust_overlay
def test_every_package_builds_with_the_pinned_toolchain(tmp_path: Path, overrides: list[tuple[str, str]]) -> None:
    ws = pinned_workspace(tmp_path)
    text = (ws / "flake.nix").read_text()
    assert 'inputs.nixpkgs.follows = "nixpkgs";' in text  # one nixpkgs, like crane's
    assert "inherit pkgs crane rust-overlay;" in text
    assert 'file = "rust-toolchain.toml";' in (ws / "nix/nixcrate/workspace.nix").read_text()
    packages = eval_flake(ws, overrides)
    assert set(packages) == {
        "api", "worker", "deploy-lambda-ingest", "deploy-lambda-report-export",
        "deployCargoArtifacts", "lambdaDeployCargoArtifacts",
    }  # fmt: skip
    toolchains = set()
    for attr, drv in packages.items():
        if attr.startswith("deploy-lambda-"):
            drv = handler_build_drv(drv)  # the zip's compiling build  # noqa: PLW2901
        inputs = input_drvs(drv)
        pinned = [d for d in inputs if d.endswith(PINNED)]
        assert len(pinned) == 1, f"{attr}: {inputs}"
        toolchains.add(pinned[0])
        # nixpkgs' own rustc/cargo (the stub's 1.95.0) are not inputs of any package
        assert not [d for d in inputs if "-rustc-1.95" in d or "-cargo-1.95" in d], attr
    assert len(toolchains) == 1  # one toolchain derivation for the whole flake
    std = [d for d in input_drvs(toolchains.pop()) if "-rust-std-" in d]
    # the host's std and the arm64 handler's, which the file does not list
    assert sorted(d.split("-", 1)[1] for d in std) == [
        f"rust-std-{CHANNEL}-aarch64-unknown-linux-gnu.drv",
        f"rust-std-{CHANNEL}-x86_64-unknown-linux-gnu.drv",
    ]


@needs_rust_overlay
def test_checks_evaluate_and_each_reuses_a_closure(tmp_path: Path, overrides: list[tuple[str, str]]) -> None:
    ws = pinned_workspace(tmp_path)
    packages = eval_flake(ws, overrides)
    checks = eval_checks(ws, overrides, tmp_path)
    # textwrap-lite: a path dependency under the root, so a member (as cargo has it), with checks
    members = ("api", "common", "ingest", "report-export", "textwrap-lite", "worker")
    assert set(checks) == {
        *(f"clippy-{m}" for m in members), *(f"test-{m}" for m in members),
        "fmt", "lambda-verify-ingest", "lambda-verify-report-export",
    }  # fmt: skip
    closures = {d for c in members for d in input_drvs(checks[f"clippy-{c}"]) if d.endswith("checks-deps-0.0.0.drv")}
    assert len(closures) == 1, closures
    check_closure = closures.pop()
    for name, drv in checks.items():
        inputs = input_drvs(drv)
        if name.startswith(("clippy-", "test-")):
            assert check_closure in inputs, name
            assert [d for d in inputs if d.endswith(PINNED)], name
    # chained: the checks' closure starts from the deploy closure's target/
    assert packages["deployCargoArtifacts"] in input_drvs(check_closure)
    # the handlers' verify is their package build (its install check), on the handlers' closure
    assert checks["lambda-verify-ingest"] == packages["deploy-lambda-ingest"]
    # (or on the base's handlers' closure, which the current one starts from: ingest's own
    # command line did not move when report-export went arm64, so its build keeps its drv)
    handlers_closures = {packages["lambdaDeployCargoArtifacts"]} | {
        d for d in input_drvs(packages["lambdaDeployCargoArtifacts"]) if d.endswith("lambda-deploy-deps-0.0.0.drv")
    }
    assert handlers_closures & set(input_drvs(handler_build_drv(checks["lambda-verify-ingest"])))
    # rustfmt compiles nothing: no closure, the pinned toolchain's rustfmt
    fmt_inputs = input_drvs(checks["fmt"])
    assert not [d for d in fmt_inputs if "-deps-0.0.0" in d]
    assert [d for d in fmt_inputs if d.endswith(PINNED)]


@needs_rust_overlay
def test_dev_checks_closure_is_standalone(tmp_path: Path, overrides: list[tuple[str, str]]) -> None:
    ws = pinned_workspace(tmp_path, "[checks]\nclosure = true\n\n")
    packages = eval_flake(ws, overrides)
    checks = eval_checks(ws, overrides, tmp_path)
    closure = next(d for d in input_drvs(checks["test-api"]) if d.endswith("checks-deps-0.0.0.drv"))
    assert packages["deployCargoArtifacts"] not in input_drvs(closure)
    env = json.loads(subprocess.run(["nix", "show-derivation", closure], capture_output=True, text=True, check=True).stdout)
    assert env[closure]["env"]["CARGO_PROFILE"] == "dev"


@needs_rust_overlay
def test_a_crane_library_of_your_own_decides_the_toolchain(tmp_path: Path, overrides: list[tuple[str, str]]) -> None:
    """Bring your own craneLib: a rust-overlay toolchain chosen in flake.nix, not by a file."""
    ws = copy_workspace(EXAMPLE, tmp_path / "monorepo")
    flake = ws / "flake.nix"
    text = flake.read_text()
    text = text.replace(
        '    crane.url = "github:ipetkov/crane";\n',
        '    crane.url = "github:ipetkov/crane";\n    rust-overlay = { url = "github:oxalica/rust-overlay"; inputs.nixpkgs.follows = "nixpkgs"; };\n',
    )
    old = "          inherit pkgs crane;\n"
    assert old in text
    text = text.replace(
        old,
        "          inherit pkgs;\n"
        f"          craneLib = (crane.mkLib pkgs).overrideToolchain (p: (inputs.rust-overlay.lib.mkRustBin {{ }} p).stable.\"{CHANNEL}\".default);\n",
    )
    flake.write_text(text)
    packages = eval_flake(ws, overrides)
    for attr in ("api", "deployCargoArtifacts"):
        inputs = input_drvs(packages[attr])
        assert [d for d in inputs if d.endswith(PINNED)], f"{attr}: {inputs}"
        assert not [d for d in inputs if "-rustc-1.95" in d], attr  # not nixpkgs' own rustc


@needs_rust_overlay
def test_leaf_edit_amplification_stays_one_with_a_pinned_toolchain(
    tmp_path: Path, overrides: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """crane-eval/amplification, run in-process with the two inputs overridden."""
    ws = pinned_workspace(tmp_path)
    h = _harness()
    original = h.override_args
    monkeypatch.setattr(h, "override_args", lambda inputs, declared, extra: original(inputs, declared, [*extra, *overrides]))
    loader = importlib.machinery.SourceFileLoader("crane_eval_amplification", str(CRANE_EVAL / "amplification"))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    amp = importlib.util.module_from_spec(spec)
    loader.exec_module(amp)
    monkeypatch.setattr(amp, "h", h)
    monkeypatch.setattr(sys, "argv", ["amplification", str(ws)])
    if shutil.which("rustup"):
        # amplification runs `cargo metadata` in the workspace: rustup would try to download
        # the pinned channel (no network here); any installed toolchain reads metadata.
        default = subprocess.run(["rustup", "default"], capture_output=True, text=True, check=True).stdout.split()[0]
        monkeypatch.setenv("RUSTUP_TOOLCHAIN", default)
    out = io.StringIO()
    with redirect_stdout(out):
        assert amp.main() == 0
    report = out.getvalue()
    print(report)
    last = report.strip().splitlines()[-1]
    assert "leaf-edit rebuild amplification: mean 1.0 " in last
    assert last.endswith("deps closure stable under .rs edits: yes")
