"""Feature resolution: which packages one cargo invocation compiles, and with which features.

Cargo.lock lists every package any feature of any platform may pull in; a build compiles
fewer: a `[target.'cfg(windows)'.dependencies]` entry is not compiled on Linux, and an
optional dependency no enabled feature turns on is not compiled at all. The closures'
native inputs and init's counts are those of what the build compiles, so this module
follows cargo's resolver 2 (https://doc.rust-lang.org/cargo/reference/resolver.html#feature-resolver-version-2),
a port of cargo's `FeatureResolver` (src/cargo/core/resolver/features.rs) on the lock's
dependency graph:

- features are unified per package *and* per side: build-dependencies, proc-macros and
  everything under them are compiled for the host apart from the same crates on the target;
- a target-specific dependency counts only when its `cfg(...)` or triple matches the side's
  platform (the host is x86_64-unknown-linux-gnu; a handler's target is its own triple);
- `dep:x` enables an optional dependency without a feature of its name, `x?/f` enables `f`
  of `x` only if something else enables `x`, `default-features = false` leaves "default" off;
- dev-dependencies only where asked (a member's checks).

Manifests: the in-tree crates' are the workspace's (nixcrate.workspace parsed them); a
third-party crate's is read from where cargo unpacked or vendored it (`sources_roots`). A
package whose manifest is not on disk is counted as the lock has it: itself and everything
the lock says it may pull in (what nixcrate counted before it resolved features), and
named in `Resolution.unresolved` so that init can say so.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from nixcrate.closure import LockGraph
    from nixcrate.workspace import Crate, Workspace

HOST = "x86_64-unknown-linux-gnu"

# `rustc --print cfg --target <triple>` (rustc 1.95) for the triples nixcrate builds for. cargo
# matches target-specific dependencies against this list (debug_assertions included: cargo asks
# rustc without -O, whatever the profile).
_COMMON = (
    "debug_assertions",
    'panic="unwind"',
    'target_abi=""',
    'target_endian="little"',
    'target_env="gnu"',
    'target_family="unix"',
    'target_has_atomic="16"',
    'target_has_atomic="32"',
    'target_has_atomic="64"',
    'target_has_atomic="8"',
    'target_has_atomic="ptr"',
    'target_os="linux"',
    'target_pointer_width="64"',
    'target_vendor="unknown"',
    "unix",
)
_CFGS: dict[str, tuple[str, ...]] = {
    "x86_64-unknown-linux-gnu": (
        *_COMMON,
        'target_arch="x86_64"',
        'target_feature="fxsr"',
        'target_feature="sse"',
        'target_feature="sse2"',
    ),
    "aarch64-unknown-linux-gnu": (*_COMMON, 'target_arch="aarch64"', 'target_feature="neon"', 'target_has_atomic="128"'),
}


@dataclass(frozen=True, slots=True)
class Platform:
    """A target triple and the cfg values rustc gives it."""

    triple: str
    names: frozenset[str]  # `unix`, `debug_assertions`
    values: frozenset[tuple[str, str]]  # ("target_os", "linux")

    @classmethod
    def of(cls, triple: str) -> Platform:
        lines = _CFGS.get(triple, _CFGS[HOST])
        names = frozenset(x for x in lines if "=" not in x)
        values = frozenset((k, v.strip('"')) for k, v in (x.split("=", 1) for x in lines if "=" in x))
        return cls(triple, names, values)

    def matches(self, spec: str | None) -> bool:
        """Whether a `[target.<spec>]` table applies: `cfg(...)` or a triple; None: always."""
        if spec is None:
            return True
        spec = spec.strip()
        if not spec.startswith("cfg("):
            return spec == self.triple
        try:
            tokens = _tokens(spec)
            value, pos = self._expr(tokens, 0)
        except (ValueError, IndexError):
            return False  # cargo refuses such a manifest; a registry crate cannot have one
        return value and pos == len(tokens)

    def _expr(self, tokens: list[str], pos: int) -> tuple[bool, int]:
        word = tokens[pos]
        if tokens[pos + 1 : pos + 2] == ["("]:
            items: list[bool] = []
            pos += 2
            while tokens[pos] != ")":
                value, pos = self._expr(tokens, pos)
                items.append(value)
                if tokens[pos] == ",":
                    pos += 1
            pos += 1
            if word == "cfg" or word == "not":
                if len(items) != 1:
                    raise ValueError(word)
                return (items[0] if word == "cfg" else not items[0]), pos
            if word == "all":
                return all(items), pos
            if word == "any":
                return any(items), pos
            raise ValueError(word)
        if tokens[pos + 1 : pos + 2] == ["="]:
            return (word, tokens[pos + 2].strip('"')) in self.values, pos + 3
        return word in self.names, pos + 1


_TOKEN = re.compile(r'\s*("[^"]*"|[A-Za-z_][A-Za-z0-9_]*|[(),=])')


def _tokens(spec: str) -> list[str]:
    out, pos = [], 0
    while pos < len(spec):
        m = _TOKEN.match(spec, pos)
        if m is None:
            if spec[pos:].strip():
                raise ValueError(spec)
            break
        out.append(m.group(1))
        pos = m.end()
    return out


# --------------------------------------------------------------------------- manifests


@dataclass(frozen=True, slots=True)
class Dep:
    """One dependency entry, as the feature resolver needs it."""

    package: str  # the package name
    key: str  # its name in the manifest (`dep:key`, `key/feature`)
    kind: str  # normal | build | dev
    optional: bool
    features: tuple[str, ...]
    default_features: bool
    target: str | None
    req: str  # the version requirement ("" for none)


@dataclass(frozen=True, slots=True)
class Manifest:
    """What the resolver reads of a package's Cargo.toml."""

    name: str
    version: str
    features: tuple[tuple[str, tuple[str, ...]], ...]  # [features] plus the implicit ones, sorted
    deps: tuple[Dep, ...]
    proc_macro: bool
    links: str | None


