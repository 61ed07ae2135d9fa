"""The base snapshot: what the library's incremental closures start from.

`nix/nixcrate/base/` holds byte copies of the workspace's Cargo.lock, manifests and
.cargo configs as they were when the snapshot was taken, and `base.nix`: each copy's
sha256, the in-tree crates and the cargo arguments each closure ran then. The library
builds the base's closures once (a binary cache serves them from then on) and starts every
closure of the current lock from its base closure, so cargo recompiles only the crates that
moved since. See the README's "Incremental closures" for when to refresh it and what that
costs.

`init` takes a snapshot where there is none and leaves an existing one alone: the base must
not move on every lock bump, or nothing is gained. `init --refresh-base` retakes it. A
snapshot that is missing its data, edited by hand, or names what the tree no longer has is an
error naming the file and the refresh command (`init --check` included).
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nixcrate import files
from nixcrate.errors import NixcrateError

if TYPE_CHECKING:
    from pathlib import Path

    from nixcrate.config import Config
    from nixcrate.flake_gen import Classified, FlakeContext
    from nixcrate.workspace import Workspace

BASE_DIR = "nix/nixcrate/base"
DATA = "base.nix"
FORMAT = 1
REFRESH = "nixcrate init --refresh-base"
FIX = f"run '{REFRESH}' and commit {BASE_DIR}"


class BaseSnapshotError(NixcrateError):
    """The base snapshot under nix/nixcrate/base is missing, edited by hand or stale."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A base snapshot as it would be written: path under the workspace root -> bytes."""

    files: dict[str, bytes]

    @property
    def data_path(self) -> str:
        return f"{BASE_DIR}/{DATA}"


def copied_files(ws: Workspace) -> tuple[str, ...]:
    """What the snapshot copies, relative to the root: the lock, every manifest cargo loads
    (crates patched in from the tree aside: the closures compile those from the tree) and
    the .cargo configs. The library's `manifestFiles` lists the same."""
    manifests = {"Cargo.toml", *(c.manifest.as_posix() for c in ws.crates if c.path not in ws.patch_paths)}
    return ("Cargo.lock", *sorted(manifests | {p.as_posix() for p in ws.cargo_configs}))


def _check_line(args: str, crate: object, checks: object) -> dict[str, object]:
    """What the library's `checkLine` gives a member: its cargo arguments and the `deps` of its
    clippy and test checks (None: no such check)."""
    assert isinstance(crate, dict) and isinstance(checks, dict)
    own = crate.get("checks", checks["members"])
    return {"args": args} | {kind: None if own[kind] is None else own[kind]["deps"] for kind in ("clippy", "test")}


def take(root: Path, ws: Workspace, config: Config, classified: Classified, context: FlakeContext) -> Snapshot:
    """The snapshot of the workspace as it is now."""
    from nixcrate import flake_gen, lambda_pkg  # noqa: PLC0415
    from nixcrate.workspace import MemberKind  # noqa: PLC0415

    copies = {rel: (root / rel).read_bytes() for rel in copied_files(ws)}
    crates_data = context.data["crates"]
    assert isinstance(crates_data, dict)
    # The arguments the library's `lines` gives each closure (cargoArgs, zigTarget).
    checks = [n for n in classified.of_any() if n not in classified.unpackaged]
    closures = {
        "services": flake_gen.service_lines(classified, config, context.unified),
        "lambdas": [
            f"{flake_gen.cargo_args(n, config)} --target {lambda_pkg.zig_target(config.member(n).arch, config.lambda_glibc)}"
            for n in classified.of(MemberKind.LAMBDA)
        ],
        "checks": [_check_line(flake_gen.cargo_args(n, config), crates_data[n], context.data["checks"]) for n in sorted(checks)],
    }
    data = {
        "format": FORMAT,
        "files": {rel: hashlib.sha256(body).hexdigest() for rel, body in copies.items()},
        "crates": {name: entry["path"] for name, entry in crates_data.items()},
        "renamedDependencies": context.data["renamedDependencies"],
        "patchPaths": context.data["patchPaths"],
        # only when there are some: a snapshot taken before nixcrate knew of them stays valid
        **({"patchManifests": context.data["patchManifests"]} if context.data["patchManifests"] else {}),
        "cargoConfigs": context.data["cargoConfigs"],
        "gitHashes": context.data["gitHashes"],
        "stubs": list(flake_gen.workspace_stubs(ws)),
        "closures": closures,
    }
    body = HEADER_COMMENT + flake_gen.to_nix(data, inline=False) + "\n"
    written = {f"{BASE_DIR}/{rel}": content for rel, content in copies.items()}
    written[f"{BASE_DIR}/{DATA}"] = files.with_header(body).encode()
    return Snapshot(written)


