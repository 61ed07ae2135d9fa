"""The generated library, built for real with ../shared/crane-build (real crane, real Nix).

A workspace shaped like seed 002's: the example plus a handler crate holding two handlers
(one build, two zips) with an included file, a stray project-template manifest that is
not TOML, a lib -> lib -> service chain (common uses base), an in-tree crate used only as a
[build-dependencies] entry (worker's build script), and two libraries the build machine cannot build (a wasm cdylib on wasm-bindgen,
a pyo3 extension module), which init leaves out. What a user would check after `nixcrate init`: every output builds, no package
build compiles a third-party crate after its closure, a release bump leaves both closures as
they were, and a hand-written flake with outputs of its own can call nixcrate's library.
"""

# ruff: noqa: T201 - prints record the measured figures
from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLE, copy_workspace
from crane_build import REGISTRY, Result, crane_build_missing
from crane_build import build as crane_build

from nixcrate.cli import cli


def _missing() -> str | None:
    if why := crane_build_missing(EXAMPLE):
        return why
    if shutil.which("cargo") is None:
        return "cargo is not installed (it writes the test workspaces' Cargo.lock)"
    for crate in ("wasm-bindgen-0.2.83", "pyo3-0.17.3"):
        if not (REGISTRY / crate).is_dir():
            return f"{REGISTRY / crate} is missing (scripts/test installs librust-wasm-bindgen-dev, librust-pyo3-dev)"
    return None


pytestmark = [pytest.mark.skipif(_missing() is not None, reason=str(_missing())), pytest.mark.nix, pytest.mark.slow]

MULTI_MANIFEST = """\
[package]
name = "multi"
version.workspace = true
edition.workspace = true

[dependencies]
common.workspace = true
serde_json.workspace = true
"""
HANDLER = """\
use std::io::Read;

fn main() {
    let mut event = String::new();
    std::io::stdin().read_to_string(&mut event).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(if event.is_empty() { "{}" } else { &event }).unwrap();
    println!("{}", common::render(&serde_json::json!({ "NAME": parsed })).unwrap());
}
"""


def update_lock(ws: Path) -> None:
    """Cargo.lock gains the workspace's new members and their crates, resolved by real cargo
    offline against Debian's registry (as crates.io is out of reach)."""
    home = ws.parent / f"{ws.name}-cargo-home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(f'[source.crates-io]\nreplace-with = "debian"\n[source.debian]\ndirectory = "{REGISTRY}"\n')
    subprocess.run(
        ["cargo", "metadata", "--offline", "--format-version", "1"], cwd=ws, env={**os.environ, "CARGO_HOME": str(home)},
        capture_output=True, check=True,
    )  # fmt: skip


