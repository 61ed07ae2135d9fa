"""The generated flake evaluates with the real crane, and a leaf edit rebuilds one package.

Uses ../shared/crane-eval (real crane + real nixpkgs lib, stub packages). Skips, saying
why, where crane or nixpkgs.lib are not fetched.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CRANE_EVAL, EXAMPLE, add_standalone_library, copy_workspace, handler_build_drv, input_drvs, needs_crane_eval

from nixcrate.cli import cli

pytestmark = [needs_crane_eval, pytest.mark.nix]


def generate(tmp_path: Path, src: Path = EXAMPLE) -> Path:
    ws = copy_workspace(src, tmp_path / src.name)
    result = CliRunner().invoke(cli, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    return ws


def eval_flake(ws: Path, *args: str) -> dict[str, object]:
    proc = subprocess.run([str(CRANE_EVAL / "eval-flake"), *args, str(ws)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def amplification(ws: Path) -> str:
    proc = subprocess.run([str(CRANE_EVAL / "amplification"), str(ws)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_example_evaluates_with_real_crane(tmp_path: Path) -> None:
    ws = generate(tmp_path)
    details = eval_flake(ws, "--details")
    assert set(details) == {
        "deployCargoArtifacts",
        "lambdaDeployCargoArtifacts",
        "api",
        "worker",
        "deploy-lambda-ingest",
        "deploy-lambda-report-export",
    }
    closure = details["deployCargoArtifacts"]["drvPath"]  # type: ignore[index]
    lambda_closure = details["lambdaDeployCargoArtifacts"]["drvPath"]  # type: ignore[index]
    assert details["deployCargoArtifacts"]["depsOnly"]  # type: ignore[index]
    for svc in ("api", "worker"):
        assert details[svc]["cargoArtifacts"] == [closure]  # type: ignore[index]
    for handler in ("deploy-lambda-ingest", "deploy-lambda-report-export"):
        # handlers reuse their own closure, never the services' (the zip's compiling build does)
        build = handler_build_drv(details[handler]["drvPath"])  # type: ignore[index]
        assert lambda_closure in input_drvs(build)
        assert closure not in input_drvs(build)


def test_leaf_edit_changes_one_package_and_closures_are_stable(tmp_path: Path) -> None:
    ws = generate(tmp_path)
    report = amplification(ws)
    last = report.strip().splitlines()[-1]
    print(report)
    assert "leaf-edit rebuild amplification: mean 1.0 " in last
    assert last.endswith("deps closure stable under .rs edits: yes")
    # editing the shared library rebuilds exactly the packages that compile it
    row = next(line for line in report.splitlines() if line.startswith("common "))
    assert row.split()[-3:] == ["api", "deploy-lambda-ingest", "worker"]  # not report-export: it does not use common


def bump_release(ws: Path) -> None:
    """A release: `[workspace.package] version` 0.3.1 -> 0.4.0 (every service and handler
    inherits it) with the requirement on common in `[workspace.dependencies]`, the path
    dependency textwrap-lite 0.1.0 -> 0.1.1, and Cargo.lock as cargo rewrites it (the local
    packages' entries, which have no `source`)."""
    root = ws / "Cargo.toml"
    text = root.read_text()
    assert text.count('version = "0.3.1"') == 2  # [workspace.package], and common's requirement
    root.write_text(text.replace('version = "0.3.1"', 'version = "0.4.0"'))
    vendored = ws / "vendor/textwrap-lite/Cargo.toml"
    vendored.write_text(vendored.read_text().replace('version = "0.1.0"', 'version = "0.1.1"', 1))
    blocks = (ws / "Cargo.lock").read_text().split("\n\n")
    bumped = []
    for block in blocks:
        if block.startswith("[[package]]") and "source = " not in block:
            block = block.replace('version = "0.3.1"', 'version = "0.4.0"').replace('version = "0.1.0"', 'version = "0.1.1"')
        bumped.append(block)
    (ws / "Cargo.lock").write_text("\n\n".join(bumped))


def test_version_bump_keeps_the_closures_and_changes_the_packages(tmp_path: Path) -> None:
    """A release bump (crane#288) must not rebuild the deps closures: their name and their
    .drv stay; every package (it compiles the bumped crates) gets a new .drv."""
    ws = generate(tmp_path)
    before = eval_flake(ws, "--details")
    bump_release(ws)
    result = CliRunner().invoke(cli, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    after = eval_flake(ws, "--details")
    assert 'version = "0.4.0"' in (ws / "Cargo.lock").read_text()
    closures = ("deployCargoArtifacts", "lambdaDeployCargoArtifacts")
    for name in closures:
        assert after[name]["name"] == before[name]["name"], name  # type: ignore[index]
        assert after[name]["drvPath"] == before[name]["drvPath"], name  # type: ignore[index]
    packages = sorted(set(before) - set(closures))
    assert packages == ["api", "deploy-lambda-ingest", "deploy-lambda-report-export", "worker"]
    for name in packages:
        assert after[name]["drvPath"] != before[name]["drvPath"], name  # type: ignore[index]


def test_each_package_source_is_exactly_what_cargo_sim_builds(tmp_path: Path) -> None:
    """The Nix fileset of each package holds the files the real-cargo test builds from."""
    import sys

    sys.path.insert(0, str(CRANE_EVAL))
    import _harness as h  # type: ignore[import-not-found]
    from cargo_sim import source_files

    from nixcrate import workspace

    ws_dir = generate(tmp_path)
    ws = workspace.load(ws_dir)
    inputs = h.setup()
    staged = h.stage(ws_dir, tmp_path / "staged")
    proc = h._nix_eval(staged, inputs, "ps: builtins.mapAttrs (n: p: (p.crateBuild or p).src.outPath) (removeAttrs ps [ \"deployCargoArtifacts\" \"lambdaDeployCargoArtifacts\" ])")  # noqa: SLF001
    assert proc.returncode == 0, proc.stderr[-2000:]
    srcs = json.loads(proc.stdout)
    members = {"api": "api", "worker": "worker", "deploy-lambda-ingest": "ingest", "deploy-lambda-report-export": "report-export"}
    for attr, member in members.items():
        store = Path(srcs[attr])
        in_nix = sorted(p.relative_to(store) for p in store.rglob("*") if p.is_file())
        assert in_nix == source_files(ws, member), attr


def test_a_standalone_library_gets_its_own_package_and_a_leaf_edit_still_changes_one(tmp_path: Path) -> None:
    src = copy_workspace(EXAMPLE, tmp_path / "original" / EXAMPLE.name)
    add_standalone_library(src)
    ws = generate(tmp_path, src)
    details = eval_flake(ws, "--details")
    assert details["sdk"]["cargoArtifacts"][0] == details["deployCargoArtifacts"]["drvPath"]  # type: ignore[index]
    report = amplification(ws)
    last = report.strip().splitlines()[-1]
    assert "leaf-edit rebuild amplification: mean 1.0 " in last, report
    assert last.endswith("deps closure stable under .rs edits: yes")
    row = next(line for line in report.splitlines() if line.startswith("sdk "))
    assert row.split()[-1] == "sdk", row


def test_each_package_source_builds_with_real_cargo(tmp_path: Path) -> None:
    """Each package's source, as the real crane and nixpkgs lib evaluate it (the store path and
    the stubs its postPatch creates), is enough for real cargo to compile that package: a
    crate the source leaves out is only an empty stub, and its users fail to compile. The
    oracle is cargo, not nixcrate's graph. The workspace is test_layout_builds' seed-shaped
    one: a lib -> lib -> service chain (api and worker -> common -> base) and an in-tree
    crate used only by worker's build script ([build-dependencies] buildinfo)."""
    import os
    import shutil
    import sys

    from cargo_sim import cargo_home
    from crane_build import REGISTRY
    from test_layout_builds import seed_shaped

    if shutil.which("cargo") is None:
        pytest.skip("cargo is not installed")
    for crate in ("wasm-bindgen-0.2.83", "pyo3-0.17.3", "serde_json-1.0.87"):
        if not (REGISTRY / crate).is_dir():
            pytest.skip(f"{REGISTRY / crate} is missing (scripts/test installs Debian's librust-*-dev)")
    sys.path.insert(0, str(CRANE_EVAL))
    import _harness as h  # type: ignore[import-not-found]

    ws = seed_shaped(tmp_path / "seed" / "cloud-storage")
    env = {**os.environ, "CARGO_HOME": str(cargo_home(tmp_path)), "CARGO_TARGET_DIR": str(tmp_path / "target")}
    meta = json.loads(subprocess.run(["cargo", "metadata", "--offline", "--no-deps", "--format-version", "1"], cwd=ws, env=env, capture_output=True, text=True, check=True).stdout)
    package_of_bin = {t["name"]: p["name"] for p in meta["packages"] for t in p["targets"] if "bin" in t["kind"]}

    proc = h._nix_eval(  # noqa: SLF001
        h.stage(ws, tmp_path / "staged"),
        h.setup(),
        "ps: builtins.mapAttrs (n: p: { src = (p.crateBuild or p).src.outPath; postPatch = (p.crateBuild or p).postPatch or \"\";"
        ' cargoLock = let b = p.crateBuild or p; in if b ? cargoLock then "${b.cargoLock}" else null; })'
        ' (removeAttrs ps [ "deployCargoArtifacts" "lambdaDeployCargoArtifacts" ])',
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    sources = json.loads(proc.stdout)
    assert {"api", "worker", "deploy-lambda-ingest", "deploy-lambda-thumbnail"} <= set(sources)
    built = set()
    for attr, source in sorted(sources.items()):
        package = package_of_bin[attr.removeprefix("deploy-lambda-")] if attr.startswith("deploy-lambda-") else attr
        if (package, source["src"]) in built:  # one crate build for several handlers
            continue
        built.add((package, source["src"]))
        copy = tmp_path / "sources" / attr
        shutil.copytree(source["src"], copy, symlinks=True)
        for path in (copy, *copy.rglob("*")):
            path.chmod(path.stat().st_mode | 0o200)
        if source["cargoLock"]:  # crane's replaceCargoLockHook puts the package's lock in place
            shutil.copyfile(source["cargoLock"], copy / "Cargo.lock")
            (copy / "Cargo.lock").chmod(0o644)
        subprocess.run(["bash", "-euo", "pipefail", "-c", source["postPatch"]], cwd=copy, check=True)
        cargo = subprocess.run(["cargo", "check", "--offline", "--locked", "-p", package, "--bins"], cwd=copy, env=env, capture_output=True, text=True, check=False)
        assert cargo.returncode == 0, f"{attr}: cargo cannot compile {package} from its source:\n{cargo.stderr[-3000:]}"
    print(f"\npackage sources compiled by real cargo: {len(built)} ({', '.join(sorted(p for p, _ in built))})")


def test_a_workspace_of_one_library_builds_it_by_default(tmp_path: Path) -> None:
    """A library-only workspace with one library nothing depends on: that library is
    `packages.default` (and `nix build` needs no attribute), as one service would be; the
    proc-macro it uses has no package."""
    ws = tmp_path / "sdk"
    files = {
        "Cargo.toml": '[workspace]\nmembers = ["sdk", "sdk-macros"]\nresolver = "2"\n',
        "sdk/Cargo.toml": '[package]\nname = "sdk"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\nsdk-macros = { path = "../sdk-macros" }\n',
        "sdk/src/lib.rs": "pub use sdk_macros::*;\n",
        "sdk-macros/Cargo.toml": '[package]\nname = "sdk-macros"\nversion = "0.1.0"\nedition = "2021"\n\n[lib]\nproc-macro = true\n',
        "sdk-macros/src/lib.rs": "",
        "Cargo.lock": (
            'version = 3\n\n[[package]]\nname = "sdk"\nversion = "0.1.0"\ndependencies = [\n "sdk-macros",\n]\n\n'
            '[[package]]\nname = "sdk-macros"\nversion = "0.1.0"\n'
        ),
    }
    for rel, text in files.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(text)
    result = CliRunner().invoke(cli, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    details = eval_flake(ws, "--details")
    assert set(details) == {"deployCargoArtifacts", "sdk", "default"}
    assert details["default"]["drvPath"] == details["sdk"]["drvPath"]  # type: ignore[index]
