"""Deps-only closures: which third-party crates each member pulls in.

The lock graph holds every resolved package; registry and git packages are the
third-party crates a deps-only derivation compiles. In-tree crates are walked through
(their dev-dependencies excluded: a deploy build does not compile them). Which of them a
build compiles (its platform, its features) is nixcrate.resolve's answer, on this graph:
`resolved_closure`. The lock graph alone (`closure_of`) is everything a member may pull in.

Each lock reference is resolved once, and each package's transitive third-party set is
an integer bitset computed once: a workspace of hundreds of members shares most of its
graph, and unions of bitsets are cheap where walking the graph per member is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nixcrate import resolve

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from nixcrate.workspace import Crate, LockPackage, Workspace


@dataclass(frozen=True, slots=True)
class Closure:
    """The third-party crates of a set of members."""

    members: tuple[str, ...]
    crates: tuple[str, ...]  # "name version", sorted
    crate_names: frozenset[str]
    # "name version" of the crates whose manifests were not on disk: counted with everything
    # Cargo.lock says they may pull in, features unresolved (nixcrate.resolve)
    unresolved: tuple[str, ...] = ()
    # how many times the closure compiles them: once per feature set (and host or target side)
    # its cargo commands ask for, as cargo compiles each such variant once in one target/
    builds: int = 0


@dataclass(frozen=True, slots=True)
class ClosureReport:
    """The services' and the handlers' closures, for init's summary."""

    graph: LockGraph
    services: Closure
    lambdas: Closure
    shared_by_services: tuple[str, ...]  # crates two or more services use

    @property
    def shared_share(self) -> float:
        total = len(self.services.crates)
        return len(self.shared_by_services) / total if total else 0.0

    @property
    def per_member(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(member, sorted "name version" it compiles with its default features); on demand."""
        ws = self.graph.workspace
        return tuple((c.name, resolved_closure(self.graph, [resolve.Request(c.name)]).crates) for c in ws.members)


class LockGraph:
    """Cargo.lock as a graph; resolves `name [version [(source)]]` references."""

    def __init__(self, ws: Workspace) -> None:
        self.workspace = ws
        self._packages: tuple[LockPackage, ...] = ws.lock.packages
        self._by_name: dict[str, list[int]] = {}
        for i, p in enumerate(self._packages):
            self._by_name.setdefault(p.name, []).append(i)
        self._in_tree = {c.name: c for c in ws.crates}
        self._edges: list[list[int]] = [self._edges_of(i) for i in range(len(self._packages))]
        self._masks: dict[int, int] = {}
        self._paths: dict[tuple[str, bool], tuple[Crate, ...]] = {}
        self._tree: tuple[list[Crate], list[tuple[list[int], list[int]]]] | None = None
        self._tree_index: dict[str, int] = {}
        self._all_edges: dict[int, list[int]] = {}
        self._resolvers: dict[str, resolve.Resolver] = {}
        self._manifests: resolve.ManifestIndex | None = None

    # ---------------------------------------------------------------- lock references

    def _resolve_index(self, ref: str) -> int | None:
        if " " not in ref:  # a bare name, the usual form: the lock holds one version of it
            candidates = self._by_name.get(ref)
            return candidates[0] if candidates else None
        parts = ref.split(" ", 2)
        candidates = self._by_name.get(parts[0], [])
        if len(parts) >= 2:
            candidates = [i for i in candidates if self._packages[i].version == parts[1]]
        if len(parts) == 3:
            source = parts[2].strip("()")
            candidates = [i for i in candidates if self._packages[i].source == source]
        return candidates[0] if candidates else None

    @property
    def lock_packages(self) -> tuple[LockPackage, ...]:
        return self._packages

    def edge_indices(self, i: int) -> list[int]:
        """Package i's lock dependencies, dev-dependencies of an in-tree package included."""
        cached = self._all_edges.get(i)
        if cached is None:
            cached = [j for ref in self._packages[i].dependencies if (j := self._resolve_index(ref)) is not None]
            self._all_edges[i] = cached
        return cached

    def lock_mask(self, i: int) -> int:
        """Bitset of the third-party packages Cargo.lock says package i may pull in, itself included."""
        return self._mask(i)

    def resolver(self, target: str = resolve.HOST) -> resolve.Resolver:
        """One resolver per target, sharing the third-party manifests read from disk."""
        found = self._resolvers.get(target)
        if found is None:
            if self._manifests is None:
                self._manifests = resolve.ManifestIndex(resolve.sources_roots(self.workspace))
            found = self._resolvers[target] = resolve.Resolver(self, self._manifests, target)
        return found

    def resolve(self, ref: str) -> LockPackage | None:
        i = self._resolve_index(ref)
        return None if i is None else self._packages[i]

    def _edges_of(self, i: int) -> list[int]:
        pkg = self._packages[i]
        skip: frozenset[str] = frozenset()
        if pkg.source is None:  # a path package: its dev-dependencies are not compiled
            tree = self._in_tree.get(pkg.name)
            if tree is not None:
                non_dev = {d.name for d in tree.deps if d.kind != "dev"}
                skip = frozenset(d.name for d in tree.deps if d.kind == "dev" and d.name not in non_dev)
        by_name = self._by_name
        out = []
        for ref in pkg.dependencies:
            if " " not in ref:  # a bare name, the usual form: resolved here, ~6,000 refs at 500 members
                if ref in skip:
                    continue
                candidates = by_name.get(ref)
                if candidates:
                    out.append(candidates[0])
                continue
            if skip and ref.split(" ", 1)[0] in skip:
                continue
            j = self._resolve_index(ref)
            if j is not None:
                out.append(j)
        return out

    # ---------------------------------------------------------------- closures as bitsets

    def _mask(self, i: int) -> int:
        """Bitset of the third-party packages reachable from package i (itself included)."""
        cached = self._masks.get(i)
        if cached is not None:
            return cached
        # Iterative post-order: lock graphs can be deep, Python's recursion is not.
        masks, edges, packages = self._masks, self._edges, self._packages
        stack: list[tuple[int, bool]] = [(i, False)]
        on_path: set[int] = set()
        while stack:
            node, expanded = stack.pop()
            if node in masks:
                continue
            if expanded:
                on_path.discard(node)
                mask = 0 if packages[node].source is None else 1 << node  # path packages are not third-party
                for j in edges[node]:
                    mask |= masks.get(j, 0)  # 0 only for a cycle through in-tree dev-deps
                masks[node] = mask
                continue
            on_path.add(node)
            stack.append((node, True))
            stack.extend((j, False) for j in edges[node] if j not in masks and j not in on_path)
        return masks[i]

    def package_index(self, crate: Crate) -> int | None:
        for i in self._by_name.get(crate.name, []):
            p = self._packages[i]
            if p.is_path and p.version == crate.version:
                return i
        return None

    def package_of(self, crate: Crate) -> LockPackage | None:
        i = self.package_index(crate)
        return None if i is None else self._packages[i]

    def mask_of(self, crate: Crate) -> int:
        i = self.package_index(crate)
        return 0 if i is None else self._mask(i)

    def packages(self, mask: int) -> tuple[LockPackage, ...]:
        # Set bits in increasing order, read off the binary digits: a closure sets most of its
        # ~2,000 bits, and scanning a string is 5x faster than clearing bits of a big int one by one.
        packages = self._packages
        return tuple(packages[i] for i, digit in enumerate(reversed(bin(mask))) if digit == "1")

    def keys(self, mask: int) -> tuple[str, ...]:
        return tuple(sorted({p.key for p in self.packages(mask)}))

    def third_party(self, crate: Crate) -> frozenset[LockPackage]:
        """Registry and git packages reachable from an in-tree crate (no dev-deps of in-tree crates)."""
        return frozenset(self.packages(self.mask_of(crate)))

    # ---------------------------------------------------------------- in-tree crates

    def path_closure(self, crate: Crate, *, dev: bool = False) -> tuple[Crate, ...]:
        """The crate and every in-tree crate it depends on (normal and build deps), sorted by path.

        dev: also the crate's own dev-dependencies (its tests, benches and examples compile them).
        """
        key = (crate.name, dev)
        cached = self._paths.get(key)
        if cached is not None:
            return cached
        tree, edges = self._tree_edges()
        top = self._tree_index[crate.name]
        seen: set[int] = set()
        stack = [top, *edges[top][1]] if dev else [top]  # dev-deps of this crate only, not of its deps
        while stack:
            i = stack.pop()
            if i not in seen:
                seen.add(i)
                stack.extend(edges[i][0])
        result = tuple(tree[i] for i in sorted(seen))  # tree is sorted by path
        self._paths[key] = result
        return result

    def direct_in_tree(self, crate: Crate) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The in-tree crates this crate names directly: (normal and build deps, dev-deps), sorted."""
        tree, edges = self._tree_edges()
        normal, dev = edges[self._tree_index[crate.name]]
        return tuple(sorted({tree[j].name for j in normal})), tuple(sorted({tree[j].name for j in dev}))

    def _tree_edges(self) -> tuple[list[Crate], list[tuple[list[int], list[int]]]]:
        """In-tree crates sorted by path and, per crate, the indices of the in-tree crates its
        normal and build deps name, and those its dev-deps name. Built once: every output
        walks these edges again."""
        if self._tree is None:
            tree = sorted(self.workspace.crates, key=lambda c: c.path.as_posix())
            index = self._tree_index = {c.name: i for i, c in enumerate(tree)}
            # Keyed by the path's text, equal exactly when the PurePosixPaths are: hashing and
            # comparing strings takes half the time of PurePosixPath's own (~2 ms at 500 members).
            by_path = {str(c.path): i for i, c in enumerate(tree)}
            edges: list[tuple[list[int], list[int]]] = []
            for c in tree:
                normal: list[int] = []
                dev: list[int] = []
                for d in c.deps:
                    # a path dep is the crate at that path; a dep by name only is a member of that name
                    if d.path is not None:
                        j = by_path.get(str(d.path))
                    else:
                        j = index.get(d.name)
                        if j is not None and not tree[j].is_member:
                            continue
                    if j is not None:
                        (dev if d.kind == "dev" else normal).append(j)
                edges.append((normal, dev))
            self._tree = (tree, edges)
        return self._tree


# id(ws) -> (ws, graph): flake_gen, the checks and init's summary share one graph.
_GRAPHS: dict[int, tuple[Workspace, LockGraph]] = {}


def graph_for(ws: Workspace) -> LockGraph:
    cached = _GRAPHS.get(id(ws))
    if cached is None or cached[0] is not ws:
        _GRAPHS.clear()
        cached = (ws, LockGraph(ws))
        _GRAPHS[id(ws)] = cached
    return cached[1]


def closure_of(graph: LockGraph, crates: Iterable[Crate]) -> Closure:
    """Every third-party crate Cargo.lock says these in-tree crates may pull in."""
    crates = tuple(crates)
    mask = 0
    for c in crates:
        mask |= graph.mask_of(c)
    pkgs = graph.packages(mask)
    return Closure(
        members=tuple(sorted(c.name for c in crates)),
        crates=tuple(sorted({p.key for p in pkgs})),
        crate_names=frozenset(p.name for p in pkgs),
    )


def resolve_each(graph: LockGraph, requests: Iterable[resolve.Request], target: str = resolve.HOST) -> tuple[resolve.Resolution, ...]:
    """Each request as its own cargo invocation, as the closures run them (one per member)."""
    resolver = graph.resolver(target)
    return tuple(resolver.resolve([r]) for r in requests)


def _closure_from(graph: LockGraph, members: Iterable[str], resolutions: Iterable[resolve.Resolution]) -> Closure:
    resolutions = tuple(resolutions)
    compiled = 0
    unresolved: set[str] = set()
    for r in resolutions:
        compiled |= r.compiled
        unresolved.update(r.unresolved)
    pkgs = [p for p in graph.packages(compiled) if p.source is not None]
    crates = {p.key for p in pkgs}
    variants = {row for r in resolutions for row in r.features if row[0] in crates}
    return Closure(
        members=tuple(sorted(set(members))),
        crates=tuple(sorted(crates)),
        crate_names=frozenset(p.name for p in pkgs),
        unresolved=tuple(sorted(unresolved)),
        # a crate counted from the lock alone (no manifest) is counted once
        builds=len(variants) + len(crates - {key for key, _, _ in variants}),
    )


def resolved_closure(graph: LockGraph, requests: Iterable[resolve.Request], target: str = resolve.HOST) -> Closure:
    """The third-party crates these members' builds compile, one invocation each."""
    requests = tuple(requests)
    return _closure_from(graph, (r.crate for r in requests), resolve_each(graph, requests, target))


def analyse(
    ws: Workspace,
    services: Iterable[Crate],
    lambdas: Iterable[Crate],
    requests: Mapping[str, resolve.Request] | None = None,
    lambda_targets: Mapping[str, str] | None = None,
    unified: Iterable[str] = (),
) -> ClosureReport:
    """requests: how each member's build asks for it (its features; default: its defaults);
    lambda_targets: each handler's triple (default: the host's); unified: the services built
    by one command (features unified across them), the others each by its own."""
    graph = graph_for(ws)
    requests = requests or {}
    lambda_targets = lambda_targets or {}
    services = tuple(services)
    lambdas = tuple(lambdas)
    unified = tuple(unified)
    each = [resolve_each(graph, [requests.get(s.name, resolve.Request(s.name))])[0] for s in services]
    service_res = [r for s, r in zip(services, each, strict=True) if s.name not in unified]
    if unified:
        service_res.append(graph.resolver(resolve.HOST).resolve([requests.get(n, resolve.Request(n)) for n in unified]))
    lambda_res = [
        resolve_each(graph, [requests.get(c.name, resolve.Request(c.name))], lambda_targets.get(c.name, resolve.HOST))[0]
        for c in lambdas
    ]
    seen = shared = 0
    for r in each:
        shared |= seen & r.compiled  # in this service and in an earlier one
        seen |= r.compiled
    return ClosureReport(
        graph=graph,
        services=_closure_from(graph, (s.name for s in services), service_res),
        lambdas=_closure_from(graph, (c.name for c in lambdas), lambda_res),
        shared_by_services=tuple(sorted({p.key for p in graph.packages(shared) if p.source is not None})),
    )