def seed_shaped(root: Path) -> Path:
    """The example plus a two-handler crate with an include, and a stray template manifest."""
    ws = copy_workspace(EXAMPLE, root)
    (ws / "flake.nix").unlink()
    shutil.rmtree(ws / "nix")
    multi = ws / "lambdas" / "multi"
    (multi / "src" / "bin").mkdir(parents=True)
    (multi / "Cargo.toml").write_text(MULTI_MANIFEST)
    for name in ("thumbnail", "probe"):
        (multi / "src" / "bin" / f"{name}.rs").write_text(HANDLER.replace("NAME", name))
    (multi / "assets").mkdir()
    (multi / "assets" / "config.json").write_text('{"bucket": "b"}\n')
    # cargo-lambda keeps project templates like this one: not TOML, not a member
    template = ws / "tests" / "templates" / "svc" / "Cargo.toml"
    template.parent.mkdir(parents=True)
    template.write_text('[package]\nname = "{{ project_name }}"\nversion = {{ version }}\n')
    # libraries built for another target or host (lldap's app, nickel's py-nickel)
    for name, dep, code in (
        ("web", 'wasm-bindgen = "0.2"', "use wasm_bindgen::prelude::*;\n#[wasm_bindgen]\npub fn greet() -> u32 { 1 }\n"),
        ("py-ext", 'pyo3 = { version = "0.17", features = ["extension-module"] }', "pub fn nothing() {}\n"),
    ):
        crate = ws / "crates" / name
        (crate / "src").mkdir(parents=True)
        (crate / "Cargo.toml").write_text(
            f'[package]\nname = "{name}"\nversion.workspace = true\nedition.workspace = true\n\n'
            f'[lib]\ncrate-type = ["cdylib"]\n\n[dependencies]\n{dep}\n'
        )
        (crate / "src" / "lib.rs").write_text(code)
    # target declarations nixcrate must read as cargo does: a [lib] named but not placed, a
    # proc-macro, and a bin whose explicit path is src/bin/probe.rs (no second bin `probe`:
    # it would clash with multi's, deploy-lambda-probe)
    for rel, text in {
        "crates/errs/Cargo.toml": '[package]\nname = "errs"\nversion.workspace = true\nedition.workspace = true\n\n[lib]\nname = "error_codes"\n',
        "crates/errs/src/lib.rs": "pub const NOT_FOUND: u16 = 404;\n",
        "crates/derive/Cargo.toml": '[package]\nname = "derive"\nversion.workspace = true\nedition.workspace = true\n\n[lib]\nproc-macro = true\n',
        "crates/derive/src/lib.rs": 'use proc_macro::TokenStream;\n#[proc_macro]\npub fn answer(_: TokenStream) -> TokenStream { "42u32".parse().unwrap() }\n',
        "lambdas/prober/Cargo.toml": (
            '[package]\nname = "prober"\nversion.workspace = true\nedition.workspace = true\n\n'
            '[[bin]]\nname = "probe-handler"\npath = "src/bin/probe.rs"\n\n'
            # renamed, with a version requirement: the closures drop it with the versions
            '[dependencies]\ncodes = { package = "errs", path = "../../crates/errs", version = "0.3.1" }\n'
            'derive = { path = "../../crates/derive" }\n'
        ),
        "lambdas/prober/src/bin/probe.rs": 'fn main() {\n    println!("{} {}", codes::NOT_FOUND, derive::answer!());\n}\n',
        # a --cfg every crate is built with, from the workspace's cargo config
        ".cargo/config.toml": '[build]\nrustflags = ["--cfg", "nixcrate_ci"]\n',
        # lib -> lib -> service: common (used by api, worker, ingest, multi) now uses base, which
        # a package's source must hold though no package names it
        "crates/base/Cargo.toml": '[package]\nname = "base"\nversion.workspace = true\nedition.workspace = true\n',
        "crates/base/src/lib.rs": 'pub fn salutation() -> &\'static str {\n    "hello"\n}\n',
        "crates/common/Cargo.toml": (EXAMPLE / "crates/common/Cargo.toml").read_text() + 'base = { path = "../base" }\n',
        "crates/common/src/lib.rs": (EXAMPLE / "crates/common/src/lib.rs").read_text().replace('format!("hello, {who}")', 'format!("{}, {who}", base::salutation())'),
        # an in-tree crate only worker's build script uses: a [build-dependencies] entry
        "crates/buildinfo/Cargo.toml": '[package]\nname = "buildinfo"\nversion.workspace = true\nedition.workspace = true\n',
        "crates/buildinfo/src/lib.rs": 'pub fn rustc_env(key: &str, value: &str) -> String {\n    format!("cargo:rustc-env={key}={value}")\n}\n',
        "services/worker/Cargo.toml": (EXAMPLE / "services/worker/Cargo.toml").read_text() + '\n[build-dependencies]\nbuildinfo = { path = "../../crates/buildinfo" }\n',
        "services/worker/build.rs": (
            'fn main() {\n    println!("{}", buildinfo::rustc_env("WORKER_BUILD_PROFILE", &std::env::var("PROFILE").unwrap()));\n'
            '    println!("cargo:rerun-if-changed=build.rs");\n}\n'
        ),
    }.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(text)
    update_lock(ws)
    toml = ws / "nixcrate.toml"
    toml.write_text(
        toml.read_text()
        + '\n[members.multi]\nkind = "lambda"\ninclude = ["lambdas/multi/assets/config.json"]\n'
        + '\n[members.prober]\nkind = "lambda"\n'
    )
    result = CliRunner().invoke(cli, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    for name in ("web", "py-ext"):
        assert f"left out {name}: " in result.output
    return ws


def build(ws: Path, *attrs: str) -> dict[str, Result]:
    """crane-build of these attributes, every one of which must build."""
    results = crane_build(ws, list(attrs))
    failed = {a: r.error_tail for a, r in results.items() if not r.ok}
    assert not failed, json.dumps(failed, indent=1)[-4000:]
    return results


MEMBERS = ("api", "common", "derive", "errs", "ingest", "multi", "prober", "report-export", "worker")
CHECKS = [f"checks.x86_64-linux.{k}-{m}" for k in ("clippy", "test") for m in MEMBERS]
PACKAGES = ["deployCargoArtifacts", "lambdaDeployCargoArtifacts", "api", "worker", "deploy-lambda-ingest",
            "deploy-lambda-report-export", "deploy-lambda-thumbnail", "deploy-lambda-probe",
            "deploy-lambda-probe-handler"]  # fmt: skip
# What compiles in each handler zip: the crate build the zip packages.
CRATE_BUILDS = [f"deploy-lambda-{b}.crateBuild" for b in ("ingest", "report-export", "probe", "probe-handler")]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Result]]:
    ws = seed_shaped(tmp_path_factory.mktemp("seed") / "cloud-storage")
    return ws, build(ws, *PACKAGES, *CRATE_BUILDS, *CHECKS, "checks.x86_64-linux.lambda-verify-probe")


