"""Crates that cannot be built for the build machine as packages of their own.

A library no member depends on gets a package (so CI compiles it). Some of those are
built only for another target or host: a wasm cdylib on wasm-bindgen (lldap's `app`,
vector's `vector-vrl-web-playground`, nickel's `nickel-wasm-repl`) or a Python extension
module on pyo3 (nickel's `py-nickel`, whose build script needs a Python interpreter the
build does not have). Every output nixcrate generates must build, so these are left out,
`init` says so, and `package = true` under `[members.<name>]` in nixcrate.toml brings one
back (`package = false` leaves out any standalone library).

The workspace model carries the verdict (`Crate.host_unbuildable_reason`, set by
`with_reasons` when the workspace is loaded); `left_out` applies nixcrate.toml to it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from nixcrate.config import Config
    from nixcrate.workspace import Crate, Dependency, Workspace

WASM_BINDGEN = "wasm-bindgen"
PYO3 = "pyo3"
WASM_REASON = "a wasm cdylib on wasm-bindgen: it is built for wasm32, not for the build machine"
PYTHON_REASON = (
    "a Python extension module (pyo3, extension-module): its build script needs a Python "
    "interpreter the build does not have"
)
SET_FALSE = "package = false in nixcrate.toml"


def _enabled(crate: Crate, features: frozenset[str]) -> dict[str, tuple[Dependency, frozenset[str]]]:
    """The crate's normal dependencies on the host with `features` (and what they enable)
    on: key -> (dependency, the features the crate turns on in it).

    Cargo's rules, enough for this question: `dep:x` and the implicit feature `x` turn on
    an optional dependency, `x/f` turns it on with feature `f`, `x?/f` adds `f` only if
    `x` is on anyway. A dependency of a `target.<cfg>` table is left out: a crate that keeps
    wasm-bindgen for wasm32 there is meant to build for the host as well."""
    table = dict(crate.features)
    deps = {d.table_key: d for d in crate.deps if d.kind == "normal" and d.target is None}
    on: dict[str, set[str]] = {k: set(d.features) for k, d in deps.items() if not d.optional}
    weak: dict[str, set[str]] = {}
    seen: set[str] = set()
    pending = list(features)
    while pending:
        feature = pending.pop()
        if feature in seen:
            continue
        seen.add(feature)
        if feature not in table and feature in deps:  # the implicit feature of an optional dependency
            on.setdefault(feature, set(deps[feature].features))
        for item in table.get(feature, ()):
            pending.extend(_turn_on(item, deps, on, weak))
    for key, subs in weak.items():
        if key in on:
            on[key] |= subs
    return {key: (deps[key], frozenset(subs)) for key, subs in on.items()}


def _turn_on(
    item: str, deps: dict[str, Dependency], on: dict[str, set[str]], weak: dict[str, set[str]]
) -> list[str]:
    """Apply one entry of a [features] list; the features it names, to follow next."""
    if item.startswith("dep:"):
        key = item.removeprefix("dep:")
        if key in deps:
            on.setdefault(key, set(deps[key].features))
        return []
    if "/" in item:
        key, _, sub = item.partition("/")
        if key.endswith("?"):
            weak.setdefault(key[:-1], set()).add(sub)
        elif key in deps:
            on.setdefault(key, set(deps[key].features)).add(sub)
        return []
    return [item]


def _reaches(
    crate: Crate, features: frozenset[str], target: str, by_name: dict[str, Crate], seen: set[str]
) -> bool:
    """Whether `target` is among the crate's dependencies with `features` on, directly or
    through the in-tree crates it depends on."""
    if crate.name in seen:
        return False
    seen.add(crate.name)
    for dep, subs in _enabled(crate, features).values():
        if dep.name == target:
            return True
        inner = by_name.get(dep.name)
        if inner is not None and dep.path is not None:
            wanted = subs | ({"default"} if dep.default_features else set())
            if _reaches(inner, frozenset(wanted), target, by_name, seen):
                return True
    return False


def unbuildable_reason(crate: Crate, by_name: dict[str, Crate]) -> str | None:
    """Why the crate cannot be a package built for the build machine, or None."""
    cdylib = crate.lib is not None and "cdylib" in crate.lib.crate_types
    enabled = _enabled(crate, frozenset({"default"}))
    pyo3 = [subs for dep, subs in enabled.values() if dep.name == PYO3]
    if any("extension-module" in subs for subs in pyo3) or (cdylib and pyo3):
        return PYTHON_REASON
    if cdylib and _reaches(crate, frozenset({"default"}), WASM_BINDGEN, by_name, set()):
        return WASM_REASON
    return None


def with_reasons(crates: tuple[Crate, ...]) -> tuple[Crate, ...]:
    """The crates, each with host_unbuildable_reason set."""
    by_name = {c.name: c for c in crates}
    out = []
    for crate in crates:
        reason = unbuildable_reason(crate, by_name)
        out.append(crate if reason is None else dataclasses.replace(crate, host_unbuildable_reason=reason))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class LeftOut:
    """A standalone library that gets no package, and why."""

    member: str
    reason: str

    @property
    def bring_back(self) -> str:
        """The nixcrate.toml lines that give it a package anyway."""
        return f"[members.{self.member}]\npackage = true"

    def summary(self) -> str:
        """One line for `init`'s summary."""
        if self.reason == SET_FALSE:
            return f"left out {self.member}: package = false under [members.{self.member}] in nixcrate.toml"
        return (
            f"left out {self.member}: {self.reason}; to build it anyway, "
            f"add 'package = true' under [members.{self.member}] in nixcrate.toml"
        )


def left_out(ws: Workspace, config: Config, standalone: Iterable[str]) -> tuple[LeftOut, ...]:
    """The standalone libraries (no member depends on them) that get no package: those the
    build machine cannot build (unless `package = true`), and those with `package = false`."""
    out = []
    for name in sorted(standalone):
        wanted = config.member(name).package
        reason = ws.crate(name).host_unbuildable_reason
        if wanted is False:
            out.append(LeftOut(name, SET_FALSE))
        elif reason is not None and wanted is not True:
            out.append(LeftOut(name, reason))
    return tuple(out)


def packaged(ws: Workspace, config: Config, standalone: Iterable[str]) -> tuple[str, ...]:
    """The standalone libraries that do get a package (sorted): for the flake generator."""
    dropped = {lo.member for lo in left_out(ws, config, standalone)}
    return tuple(sorted(n for n in standalone if n not in dropped))


def summary_lines(left: Iterable[LeftOut], outputs: Iterable[str]) -> tuple[tuple[bool, str], ...]:
    """(is a warning, text) per left-out library for `init`'s summary. A library the flake
    still packages (a generator that does not read the verdict) is a warning naming the
    `exclude` that drops its package today."""
    present = set(outputs)
    lines = []
    for lo in left:
        if lo.member in present:
            text = f'{lo.member}: its package will not build ({lo.reason}): add "{lo.member}" to exclude in nixcrate.toml'
            lines.append((True, text))
        else:
            lines.append((False, lo.summary()))
    return tuple(lines)
