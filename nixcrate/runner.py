"""The only module that starts processes.

`run` echoes `$ cmd` (when verbose), wraps subprocess.run and raises typed errors:
ToolNotFound when the program is missing, CommandFailed with the tail of stderr.
`popen` is for the streaming case (`nix build --log-format internal-json`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
from typing import TYPE_CHECKING

from nixcrate.errors import CommandFailed, ToolNotFound

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from pathlib import Path

VERBOSE = False

# How to install each tool nixcrate may run, for the ToolNotFound message.
INSTALL_HINTS = {
    "nix": "install Nix (https://nixos.org/download) or 'apt-get install nix-bin'",
    "nix-instantiate": "install Nix (https://nixos.org/download) or 'apt-get install nix-bin'",
    "cargo": "install Rust with rustup (https://rustup.rs)",
    "cargo-zigbuild": "'pip install cargo-zigbuild ziglang'",
    "git": "install git",
}


def echo(argv: Sequence[str]) -> None:
    if VERBOSE:
        from rich.markup import escape  # noqa: PLC0415 - rich only when echoing

        from nixcrate.console import err  # noqa: PLC0415

        err.print(f"[dim]$ {escape(shlex.join(shown_argv(argv)))}[/dim]", soft_wrap=True)


# Store paths past which an echoed command line lists only how many more it has: nix's
# queries take hundreds (every output of a build's closure), which no one reads.
ECHOED_STORE_PATHS = 3
_STORE_PATH = re.compile(r"/store/[0-9a-z]{32}-")


def shown_argv(argv: Sequence[str]) -> list[str]:
    """argv as echoed: a run of more than ECHOED_STORE_PATHS store paths is cut to its first
    ones and `...(N more store paths)`."""
    shown: list[str] = []
    run = 0
    for n, arg in enumerate(argv):
        run = run + 1 if _STORE_PATH.search(arg) else 0
        if run <= ECHOED_STORE_PATHS:
            shown.append(arg)
        elif run == ECHOED_STORE_PATHS + 1:
            rest = 1 + next((i for i, a in enumerate(argv[n + 1 :]) if not _STORE_PATH.search(a)), len(argv) - n - 1)
            shown.append(f"...({rest} more store path{'s' if rest > 1 else ''})")
    return shown


def which(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        hint = INSTALL_HINTS.get(program, f"install {program}")
        raise ToolNotFound(f"{program}: not found on PATH: {hint}")
    return found


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    input_text: str | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run argv to completion, capturing text output. Raises CommandFailed when check."""
    argv = list(argv)
    echo(argv)
    full_env = None if env is None else {**os.environ, **env}
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            input=input_text,
            check=False,
            timeout=timeout,
        )
    except FileNotFoundError:
        which(argv[0])  # raises ToolNotFound with the install hint
        raise
    if check and proc.returncode != 0:
        raise CommandFailed(argv, proc.returncode, tail(proc.stderr or proc.stdout, 400))
    return proc


def popen(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    echo_now: bool = True,
) -> subprocess.Popen[str]:
    """Start argv with stderr piped as text lines (nix writes its JSON log there).

    The echo comes after the start (it imports rich, ~40 ms); echo_now=False leaves it to
    the caller, who may have better things to do first.
    """
    argv = list(argv)
    full_env = None if env is None else {**os.environ, **env}
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            start_new_session=True,  # Ctrl-C is ours to forward, so nix gets one clean SIGINT
        )
    except FileNotFoundError:
        which(argv[0])
        raise
    if echo_now:
        echo(argv)
    return proc


def signal_group(proc: subprocess.Popen[str], sig: int = signal.SIGINT) -> None:
    """Send sig to the process group `popen` started (nix and its builders), once."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass  # already gone


@contextlib.contextmanager
def sigint_for_main_thread() -> Iterator[None]:
    """Threads started inside this block never receive SIGINT: they inherit a signal mask
    that blocks it, so the kernel delivers Ctrl-C to the main thread.

    The main thread spends a build blocked in a read of nix's log. Python runs its SIGINT
    handler (which forwards Ctrl-C to nix) only once that read returns; a SIGINT the kernel
    gave to a helper thread instead left the read uninterrupted until nix next printed
    (seen: a Ctrl-C waited 20 s on a quiet build).
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