def _with_implicit(features: dict[str, tuple[str, ...]], deps: Iterable[Dep]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """cargo's implicit features: an optional dependency that no `dep:` names is a feature."""
    explicit = {v[4:] for values in features.values() for v in values if v.startswith("dep:")}
    out = dict(features)
    for d in deps:
        if d.optional and d.key not in explicit and d.key not in out:
            out[d.key] = (f"dep:{d.key}",)
    return tuple(sorted(out.items()))


def manifest_of_crate(crate: Crate) -> Manifest:
    deps = tuple(
        Dep(d.name, d.table_key, d.kind, d.optional, d.features, d.default_features, d.target, d.version) for d in crate.deps
    )
    proc_macro = crate.lib is not None and "proc-macro" in crate.lib.crate_types
    return Manifest(crate.name, crate.version, _with_implicit(dict(crate.features), deps), deps, proc_macro, crate.links)


_TABLES = (
    ("dependencies", "normal"),
    ("build-dependencies", "build"),
    ("build_dependencies", "build"),
)


def parse_manifest(data: Mapping[str, Any]) -> Manifest | None:
    """A registry crate's Cargo.toml (normalized by `cargo package`: no workspace inheritance).
    None when it is not one cargo would publish."""
    package = data.get("package")
    if not isinstance(package, dict) or not isinstance(package.get("name"), str):
        return None
    deps: list[Dep] = []

    def read(table: Any, kind: str, target: str | None) -> None:
        if not isinstance(table, dict):
            return
        for key, spec in table.items():
            if isinstance(spec, str):
                deps.append(Dep(key, key, kind, False, (), True, target, spec))
            elif isinstance(spec, dict):
                feats = spec.get("features", [])
                default = spec.get("default-features", spec.get("default_features", True))
                deps.append(
                    Dep(
                        str(spec.get("package", key)),
                        key,
                        kind,
                        spec.get("optional") is True,
                        tuple(f for f in feats if isinstance(f, str)) if isinstance(feats, list) else (),
                        default is not False,
                        target,
                        str(spec.get("version", "")),
                    )
                )

    for name, kind in _TABLES:
        read(data.get(name), kind, None)
    targets = data.get("target")
    if isinstance(targets, dict):
        for spec, body in targets.items():
            if isinstance(body, dict):
                for name, kind in _TABLES:
                    read(body.get(name), kind, spec)
    raw = data.get("features", {})
    features = {k: tuple(x for x in v if isinstance(x, str)) for k, v in raw.items() if isinstance(v, list)} if isinstance(raw, dict) else {}
    lib = data.get("lib")
    proc_macro = isinstance(lib, dict) and (lib.get("proc-macro") is True or lib.get("proc_macro") is True)
    links = package.get("links")
    return Manifest(
        package["name"],
        str(package.get("version", "")),
        _with_implicit(features, deps),
        tuple(deps),
        proc_macro,
        links if isinstance(links, str) else None,
    )


def sources_roots(ws: Workspace, env: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """Where cargo keeps third-party crate sources offline: the directory sources its configs
    name (`[source.x] directory = ...`, e.g. `cargo vendor`'s), then the registry sources it
    unpacked (`$CARGO_HOME/registry/src/<index>/`)."""
    env = os.environ if env is None else env
    home = Path(env["CARGO_HOME"]) if env.get("CARGO_HOME") else Path(env.get("HOME", "/nonexistent")) / ".cargo"
    configs = [ws.root / p for p in ws.cargo_configs] + [home / "config.toml", home / "config"]
    roots: list[Path] = []
    for cfg in configs:
        try:
            data = tomllib.loads(cfg.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        source = data.get("source")
        if not isinstance(source, dict):
            continue
        for body in source.values():
            directory = body.get("directory") if isinstance(body, dict) else None
            if isinstance(directory, str):
                # relative to the directory holding the .cargo directory, as cargo reads it
                base = cfg.parent.parent if cfg.parent.name == ".cargo" else cfg.parent
                roots.append((base / directory) if not Path(directory).is_absolute() else Path(directory))
    try:
        roots += sorted(p for p in (home / "registry" / "src").iterdir() if p.is_dir())
    except OSError:
        pass
    return tuple(dict.fromkeys(roots))


class ManifestIndex:
    """Third-party manifests, read on demand from the source roots, each once."""

    def __init__(self, roots: Iterable[Path]) -> None:
        self.roots = tuple(roots)
        self._cache: dict[tuple[str, str], Manifest | None] = {}

    def get(self, name: str, version: str) -> Manifest | None:
        key = (name, version)
        if key not in self._cache:
            self._cache[key] = self._read(name, version)
        return self._cache[key]

    def _read(self, name: str, version: str) -> Manifest | None:
        for root in self.roots:
            for sub in (f"{name}-{version}", name):  # versioned (registry) or plain (`cargo vendor`) directory
                try:
                    data = tomllib.loads((root / sub / "Cargo.toml").read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                    continue
                m = parse_manifest(data)
                if m is not None and m.name == name and m.version == version:
                    return m
        return None


# --------------------------------------------------------------------------- versions


def _version_tuple(text: str) -> tuple[int, ...]:
    core = text.split("+", 1)[0].split("-", 1)[0]
    return tuple(int(x) if x.isdigit() else 0 for x in core.split("."))


def req_matches(req: str, version: str) -> bool:
    """A semver requirement (cargo's forms: `1.2`, `^1.2`, `~1.2`, `=1.2.3`, `>=1, <2`, `1.*`)."""
    v = _version_tuple(version)
    for part in (p.strip() for p in req.split(",")):
        if not part or part == "*":
            continue
        m = re.match(r"^(\^|~|=|>=|<=|>|<)?\s*([0-9*xX.]+)", part)
        if m is None:
            continue
        op, body = m.group(1) or "^", m.group(2)
        nums = [int(x) for x in body.split(".") if x.isdigit()]
        if "*" in body or "x" in body.lower():
            op = "~" if nums else ""
            if not op:
                continue
        n = tuple(nums)
        padded = (*n, 0, 0, 0)[:3]
        if op in ("=",) and v[: len(n)] != n:
            return False
        if op == ">=" and v < padded:
            return False
        if op == ">" and not (v[: len(n)] > n):
            return False
        if op == "<" and not (v < padded):
            return False
        if op == "<=" and not (v[: len(n)] <= n):
            return False
        if op == "~" and (v < padded or v[: max(1, min(len(n), 2))] != n[: max(1, min(len(n), 2))]):
            return False
        if op == "^":
            if v < padded:
                return False
            # the leftmost non-zero part (or the last given) must stay
            i = next((j for j, x in enumerate(n) if x != 0), len(n) - 1)
            if v[: i + 1] != n[: i + 1]:
                return False
    return True


# --------------------------------------------------------------------------- resolving


@dataclass(frozen=True, slots=True)
class Request:
    """One root of a cargo invocation: `-p <crate> [--features ...] [--no-default-features]
    [--all-features]`; dev: its dev-dependencies too (its tests and examples)."""

    crate: str
    features: tuple[str, ...] = ()
    default_features: bool = True
    all_features: bool = False
    dev: bool = False

    @classmethod
    def from_args(cls, crate: str, features: Iterable[str], cargo_args: Iterable[str], *, dev: bool = False) -> Request:
        """The request a member's `--features` setting and cargo-extra-args make."""
        feats = [f for x in features for f in re.split(r"[ ,]+", x) if f]
        default, every = True, False
        words = list(cargo_args)
        if "--" in words:  # what follows is rustc's or the test binary's
            words = words[: words.index("--")]
        for i, w in enumerate(words):
            if w == "--no-default-features":
                default = False
            elif w == "--all-features":
                every = True
            elif w in ("--features", "-F") and i + 1 < len(words):
                feats += [f for f in re.split(r"[ ,]+", words[i + 1]) if f]
            elif w.startswith("--features="):
                feats += [f for f in re.split(r"[ ,]+", w.split("=", 1)[1]) if f]
        return cls(crate, tuple(feats), default, every, dev)


@dataclass(frozen=True, slots=True)
class Resolution:
    """What one invocation compiles."""

    features: tuple[tuple[str, bool, tuple[str, ...]], ...]  # (lock key "name version", for_host, features), sorted
    # the lock indices of the packages compiled, as a bitset (closure.LockGraph's): path packages
    # included; below an unresolved package, everything the lock lets it pull in
    compiled: int
    unresolved: tuple[str, ...]  # "name version" of packages counted from the lock (no manifest), sorted


class Resolver:
    """cargo's resolver 2 on one workspace's lock; manifests from `index`."""

    def __init__(self, graph: LockGraph, index: ManifestIndex, target: str = HOST) -> None:
        self.graph = graph
        self.index = index
        self.target = Platform.of(target)
        self.host = Platform.of(HOST)
        ws = graph.workspace
        self._in_tree = {c.name: c for c in ws.crates}
        packages = graph.lock_packages
        self._packages = packages
        self._manifests: dict[int, Manifest | None] = {}
        self._dep_cache: dict[tuple[int, bool, bool], tuple[tuple[Dep, int, bool], ...]] = {}

    # ----------------------------------------------------------- model

    def manifest(self, i: int) -> Manifest | None:
        if i not in self._manifests:
            p = self._packages[i]
            crate = self._in_tree.get(p.name) if p.source is None else None
            if crate is not None and crate.version == p.version:
                self._manifests[i] = manifest_of_crate(crate)
            elif p.source is None:
                self._manifests[i] = None
            else:
                self._manifests[i] = self.index.get(p.name, p.version)
        return self._manifests[i]

    def _deps(self, i: int, host: bool, dev: bool) -> tuple[tuple[Dep, int, bool], ...]:
        """(entry, lock index, its side) for each dependency entry of package i that applies
        on this side: in the lock, for this platform, dev-deps only when asked."""
        key = (i, host, dev)
        cached = self._dep_cache.get(key)
        if cached is not None:
            return cached
        m = self.manifest(i)
        out: list[tuple[Dep, int, bool]] = []
        if m is not None:
            lock_deps: dict[str, list[int]] = {}
            for j in self.graph.edge_indices(i):
                lock_deps.setdefault(self._packages[j].name, []).append(j)
            for d in m.deps:
                if d.kind == "dev" and not dev:
                    continue
                platform = self.host if (host or d.kind == "build") else self.target
                if not platform.matches(d.target):
                    continue
                for j in self._pick(lock_deps.get(d.package, []), d):  # none: nothing on any platform turns it on
                    dm = self.manifest(j)
                    dep_host = host or d.kind == "build" or (dm is not None and dm.proc_macro)
                    out.append((d, j, dep_host))
        result = tuple(out)
        self._dep_cache[key] = result
        return result

    def _pick(self, candidates: list[int], d: Dep) -> list[int]:
        """The lock package an entry resolved to, among the versions of its name the package's
        lock entry lists. An entry without a requirement (a path or git dependency) and two
        versions of its name: both count, on the safe side."""
        if len(candidates) <= 1 or not d.req:
            return candidates
        matching = [j for j in candidates if req_matches(d.req, self._packages[j].version)]
        return matching[:1] or candidates

    # ----------------------------------------------------------- resolving

    def resolve(self, requests: Iterable[Request]) -> Resolution:
        """One cargo invocation selecting these roots (features unified across them, as one
        `cargo build -p a -p b` does)."""
        run = _Run(self)
        for r in requests:
            crate = self._in_tree[r.crate]
            i = self.graph.package_index(crate)
            if i is None:
                continue
            m = self.manifest(i)
            if m is None:  # an in-tree crate always has one
                continue
            fvs = [name for name, _ in m.features] if r.all_features else list(r.features)
            if r.default_features:
                fvs.append("default")
            if r.dev:
                run.dev_roots.add(i)
            run.activate_pkg(i, False, fvs)
        return run.result()


class _Run:
    """The state of one resolution (cargo's FeatureResolver fields)."""

    def __init__(self, resolver: Resolver) -> None:
        self.r = resolver
        self.features: dict[tuple[int, bool], set[str]] = {}
        self.deps_on: dict[tuple[int, bool], set[str]] = {}
        self.processed: set[tuple[int, bool]] = set()
        self.deferred: dict[tuple[int, bool, str], set[str]] = {}
        self.dev_roots: set[int] = set()
        self.unresolved: set[int] = set()

    def deps(self, i: int, host: bool) -> tuple[tuple[Dep, int, bool], ...]:
        return self.r._deps(i, host, dev=i in self.dev_roots and not host)  # noqa: SLF001

    def activate_pkg(self, i: int, host: bool, fvs: Iterable[str]) -> None:
        self.features.setdefault((i, host), set())
        m = self.r.manifest(i)
        if m is None:
            self.unresolved.add(i)
            return
        for fv in fvs:
            self.activate_fv(i, host, fv, m)
        if (i, host) in self.processed:
            return
        self.processed.add((i, host))
        for d, j, dep_host in self.deps(i, host):
            if not d.optional:
                self.activate_pkg(j, dep_host, _dep_fvs(d))

    def activate_fv(self, i: int, host: bool, fv: str, m: Manifest) -> None:
        if fv.startswith("dep:"):
            self.activate_dependency(i, host, fv[4:])
        elif "/" in fv:
            dep_key, dep_feature = fv.split("/", 1)
            weak = dep_key.endswith("?")
            self.activate_dep_feature(i, host, dep_key.rstrip("?"), dep_feature, weak=weak, m=m)
        else:
            self.activate_rec(i, host, fv, m)

    def activate_rec(self, i: int, host: bool, feature: str, m: Manifest) -> None:
        have = self.features.setdefault((i, host), set())
        if feature in have:
            return
        values = dict(m.features).get(feature)
        if values is None:
            return  # "default" where there is none (cargo refuses any other unknown feature)
        have.add(feature)
        for fv in values:
            self.activate_fv(i, host, fv, m)

    def activate_dependency(self, i: int, host: bool, key: str) -> None:
        self.deps_on.setdefault((i, host), set()).add(key)
        for d, j, dep_host in self.deps(i, host):
            if d.key != key:
                continue
            for feature in sorted(self.deferred.pop((i, host, key), ())):
                self.activate_pkg(j, dep_host, [feature])
            self.activate_pkg(j, dep_host, _dep_fvs(d))

    def activate_dep_feature(self, i: int, host: bool, key: str, feature: str, *, weak: bool, m: Manifest) -> None:
        for d, j, dep_host in self.deps(i, host):
            if d.key != key:
                continue
            if d.optional:
                if weak and key not in self.deps_on.get((i, host), set()):
                    self.deferred.setdefault((i, host, key), set()).add(feature)
                    continue
                self.activate_dependency(i, host, key)
                if not weak and key in dict(m.features):
                    self.activate_rec(i, host, key, m)
            self.activate_pkg(j, dep_host, [feature])

    def result(self) -> Resolution:
        packages = self.r._packages  # noqa: SLF001
        compiled = 0
        for i, _ in self.features:
            compiled |= 1 << i
        for i in self.unresolved:
            compiled |= self.r.graph.lock_mask(i)
        rows = sorted(
            (packages[i].key, host, tuple(sorted(f for f in feats if f in dict(m.features))))
            for (i, host), feats in self.features.items()
            if (m := self.r.manifest(i)) is not None
        )
        return Resolution(
            features=tuple(rows),
            compiled=compiled,
            unresolved=tuple(sorted({packages[i].key for i in self.unresolved})),
        )


def _dep_fvs(d: Dep) -> list[str]:
    return [*d.features, "default"] if d.default_features else list(d.features)
