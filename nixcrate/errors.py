"""The NixcrateError tree: every user-facing failure, each a one-line message.

A message names the file and the fix; `hint` is an optional second line.
`cli.py` catches NixcrateError only: anything else is a bug and keeps its traceback.
The catalogue of messages is docs/errors.md; each entry is pinned by a test.
"""

from __future__ import annotations

import re

# Trace noise in Nix's stderr: "… while evaluating", source excerpts ("  3| x"), carets, hints.
_NOISE = re.compile(r"^\s*(…|\d*\s*\||\(use '--show-trace'|$)")
_AT = re.compile(r"^\s*at (?:/nix/store/[a-z0-9]{32}-source/)?(?P<where>\S+):\s*$")
_STORE_SOURCE = re.compile(r"/nix/store/[a-z0-9]{32}-source/")


def error_summary(stderr: str) -> str:
    """The lines of a tool's stderr that say what is wrong, as one line.

    Nix's `error:` line and its continuation, where it is (`at flake.nix:4:3`, store prefix
    dropped) and a failed program's own `fatal:` lines; not the trace, source excerpts or
    `(use '--show-trace' ...)`. Newer Nix nests the cause as the last `error:`: take that one.
    Other tools' output: its last line.
    """
    lines = stderr.splitlines()
    starts = [i for i, ln in enumerate(lines) if ln.strip().startswith("error:") and ln.strip() != "error:"]
    if not starts:
        text = [ln.strip() for ln in lines if not _NOISE.match(ln)]
        return text[-1] if text else "no output"
    first = starts[-1]
    parts = [lines[first].strip().removeprefix("error:").strip()]
    where = None
    for ln in lines[first + 1 :]:
        at = _AT.match(ln)
        if at:
            where = where or at.group("where")
            continue
        if ln.strip().startswith("…"):
            break
        if not _NOISE.match(ln):
            parts.append(ln.strip())
    context = [ln.strip() for ln in lines[:first] if ln.startswith("fatal:")]
    summary = " ".join(parts) + (f" (at {where})" if where else "") + (f": {' '.join(context)}" if context else "")
    return _STORE_SOURCE.sub("", summary)


class NixcrateError(Exception):
    """Base of every user-facing error. `exit_code` 1 unless a subclass says otherwise."""

    exit_code: int = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ManifestError(NixcrateError):
    """Cargo.toml is missing, unreadable or not a workspace/package."""


class LockfileError(NixcrateError):
    """Cargo.lock is missing, too old a format, or stale against the manifests."""


class WorkspaceError(NixcrateError):
    """The workspace's shape is something a flake cannot express."""


class ConfigError(NixcrateError):
    """nixcrate.toml has an unknown key, a wrong type or names no member."""


class GeneratedFileEdited(NixcrateError):
    """A generated file was edited by the user; `--force` replaces it (with a backup)."""


class OutOfDate(NixcrateError):
    """`--check` found generated files that differ from what the workspace gives."""


class WriteError(NixcrateError):
    """A file could not be written (read-only directory, disk full)."""


class UsageError(NixcrateError):
    """Wrong arguments: exit 2, like click's own usage errors."""

    exit_code = 2


class ToolNotFound(NixcrateError):
    """A program nixcrate runs (nix, cargo, zig) is not on PATH."""


class NixTooOld(NixcrateError):
    """Nix is older than the minimum, or flakes are not enabled."""


class LambdaVerifyFailed(NixcrateError):
    """`nixcrate lambda verify` found problems (listed one per line by the caller)."""


class CommandFailed(NixcrateError):
    """A subprocess exited non-zero. Exit code: the process's own status."""

    def __init__(self, argv: list[str], returncode: int, stderr_tail: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        super().__init__(f"'{' '.join(argv[:3])}' failed with exit status {returncode}: {error_summary(stderr_tail)}")
        self.exit_code = returncode if 0 < returncode < 256 else 1


class Interrupted(NixcrateError):
    """Ctrl-C: exit 130, as shells report SIGINT."""

    exit_code = 130


class BuildFailed(NixcrateError):
    """`nix build` failed: exit with nix's own status (the report names the failed derivations)."""

    def __init__(self, message: str, returncode: int) -> None:
        super().__init__(message)
        self.exit_code = returncode if 0 < returncode < 256 else 1


class FileSystemError(NixcrateError):
    """The file system refused: a file nixcrate reads or writes is unreadable, a symlink loop,
    a file where a directory must be (e.g. `.github`), on a read-only or full disk."""


# errno name -> what the user does about it
_OS_FIXES = {
    "EACCES": "give this user access to it (chmod, chown), or run nixcrate as its owner",
    "EPERM": "give this user access to it (chmod, chown), or run nixcrate as its owner",
    "ELOOP": "a symlink loop: point the symlink at a real file, or remove it",
    "ENOTDIR": "a file stands where a directory must be: rename or remove it",
    "EISDIR": "a directory stands where a file must be: rename or remove it",
    "EEXIST": "something already stands there: rename or remove it",
    "ENOENT": "its directory does not exist: create it, or give another path",
    "ENOSPC": "the disk is full: free space, then rerun",
    "EDQUOT": "the disk quota is full: free space, then rerun",
    "EROFS": "the file system is read-only: run nixcrate in a writable copy",
    "ENAMETOOLONG": "shorten the path",
}


def from_os_error(exc: OSError, cwd: str | None = None, display: str | None = None) -> FileSystemError:
    """One line for an OSError the user's file system caused: the path, what is wrong, the fix."""
    import errno  # noqa: PLC0415
    import os  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    name = errno.errorcode.get(exc.errno or 0, "")
    fix = _OS_FIXES.get(name, "fix the path or its permissions, then rerun")
    where = display or (os.fsdecode(exc.filename) if exc.filename is not None else "a file")
    if display is None and exc.filename is not None:
        path = Path(where)
        if name == "ENOTDIR":
            # name the file that stands in the way (`.github`), not the path beneath it
            where = str(next((p for p in path.parents if p.is_file()), path))
        here = Path(cwd) if cwd is not None else Path.cwd()
        if Path(where).is_relative_to(here) and Path(where).is_absolute():
            where = str(Path(where).relative_to(here))
    what = exc.strerror or name or "error"
    return FileSystemError(f"{where}: the file system says '{what.lower()}': {fix}")
