"""nix/nixcrate/flake-module.nix in a flake-parts flake (attic's flake is one), evaluated with
the real flake-parts, crane and nixpkgs lib: its packages are exactly the derivations the
starter flake.nix gives for the same workspace."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CRANE_EVAL, EXAMPLE, copy_workspace, mirror_repo, needs_crane_eval

from nixcrate.cli import cli

pytestmark = [needs_crane_eval, pytest.mark.nix]

FLAKE_PARTS = """\
{
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    crane.url = "github:ipetkov/crane";
    flake-parts.url = "github:hercules-ci/flake-parts";
  };
  outputs =
    inputs@{ flake-parts, ... }:
    flake-parts.lib.mkFlake { inherit inputs; } {
      systems = [ "x86_64-linux" ];
      imports = [ ./nix/nixcrate/flake-module.nix ];
      # Nix 2.8 (this machine's) does not mark inputs as flakes, which flake-parts' default
      # `pkgs` checks for; newer Nix needs no such line.
      perSystem =
        { system, ... }:
        {
          _module.args.pkgs = inputs.nixpkgs.legacyPackages.${system};
        };
    };
}
"""


def _flake_parts_mirror() -> Path | None:
    return mirror_repo("hercules-ci+flake-parts")


@pytest.mark.skipif(_flake_parts_mirror() is None, reason="hercules-ci/flake-parts is not fetched (the fetch tool: github:hercules-ci/flake-parts)")
def test_the_flake_parts_module_gives_the_starter_flakes_packages(tmp_path: Path) -> None:
    ws = copy_workspace(EXAMPLE, tmp_path / "monorepo")
    shutil.rmtree(ws / "nix")
    (ws / "flake.nix").unlink()
    assert CliRunner().invoke(cli, ["init", str(ws)]).exit_code == 0  # writes the starter
    (ws / "flake-parts.nix").write_text(FLAKE_PARTS)
    mirror = _flake_parts_mirror()
    assert mirror is not None
    flake_parts = tmp_path / "flake-parts"
    flake_parts.mkdir()
    archive = subprocess.run(["git", "-C", str(mirror), "archive", "HEAD"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(flake_parts)], input=archive, check=True)
    sys.path.insert(0, str(CRANE_EVAL))
    import _harness  # type: ignore[import-not-found]  # noqa: PLC0415

    stub = _harness.setup().stub_nixpkgs  # it has the `lib` flake-parts' nixpkgs-lib input reads

    def packages(*args: str) -> dict[str, str]:
        proc = subprocess.run([str(CRANE_EVAL / "eval-flake"), *args, str(ws)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout)  # type: ignore[no-any-return]

    starter = packages()
    module = packages(
        "--flake", "flake-parts.nix",
        "--override-input", "flake-parts", f"path:{flake_parts}",
        "--override-input", "flake-parts/nixpkgs-lib", f"path:{stub}",
    )  # fmt: skip
    assert set(starter) == {"api", "worker", "deploy-lambda-ingest", "deploy-lambda-report-export", "deployCargoArtifacts", "lambdaDeployCargoArtifacts"}
    assert module == starter
