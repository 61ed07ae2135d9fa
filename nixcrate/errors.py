"""The NixcrateError tree: every user-facing failure, each a one-line message.

A message names the file and the fix; `hint` is an optional second line.
`cli.py` catches NixcrateError only: anything else is a bug and keeps its traceback.
The catalogue of messages is docs/errors.md; each entry is pinned by a test.
"""

from __future__ import annotations


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
        last = stderr_tail.strip().splitlines()[-1] if stderr_tail.strip() else "no output"
        super().__init__(f"'{' '.join(argv[:3])}' failed with exit status {returncode}: {last}")
        self.exit_code = returncode if 0 < returncode < 256 else 1


class Interrupted(NixcrateError):
    """Ctrl-C: exit 130, as shells report SIGINT."""

    exit_code = 130


class BuildFailed(NixcrateError):
    """`nix build` failed: exit with nix's own status (the report names the failed derivations)."""

    def __init__(self, message: str, returncode: int) -> None:
        super().__init__(message)
        self.exit_code = returncode if 0 < returncode < 256 else 1