def test_every_output_builds_and_no_package_compiles_a_third_party_crate(built: tuple[Path, dict[str, Result]]) -> None:
    _, results = built
    for attr, result in results.items():
        if attr.endswith("CargoArtifacts"):
            assert result.third_party, attr  # the closures compile them, once
        else:
            assert result.third_party == (), attr
    print("\nthird-party crates compiled by each non-closure build: 0 of", len(results) - 2)


def test_targets_are_read_as_cargo_reads_them(built: tuple[Path, dict[str, Result]], tmp_path: Path) -> None:
    """A [lib] named error_codes without a path and a proc-macro compile into the handler whose
    only bin is `probe-handler` at src/bin/probe.rs (and no phantom `probe` bin came of it)."""
    _, results = built
    with zipfile.ZipFile(Path(str(results["deploy-lambda-probe-handler"].out)) / "bootstrap.zip") as archive:
        archive.extract("bootstrap", tmp_path)
    boot = tmp_path / "bootstrap"
    boot.chmod(0o755)
    assert subprocess.run([str(boot)], capture_output=True, text=True, check=True).stdout == "404 42\n"


def test_a_handler_crate_compiles_once_for_all_its_handlers(built: tuple[Path, dict[str, Result]], tmp_path: Path) -> None:
    ws, results = built
    both = build(ws, "deploy-lambda-thumbnail.crateBuild", "deploy-lambda-probe.crateBuild")
    assert both["deploy-lambda-thumbnail.crateBuild"].drv == both["deploy-lambda-probe.crateBuild"].drv
    for name in ("thumbnail", "probe"):
        zip_path = Path(str(results[f"deploy-lambda-{name}"].out)) / "bootstrap.zip"
        with zipfile.ZipFile(zip_path) as archive:
            assert sorted(archive.namelist()) == ["bootstrap", "lambdas/multi/assets/config.json"]
            mode = archive.getinfo("bootstrap").external_attr >> 16
            assert mode & 0o777 == 0o755
            archive.extract("bootstrap", tmp_path / name)
        boot = tmp_path / name / "bootstrap"
        boot.chmod(0o755)
        ran = subprocess.run([str(boot)], input='{"key": 1}', capture_output=True, text=True, check=True)
        assert name in ran.stdout and '"key"' in ran.stdout
        verdict = CliRunner().invoke(cli, ["lambda", "verify", str(zip_path), "--include", "lambdas/multi/assets/config.json"])
        assert verdict.exit_code == 0, verdict.output


