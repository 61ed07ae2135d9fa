"""Why a deps closure was not reused: the closure's last derivation, remembered, and what
differs from it.

A closure is rebuilt when its .drv path changed (or its output left the store and no
binary cache had it). Nix does not say which .drv a flake's closure had before, so
nixcrate remembers: after each build, the .drv of every closure it met, per flake and
system, in `$XDG_STATE_HOME/nixcrate/closures.json` (default `~/.local/state`). The next
time a closure is built, its new .drv is compared with that one (`drv_diff`), both read
from the store with one `nix show-derivation -r`. Nothing is added to the store's GC
roots (a root on the old .drv would keep its whole source closure, and with
`keep-outputs` the old closure's output too): once garbage-collected, the old .drv cannot
be compared, and the note says so.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from nixcrate import drv_diff, files, nix
from nixcrate.errors import NixcrateError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from nixcrate.drv_diff import Change

STATE_VERSION = 1
MAX_FLAKES = 50  # the file keeps the flakes built most recently
# nixcrate's library names its closures' derivations `<pname>-deps-0.0.0`, whatever the
# workspace: the attribute each one is.
CLOSURE_OUTPUTS = {
    "deploy-deps": "deployCargoArtifacts",
    "lambda-deploy-deps": "lambdaDeployCargoArtifacts",
    "checks-deps": "checkCargoArtifacts",
}
_VERSION = re.compile(r"-\d[\w.+~]*$")
REUSED_STATES = ("present", "fetched")


class Reason(StrEnum):
    FIRST = "first"  # no earlier build of it recorded here
    CHANGED = "changed"  # another .drv than the last one: `changes` say how
    COLLECTED = "collected"  # the same .drv as last time: its output left the store
    UNKNOWN = "unknown"  # the last .drv left the store: nothing to compare with


@dataclass(frozen=True, slots=True)
class ClosureNote:
    output: str  # the flake attribute (deployCargoArtifacts...), else the derivation's name
    name: str  # the derivation's name: deploy-deps-0.0.0
    drv: str
    state: str  # the report's state: built, present, fetched, failed...
    reason: Reason | None = None  # None: reused
    previous: str | None = None  # the .drv of its last build here
    changes: tuple[Change, ...] = field(default=())

    @property
    def reused(self) -> bool:
        return self.state in REUSED_STATES

    def message(self) -> str | None:
        """The `note:` line for a closure that was not reused (None for one that was)."""
        if self.reused or self.reason is None:
            return None
        head = f"{self.output} was built, not reused" if self.state == "built" else f"{self.output} was not reused ({self.state})"
        if self.reason is Reason.FIRST:
            return (
                f"{head}: no binary cache had it, and no earlier build of it is recorded on this machine to compare with: "
                "push it to a binary cache your builds use (nixcrate ci's warm-deps jobs do) so that they fetch it"
            )
        if self.reason is Reason.COLLECTED:
            return (
                f"{head}: same derivation as its last build here, but its output had been garbage-collected and no binary cache had it: "
                f"keep it with a GC root (nix-store --add-root <link> --realise {self.drv}) or push it to a binary cache"
            )
        if self.reason is Reason.UNKNOWN:
            return (
                f"{head}: its derivation changed, and the one of its last build here ({self.previous}) has been garbage-collected, "
                "so what changed cannot be told: the next rebuild will name the change"
            )
        return f"{head}: changed since its last build here: {drv_diff.summary(self.changes)}: expected after such a change; later builds reuse it until they change again"

    def to_json(self) -> dict[str, object]:
        return {
            "output": self.output,
            "name": self.name,
            "drv": self.drv,
            "state": self.state,
            "reused": self.reused,
            "reason": None if self.reason is None else str(self.reason),
            "previous_drv": self.previous,
            "changes": [c.to_json() for c in self.changes],
        }


def output_name(name: str, known: Mapping[str, str] | None = None) -> str:
    """deploy-deps-0.0.0 -> deployCargoArtifacts (a requested output's own name first)."""
    if known and name in known:
        return known[name]
    return CLOSURE_OUTPUTS.get(_VERSION.sub("", name), name)


def state_file() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "nixcrate" / "closures.json"


def _key(flake: str, system: str) -> str:
    return f"{flake}#{system}"


def load(path: Path) -> dict[str, dict[str, str]]:
    """flake#system -> closure name -> .drv; {} when the file is missing or unreadable
    (it is only a memory: a damaged one is replaced on the next write)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    flakes = doc.get("flakes") if isinstance(doc, dict) and doc.get("version") == STATE_VERSION else None
    if not isinstance(flakes, dict):
        return {}
    return {str(k): {str(n): str(d) for n, d in v.items()} for k, v in flakes.items() if isinstance(v, dict)}


def remember(path: Path, flake: str, system: str, closures: Iterable[ClosureNote]) -> None:
    """Record the .drv of each closure whose output is in the store now. Raises
    NixcrateError when the file cannot be written."""
    valid = {c.name: c.drv for c in closures if c.state in ("built", *REUSED_STATES)}
    if not valid:
        return
    memory = load(path)
    key = _key(flake, system)
    entry = {**memory.pop(key, {}), **valid}
    memory[key] = dict(sorted(entry.items()))
    kept = dict(list(memory.items())[-MAX_FLAKES:])
    try:
        files.atomic_write(path, json.dumps({"version": STATE_VERSION, "flakes": kept}, indent=1, sort_keys=True) + "\n")
    except OSError as exc:
        raise NixcrateError(
            f"{path}: cannot record the closures built ({exc.strerror}): the next rebuild of a closure cannot say what changed; "
            "fix its permissions, or set XDG_STATE_HOME to a writable directory"
        ) from None


def explain(
    closures: Sequence[tuple[str, str, str, str]],
    *,
    flake: str,
    system: str,
    memory: Mapping[str, Mapping[str, str]],
    settings: Sequence[str] = (),
) -> tuple[ClosureNote, ...]:
    """A note per closure (output, name, drv, state): why each one not reused was built."""
    last = memory.get(_key(flake, system), {})
    notes = []
    compare: list[tuple[int, str]] = []
    for output, name, drv, state in closures:
        previous = last.get(name)
        if state in REUSED_STATES:
            notes.append(ClosureNote(output, name, drv, state))
        elif previous is None:
            notes.append(ClosureNote(output, name, drv, state, Reason.FIRST))
        elif previous == drv:
            notes.append(ClosureNote(output, name, drv, state, Reason.COLLECTED, previous))
        elif not Path(previous).exists():
            notes.append(ClosureNote(output, name, drv, state, Reason.UNKNOWN, previous))
        else:
            notes.append(ClosureNote(output, name, drv, state, Reason.CHANGED, previous))
            compare.append((len(notes) - 1, previous))
    if compare:
        pairs = [(notes[i].drv, previous) for i, previous in compare]
        try:
            shown = nix.show_derivations_json(sorted({p for pair in pairs for p in pair}), settings)
        except NixcrateError:
            shown = {}
        for i, previous in compare:
            note = notes[i]
            if note.drv in shown and previous in shown:
                found = drv_diff.changes(shown, previous, note.drv)
                notes[i] = ClosureNote(note.output, note.name, note.drv, note.state, Reason.CHANGED, previous, found)
            else:
                notes[i] = ClosureNote(note.output, note.name, note.drv, note.state, Reason.UNKNOWN, previous)
    return tuple(notes)
