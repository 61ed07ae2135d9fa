"""What changed between two derivations: why a closure did not keep its store path.

Input: `nix show-derivation -r OLD NEW` (both closures in one JSON document). The walk
pairs the inputs of the two .drvs, recurses into the pairs that differ and reports the
changes at the bottom, where a value differs by more than the store hashes of inputs (a
changed input changes every path below it, and those paths alone say nothing):

- an environment variable of the closure itself: nixcrate.toml's `env`, the cargo command
  lines (members, features, cargo arguments), the profile;
- its native inputs (added, removed, or another version), the Rust toolchain among them;
- the lock (crane's normalised `Cargo.lock`, and the crate sources vendored from it);
- the manifests (crane's cleaned `Cargo.toml` of each member);
- a source directory (compared file by file when both copies are still in the store).

Inputs with the same name (crane writes one `Cargo.toml` per member) are paired by the line
of the parent's environment that names them (`cp <path> $out/services/api/Cargo.toml`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

# A store path's hash part (nix base32), whatever the store directory.
_HASH = re.compile(r"/[0-9a-df-np-sv-z]{32}-")
_NAME_VERSION = re.compile(r"^(?P<base>.+?)-(?P<version>\d[\w.+~-]*)$")
# crane's vendored crate sources: downloadCargoPackage's fetchurl and its unpacked package.
_CRATE_SOURCE = re.compile(r"^(cargo-src|cargo-package|cargo-git)-(?P<crate>.+)$|^(?P<plain>.+)\.crate$")
# nixpkgs' and rust-overlay's names for a Rust toolchain (and crane-build's stand-in ones).
_TOOLCHAIN = re.compile(r"^(rustc|cargo|clippy|rustfmt|rust-[a-z]+|rust)(-(host|wrapper|unwrapped|bin))?$")
# Variables whose value is the store path of an input (or an output): a change there is a
# change of that input, found by pairing the inputs.
_DEPENDENCY_KEYS = frozenset(
    {
        "nativeBuildInputs",
        "buildInputs",
        "propagatedBuildInputs",
        "propagatedNativeBuildInputs",
        "depsBuildBuild",
        "depsBuildBuildPropagated",
        "depsBuildTarget",
        "depsBuildTargetPropagated",
        "depsHostHost",
        "depsHostHostPropagated",
        "depsTargetTarget",
        "depsTargetTargetPropagated",
        "stdenv",
        "src",
        "cargoVendorDir",
        "cargoArtifacts",
        "builder",
        "out",
    }
)
# crane's and stdenv's variables for the commands a build runs.
_COMMAND_KEYS = frozenset(
    {
        "buildPhase",
        "checkPhase",
        "installPhase",
        "configurePhase",
        "buildPhaseCargoCommand",
        "checkPhaseCargoCommand",
        "installPhaseCommand",
        "cargoExtraArgs",
        "cargoBuildCommand",
        "cargoCheckCommand",
        "cargoTestCommand",
        "cargoTestExtraArgs",
        "CARGO_PROFILE",
        "preBuild",
        "postBuild",
        "doCheck",
    }
)
MAX_DEPTH = 16
MAX_FILES = 5


class Kind(StrEnum):
    LOCK = "lock"
    TOOLCHAIN = "toolchain"
    SETTINGS = "settings"  # the closure's own environment: nixcrate.toml env, cargo commands, profile
    NATIVE_INPUTS = "native inputs"
    MANIFESTS = "manifests"
    SOURCES = "sources"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Change:
    kind: Kind
    text: str

    def to_json(self) -> dict[str, str]:
        return {"kind": str(self.kind), "text": self.text}


def store_name(path: str) -> str:
    """/nix/store/<hash>-name(.drv) -> name."""
    base = path.rsplit("/", 1)[-1].removesuffix(".drv")
    return base.split("-", 1)[1] if "-" in base else base


def normalise(value: str) -> str:
    """The value with every store hash blanked: equal when only inputs' paths differ."""
    return _HASH.sub("/<hash>-", value)


def changes(shown: Mapping[str, Mapping[str, object]], old: str, new: str) -> tuple[Change, ...]:
    """What differs between the derivations old and new (both in `shown`), most telling
    first; generic differences deep in the graph only when nothing more telling was found."""
    found = list(dict.fromkeys(_Walk(shown).pair(old, new, depth=0, label=store_name(new))))
    if not found and old != new:
        found = [Change(Kind.OTHER, f"a difference nixcrate cannot name (compare: nix show-derivation -r {old} {new})")]
    specific = [c for c in found if c.kind is not Kind.OTHER]
    order = list(Kind)
    return tuple(sorted(specific or found[:MAX_FILES], key=lambda c: order.index(c.kind)))


