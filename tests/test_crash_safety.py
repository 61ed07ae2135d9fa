"""SIGKILL `nixcrate init` at every file-changing system call: each file is the old version or the new one.

`init` writes each file to a temp file beside it, fsyncs it and renames it over the target,
so a kill leaves the target whole. What SIGKILL (which cannot be caught) can leave is the
temp file itself, `.flake.nix.<random>.tmp`: the next `init` removes temps of that naming
before it writes (files.remove_stale_temps), and this test checks it does.

The kills are real and land where they matter: strace runs `nixcrate init` and delivers
SIGKILL on entry to its k-th call that changes a file (write, fsync, chmod, rename, unlink,
truncate, ...), for k = 1, 2, ... until a run gets through them all. So every such call of
the write phase is a kill point, whatever code makes it: a write that truncated and copied
into the target in place would be killed in the middle of its write and leave it cut short.
(An earlier version slowed the atomic path's own calls and killed at random times: a write
that bypassed them was never hit.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_errors_catalogue import BASE, member, with_lock, write

from nixcrate.cli import cli

REPO = Path(__file__).resolve().parent.parent
# Every system call that changes a file's content, name or mode (opening one is not a
# change in itself: O_TRUNC is followed by the write that the kill then interrupts).
CHANGES = "write,pwrite64,writev,pwritev,rename,renameat,renameat2,fsync,fdatasync,fchmod,fchmodat,chmod,unlink,unlinkat,ftruncate,truncate,link,linkat,symlink,symlinkat"
MAX_KILL_POINTS = 200  # a bound: init makes ~20 such calls here

needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (apt-get install strace)")


def init_killed_at(ws: Path, k: int) -> int:
    """Run `nixcrate init ws`, SIGKILLed on entry to its k-th file-changing call; its exit status."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}  # no .pyc writes: only init's own
    argv = ["strace", "-f", "-qq", "-o", os.devnull, f"-etrace={CHANGES}", f"-einject={CHANGES}:signal=KILL:when={k}"]
    proc = subprocess.run([*argv, sys.executable, "-m", "nixcrate.cli", "init", str(ws)], env=env, capture_output=True, text=True, check=False, timeout=120)
    return proc.returncode


GENERATED = Path("nix/nixcrate")


def state(root: Path) -> dict[str, bytes]:
    """The files init writes: at the root and under nix/nixcrate."""
    found = {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()}
    if (root / GENERATED).is_dir():
        found |= {str(GENERATED / p.name): p.read_bytes() for p in (root / GENERATED).iterdir() if p.is_file()}
    return found


def temps(root: Path) -> list[str]:
    dirs = [root, root / GENERATED]
    return sorted(p.name for d in dirs if d.is_dir() for p in d.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))


@pytest.fixture
def old_and_new(tmp_path: Path) -> tuple[Path, dict[str, bytes], dict[str, bytes]]:
    """A workspace whose flake.nix is out of date and whose nixcrate.toml is not written yet:
    init updates one file and creates the other."""
    old = tmp_path / "old" / "ws"  # one name everywhere: the flake's description is the directory's name
    write(old, dict(BASE))
    assert CliRunner().invoke(cli, ["init", str(old)]).exit_code == 0
    (old / "nixcrate.toml").unlink()
    write(old, {**member("billing", bin_=True), "Cargo.lock": with_lock("billing")})
    new = tmp_path / "new" / "ws"
    shutil.copytree(old, new)
    assert CliRunner().invoke(cli, ["init", str(new)]).exit_code == 0
    return old, state(old), state(new)


@needs_strace
def test_sigkill_at_every_write_leaves_old_or_new_files_and_the_next_run_cleans_up(
    old_and_new: tuple[Path, dict[str, bytes], dict[str, bytes]], tmp_path: Path
) -> None:
    old, old_files, new_files = old_and_new
    data = str(GENERATED / "workspace.nix")
    assert old_files[data] != new_files[data] and "nixcrate.toml" not in old_files
    ws = tmp_path / "run" / "ws"
    killed, seen, leftovers = 0, set(), 0
    for k in range(1, MAX_KILL_POINTS + 1):
        if ws.exists():
            shutil.rmtree(ws)
        shutil.copytree(old, ws)
        status = init_killed_at(ws, k)
        files = {name: content for name, content in state(ws).items() if not Path(name).name.endswith(".tmp")}
        for name in sorted(old_files.keys() | new_files.keys() | files.keys()):
            assert files.get(name) in (old_files.get(name), new_files.get(name)), f"kill point {k}: {name} is neither the old file nor the new one"
        seen.add((files.get(data) == new_files[data], "nixcrate.toml" in files))
        leftovers += bool(temps(ws))
        # the next run finishes the job and leaves no temp behind
        result = CliRunner().invoke(cli, ["init", str(ws)])
        assert result.exit_code == 0, result.output
        assert state(ws) == new_files
        assert temps(ws) == []
        if status == 0:  # this run got through all its calls: every kill point was tried
            break
        assert status in (-9, 128 + 9), f"kill point {k}: init exited {status}, not killed"
        killed += 1
    else:
        pytest.fail(f"init still making file changes after {MAX_KILL_POINTS} calls")
    print(f"\ncrash safety: {killed} kill points, states (new data, toml written) {sorted(seen)}, {leftovers} runs left a temp (cleaned by the next run)")
    # the kills landed before, between and after the two files' writes
    assert seen == {(False, False), (True, False), (True, True)}


def test_init_twice_changes_nothing_and_keeps_nixcrate_toml_edits(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    write(root, dict(BASE))
    assert CliRunner().invoke(cli, ["init", str(root)]).exit_code == 0
    toml = root / "nixcrate.toml"
    edited = toml.read_text().replace("[members.api]", "# my note: api is the public one\n[members.api]\nfeatures = []  # none yet")
    toml.write_text(edited)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    for args in (["init", str(root)], ["init", str(root)], ["init", "--check", str(root)], ["init", "--force", str(root)]):
        assert CliRunner().invoke(cli, args).exit_code == 0
        assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before, args
    assert toml.read_text() == edited


def test_ci_keeps_nixcrate_toml_edits(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    write(root, dict(BASE))
    assert CliRunner().invoke(cli, ["init", str(root)]).exit_code == 0
    toml = root / "nixcrate.toml"
    toml.write_text(toml.read_text() + "\n# my own comment, kept by every command\n")
    edited = toml.read_bytes()
    result = CliRunner().invoke(cli, ["ci", str(root), "--cache", "cachix:my-cache"])
    assert result.exit_code == 0, result.output
    assert toml.read_bytes() == edited


def test_force_is_the_only_way_to_replace_an_edited_generated_file_and_keeps_a_backup(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    write(root, dict(BASE))
    assert CliRunner().invoke(cli, ["init", str(root)]).exit_code == 0
    library = root / GENERATED / "default.nix"
    edited = library.read_text().replace("doCheck = false;", "doCheck = true;  # mine")
    assert edited != library.read_text()
    library.write_text(edited)
    for args in (["init", str(root)], ["init", "--strict", str(root)], ["init", "--check", str(root)]):
        assert CliRunner().invoke(cli, args).exit_code == 1
        assert library.read_text() == edited
    assert CliRunner().invoke(cli, ["init", "--force", str(root)]).exit_code == 0
    assert (root / GENERATED / "default.nix.bak").read_text() == edited
    assert "# mine" not in library.read_text()
