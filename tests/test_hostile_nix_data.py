"""Hostile strings from the user's files reach the generated Nix only as data.

Every string nixcrate writes into `nix/nixcrate/workspace.nix` goes through one escaping
function (`flake_gen.nix_str`, names through `nix_attr`). The proof: a workspace whose
directory names, env values, extra cargo arguments, include paths and git-hash keys carry
quotes, `${`, backslashes, newlines and spaces generates a file that real Nix parses and
evaluates to exactly the values nixcrate read, and evaluating it runs none of the Nix
hidden in them (`builtins.abort`).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import needs_nix

from nixcrate import config, flake_gen, workspace
from nixcrate.cli import cli

pytestmark = [needs_nix, pytest.mark.nix]

# Each is valid in its place (a directory name, a TOML string) and hostile once spliced into Nix.
HOSTILE = [
    'q"uote',
    "dollar${builtins.abort \"pwned\"}",
    "back\\slash",
    "it's",
    "two  spaces",
    "''${x}",
    "new\nline",
]


def _toml_str(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string


def hostile_workspace(root: Path) -> tuple[Path, dict[str, str]]:
    """A service in a directory named by a hostile string, and hostile settings."""
    dirs = {f"svc{i}": f"crates/{text.replace(chr(10), ' ')}" for i, text in enumerate(HOSTILE)}
    members = ", ".join(_toml_str(d) for d in dirs.values())
    files = {
        "Cargo.toml": f"[workspace]\nmembers = [{members}]\nresolver = \"2\"\n",
        "Cargo.lock": "version = 4\n" + "".join(f'\n[[package]]\nname = "{n}"\nversion = "0.1.0"\n' for n in dirs),
    }
    for name, d in dirs.items():
        files[f"{d}/Cargo.toml"] = f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\n'
        files[f"{d}/src/main.rs"] = "fn main() {}\n"
    env = ", ".join(f"K{i} = {_toml_str(t)}" for i, t in enumerate(HOSTILE))
    files["nixcrate.toml"] = f"[services]\nenv = {{ {env} }}\n\n[members.svc0]\ncargo-extra-args = {_toml_str('--config ' + HOSTILE[1])}\n"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root, dirs


def evaluate(data_file: Path) -> dict[str, object]:
    """The data file, evaluated by real Nix (no pkgs needed: these settings name none)."""
    proc = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "--expr", f"import {data_file} {{ pkgs = {{ }}; }}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_hostile_strings_reach_the_generated_nix_as_the_same_data(tmp_path: Path) -> None:
    root, dirs = hostile_workspace(tmp_path / "ws")
    result = CliRunner().invoke(cli, ["init", str(root)])
    assert result.exit_code == 0, result.output
    data = evaluate(root / "nix/nixcrate/workspace.nix")
    crates = data["crates"]
    assert isinstance(crates, dict)
    assert {name: crates[name]["path"] for name in dirs} == dirs
    # the words a shell would split it into, each one a string of its own
    assert crates["svc0"]["cargoExtraArgs"] == ["--config", "dollar${builtins.abort", "pwned}"]
    env = data["closures"]["services"]["env"]  # type: ignore[index]
    assert env == {f"K{i}": t for i, t in enumerate(HOSTILE)}
    # and what Python would render is what Nix read back: one escaping function, no other path
    ws = workspace.load(root)
    context = flake_gen.build_context(ws, config.load(root))
    assert json.loads(json.dumps(context.data["crates"], default=str))["svc0"]["path"] == dirs["svc0"]


@pytest.mark.parametrize("text", HOSTILE)
def test_nix_str_round_trips_through_real_nix(text: str) -> None:
    proc = subprocess.run(
        ["nix-instantiate", "--eval", "--json", "--expr", flake_gen.nix_str(text)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == text


@pytest.mark.parametrize("name", ["in", "2fa", "a b", 'q"', "${x}", "or"])
def test_attribute_names_round_trip_through_real_nix(name: str) -> None:
    expr = "{ " + flake_gen.nix_attr(name) + " = 1; }"
    proc = subprocess.run(["nix-instantiate", "--eval", "--json", "--expr", expr], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {name: 1}