def summary(found: tuple[Change, ...]) -> str:
    """One clause a kind: `Cargo.lock: serde 1.0.152 -> 1.0.153; settings: env X "a" -> "b"`."""
    by_kind: dict[Kind, list[str]] = {}
    for change in found:
        by_kind.setdefault(change.kind, []).append(change.text)
    clauses = []
    for kind, texts in by_kind.items():
        shown = texts[:MAX_FILES] + ([f"{len(texts) - MAX_FILES} more"] if len(texts) > MAX_FILES else [])
        clauses.append(f"{_KIND_LABEL[kind]}: {', '.join(shown)}")
    return "; ".join(clauses)


_KIND_LABEL = {
    Kind.LOCK: "Cargo.lock",
    Kind.TOOLCHAIN: "toolchain",
    Kind.SETTINGS: "settings",
    Kind.NATIVE_INPUTS: "native inputs",
    Kind.MANIFESTS: "manifests",
    Kind.SOURCES: "sources",
    Kind.OTHER: "other inputs",
}


class _Walk:
    def __init__(self, shown: Mapping[str, Mapping[str, object]]) -> None:
        self.shown = shown
        self.seen: set[tuple[str, str]] = set()

    def env(self, drv: str) -> dict[str, str]:
        raw = self.shown.get(drv, {}).get("env", {})
        return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

    def inputs(self, drv: str) -> list[str]:
        raw = self.shown.get(drv, {}).get("inputDrvs", {})
        return sorted(raw) if isinstance(raw, dict) else []

    def sources(self, drv: str) -> list[str]:
        raw = self.shown.get(drv, {}).get("inputSrcs", [])
        return sorted(raw) if isinstance(raw, list) else []

    def out_paths(self, drv: str) -> list[str]:
        raw = self.shown.get(drv, {}).get("outputs", {})
        return [str(o["path"]) for o in raw.values() if isinstance(o, dict) and "path" in o] if isinstance(raw, dict) else []

    def fixed_output(self, drv: str) -> bool:
        raw = self.shown.get(drv, {}).get("outputs", {})
        return isinstance(raw, dict) and any(isinstance(o, dict) and "hash" in o for o in raw.values())

    def pair(self, old: str, new: str, *, depth: int, label: str) -> Iterator[Change]:
        """The changes between two derivations of the same role."""
        if old == new or (old, new) in self.seen or depth > MAX_DEPTH:
            return
        self.seen.add((old, new))
        name = store_name(new)
        if old not in self.shown or new not in self.shown:
            yield Change(Kind.OTHER, f"{label}: not comparable (a derivation is missing from the store)")
            return
        if _TOOLCHAIN.match(_base(name)[0]) and depth > 0:
            yield Change(Kind.TOOLCHAIN, _versions(store_name(old), name) or f"{name} (another build of it)")
            return
        if depth > 0 and (crate := _crate(name)):
            yield Change(Kind.LOCK, f"{crate} (another checksum)")
            return
        yield from self._env(old, new, depth=depth, label=label)
        yield from self._sources(old, new, label=label)
        yield from self._inputs(old, new, depth=depth, label=label)

    def _env(self, old: str, new: str, *, depth: int, label: str) -> Iterator[Change]:
        before, after = self.env(old), self.env(new)
        name = store_name(new)
        if name == "Cargo.lock" and "contents" in after:
            lock = _lock_changes(before.get("contents", ""), after["contents"])
            if lock is not None:
                yield from (Change(Kind.LOCK, text) for text in lock)
                return
        if name == "Cargo.toml" and "contents" in after:
            keys = _json_changes(before.get("contents", ""), after["contents"])
            if keys is not None:
                yield Change(Kind.MANIFESTS, f"{label} ({', '.join(keys[:MAX_FILES])})" if keys else label)
                return
        for key in sorted(set(before) | set(after)):
            was, now = before.get(key), after.get(key)
            if was == now or key in _DEPENDENCY_KEYS or key == "passAsFile":
                continue
            if was is not None and now is not None and normalise(was) == normalise(now):
                continue  # only inputs' paths differ: the inputs say why
            if depth > 0:
                yield Change(Kind.OTHER, f"{label}: {key} changed")
            elif key in _COMMAND_KEYS:
                yield Change(Kind.SETTINGS, f"{key} {_lines_diff(was or '', now or '')}")
            else:
                yield Change(Kind.SETTINGS, f"env {key} {_value_diff(was, now)}")

    def _sources(self, old: str, new: str, *, label: str) -> Iterator[Change]:
        before = {store_name(p): p for p in self.sources(old)}
        after = {store_name(p): p for p in self.sources(new)}
        for name in sorted(set(before) | set(after)):
            was, now = before.get(name), after.get(name)
            if was == now:
                continue
            if was is None or now is None:
                yield Change(Kind.OTHER, f"{label}: {'+' if now else '-'} {name}")
                continue
            files = _tree_diff(Path(was), Path(now))
            where = f"{label}: {name}" if name != label else name
            yield Change(Kind.SOURCES, f"{where} ({', '.join(files)})" if files else where)

    def _inputs(self, old: str, new: str, *, depth: int, label: str) -> Iterator[Change]:
        old_inputs, new_inputs = set(self.inputs(old)), set(self.inputs(new))
        before = sorted(old_inputs - new_inputs)
        after = sorted(new_inputs - old_inputs)
        pairs, removed, added = self._match(old, new, before, after)
        for o, n in pairs:
            yield from self.pair(o, n, depth=depth + 1, label=self._label(new, n))
        native = self._native_paths(old) | self._native_paths(new)
        # another version of one input: rustc-1.79.0 -> rustc-1.80.0, serde 1.0.1 -> 1.0.2
        for base in sorted({_base(store_name(d))[0] for d in removed} & {_base(store_name(d))[0] for d in added}):
            was = next(d for d in removed if _base(store_name(d))[0] == base)
            now = next(d for d in added if _base(store_name(d))[0] == base)
            removed.remove(was)
            added.remove(now)
            text = _versions(store_name(was), store_name(now)) or f"{store_name(was)} -> {store_name(now)}"
            yield self._classify(now, text, depth=depth, native=native, label=label)
        for sign, drvs in (("-", removed), ("+", added)):
            for d in drvs:
                yield self._classify(d, f"{sign} {_crate(store_name(d)) or store_name(d)}", depth=depth, native=native, label=label)

    def _classify(self, drv: str, text: str, *, depth: int, native: set[str], label: str) -> Change:
        name = store_name(drv)
        if _crate(name):
            return Change(Kind.LOCK, text)
        if _TOOLCHAIN.match(_base(name)[0]):
            return Change(Kind.TOOLCHAIN, text)
        if depth == 0 and any(p in native for p in self.out_paths(drv)):
            return Change(Kind.NATIVE_INPUTS, text)
        return Change(Kind.OTHER, f"{label}: {text}")

    def _native_paths(self, drv: str) -> set[str]:
        """The store paths the derivation lists as native or build inputs (its env)."""
        env = self.env(drv)
        keys = [k for k in _DEPENDENCY_KEYS if k.startswith(("native", "build", "propagated", "deps"))]
        return {p for k in keys for p in env.get(k, "").split()}

    def _match(self, old: str, new: str, before: list[str], after: list[str]) -> tuple[list[tuple[str, str]], list[str], list[str]]:
        """Pair changed inputs by name; several of one name by the parent's line naming them."""
        pairs: list[tuple[str, str]] = []
        removed: list[str] = []
        added: list[str] = []
        names = sorted({store_name(d) for d in before} | {store_name(d) for d in after})
        for name in names:
            was = [d for d in before if store_name(d) == name]
            now = [d for d in after if store_name(d) == name]
            if len(was) == 1 and len(now) == 1:
                pairs.append((was[0], now[0]))
                continue
            by_context = {self._context(old, d): d for d in was}
            for d in now:
                match = by_context.pop(self._context(new, d), None)
                if match is not None:
                    pairs.append((match, d))
                else:
                    added.append(d)
            removed += by_context.values()
        return pairs, removed, added

    def _context(self, parent: str, drv: str) -> str:
        """The parent's lines naming drv's outputs, hashes blanked."""
        paths = self.out_paths(drv)
        lines = sorted(normalise(line) for value in self.env(parent).values() for line in value.splitlines() if any(p in line for p in paths))
        return "\n".join(lines)

    def _label(self, parent: str, drv: str) -> str:
        """Where the parent puts drv: `services/api/Cargo.toml` for `cp <path> $out/services/api/Cargo.toml`."""
        for path in self.out_paths(drv):
            for value in self.env(parent).values():
                match = re.search(re.escape(path) + r"\S*\s+\$out/(\S+)", value)
                if match:
                    return match.group(1)
        return store_name(drv)


