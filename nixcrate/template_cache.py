"""Compiled Jinja templates, kept in the user's cache directory between runs.

Compiling flake.nix.j2 takes as long as everything else `nixcrate init` does for a
50-member workspace; loading the compiled code back takes under a millisecond. This is
jinja's own bytecode cache, made safe to leave on disk:

- jinja checks each entry against a checksum of the template's source, so an edited or
  upgraded template is compiled afresh;
- the key also holds jinja's version and a fingerprint of the code that sets up the
  environment (its options and filters), the other inputs of the compiled code;
- a cache that cannot be created, read or written is skipped: rendering never depends on it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

if TYPE_CHECKING:
    from jinja2.bccache import Bucket


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/nixcrate/templates (~/.cache when unset or relative, as the XDG spec says)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"  # noqa: PTH117
    return base / "nixcrate" / "templates"


class TemplateCache(jinja2.FileSystemBytecodeCache):
    def __init__(self, directory: Path, fingerprint: str) -> None:
        super().__init__(str(directory), "%s.jinja")
        self.fingerprint = fingerprint

    def get_cache_key(self, name: str, filename: str | None = None) -> str:
        key = f"{jinja2.__version__}\0{self.fingerprint}\0{name}\0{filename}"
        return hashlib.sha256(key.encode()).hexdigest()

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # noqa: BLE001 - a truncated or foreign file (unpickling raises many kinds): compile
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        try:
            Path(self.directory).mkdir(parents=True, exist_ok=True)
            super().dump_bytecode(bucket)
        except OSError:
            pass  # read-only home, full disk, a build sandbox: the next run compiles again


def for_module(module_file: str) -> TemplateCache | None:
    """A cache for the environment the module at module_file sets up, its source being the
    fingerprint; None when that cannot be read or there is no home (compile each run)."""
    try:
        fingerprint = hashlib.sha256(Path(module_file).read_bytes()).hexdigest()
        return TemplateCache(cache_dir(), fingerprint)
    except (OSError, RuntimeError):  # RuntimeError: Path.home() found no home directory
        return None
