"""`init` refuses a workspace whose flake could not work: one line naming the file and the
fix, exit 1, nothing written. Also `--check --strict`, and the `patch_paths` model field.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
from click.testing import CliRunner
from test_errors_catalogue import BASE, GIT_REV, snapshot, write

from nixcrate import workspace
from nixcrate.cli import cli


def init(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["init", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.stderr


def refused(root: Path, *names: str) -> str:
    before = snapshot(root)
    code, stderr = init(str(root))
    assert code == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for name in names:
        assert name in lines[0], lines[0]
    assert snapshot(root) == before
    assert not (root / "nix").exists() and not (root / "flake.nix").exists()
    return lines[0]


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write(root, dict(BASE))
    return root


# --------------------------------------------------------------------------- symlinks


def test_member_directory_that_is_a_symlink(ws: Path, tmp_path: Path) -> None:
    (ws / "crates/common").rename(tmp_path / "elsewhere")
    (ws / "crates/common").symlink_to(tmp_path / "elsewhere")
    refused(ws, "crates/common", "symlink", "refuses")


def test_member_glob_directory_reached_through_a_symlinked_parent(ws: Path, tmp_path: Path) -> None:
    (ws / "crates").rename(tmp_path / "real-crates")
    (ws / "crates").symlink_to(tmp_path / "real-crates")
    refused(ws, "crates", "symlink")


def test_symlinked_member_manifest(ws: Path) -> None:
    (ws / "common.toml").write_bytes((ws / "crates/common/Cargo.toml").read_bytes())
    (ws / "crates/common/Cargo.toml").unlink()
    (ws / "crates/common/Cargo.toml").symlink_to("../../common.toml")
    refused(ws, "crates/common/Cargo.toml", "symlink")


# --------------------------------------------------------------------------- nixcrate.toml paths


@pytest.mark.parametrize("key", ["extra-src", "include"])
@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/etc/passwd", "outside the workspace"),
        ("../outside", "outside the workspace"),
        ("crates/../../outside", "outside the workspace"),
        ("", "outside the workspace"),
        ("proto/missing.proto", "does not exist"),
        ("link-out", "is outside the workspace (a symlink to"),
    ],
)
def test_paths_in_nixcrate_toml_stay_in_the_workspace(ws: Path, tmp_path: Path, key: str, path: str, says: str) -> None:
    (tmp_path / "outside").write_text("secret\n")
    (ws / "link-out").symlink_to(tmp_path / "outside")
    write(ws, {"nixcrate.toml": f'[members.api]\n{key} = ["{path}"]\n'})
    line = refused(ws, "nixcrate.toml", f"members.api.{key}", says)
    assert line.endswith(("give a path relative to the workspace root, inside it", "fix the path, or add the file"))


def test_paths_inside_the_workspace_are_fine(ws: Path) -> None:
    write(ws, {"proto/a.proto": "syntax = 1;\n", "nixcrate.toml": '[members.api]\nextra-src = ["proto", "./proto/a.proto"]\n'})
    code, stderr = init(str(ws))
    assert code == 0, stderr


# --------------------------------------------------------------------------- codegen-units


@pytest.mark.parametrize("value", ["0", "-1", "4294967296", "99999999999999"])
def test_codegen_units_cargo_refuses(ws: Path, value: str) -> None:
    write(ws, {"nixcrate.toml": f"[services]\ncodegen-units = {value}\n"})
    refused(ws, "nixcrate.toml", "codegen-units", "4294967295")


@pytest.mark.parametrize("value", ["1", "256", "257", "4294967295"])
def test_codegen_units_cargo_takes(ws: Path, value: str) -> None:
    """Real cargo (1.8x) and rustc take any u32 above 0 (257 and 100000 build)."""
    write(ws, {"nixcrate.toml": f"[services]\ncodegen-units = {value}\n"})
    code, stderr = init(str(ws))
    assert code == 0, stderr


# --------------------------------------------------------------------------- patch and replace tables


def test_patch_paths_names_in_tree_crates_cargo_reads(ws: Path) -> None:
    write(
        ws,
        {
            "Cargo.toml": BASE["Cargo.toml"]
            + '\n[patch.crates-io]\nserde = { path = "vendor/serde" }\nmember = { path = "crates/common" }\n'
            + '\n[replace]\n"itoa:1.0.0" = { path = "./vendor/itoa" }\n',
            "vendor/serde/Cargo.toml": '[package]\nname = "serde"\nversion = "1.0.0"\n',
            "vendor/serde/src/lib.rs": "",
            "vendor/itoa/Cargo.toml": '[package]\nname = "itoa"\nversion = "1.0.0"\n',
        },
    )
    loaded = workspace.load(ws)
    assert loaded.patch_paths == (PurePosixPath("vendor/itoa"), PurePosixPath("vendor/serde"))


def test_a_patched_crate_outside_the_root_is_refused(ws: Path) -> None:
    """Cargo loads it for every package (and fails when it is not there); the flake's source
    cannot hold it: one line naming it, nothing written."""
    write(ws, {"Cargo.toml": BASE["Cargo.toml"] + '\n[patch.crates-io]\nfar = { path = "../far" }\n'})
    code, stderr = init(str(ws))
    assert code == 1
    assert stderr.startswith("error: Cargo.toml: the crate at ../far, patched in by [patch] or [replace]"), stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not (ws / "nix").exists()


def test_patch_paths_default_is_empty(ws: Path) -> None:
    assert workspace.load(ws).patch_paths == ()


# --------------------------------------------------------------------------- --check --strict


def test_check_strict_fails_on_the_warnings_strict_fails_on(ws: Path) -> None:
    write(
        ws,
        {
            "services/api/Cargo.toml": BASE["services/api/Cargo.toml"] + 'gitdep = { git = "https://example.com/gitdep.git" }\n',
            "Cargo.lock": BASE["Cargo.lock"].replace(' "common",\n', ' "common",\n "gitdep",\n')
            + f'\n[[package]]\nname = "gitdep"\nversion = "0.2.0"\nsource = "git+https://example.com/gitdep.git#{GIT_REV}"\n',
        },
    )
    code, stderr = init(str(ws))
    assert code == 0 and "no output hash" in stderr
    before = snapshot(ws)
    code, stderr = init("--strict", str(ws))
    assert code == 1 and "--strict" in stderr
    code, stderr = init("--check", "--strict", str(ws))
    assert code == 1, stderr
    assert "no output hash" in stderr and "--strict" in stderr
    assert init("--check", str(ws))[0] == 0
    assert snapshot(ws) == before