def _base(name: str) -> tuple[str, str]:
    match = _NAME_VERSION.match(name)
    return (match.group("base"), match.group("version")) if match else (name, "")


def _versions(was: str, now: str) -> str | None:
    """`rustc 1.79.0 -> 1.80.0` when two names differ by their version only."""
    (base, v1), (base2, v2) = _base(was), _base(now)
    if base != base2 or not v1 or not v2 or v1 == v2:
        return None
    crate = _crate(was)
    shown = crate.rsplit(" ", 1)[0] if crate else base
    return f"{shown} {v1} -> {v2}"


def _crate(name: str) -> str | None:
    """`serde 1.0.152` for crane's source of that crate (as the lock's changes name it), else None."""
    match = _CRATE_SOURCE.match(name)
    if not match:
        return None
    crate, version = _base(match.group("crate") or match.group("plain"))
    return f"{crate} {version}".strip()


def _lock_changes(before: str, after: str) -> list[str] | None:
    """Crate-level differences of two lock files as JSON (crane's writeTOML input)."""
    try:
        old, new = json.loads(before or "{}"), json.loads(after)
    except ValueError:
        return None

    def packages(doc: object) -> dict[str, set[tuple[str, str]]]:
        found: dict[str, set[tuple[str, str]]] = {}
        for p in doc.get("package", []) if isinstance(doc, dict) else []:
            if isinstance(p, dict) and "name" in p:
                found.setdefault(str(p["name"]), set()).add((str(p.get("version", "")), str(p.get("checksum", p.get("source", "")))))
        return found

    was, now = packages(old), packages(new)
    texts = []
    for crate in sorted(set(was) | set(now)):
        a, b = was.get(crate, set()), now.get(crate, set())
        if a == b:
            continue
        va, vb = sorted(v for v, _ in a - b), sorted(v for v, _ in b - a)
        if va and vb:
            texts.append(f"{crate} {', '.join(va)} -> {', '.join(vb)}" if va != vb else f"{crate} {', '.join(vb)} (another checksum)")
        elif vb:
            texts.append(f"+ {crate} {', '.join(vb)}")
        else:
            texts.append(f"- {crate} {', '.join(va)}")
    if not texts and was != now:
        texts.append("its entries changed")
    return texts or ["its entries changed"]


