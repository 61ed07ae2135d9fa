"""Deps-only closures: which third-party crates each member pulls in, from Cargo.lock.

The lock graph holds every resolved package; registry and git packages are the
third-party crates a deps-only derivation compiles. In-tree crates are walked through
(their dev-dependencies excluded: a deploy build does not compile them).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from nixcrate.workspace import Crate, LockPackage, Workspace


@dataclass(frozen=True, slots=True)
class Closure:
    """The third-party crates of a set of members."""

    members: tuple[str, ...]
    crates: tuple[str, ...]  # "name version", sorted
    crate_names: frozenset[str]


@dataclass(frozen=True, slots=True)
class ClosureReport:
    per_member: tuple[tuple[str, tuple[str, ...]], ...]  # (member, sorted "name version")
    services: Closure
    lambdas: Closure
    shared_by_services: tuple[str, ...]  # crates two or more services use

    @property
    def shared_share(self) -> float:
        total = len(self.services.crates)
        return len(self.shared_by_services) / total if total else 0.0


class LockGraph:
    """Cargo.lock as a graph; resolves `name [version [(source)]]` references."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws
        self._by_name: dict[str, list[LockPackage]] = {}
        for p in ws.lock.packages:
            self._by_name.setdefault(p.name, []).append(p)
        self._in_tree = {c.name: c for c in ws.crates}
        self._memo: dict[tuple[str, str, str | None], frozenset[LockPackage]] = {}

    def resolve(self, ref: str) -> LockPackage | None:
        parts = ref.split(" ", 2)
        candidates = self._by_name.get(parts[0], [])
        if len(parts) >= 2:
            candidates = [p for p in candidates if p.version == parts[1]]
        if len(parts) == 3:
            source = parts[2].strip("()")
            candidates = [p for p in candidates if p.source == source]
        return candidates[0] if candidates else None

    def package_of(self, crate: Crate) -> LockPackage | None:
        for p in self._by_name.get(crate.name, []):
            if p.is_path and p.version == crate.version:
                return p
        return None

    def third_party(self, crate: Crate) -> frozenset[LockPackage]:
        """Registry and git packages reachable from an in-tree crate (no dev-deps of in-tree crates)."""
        start = self.package_of(crate)
        return self._reach(start) if start else frozenset()

    def _reach(self, pkg: LockPackage) -> frozenset[LockPackage]:
        """Third-party packages reachable from pkg (itself included unless in-tree), memoised:
        a workspace of hundreds of members shares most of its graph."""
        ident = (pkg.name, pkg.version, pkg.source)
        cached = self._memo.get(ident)
        if cached is not None:
            return cached
        self._memo[ident] = frozenset()  # guards cycles (only in-tree dev-deps can make one)
        skip: frozenset[str] = frozenset()
        tree = self._in_tree.get(pkg.name)
        if pkg.is_path and tree is not None:
            non_dev = {d.name for d in tree.deps if d.kind != "dev"}
            skip = frozenset(d.name for d in tree.deps if d.kind == "dev" and d.name not in non_dev)
        out: set[LockPackage] = set() if pkg.is_path else {pkg}
        for ref in pkg.dependencies:
            if ref.split(" ", 1)[0] in skip:
                continue
            dep = self.resolve(ref)
            if dep is not None:
                out |= self._reach(dep)
        result = frozenset(out)
        self._memo[ident] = result
        return result

    def path_closure(self, crate: Crate, *, dev: bool = False) -> tuple[Crate, ...]:
        """The crate and every in-tree crate it depends on (normal and build deps), sorted by path.

        dev: also the crate's own dev-dependencies (its tests, benches and examples compile them).
        """
        by_path = {c.path: c for c in self._ws.crates}
        seen: dict[str, Crate] = {}
        stack = [crate]
        while stack:
            c = stack.pop()
            if c.name in seen:
                continue
            seen[c.name] = c
            for d in c.deps:
                if d.kind == "dev" and not (dev and c is crate):
                    continue
                target = by_path.get(d.path) if d.path is not None else self._in_tree.get(d.name)
                if target is not None and (d.path is not None or target.is_member):
                    stack.append(target)
        return tuple(sorted(seen.values(), key=lambda c: c.path.as_posix()))


def _closure(graph: LockGraph, crates: Iterable[Crate]) -> Closure:
    members = tuple(sorted(c.name for c in crates))
    pkgs: set[LockPackage] = set()
    for c in crates:
        pkgs |= graph.third_party(c)
    keys = tuple(sorted({p.key for p in pkgs}))
    return Closure(members=members, crates=keys, crate_names=frozenset(p.name for p in pkgs))


def analyse(ws: Workspace, services: Iterable[Crate], lambdas: Iterable[Crate]) -> ClosureReport:
    graph = LockGraph(ws)
    services = tuple(services)
    lambdas = tuple(lambdas)
    per_member = tuple((c.name, tuple(sorted({p.key for p in graph.third_party(c)}))) for c in ws.members)
    per = dict(per_member)
    counts = Counter(k for s in services for k in per.get(s.name, ()))
    shared = tuple(sorted(k for k, n in counts.items() if n >= 2))
    return ClosureReport(
        per_member=per_member,
        services=_closure(graph, services),
        lambdas=_closure(graph, lambdas),
        shared_by_services=shared,
    )