def test_a_release_bump_leaves_both_closures_and_recompiles_no_dependency(
    built: tuple[Path, dict[str, Result]], tmp_path: Path
) -> None:
    ws, before = built
    bumped = tmp_path / "cloud-storage"
    shutil.copytree(ws, bumped)
    cargo = bumped / "Cargo.toml"  # [workspace.package] and the requirement on common in [workspace.dependencies]
    cargo.write_text(cargo.read_text().replace('version = "0.3.1"', 'version = "0.4.0"'))
    prober = bumped / "lambdas" / "prober" / "Cargo.toml"  # its requirement on errs follows the release
    prober.write_text(prober.read_text().replace('version = "0.3.1"', 'version = "0.4.0"'))
    lock = bumped / "Cargo.lock"
    blocks = lock.read_text().split("\n\n")
    lock.write_text("\n\n".join(b.replace('version = "0.3.1"', 'version = "0.4.0"') if "source =" not in b else b for b in blocks))
    assert CliRunner().invoke(cli, ["init", str(bumped)]).exit_code == 0
    after = build(bumped, "deployCargoArtifacts", "lambdaDeployCargoArtifacts", "api", "deploy-lambda-probe.crateBuild")
    for closure in ("deployCargoArtifacts", "lambdaDeployCargoArtifacts"):
        assert after[closure].drv == before[closure].drv, closure
    assert after["api"].drv != before["api"].drv  # the package does see the new version
    for attr in ("api", "deploy-lambda-probe.crateBuild"):
        assert after[attr].third_party == (), attr


HAND_WRITTEN = """\
{
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    crane.url = "github:ipetkov/crane";
  };
  outputs =
    { nixpkgs, crane, ... }@inputs:
    let
      pkgs = nixpkgs.legacyPackages.x86_64-linux;
    in
    {
      packages.x86_64-linux = {
        # the team's own output, next to the Rust ones
        openapi-spec = pkgs.writeText "openapi.json" "{}";
      };
    };
}
"""


def test_a_hand_written_flake_wires_in_the_printed_lines_and_builds_both(tmp_path: Path) -> None:
    ws = copy_workspace(EXAMPLE, tmp_path / "team")
    shutil.rmtree(ws / "nix")
    (ws / "flake.nix").write_text(HAND_WRITTEN)
    result = CliRunner().invoke(cli, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    assert (ws / "flake.nix").read_text() == HAND_WRITTEN  # never touched
    # A single-system flake is none of the known shapes: init says so and prints the genAttrs
    # lines, which a user adapts to the one system.
    assert "none of the shapes nixcrate knows" in result.stderr
    printed = result.stdout.split("  in the let of outputs:\n", 1)[1].splitlines()
    let = [line[4:] for line in printed[:3]]
    assert let[0].startswith("workspace = nixpkgs.lib.genAttrs"), printed
    wired = HAND_WRITTEN.replace(
        "      pkgs = nixpkgs.legacyPackages.x86_64-linux;\n",
        "      pkgs = nixpkgs.legacyPackages.x86_64-linux;\n" + "".join(f"      {line}\n" for line in let),
    ).replace('openapi-spec = pkgs.writeText "openapi.json" "{}";', 'openapi-spec = pkgs.writeText "openapi.json" "{}";\n      } // workspace.x86_64-linux.packages // {')
    (ws / "flake.nix").write_text(wired)
    results = build(ws, "openapi-spec", "api")
    assert results["api"].third_party == ()


def test_a_crate_patched_in_from_the_tree_is_in_every_source(tmp_path: Path) -> None:
    """`[patch.crates-io] memchr = { path = "patched/memchr" }`: cargo reads that directory for
    every package, so every source carries it (before, the build failed reading its manifest)."""
    ws = copy_workspace(EXAMPLE, tmp_path / "patched")
    shutil.rmtree(ws / "nix")
    (ws / "flake.nix").unlink()
    shutil.copytree(REGISTRY / "memchr-2.5.0", ws / "patched" / "memchr", ignore=shutil.ignore_patterns(".cargo-checksum.json"))
    cargo = ws / "Cargo.toml"
    cargo.write_text(cargo.read_text() + '\n[patch.crates-io]\nmemchr = { path = "patched/memchr" }\n')
    update_lock(ws)
    assert 'name = "memchr"\nversion = "2.5.0"\n' in (ws / "Cargo.lock").read_text()  # now a path package: no source
    result = CliRunner().invoke(cli, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    results = build(ws, "worker")  # worker uses memchr
    assert results["worker"].third_party == ()
