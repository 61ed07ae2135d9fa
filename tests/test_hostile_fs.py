"""Hostile file systems: every OSError a user can cause is one `error:` line naming the path
and the fix, exit 1, no traceback, nothing written.

Unreadable files need a user the permissions apply to. Root reads everything, so when the
tests run as root the CLI runs with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped
(`setpriv`): it stays uid 0 (the interpreter lives under /root) but is refused like any
other user. As a non-root user the CLI runs as it is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_errors_catalogue import BASE, HAVE_NIX, snapshot, write

REPO = Path(__file__).resolve().parent.parent
DROP = "-dac_override,-dac_read_search"


def as_user(argv: list[str]) -> list[str]:
    """argv run without root's power over permissions."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable to nixcrate")
    return ["setpriv", f"--bounding-set={DROP}", f"--inh-caps={DROP}", *argv]


def nixcrate(*args: str, env: dict[str, str] | None = None, user: bool = True) -> tuple[int, str]:
    argv = [sys.executable, "-m", "nixcrate.cli", *args]
    full = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run(as_user(argv) if user else argv, cwd=REPO, env=full, capture_output=True, text=True, check=False, timeout=300)
    return proc.returncode, proc.stderr


def assert_one_line(code: int, stderr: str, names: str) -> str:
    assert "Traceback" not in stderr, stderr
    assert code == 1, stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert names in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write(root, dict(BASE))
    return root


@pytest.mark.parametrize("rel", ["Cargo.lock", "Cargo.toml", "crates/common/Cargo.toml", "crates/common/src", "nixcrate.toml", "flake.nix"])
def test_unreadable_input_is_one_line(ws: Path, rel: str) -> None:
    assert nixcrate("init", str(ws), user=False)[0] == 0  # nixcrate.toml and flake.nix exist
    before = snapshot(ws)
    target = ws / rel
    target.chmod(0)
    try:
        code, stderr = nixcrate("init", str(ws))
    finally:
        target.chmod(0o755 if target.is_dir() else 0o644)
    line = assert_one_line(code, stderr, rel)
    assert "permission denied" in line and "chmod" in line
    assert snapshot(ws) == before


def test_flake_nix_symlink_loop(ws: Path) -> None:
    (ws / "flake.nix").symlink_to("flake.nix")
    code, stderr = nixcrate("init", str(ws))
    line = assert_one_line(code, stderr, "flake.nix")
    assert "symbolic links" in line and "symlink" in line.rpartition(":")[2]


def test_github_is_a_file_when_ci_writes_its_workflow(ws: Path) -> None:
    assert nixcrate("init", str(ws), user=False)[0] == 0
    (ws / ".github").write_text("not a directory\n")
    before = snapshot(ws)
    code, stderr = nixcrate("ci", str(ws))
    line = assert_one_line(code, stderr, ".github")
    assert "not a directory" in line and "rename or remove" in line
    assert snapshot(ws) == before


@pytest.mark.skipif(not HAVE_NIX, reason="nix is not installed")
def test_summary_file_in_a_missing_directory(tmp_path: Path) -> None:
    from test_nix_build import FakeCraneFlake, isolated_env  # noqa: PLC0415

    env = isolated_env(tmp_path / "store")
    system = subprocess.run(
        ["nix", "eval", "--raw", "--impure", "--expr", "builtins.currentSystem"], env={**os.environ, **env}, capture_output=True, text=True, check=True
    ).stdout
    flake = tmp_path / "flake"
    FakeCraneFlake(flake, system, f"summary-{time.time_ns()}", services=("api",), lambdas=())
    missing = tmp_path / "no" / "such" / "summary.md"
    code, stderr = nixcrate("build", "--flake", str(flake), "--summary-file", str(missing), "api", env=env, user=False)
    line = assert_one_line(code, stderr, str(missing))
    assert "does not exist" in line and "--summary-file" in line
