"""Standalone libraries the build machine cannot build: wasm cdylibs and Python extension
modules get no package, `init` names each with its reason and the nixcrate.toml line that
brings it back, and `package = true` does."""

from __future__ import annotations

import re

import textwrap
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from nixcrate import config, flake_gen, host, workspace
from nixcrate.cli import cli
from nixcrate.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

REGISTRY = "registry+https://github.com/rust-lang/crates.io-index"
THIRD_PARTY = {"wasm-bindgen": "0.2.100", "pyo3": "0.23.0", "serde": "1.0.200"}

MEMBERS = {
    # lldap's app, vector's vector-vrl-web-playground: a cdylib on wasm-bindgen
    "app": '[lib]\ncrate-type = ["cdylib"]\n[dependencies]\nwasm-bindgen = "0.2"\n',
    # nickel's nickel-wasm-repl: wasm-bindgen comes through an in-tree crate's feature
    "wasm-repl": '[lib]\ncrate-type = ["cdylib", "rlib"]\n[dependencies]\ncore = { path = "../core", default-features = false, features = ["repl-wasm"] }\n',
    "core": '[features]\ndefault = []\nrepl-wasm = ["dep:wasm-bindgen"]\n[dependencies]\nwasm-bindgen = { version = "0.2", optional = true }\nserde = "1"\n',
    # nickel's py-nickel: pyo3's extension-module, from workspace.dependencies
    "py-nickel": '[lib]\nname = "nickel"\ncrate-type = ["cdylib", "rlib"]\n[dependencies]\npyo3 = { workspace = true, features = ["extension-module"] }\n',
    # buildable: a native cdylib, a crate keeping wasm-bindgen for wasm32 only, a plain SDK
    "native-cdylib": '[lib]\ncrate-type = ["cdylib"]\n[dependencies]\nserde = "1"\n',
    "cfg-wasm": '[lib]\ncrate-type = ["cdylib", "rlib"]\n[target.\'cfg(target_arch = "wasm32")\'.dependencies]\nwasm-bindgen = "0.2"\n',
    "sdk": '[dependencies]\nserde = "1"\n',
    "api": '[dependencies]\ncore = { path = "../core" }\n',
}


@pytest.fixture
def ws_root(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "Cargo.toml").write_text(
        '[workspace]\nmembers = ["crates/*"]\nresolver = "2"\n[workspace.dependencies]\npyo3 = "0.23"\n'
    )
    lock = ["version = 4", ""]
    for name in sorted(MEMBERS):
        crate = root / "crates" / name
        (crate / "src").mkdir(parents=True)
        (crate / "Cargo.toml").write_text(
            f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\n{MEMBERS[name]}'
        )
        (crate / "src" / ("main.rs" if name == "api" else "lib.rs")).write_text("")
        deps = [d for d in (*THIRD_PARTY, "core") if f"\n{d} = " in f"\n{MEMBERS[name]}"]
        lock += ["[[package]]", f'name = "{name}"', 'version = "0.1.0"']
        if deps:
            lock.append("dependencies = [" + ", ".join(f'"{d}"' for d in sorted(deps)) + "]")
        lock.append("")
    for name, version in sorted(THIRD_PARTY.items()):
        lock += [
            "[[package]]",
            f'name = "{name}"',
            f'version = "{version}"',
            f'source = "{REGISTRY}"',
            f'checksum = "{"0" * 64}"',
            "",
        ]
    (root / "Cargo.lock").write_text("\n".join(lock))
    return root


def test_wasm_cdylibs_and_python_extensions_have_a_reason(ws_root: Path) -> None:
    ws = workspace.load(ws_root)
    reasons = {c.name: c.host_unbuildable_reason for c in ws.members}
    assert reasons == {
        "api": None,
        "app": host.WASM_REASON,
        "cfg-wasm": None,
        "core": None,  # wasm-bindgen is optional, off by default
        "native-cdylib": None,
        "py-nickel": host.PYTHON_REASON,
        "sdk": None,
        "wasm-repl": host.WASM_REASON,
    }


def test_left_out_are_the_unbuildable_standalone_libraries(ws_root: Path) -> None:
    ws = workspace.load(ws_root)
    classified = flake_gen.classify(ws, config.Config())
    standalone = (*classified.standalone, *classified.unpackaged)
    assert "core" not in standalone  # api and wasm-repl depend on it: compiled inside them
    left = host.left_out(ws, config.Config(), standalone)
    assert [lo.member for lo in left] == ["app", "py-nickel", "wasm-repl"]
    assert host.packaged(ws, config.Config(), standalone) == ("cfg-wasm", "native-cdylib", "sdk")
    assert classified.standalone == ("cfg-wasm", "native-cdylib", "sdk")  # what the generator packages
    line = left[1].summary()
    assert line.startswith("left out py-nickel: a Python extension module")
    assert "add 'package = true' under [members.py-nickel] in nixcrate.toml" in line
    assert left[1].bring_back == "[members.py-nickel]\npackage = true"


def test_package_key_brings_one_back_or_leaves_one_out(ws_root: Path) -> None:
    (ws_root / "nixcrate.toml").write_text(
        "[members.py-nickel]\npackage = true\n[members.sdk]\npackage = false\n"
    )
    ws = workspace.load(ws_root)
    cfg = config.load(ws_root)
    classified = flake_gen.classify(ws, cfg)
    standalone = (*classified.standalone, *classified.unpackaged)
    assert [lo.member for lo in host.left_out(ws, cfg, standalone)] == ["app", "sdk", "wasm-repl"]
    assert host.packaged(ws, cfg, standalone) == ("cfg-wasm", "native-cdylib", "py-nickel")
    assert classified.standalone == ("cfg-wasm", "native-cdylib", "py-nickel")


def test_package_key_must_be_a_boolean(ws_root: Path) -> None:
    (ws_root / "nixcrate.toml").write_text('[members.app]\npackage = "yes"\n')
    with pytest.raises(
        ConfigError, match=r"members\.app\.package: expected true or false, got str: fix the value"
    ):
        config.load(ws_root)


def test_summary_lines_for_a_flake_that_still_packages_one() -> None:
    left = (host.LeftOut("app", host.WASM_REASON), host.LeftOut("py-nickel", host.PYTHON_REASON))
    lines = host.summary_lines(left, ["app", "sdk"])
    assert lines[0] == (
        True,
        f'app: its package will not build ({host.WASM_REASON}): add "app" to exclude in nixcrate.toml',
    )
    assert lines[1] == (False, left[1].summary())


def test_init_names_each_left_out_library_with_the_line_that_brings_it_back(ws_root: Path) -> None:
    result = CliRunner().invoke(cli, ["init", str(ws_root)])
    assert result.exit_code == 0, result.stderr
    data = (ws_root / "nix/nixcrate/workspace.nix").read_text()
    text = textwrap.dedent(result.stdout + result.stderr)
    for member, reason in (
        ("app", host.WASM_REASON),
        ("wasm-repl", host.WASM_REASON),
        ("py-nickel", host.PYTHON_REASON),
    ):
        entry = re.search(rf'^    "?{re.escape(member)}"? = \{{.*?\}};$', data, re.MULTILINE | re.DOTALL)
        assert entry is not None and 'kind = "library"' in entry.group(0)
        assert "package = true" not in entry.group(0)  # the generator leaves it out
        assert f"left out {member}: {reason}; to build it anyway, add 'package = true' under [members.{member}]" in text
    for member in ("sdk", "native-cdylib", "cfg-wasm"):
        assert f"left out {member}" not in text
        assert f"{member}: its package" not in text
