"""SIGKILL `nixcrate init` while it writes: every file is the old version or the new one.

`init` writes each file to a temp file beside it, fsyncs it and renames it over the target,
so a kill leaves the target whole. What SIGKILL (which cannot be caught) can leave is the
temp file itself, `.flake.nix.<random>.tmp`: the next `init` removes temps of that naming
before it writes (files.remove_stale_temps), and this test checks it does.

To land kills inside the write window instead of in Python's start-up, the child process
wraps `tempfile.mkstemp`, `os.fsync` and `os.replace` with a short sleep (SLOW_WRITES below,
this file only: nixcrate itself has no test hook). The kill time is random over the write
phase: from the first temp file to the end of the run.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_errors_catalogue import BASE, member, with_lock, write

from nixcrate.cli import cli

REPO = Path(__file__).resolve().parent.parent
KILLS = int(os.environ.get("NIXCRATE_CRASH_KILLS", "30"))
DELAY = 0.02  # seconds, before and after each wrapped call

# A fork server: imports nixcrate once, then for each directory read on stdin forks a child
# that runs `nixcrate init DIR` with slow writes. It prints "pid N"; the child prints "writing"
# at its first temp file; after the test's kill, "wait" makes it print "status N".
FORK_SERVER = """
import os, sys, tempfile, time
import jinja2, rich.table
import nixcrate.generate, nixcrate.flake_gen, nixcrate.lambda_pkg, nixcrate.native  # imported once, not per child
from nixcrate.cli import cli
pipe = os.fdopen(os.dup(1), "w", buffering=1)
def slow(fn):
    def wrapper(*args, **kwargs):
        time.sleep(DELAY)
        result = fn(*args, **kwargs)
        time.sleep(DELAY)
        return result
    return wrapper
def announced(fn):
    def wrapper(*args, **kwargs):
        pipe.write("writing\\n")
        return fn(*args, **kwargs)
    return wrapper
for line in sys.stdin:
    if line.strip() == "wait":
        pipe.write(f"status {os.waitpid(pid, 0)[1]}\\n")
        continue
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.replace, os.fsync, tempfile.mkstemp = slow(os.replace), slow(os.fsync), slow(announced(tempfile.mkstemp))
        try:
            cli.main(["init", line.strip()], prog_name="nixcrate")
        except SystemExit as exc:
            os._exit(exc.code or 0)
        os._exit(0)
    pipe.write(f"pid {pid}\\n")
""".replace("DELAY", repr(DELAY))


class ForkServer:
    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FORK_SERVER], cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def start(self, directory: Path) -> int:
        """Fork `nixcrate init directory`; return its pid once it has started writing."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{directory}\n")
        self.proc.stdin.flush()
        pid, writing = 0, False
        while not (pid and writing):
            line = self.proc.stdout.readline()
            assert line, "the fork server died"
            if line.startswith("pid "):
                pid = int(line.split()[1])
            writing = writing or line == "writing\n"
        return pid

    def wait(self) -> int:
        """The child's wait status (os.waitpid's)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("wait\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        while line == "writing\n":  # a second temp file's announcement
            line = self.proc.stdout.readline()
        return int(line.split()[1])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


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


def test_sigkill_while_writing_leaves_old_or_new_files_and_the_next_run_cleans_up(
    old_and_new: tuple[Path, dict[str, bytes], dict[str, bytes]], tmp_path: Path
) -> None:
    old, old_files, new_files = old_and_new
    data = str(GENERATED / "workspace.nix")
    assert old_files[data] != new_files[data] and "nixcrate.toml" not in old_files
    rng = random.Random(os.environ.get("NIXCRATE_CRASH_SEED", "0"))
    server = ForkServer()
    # How long a run takes from its first temp file to exit: the window the kills are spread over.
    ws = tmp_path / "run" / "ws"
    shutil.copytree(old, ws)
    server.start(ws)
    started = time.monotonic()
    assert os.waitstatus_to_exitcode(server.wait()) == 0
    window = time.monotonic() - started

    killed = mixed = leftovers = 0
    seen: dict[tuple[bool, bool], int] = {}
    for _ in range(KILLS):
        shutil.rmtree(ws)
        shutil.copytree(old, ws)
        pid = server.start(ws)
        time.sleep(rng.uniform(0, window))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # a zombie cannot be found... only when already reaped
        status = server.wait()
        killed += os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        files = state(ws)
        data_ok = files.get(data) in (old_files[data], new_files[data])
        toml_ok = files.get("nixcrate.toml") in (None, new_files["nixcrate.toml"])
        mixed += not (data_ok and toml_ok)
        key = (files.get(data) == new_files[data], "nixcrate.toml" in files)
        seen[key] = seen.get(key, 0) + 1
        leftovers += bool(temps(ws))
        # the next run finishes the job and leaves no temp behind
        result = CliRunner().invoke(cli, ["init", str(ws)])
        assert result.exit_code == 0, result.output
        assert state(ws) == new_files
        assert temps(ws) == []
    server.close()
    print(f"\ncrash safety: {killed} of {KILLS} kills landed mid-run, {mixed} mixed files, {leftovers} runs left a temp (cleaned by the next run); states {seen}")
    assert mixed == 0
    assert killed >= KILLS // 2  # the kills did land while init ran
    assert len(seen) >= 2  # and at different points of it


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
