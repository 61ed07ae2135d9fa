"""The size of a path's NAR serialisation, computed from its files.

`nix path-info` reports a store path's narSize, but starting nix costs ~20 ms; right after
`nix build` exits that is most of the time between nix's exit and the report. The NAR
format (Nix's `archive.cc`, the output of `nix-store --dump`) is simple enough to size
from a walk of the tree: every field is a string framed by its 8-byte length and padded
to a multiple of 8, and a regular file's contents are framed the same way.

    "nix-archive-1" node
    node      = "(" "type" ( "regular" ["executable" ""] "contents" <data>
                           | "symlink" "target" <target>
                           | "directory" { "entry" "(" "name" <name> "node" node ")" } ) ")"
"""

from __future__ import annotations

import os
import stat


def _field(length: int) -> int:
    """Bytes a string of `length` bytes takes in a NAR: its length, then it padded to 8."""
    return 8 + ((length + 7) & ~7)


_HEADER = _field(len(b"nix-archive-1"))
_OPEN_TYPE = _field(1) + _field(len(b"type"))  # "(" "type"
_CLOSE = _field(1)  # ")"
_REGULAR = _OPEN_TYPE + _field(len(b"regular")) + _field(len(b"contents")) + _CLOSE
_EXECUTABLE = _field(len(b"executable")) + _field(0)
_SYMLINK = _OPEN_TYPE + _field(len(b"symlink")) + _field(len(b"target")) + _CLOSE
_DIRECTORY = _OPEN_TYPE + _field(len(b"directory")) + _CLOSE
# "entry" "(" "name" <name> "node" <node> ")", without the name and the node
_ENTRY = _field(len(b"entry")) + _field(1) + _field(len(b"name")) + _field(len(b"node")) + _CLOSE


class TooManyFilesError(Exception):
    """The tree holds more entries than the caller wants to walk."""


def nar_size(path: str | os.PathLike[str], *, max_entries: int | None = None) -> int:
    """`nix path-info`'s narSize of `path` (any path, in a store or not).

    Raises FileNotFoundError when it does not exist and TooManyFilesError past max_entries
    files, directories and symlinks: a big tree is walked faster by nix itself.
    """
    root = os.fsencode(path)
    size = _HEADER
    left = max_entries
    stack = [(root, os.lstat(root))]
    while stack:
        where, st = stack.pop()
        if left is not None:
            left -= 1
            if left < 0:
                raise TooManyFilesError(os.fsdecode(root))
        if stat.S_ISDIR(st.st_mode):
            size += _DIRECTORY
            with os.scandir(where) as entries:
                for entry in entries:
                    size += _ENTRY + _field(len(entry.name))
                    stack.append((entry.path, entry.stat(follow_symlinks=False)))
        elif stat.S_ISLNK(st.st_mode):
            size += _SYMLINK + _field(len(os.readlink(where)))
        elif stat.S_ISREG(st.st_mode):
            size += _REGULAR + _field(st.st_size) + (_EXECUTABLE if st.st_mode & stat.S_IXUSR else 0)
        else:
            raise ValueError(f"{os.fsdecode(where)}: not a file, directory or symlink: no NAR holds it")
    return size
