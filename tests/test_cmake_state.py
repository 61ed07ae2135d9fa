"""Inherited build-script state: a package build drops the CMake cache its closure left.

A closure built in another sandbox can carry `CMakeCache.txt` naming a compiler wrapper
path missing from this one. The flake's `removeStaleCmakeState` snippet deletes every such
cache under the target directory before cargo runs: checked here by running the snippet's
text with bash, and by reading each package's and check's derivation (its preBuild).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CRANE_EVAL, EXAMPLE, copy_workspace, handler_build_drv, needs_crane_eval

from nixcrate.cli import cli


def snippet(flake_text: str) -> str:
    """The body of `removeStaleCmakeState = '' ... '';`, as bash receives it."""
    match = re.search(r"removeStaleCmakeState = ''\n(.*?)\n\s*'';", flake_text, re.DOTALL)
    assert match is not None
    return match.group(1).replace("''${", "${").strip()


def _target(root: Path) -> tuple[Path, Path]:
    cache = root / "release" / "build" / "aws-lc-sys-0123" / "out" / "build" / "CMakeCache.txt"
    keep = root / "release" / "build" / "aws-lc-sys-0123" / "out" / "lib" / "libcrypto.a"
    for f in (cache, keep):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("x\n")
    return cache, keep


@pytest.mark.parametrize("target_dir", [None, "custom-target"])
def test_snippet_removes_only_cmake_caches(tmp_path: Path, target_dir: str | None) -> None:
    body = snippet((EXAMPLE / "nix/nixcrate/default.nix").read_text())
    cache, keep = _target(tmp_path / (target_dir or "target"))
    env = f"export CARGO_TARGET_DIR={target_dir}\n" if target_dir else "unset CARGO_TARGET_DIR\n"
    proc = subprocess.run(["bash", "-euc", env + body], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert not cache.exists()
    assert keep.exists()


def test_snippet_succeeds_without_a_target_dir(tmp_path: Path) -> None:
    body = snippet((EXAMPLE / "nix/nixcrate/default.nix").read_text())
    proc = subprocess.run(["bash", "-euc", body], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@needs_crane_eval
@pytest.mark.nix
def test_every_package_and_check_runs_it_before_cargo(tmp_path: Path) -> None:
    ws = copy_workspace(EXAMPLE, tmp_path / "monorepo")
    result = CliRunner().invoke(cli, ["init", str(ws), "--force"])
    assert result.exit_code == 0, result.output
    proc = subprocess.run([str(CRANE_EVAL / "eval-flake"), str(ws)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    packages = json.loads(proc.stdout)
    for attr, drv in packages.items():
        if attr.startswith("deploy-lambda-"):
            drv = handler_build_drv(drv)  # the zip runs no cargo; the crate build it packages does  # noqa: PLW2901
        shown = subprocess.run(["nix", "show-derivation", drv], capture_output=True, text=True, check=True)
        pre_build = json.loads(shown.stdout)[drv]["env"].get("preBuild", "")
        if attr.endswith("CargoArtifacts"):
            continue  # closures start from an empty target/: nothing inherited
        assert "-name CMakeCache.txt -type f -delete" in pre_build, attr
    text = (ws / "nix/nixcrate/default.nix").read_text()
    # defined; used by services, handlers, the checks' closure (it inherits the deploy one's) and checks
    assert text.count("removeStaleCmakeState") == 5
