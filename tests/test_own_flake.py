"""nixcrate's own flake (flake.nix, nix/package.nix), evaluated with the real nixpkgs lib.

crane-eval's stub nixpkgs has no python3Packages: tests/fixtures/fake-python3-packages.nix
(a FakePython3Packages overlay, named as the double it is) records what
buildPythonApplication is given. What is real: the flake, `lib.importTOML` of pyproject.toml,
`lib.fileset` selecting the source, Nix 2.8 evaluating it. Not built here (no nixpkgs).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from conftest import CRANE_EVAL, REPO, needs_crane_eval

pytestmark = [needs_crane_eval, pytest.mark.nix]

FAKE_PYTHON = REPO / "tests" / "fixtures" / "fake-python3-packages.nix"
SYSTEM = "x86_64-linux"


def _harness() -> Any:
    sys.path.insert(0, str(CRANE_EVAL))
    import _harness  # type: ignore[import-not-found]  # noqa: PLC0415

    return _harness


def fake_nixpkgs(dest: Path) -> Path:
    """The harness's stub nixpkgs plus the FakePython3Packages overlay."""
    shutil.copytree(_harness().setup().stub_nixpkgs, dest)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.copyfile(FAKE_PYTHON, dest / "fake-python3-packages.nix")
    flake = dest / "flake.nix"
    old = "import ./. { inherit system; }"
    assert old in flake.read_text()
    flake.write_text(flake.read_text().replace(old, "import ./. { inherit system; overlays = [ (import ./fake-python3-packages.nix) ]; }"))
    return dest


def checkout(dest: Path) -> Path:
    """The project's files a flake sees (tracked ones), in a git repository of their own."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, text=True, check=True).stdout
    files = [f for f in listed.split("\0") if f] or []
    for rel in {*files, "flake.nix", "nix/package.nix"}:  # the last two: also before they are committed
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest / rel)
    subprocess.run(["git", "init", "-q", str(dest)], check=True)
    subprocess.run(["git", "-C", str(dest), "add", "-A"], check=True)
    return dest


@pytest.fixture(scope="module")
def own_flake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("own-flake")
    return checkout(base / "nixcrate"), fake_nixpkgs(base / "nixpkgs")


def nix_eval(flake: Path, nixpkgs: Path, attr: str, apply: str | None = None) -> Any:
    cmd = ["nix", "eval", "--json", "--no-write-lock-file", "--override-input", "nixpkgs", f"path:{nixpkgs}", f"git+file://{flake}#{attr}"]
    if apply:
        cmd += ["--apply", apply]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=_harness().nix_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_nixcrates_flake_has_its_outputs(own_flake: tuple[Path, Path]) -> None:
    flake, nixpkgs = own_flake
    names = nix_eval(flake, nixpkgs, "packages", "ps: builtins.mapAttrs (_: builtins.attrNames) ps")
    assert names[SYSTEM] == ["default"]
    assert nix_eval(flake, nixpkgs, f"apps.{SYSTEM}.default.program").endswith("/bin/nixcrate")
    assert nix_eval(flake, nixpkgs, "overlays", "o: builtins.isFunction o.default")
    assert nix_eval(flake, nixpkgs, f"devShells.{SYSTEM}.default.drvPath").endswith(".drv")


def test_nixcrates_package_is_pyprojects_version_dependencies_and_source(own_flake: tuple[Path, Path]) -> None:
    flake, nixpkgs = own_flake
    args = nix_eval(flake, nixpkgs, f"packages.{SYSTEM}.default.fakeArgs")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert args["version"] == project["version"]
    wanted = sorted(f"fake-python3-{spec.split('>')[0].split('=')[0].lower()}" for spec in project["dependencies"])
    assert sorted(args["dependencies"]) == wanted
    src = Path(args["src"])
    assert (src / "pyproject.toml").is_file() and (src / "templates" / "flake.nix.j2").is_file()
    assert (src / "nixcrate" / "nix" / "default.nix").is_file()
    assert not (src / "tests").exists()  # a test edit rebuilds no nixcrate


# --------------------------------------------------------------------------- the starter, with it


def starter_with_nixcrate_input(root: Path, nixcrate_toml_extra: str = "") -> Path:
    from click.testing import CliRunner  # noqa: PLC0415
    from conftest import EXAMPLE, copy_workspace  # noqa: PLC0415

    from nixcrate.cli import cli  # noqa: PLC0415

    ws = copy_workspace(EXAMPLE, root)
    (ws / "flake.nix").unlink()
    config = ws / "nixcrate.toml"
    config.write_text(config.read_text().replace("[services]\n", "[services]\n" + nixcrate_toml_extra, 1) if nixcrate_toml_extra.startswith("native") else nixcrate_toml_extra + config.read_text())
    result = CliRunner().invoke(cli, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    flake = ws / "flake.nix"
    text = flake.read_text()
    commented = '    # nixcrate = {\n    #   url = "github:nixcrate/nixcrate/v0.1.0";\n    #   inputs.nixpkgs.follows = "nixpkgs";\n    # };\n'
    assert commented in text
    flake.write_text(text.replace(commented, commented.replace("    # ", "    ").replace("    #   ", "      ")))
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    subprocess.run(["git", "-C", str(ws), "add", "-A"], check=True)
    return ws


def eval_ws(ws: Path, own: tuple[Path, Path], attr: str, apply: str | None = None) -> Any:
    flake, nixpkgs = own
    crane = _harness().setup().crane
    cmd = [
        "nix", "eval", "--json", "--no-write-lock-file",
        "--override-input", "nixpkgs", f"path:{nixpkgs}",
        "--override-input", "crane", f"path:{crane}",
        "--override-input", "nixcrate", f"git+file://{flake}",
        f"git+file://{ws}#{attr}",
    ]  # fmt: skip
    if apply:
        cmd += ["--apply", apply]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=_harness().nix_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_the_starters_dev_shell_has_the_toolchain_native_inputs_zig_and_the_pinned_nixcrate(
    tmp_path: Path, own_flake: tuple[Path, Path]
) -> None:
    ws = starter_with_nixcrate_input(tmp_path / "ws", 'native-build-inputs = ["pkg-config"]\n')
    names = eval_ws(ws, own_flake, f"devShells.{SYSTEM}.default.nativeBuildInputs", "map (d: d.name)")
    joined = " ".join(names)
    for wanted in ("pkg-config", "zig", "cargo-zigbuild", "nixcrate-0.1.0", "rustc", "cargo", "clippy"):
        assert wanted in joined, (wanted, names)
    apps = eval_ws(ws, own_flake, f"apps.{SYSTEM}", "builtins.mapAttrs (_: a: a.program)")
    assert sorted(apps) == ["api", "worker"]  # two services: no default (see the README)
    assert apps["api"].endswith("/bin/api") and apps["worker"].endswith("/bin/worker")
    packages = eval_ws(ws, own_flake, f"packages.{SYSTEM}", "builtins.attrNames")
    assert "default" not in packages


def test_a_one_service_workspace_gets_packages_and_apps_default(tmp_path: Path, own_flake: tuple[Path, Path]) -> None:
    ws = starter_with_nixcrate_input(tmp_path / "ws", 'exclude = ["worker", "ingest", "report-export"]\n\n')
    drvs = eval_ws(ws, own_flake, f"packages.{SYSTEM}", "ps: builtins.mapAttrs (_: p: p.drvPath) ps")
    assert drvs["default"] == drvs["api"]
    assert eval_ws(ws, own_flake, f"apps.{SYSTEM}.default.program").endswith("/bin/api")