HEADER_COMMENT = """\
# The base snapshot nixcrate's closures start from (see ../default.nix, "the base snapshot").
# The files beside this one are byte copies of the workspace's Cargo.lock, manifests and
# .cargo configs when it was taken, each with its sha256 below. `nixcrate init` leaves it
# alone; `nixcrate init --refresh-base` retakes it (then the next build compiles its closures
# in full, once).
"""


def existing(root: Path) -> dict[str, str] | None:
    """The recorded sha256 of each copy, or None when there is no snapshot at all. A snapshot
    whose data is edited, unreadable or of another format is an error naming it."""
    data = root / BASE_DIR / DATA
    shown = f"{BASE_DIR}/{DATA}"
    if not data.exists():  # (copies without it are no snapshot either: init retakes it)
        return None
    if files.state_of(data) is not files.FileState.PRISTINE:
        raise BaseSnapshotError(f"{shown}: edited by hand since nixcrate took the snapshot: {FIX}")
    text = data.read_text(encoding="utf-8")
    if f"format = {FORMAT};" not in text:
        raise BaseSnapshotError(f"{shown}: written by another nixcrate version: {FIX}")
    return _recorded_files(text)


_STRING = r'"((?:[^"\\]|\\.)*)"'


def _unquote(quoted: str) -> str:
    """A string nix_str wrote (JSON's escapes, plus `\\${`), read back."""
    return str(json.loads('"' + quoted.replace("\\$", "$") + '"'))


def _recorded_files(text: str) -> dict[str, str]:
    """The `files = { "<rel>" = "<sha256>"; ... };` entries of base.nix."""
    block = re.search(r"^  files = \{(.*?)^  \};", text, re.MULTILINE | re.DOTALL)
    entries = re.findall(_STRING + r' = "([0-9a-f]{64})";', block.group(1)) if block else []
    return {_unquote(rel): digest for rel, digest in entries}


def _patch_paths(text: str) -> list[str]:
    block = re.search(r"^  patchPaths = \[(.*?)\];", text, re.MULTILINE | re.DOTALL)
    return [_unquote(p) for p in re.findall(_STRING, block.group(1))] if block else []


def check(root: Path, recorded: dict[str, str]) -> None:
    """Every copy is as recorded, and nothing the snapshot names is gone from the tree."""
    for rel, digest in sorted(recorded.items()):
        copy = root / BASE_DIR / rel
        if not copy.is_file():
            raise BaseSnapshotError(f"{BASE_DIR}/{rel}: missing from the snapshot: {FIX}")
        if hashlib.sha256(copy.read_bytes()).hexdigest() != digest:
            raise BaseSnapshotError(f"{BASE_DIR}/{rel}: edited by hand since nixcrate took the snapshot: {FIX}")
    data = (root / BASE_DIR / DATA).read_text(encoding="utf-8")
    for patch in _patch_paths(data):
        if not (root / patch).is_dir():
            raise BaseSnapshotError(
                f"{BASE_DIR}/{DATA}: names the patched crate {patch}, which is no longer in the tree "
                f"(every closure would build from nothing): {FIX}"
            )


def moved(root: Path, ws: Workspace) -> tuple[int, int]:
    """(third-party lock entries that differ from the base's, third-party entries now)."""
    # (a byte copy: a lock that starts with a UTF-8 BOM, which cargo accepts, keeps it)
    base_lock = tomllib.loads((root / BASE_DIR / "Cargo.lock").read_text(encoding="utf-8").removeprefix("\ufeff"))
    then = {(p["name"], p["version"], p.get("source")) for p in base_lock.get("package", []) if p.get("source")}
    now = {(p.name, p.version, p.source) for p in ws.lock.packages if p.source}
    return len(now - then), len(now)
