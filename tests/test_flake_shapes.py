"""init's wiring for hand-written flakes, applied as a user would, then built for real.

Three shapes teams already have: flake-utils' eachDefaultSystem, a let-bound forAllSystems
over genAttrs, and flake-parts. Each has its own package (`docs`) and dev shell. init prints
the lines to add (never touching flake.nix); the test pastes each where init says, filling
`<yours>` with what the flake had, and then builds the user's `docs` and nixcrate's `api` with
crane-build, and evaluates the dev shell: the user's own tool and the workspace's (zig, for
the handlers) are both in it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLE, copy_workspace, mirror_repo
from crane_build import build, crane_build_missing, stage

from nixcrate.cli import cli

pytestmark = [pytest.mark.nix, pytest.mark.skipif(crane_build_missing(EXAMPLE) is not None, reason=str(crane_build_missing(EXAMPLE)))]

FLAKE_UTILS = """\
{
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    flake-utils.url = "github:numtide/flake-utils";
  };
  outputs = { self, nixpkgs, flake-utils }:
    flake-utils.lib.eachDefaultSystem (system:
      let
        pkgs = nixpkgs.legacyPackages.${system};
      in
      {
        packages = { docs = pkgs.writeText "docs" "the team's docs"; };
        devShells.default = pkgs.mkShell { packages = [ pkgs.jq ]; };
      });
}
"""

FOR_ALL_SYSTEMS = """\
{
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
  };
  outputs = { self, nixpkgs, ... }:
    let
      forAllSystems = f: nixpkgs.lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: { docs = pkgs.writeText "docs" "the team's docs"; });
      devShells = forAllSystems (pkgs: { default = pkgs.mkShell { packages = [ pkgs.jq ]; }; });
    };
}
"""

FLAKE_PARTS = """\
{
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    flake-parts.url = "github:hercules-ci/flake-parts";
  };
  outputs = inputs@{ flake-parts, ... }:
    flake-parts.lib.mkFlake { inherit inputs; } {
      systems = [ "x86_64-linux" ];
      perSystem = { pkgs, system, ... }: {
        # Nix 2.8 (this machine's) does not mark inputs as flakes, which flake-parts' default
        # `pkgs` checks for; newer Nix needs no such line.
        _module.args.pkgs = inputs.nixpkgs.legacyPackages.${system};
        packages.docs = pkgs.writeText "docs" "the team's docs";
        devShells.default = pkgs.mkShell { packages = [ pkgs.jq ]; };
      };
    };
}
"""


def wiring(ws: Path) -> dict[str, list[str]]:
    """init's printed wiring: {where: lines}."""
    result = CliRunner().invoke(cli, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    steps: dict[str, list[str]] = {}
    where = None
    for line in result.stdout.splitlines():
        if m := re.fullmatch(r"  in (.+):", line):
            where = m.group(1)
            steps[where] = []
        elif where and line.startswith("    "):
            steps[where].append(line[4:])
        else:
            where = None
    return steps


def at(steps: dict[str, list[str]], prefix: str) -> list[str]:
    return next(lines for where, lines in steps.items() if where.startswith(prefix))


def after(text: str, anchor: str, lines: list[str]) -> str:
    assert anchor in text, anchor
    return text.replace(anchor, anchor + "\n" + "\n".join(lines), 1)


def apply_flake_utils(steps: dict[str, list[str]]) -> str:
    text = after(FLAKE_UTILS, "  inputs = {", at(steps, "inputs"))
    text = text.replace("{ self, nixpkgs, flake-utils }:", at(steps, "outputs' arguments")[0])
    text = after(text, "      let", at(steps, "the let of the function"))
    outputs = {line.split(" = ")[0]: line for line in at(steps, "its outputs")}
    text = text.replace(
        '        packages = { docs = pkgs.writeText "docs" "the team\'s docs"; };',
        "        " + outputs["packages"].replace("<yours>", '{ docs = pkgs.writeText "docs" "the team\'s docs"; }')
        + "\n        " + outputs["apps"].replace(" // <yours>", "")
        + "\n        " + outputs["checks"].replace(" // <yours>", ""),
    )
    return text.replace("pkgs.mkShell { packages", f"pkgs.mkShell {{ {at(steps, 'your dev shell')[0]} packages")


def apply_for_all_systems(steps: dict[str, list[str]]) -> str:
    text = after(FOR_ALL_SYSTEMS, "  inputs = {", at(steps, "inputs"))
    text = text.replace("{ self, nixpkgs, ... }:", at(steps, "outputs' arguments")[0]) if "outputs' arguments" in steps else text
    text = after(text, "    let", at(steps, "the let of outputs"))
    outputs = {line.split(" = ")[0]: line for line in at(steps, "the outputs")}
    mine = 'forAllSystems (pkgs: { docs = pkgs.writeText "docs" "the team\'s docs"; })'
    text = text.replace(f"      packages = {mine};", "      " + outputs["packages"].replace("<yours>", mine))
    return text.replace("pkgs.mkShell { packages", f"pkgs.mkShell {{ {at(steps, 'your dev shell')[0]} packages")


def apply_flake_parts(steps: dict[str, list[str]]) -> str:
    text = after(FLAKE_PARTS, "  inputs = {", at(steps, "inputs"))
    text = after(text, '      systems = [ "x86_64-linux" ];', at(steps, "mkFlake's module"))
    text = text.replace("{ pkgs, system, ... }:", "{ config, pkgs, system, ... }:")
    return text.replace("pkgs.mkShell { packages", f"pkgs.mkShell {{ {at(steps, 'perSystem, your dev shell')[0]} packages")


def flake_parts_overrides(tmp_path: Path) -> tuple[tuple[str, str], ...]:
    mirror = mirror_repo("hercules-ci+flake-parts")
    assert mirror is not None, "hercules-ci/flake-parts is not fetched (the fetch tool: github:hercules-ci/flake-parts)"
    tree = tmp_path / "flake-parts"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(mirror), "archive", "HEAD"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    staged = stage(EXAMPLE)  # for the stand-in nixpkgs' path, which has the `lib` flake-parts reads
    nixpkgs = dict(zip(staged.overrides[1::3], staged.overrides[2::3], strict=True))["nixpkgs"]
    staged.cleanup()
    return (("flake-parts", f"path:{tree}"), ("flake-parts/nixpkgs-lib", nixpkgs))


@pytest.mark.parametrize("shape", ["flake-utils", "forAllSystems", "flake-parts"])
def test_init_wiring_applied_to_a_hand_written_flake_builds_its_outputs_and_nixcrates(shape: str, tmp_path: Path) -> None:
    ws = copy_workspace(EXAMPLE, tmp_path / "ws")
    shutil.rmtree(ws / "nix")
    original = {"flake-utils": FLAKE_UTILS, "forAllSystems": FOR_ALL_SYSTEMS, "flake-parts": FLAKE_PARTS}[shape]
    (ws / "flake.nix").write_text(original)
    steps = wiring(ws)
    assert (ws / "flake.nix").read_text() == original  # init never rewrites the user's flake
    apply = {"flake-utils": apply_flake_utils, "forAllSystems": apply_for_all_systems, "flake-parts": apply_flake_parts}[shape]
    (ws / "flake.nix").write_text(apply(steps))
    overrides = flake_parts_overrides(tmp_path) if shape == "flake-parts" else ()

    results = build(ws, ["docs", "api"], overrides=overrides)
    assert results["docs"].ok, results["docs"].error_tail
    assert results["api"].ok, results["api"].error_tail
    assert results["api"].third_party == ()  # reuses the closure: the library works as the starter's does
    assert Path(results["docs"].out or "").read_text() == "the team's docs"

    staged = stage(ws, overrides)
    try:
        proc = subprocess.run(
            ["nix", "eval", "--json", *staged.nix_args(), f"{staged.ref}#devShells.x86_64-linux.default.nativeBuildInputs", "--apply", "map (d: d.name)"],
            capture_output=True, text=True, check=False, env=staged.env(),
        )  # fmt: skip
    finally:
        staged.cleanup()
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = " ".join(json.loads(proc.stdout))
    assert "jq" in names, names  # the user's own shell
    assert "zig" in names and "cargo-zigbuild" in names, names  # the workspace's, through inputsFrom