def _json_changes(before: str, after: str) -> list[str] | None:
    """The dotted keys whose values differ between two JSON documents (hashes blanked)."""
    try:
        old, new = json.loads(normalise(before) or "{}"), json.loads(normalise(after))
    except ValueError:
        return None
    flat_old, flat_new = dict(_flatten(old)), dict(_flatten(new))
    return sorted(k for k in set(flat_old) | set(flat_new) if flat_old.get(k) != flat_new.get(k))


def _flatten(value: object, prefix: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, json.dumps(value, sort_keys=True)


def _value_diff(was: str | None, now: str | None) -> str:
    def short(value: str) -> str:
        value = normalise(value)
        return json.dumps(value if len(value) <= 40 else value[:37] + "...")

    if was is None:
        return f"added ({short(now or '')})"
    if now is None:
        return f"removed (was {short(was)})"
    return f"{short(was)} -> {short(now)}"


def _lines_diff(was: str, now: str) -> str:
    """`+ "line", - "line"` for the lines one value has and the other has not."""
    old_lines = [normalise(line).strip() for line in was.splitlines() if line.strip()]
    new_lines = [normalise(line).strip() for line in now.splitlines() if line.strip()]
    plus = [line for line in new_lines if line not in old_lines]
    minus = [line for line in old_lines if line not in new_lines]
    parts = [f'+ "{line}"' for line in plus[:3]] + [f'- "{line}"' for line in minus[:3]]
    return f"changed ({', '.join(parts)})" if parts else "changed (order or blank lines)"


def _tree_diff(old: Path, new: Path) -> list[str]:
    """Up to MAX_FILES relative paths that differ between two store directories (both
    must still be in the store; [] when one is gone or a file cannot be read)."""
    try:
        if not old.exists() or not new.exists():
            return []
        a, b = _digests(old), _digests(new)
    except OSError:
        return []
    differ = sorted(p for p in set(a) | set(b) if a.get(p) != b.get(p))
    return differ[:MAX_FILES] + ([f"{len(differ) - MAX_FILES} more"] if len(differ) > MAX_FILES else [])


def _digests(root: Path) -> dict[str, str]:
    if not root.is_dir():
        return {".": hashlib.sha256(root.read_bytes()).hexdigest()}
    found = {}
    for path in root.rglob("*"):
        if path.is_symlink():
            found[str(path.relative_to(root))] = "link:" + str(path.readlink())
        elif path.is_file():
            found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found
