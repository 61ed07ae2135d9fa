"""Cargo.toml + Cargo.lock -> Workspace, offline and without cargo.

Parsed once, here, into frozen dataclasses; nothing past this module sees a raw dict.
Follows cargo's own rules where a flake depends on them: member globs and `exclude`,
`workspace.package` / `workspace.dependencies` inheritance, targets (nixcrate.targets:
declared and inferred lib, bins, examples, tests, benches, build script), path
dependencies (members when under the root and not excluded, as cargo makes them), lockfile
versions 3 and 4; and it refuses, in one line, what cargo refuses (tests/test_cargo_differential.py).
"""

from __future__ import annotations

import enum
import fnmatch
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from nixcrate import host
from nixcrate import targets as targets_mod
from nixcrate import toolchain as toolchain_mod
from nixcrate.errors import LockfileError, ManifestError, WorkspaceError, from_os_error
from nixcrate.targets import Target  # noqa: TC001 - re-exported: workspace.Target is the model's name

if TYPE_CHECKING:
    from collections.abc import Iterable

LAMBDA_RUNTIME_CRATES = frozenset({"lambda_runtime", "lambda_http", "lambda_extension"})
NEXTEST_CONFIG = PurePosixPath(".config/nextest.toml")

# What cargo accepts in a package name (it also rejects a leading digit for new packages,
# but old crates exist): anything else cannot be a cargo package or a Nix attribute we emit.
_CARGO_NAME = re.compile(r"^[A-Za-z0-9_-]+$")

# The editions cargo 1.95 accepts (cargo rejects any other: "failed to parse the `edition` key").
EDITIONS = ("2015", "2018", "2021", "2024")

_DEP_TABLES = ("dependencies", "build-dependencies", "dev-dependencies")
_DEP_KIND = {"dependencies": "normal", "build-dependencies": "build", "dev-dependencies": "dev"}


class MemberKind(enum.Enum):
    LIBRARY = "library"
    SERVICE = "service"
    LAMBDA = "lambda"


@dataclass(frozen=True, slots=True)
class Dependency:
    """One entry of a [dependencies], [build-dependencies] or [dev-dependencies] table."""

    name: str  # the package name (after `package = "..."` renames)
    kind: str  # normal | build | dev
    path: PurePosixPath | None  # crate directory relative to the workspace root, for path deps
    git: str | None
    optional: bool
    features: tuple[str, ...] = ()  # as the entry lists them (workspace ones merged in)
    default_features: bool = True
    key: str = ""  # the key in the manifest's table (a renamed dependency's own name); "" when it is `name`
    target: str | None = None  # the `target.<cfg>` table it sits in, None for the plain tables
    registry: str | None = None  # `registry = "<name>"`: an alternate registry's name, None for crates.io (or git/path)
    version: str = ""  # its version requirement ("" for none), which of two locked versions it names

    @property
    def table_key(self) -> str:
        """The name [features] entries use for it (`dep:x`, `x/feature`)."""
        return self.key or self.name


@dataclass(frozen=True, slots=True)
class Crate:
    """A crate whose source is in the tree: a workspace member or a path dependency."""

    name: str
    version: str
    path: PurePosixPath  # crate directory relative to the workspace root ("." for the root)
    is_member: bool
    lib: Target | None
    bins: tuple[Target, ...]
    build_script: PurePosixPath | None
    deps: tuple[Dependency, ...]
    # True when the manifest has a [lib] table or a [[bin]]. Kept for older callers: whether
    # cargo loads the manifest with the sources absent is required_target_paths' question
    # (a [lib] without `path` still needs src/lib.rs).
    declares_target: bool
    autolib: bool  # package.autolib is not false
    links: str | None
    # Files (relative to the crate directory, normalized; may start with ../ for a declared
    # path outside it) that must exist for cargo to load this manifest, with the same lib and
    # bins, when the crate's sources are left out of a build's source, and for
    # `cargo build -p <another member>` to work: the lib's and every bin's root file, the
    # build script (a package with `links` must have one), and the files of every
    # [[example]], [[test]] and [[bench]] table. Create each one that is
    # missing (empty), not only when its directory is: a crate with src/lib.rs and
    # src/bin/x.rs needs both. Cargo is then satisfied; see nixcrate.targets.required_paths,
    # and Crate.required_target_files() for the paths from the workspace root. Checked
    # against real cargo in tests/test_targets.py.
    required_target_paths: tuple[str, ...] = ()
    examples: tuple[Target, ...] = ()
    tests: tuple[Target, ...] = ()
    benches: tuple[Target, ...] = ()
    edition: str = "2015"  # cargo's default when the manifest sets none
    features: tuple[tuple[str, tuple[str, ...]], ...] = ()  # [features], sorted by name
    # Why this crate cannot be built for the build machine as a package of its own, or None:
    # a wasm cdylib (wasm-bindgen reached with its default features) or a Python extension
    # module (pyo3 with `extension-module`, or a cdylib on pyo3), whose build script wants
    # an interpreter. Set for every crate that matches, whether or not a member depends on it;
    # it matters for the standalone libraries, which nixcrate would otherwise give a package
    # (nixcrate.host.left_out decides with nixcrate.toml's `package` key).
    host_unbuildable_reason: str | None = None

    @property
    def manifest(self) -> PurePosixPath:
        return self.path / "Cargo.toml"

    def required_target_files(self) -> tuple[str, ...]:
        """required_target_paths relative to the workspace root (`crates/a/src/lib.rs`), sorted."""
        return tuple(sorted({_join(self.path.as_posix(), p) for p in self.required_target_paths}))

    @property
    def direct_dep_names(self) -> frozenset[str]:
        return frozenset(d.name for d in self.deps)

    def natural_kind(self) -> MemberKind:
        """The kind nixcrate infers before nixcrate.toml overrides."""
        normal = {d.name for d in self.deps if d.kind == "normal"}
        if self.bins and normal & LAMBDA_RUNTIME_CRATES:
            return MemberKind.LAMBDA
        if self.bins:
            return MemberKind.SERVICE
        return MemberKind.LIBRARY


@dataclass(frozen=True, slots=True)
class LockPackage:
    """One [[package]] of Cargo.lock."""

    name: str
    version: str
    source: str | None
    checksum: str | None
    dependencies: tuple[str, ...]  # "name", "name version" or "name version (source)"

    @property
    def is_git(self) -> bool:
        return bool(self.source and self.source.startswith("git+"))

    @property
    def is_path(self) -> bool:
        return self.source is None

    @property
    def key(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True, slots=True)
class Lockfile:
    """Cargo.lock: its format version and packages."""

    version: int
    packages: tuple[LockPackage, ...]


@dataclass(frozen=True, slots=True)
class Workspace:
    """The Cargo workspace at root: its in-tree crates and its Cargo.lock."""

    root: Path
    crates: tuple[Crate, ...]  # every in-tree crate, sorted by path
    member_names: tuple[str, ...]  # sorted
    default_members: tuple[str, ...]
    lock: Lockfile
    cargo_configs: tuple[PurePosixPath, ...]  # .cargo/config.toml files at the root
    toolchain_file: PurePosixPath | None
    warnings: tuple[str, ...] = field(default=())
    explicit_members: bool = False
    nextest_config: PurePosixPath | None = None  # .config/nextest.toml: the workspace runs its tests with nextest
    # In-tree crates that [patch.<registry>] or [replace] of the root Cargo.toml point at and
    # that are not members: cargo reads them, so every source the flake builds needs them.
    patch_paths: tuple[PurePosixPath, ...] = ()
    # The Cargo.toml of another repository's workspace root a patched crate inherits from
    # (`{ workspace = true }`): cargo reads it with the crate.
    patch_manifests: tuple[PurePosixPath, ...] = ()
    profiles: tuple[str, ...] = ()  # the [profile.<name>] tables of the root Cargo.toml, sorted

    @property
    def members(self) -> tuple[Crate, ...]:
        return tuple(c for c in self.crates if c.is_member)

    def crate(self, name: str) -> Crate:
        return self._by_name[name]

    @property
    def _by_name(self) -> dict[str, Crate]:
        # Built once per Workspace: lookups by name are everywhere in flake generation.
        index = _NAME_INDEX.get(id(self))
        if index is None or index[0] is not self:
            index = (self, {c.name: c for c in self.crates})
            _NAME_INDEX.clear()
            _NAME_INDEX[id(self)] = index
        return index[1]


_NAME_INDEX: dict[int, tuple[Workspace, dict[str, Crate]]] = {}


# --------------------------------------------------------------------------- reading


def _read_toml(path: str | Path, display: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise ManifestError(f"{display}: not found: run nixcrate in a Cargo workspace, or pass its directory") from None
    except IsADirectoryError:
        raise ManifestError(f"{display}: is a directory, not a file: remove it or point nixcrate at the workspace root") from None
    except OSError as exc:
        raise from_os_error(exc, display=display) from None
    try:
        # cargo reads a manifest that starts with a UTF-8 BOM (Notepad writes one): so do we
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{display}: not valid UTF-8 (byte {exc.start}): save it as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line L, column C)"; keep it, it is what the user needs.
        raise ManifestError(f"{display}: invalid TOML: {exc}: fix the syntax (cargo would reject it too)") from None
    except RecursionError:
        # tomllib recurses per nested array/inline table: thousands deep overflow Python's stack.
        raise ManifestError(f"{display}: invalid TOML: arrays or tables nested thousands deep: fix the syntax") from None


# Paths relative to the root are handled as strings ("crates/api", "." for the root) while
# reading, and become PurePosixPath only in the dataclasses: pathlib's parsing, once per
# join, was most of the time `init` spent on a workspace of hundreds of members.


def _collapse(parts: Iterable[str]) -> list[str]:
    """Drop `` and `.`, and let `..` cancel the part before it, lexically (as cargo does)."""
    out: list[str] = []
    for part in parts:
        if part in ("", "."):
            continue
        if part == ".." and out and out[-1] != "..":
            out.pop()
        else:
            out.append(part)
    return out


def _join(base: str, rel: str) -> str:
    """base/rel collapsed (`a/../b` -> `b`, `./a` -> `a`): a member or path entry relative to the root."""
    if base.startswith("/") or rel.startswith("/"):
        # An absolute path (members refuse one, a path dependency may name one): pathlib's root rules.
        return str(PurePosixPath(*_collapse(PurePosixPath(base, rel).parts)))
    return "/".join(_collapse(f"{base}/{rel}".split("/"))) or "."


def _outside(rel: str) -> bool:
    """A collapsed relative path that leaves the root."""
    return rel == ".." or rel.startswith("../")


def _is_under(path: str, ancestor: str) -> bool:
    """path is ancestor or inside it (both collapsed, relative); "." holds every path."""
    return ancestor in (path, ".") or path.startswith(ancestor + "/")


# The directory `nixcrate init` writes (nix/nixcrate/...): a member glob must not take it.
GENERATED_DIR = "nix"


def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def _glob_dirs(root: Path, pattern: str) -> list[tuple[Path, str]]:
    """The directories a glob matches, with each one's path relative to root. glob yields
    root/<relative>: the root is cut off the string (as relative_to would, uncollapsed)."""
    root_len = len(str(root))
    return [(m, str(m)[root_len:].lstrip("/") or ".") for m in sorted(root.glob(pattern)) if m.is_dir()]


def _expand_members(root: Path, patterns: list[str], display: str, excludes: list[str]) -> tuple[list[str], list[str]]:
    """Member directories (relative) and warnings, following cargo's glob rules.

    cargo takes every directory a glob matches (a file it skips) as a member and fails to
    load one without a Cargo.toml unless `exclude` drops it: so does nixcrate, and it refuses
    a glob that takes nix/, which init creates, before writing it (cargo would fail from then on)."""
    found: list[str] = []
    warnings: list[str] = []
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise ManifestError(f"{display}: workspace.members must be a list of strings: fix the entry {pattern!r}")
        rel = _join(".", pattern)
        if pattern.startswith("/") or _outside(rel):
            raise WorkspaceError(
                f"{display}: member '{pattern}' is outside the workspace root: a flake only sees files under {root.name}/, move the crate inside"
            )
        if _is_glob(pattern):
            if (
                _glob_matches(GENERATED_DIR, rel)
                and not _is_excluded(GENERATED_DIR, excludes)
                and not (root / GENERATED_DIR / "Cargo.toml").is_file()
            ):
                raise WorkspaceError(
                    f"{display}: member glob '{pattern}' takes {GENERATED_DIR}/, where nixcrate writes the flake's Nix files, and cargo "
                    f'fails on a member without Cargo.toml: add "{GENERATED_DIR}" to workspace.exclude'
                )
            matches = _glob_dirs(root, pattern)
            if not matches:
                # cargo accepts a glob that matches nothing (an empty folder is not even in git), so we warn.
                warnings.append(f"{display}: member glob '{pattern}' matches no directory: remove it from workspace.members if it is stale")
            for m, dir_ in matches:
                if not (m / "Cargo.toml").is_file() and not _is_excluded(_join(".", dir_), excludes):
                    raise ManifestError(
                        f"{display}: member glob '{pattern}' matches {dir_}/, which has no Cargo.toml (cargo fails to load it): "
                        f'add "{dir_}" to workspace.exclude, or narrow the glob'
                    )
                found.append(dir_)
        else:
            found.append(rel)
    return found, warnings


def _glob_matches(path: str, pattern: str) -> bool:
    """path matches pattern as cargo's globs match (per component: `*` stays within one)."""
    parts, pattern_parts = path.split("/"), pattern.split("/")
    return len(parts) == len(pattern_parts) and all(fnmatch.fnmatchcase(a, b) for a, b in zip(parts, pattern_parts, strict=True))


def _is_excluded(path: str, excludes: list[str]) -> bool:
    return any(_is_under(path, ex) for ex in excludes)


def _is_excluded_dep(path: str, excludes: list[str], raw_members: list[Any]) -> bool:
    """cargo's WorkspaceRootConfig::is_excluded for a path dependency: under an `exclude`
    entry and not under a `members` entry taken as a literal path (cargo joins a glob to the
    root unexpanded, so `crates/*` holds only a directory named `*`)."""
    listed = [_join(".", m) for m in raw_members if isinstance(m, str)]
    return _is_excluded(path, excludes) and not any(_is_under(path, m) for m in listed)


# --------------------------------------------------------------------------- crates


def _inherit(value: Any, key: str, ws_package: dict[str, Any], display: str) -> Any:
    if isinstance(value, dict) and value.get("workspace") is True:
        if key not in ws_package:
            raise ManifestError(
                f"{display}: package.{key} inherits from the workspace but workspace.package.{key} is not set: add it to the root Cargo.toml"
            )
        return ws_package[key]
    return value


def _dep_entries(manifest: dict[str, Any]) -> list[tuple[str, str, Any, str | None]]:
    """(table, key, spec, target cfg) for every dependency table, including target.'cfg'.* tables."""
    out: list[tuple[str, str, Any, str | None]] = []
    tables: list[tuple[dict[str, Any], str | None]] = [(manifest, None)]
    targets = manifest.get("target")
    if isinstance(targets, dict):
        tables.extend((t, cfg) for cfg, t in targets.items() if isinstance(t, dict))
    for table, cfg in tables:
        for name in _DEP_TABLES:
            # cargo still accepts the old underscore spellings
            section = table.get(name, table.get(name.replace("-", "_"), {}))
            if isinstance(section, dict):
                out.extend((name, key, spec, cfg) for key, spec in section.items())
    return out


def _parse_dep(  # noqa: PLR0917 - one call site, positional as _dep_entries yields them
    key: str,
    spec: Any,
    table: str,
    crate_dir: str,
    ws_deps: dict[str, Any],
    display: str,
    target: str | None = None,
) -> Dependency:
    base_dir = crate_dir
    if isinstance(spec, dict) and spec.get("workspace") is True:
        if key not in ws_deps:
            raise ManifestError(
                f"{display}: dependency '{key}' has workspace = true but the root Cargo.toml has no workspace.dependencies.{key}: add it there"
            )
        inherited = ws_deps[key]
        if not isinstance(inherited, (str, dict)):
            raise ManifestError(f"Cargo.toml: workspace.dependencies.{key} must be a version string or a table: fix its entry")
        inherited = {"version": inherited} if isinstance(inherited, str) else dict(inherited)
        extra = {k: v for k, v in spec.items() if k != "workspace"}
        merged = {**inherited, **extra}
        if not all(isinstance(t.get("features", []), list) for t in (inherited, extra)):
            raise ManifestError(f"{display}: dependency '{key}': features must be a list of strings: fix its entry")
        if "features" in inherited and "features" in extra:
            merged["features"] = [*inherited["features"], *extra["features"]]
        spec = merged
        base_dir = "."  # workspace.dependencies paths are relative to the root
    if isinstance(spec, str):
        return Dependency(key, _DEP_KIND[table], None, None, optional=False, target=target, version=spec)
    if not isinstance(spec, dict):
        raise ManifestError(f"{display}: dependency '{key}' must be a version string or a table: fix its entry")
    name = spec.get("package", key)
    path = spec.get("path")
    features = spec.get("features", [])
    return Dependency(
        name=str(name),
        kind=_DEP_KIND[table],
        path=PurePosixPath(_join(base_dir, path)) if isinstance(path, str) else None,
        git=spec.get("git") if isinstance(spec.get("git"), str) else None,
        optional=bool(spec.get("optional", False)),
        features=tuple(str(f) for f in features) if isinstance(features, list) else (),
        default_features=spec.get("default-features", spec.get("default_features", True)) is not False,
        key="" if key == name else key,
        target=target,
        registry=spec["registry"] if isinstance(spec.get("registry"), str) and spec["registry"] != "crates-io" else None,
        version=spec["version"] if isinstance(spec.get("version"), str) else "",
    )


def _read_crate(
    root: Path,
    rel: str,
    *,
    is_member: bool,
    ws_package: dict[str, Any],
    ws_deps: dict[str, Any],
    manifest: dict[str, Any] | None = None,
) -> Crate:
    crate_dir = os.path.join(root, rel)
    path = PurePosixPath(rel)
    display = os.path.join(rel, "Cargo.toml") if rel != "." else "Cargo.toml"
    if manifest is None:
        manifest_file = os.path.join(crate_dir, "Cargo.toml")
        if not os.path.isfile(manifest_file):
            what = "workspace member" if is_member else "path dependency"
            raise ManifestError(
                f"{display}: not found, but {rel} is a {what}: add its Cargo.toml, or remove it from workspace.members"
                if is_member
                else f"{display}: not found, but {rel} is a {what}: fix the dependency's path"
            )
        manifest = _read_toml(manifest_file, display)
    if is_member and rel != "." and "workspace" in manifest:
        raise WorkspaceError(
            f"{display}: has a [workspace] of its own, but {rel} is a member of the workspace at Cargo.toml (cargo: multiple "
            f'workspace roots found): remove its [workspace] table, or add "{rel}" to workspace.exclude'
        )
    package = manifest.get("package", manifest.get("project"))
    if not isinstance(package, dict):
        raise ManifestError(f"{display}: has no [package] section: a workspace member must be a package (add [package] name and version)")
    name = package.get("name")
    if not isinstance(name, str) or not name:
        raise ManifestError(f"{display}: package.name is missing: add name = \"...\" under [package]")
    if not _CARGO_NAME.match(name):
        # cargo takes any Unicode letter; a Nix derivation name and our shell lines do not.
        raise ManifestError(
            f"{display}: package name '{name}' cannot be a Nix attribute or derivation name (only ASCII letters, digits, '-' and '_'): rename the package"
        )
    version = _inherit(package.get("version", "0.0.0"), "version", ws_package, display)
    edition = _inherit(package.get("edition", "2015"), "edition", ws_package, display)
    if not isinstance(edition, str):
        raise ManifestError(f"{display}: package.edition must be a string such as '2021': fix the value (cargo rejects it too)")
    if edition not in EDITIONS:
        raise ManifestError(
            f"{display}: package.edition '{edition}' is not an edition cargo knows ({', '.join(EDITIONS)}): fix the value (cargo rejects it too)"
        )
    found = targets_mod.discover(crate_dir, manifest, package, name=name, edition=edition, display=display)
    bins = found.bins
    for target in bins:
        if not _CARGO_NAME.match(target.name):
            raise ManifestError(
                f"{display}: bin name '{target.name}' cannot be a Nix attribute or derivation name (only ASCII letters, digits, '-' and '_'): rename the [[bin]]"
            )
    deps = tuple(
        sorted(
            (_parse_dep(key, spec, table, rel, ws_deps, display, cfg) for table, key, spec, cfg in _dep_entries(manifest)),
            key=lambda d: (d.name, d.kind, str(d.path), d.target or ""),
        )
    )
    links = package.get("links")
    raw_features = manifest.get("features")
    features = (
        tuple(
            sorted((str(k), tuple(str(x) for x in v)) for k, v in raw_features.items() if isinstance(v, list))
        )
        if isinstance(raw_features, dict)
        else ()
    )
    return Crate(
        name=name,
        version=str(version),
        path=path,
        is_member=is_member,
        lib=found.lib,
        bins=bins,
        build_script=found.build_script,
        deps=deps,
        declares_target=isinstance(manifest.get("lib"), dict) or bool(manifest.get("bin")),
        autolib=package.get("autolib", True) is not False,
        links=links if isinstance(links, str) else None,
        required_target_paths=found.required_paths,
        examples=found.examples,
        tests=found.tests,
        benches=found.benches,
        edition=edition,
        features=features,
    )


# --------------------------------------------------------------------------- lockfile


# Cargo.lock exactly as cargo writes it: comments, `version = N`, then [[package]] tables
# with their keys in cargo's order and one dependency a line. Anything else (hand edits,
# CRLF, [metadata], [[patch.unused]]) does not match, and tomllib reads the file instead.
_LOCK_HEAD = re.compile(r"(?:#[^\n]*\n)*version = (\d+)\n+")
_LOCK_PACKAGE = re.compile(
    r"\[\[package\]\]\n"
    r'name = "([^"\\\n]*)"\n'
    r'version = "([^"\\\n]*)"\n'
    r'(?:source = "([^"\\\n]*)"\n)?'
    r'(?:checksum = "([^"\\\n]*)"\n)?'
    r'(?:dependencies = \[\n((?: "[^"\\\n]*",\n)*)\]\n)?'
    r"\n*"
)


# The sources cargo reads in a Cargo.lock (SourceId::from_url): a kind cargo writes there and
# a URL (scheme, then no space or control character). `path+` is cargo's too, though a
# lock holds path crates without a source. Anything else ("foo+...", a bare URL, "") cargo
# refuses with "unsupported source protocol" or an invalid-URL error.
_LOCK_SOURCE = re.compile(r"^(?:registry|sparse|git|path)\+[A-Za-z][A-Za-z0-9+.-]*://[^\s\x00-\x1f\x7f]*$")


def _canonical_lock(text: str) -> tuple[int, list[LockPackage]] | None:
    """(version, packages) of a Cargo.lock in cargo's own layout, None for any other text.

    One regular expression per package instead of tomllib, which takes several times as
    long on a lock of thousands of packages; None leaves the file to tomllib."""
    head = _LOCK_HEAD.match(text)
    if head is None:
        return None
    packages = []
    pos, end = head.end(), len(text)
    while pos < end:
        m = _LOCK_PACKAGE.match(text, pos)
        if m is None:
            return None
        name, version, source, checksum, deps = m.groups()
        # deps is ' "a",\n "b",\n': strip the outer ' "' and '",\n', split on the inner ones
        packages.append(LockPackage(name, version, source, checksum, tuple(deps[2:-3].split('",\n "')) if deps else ()))
        pos = m.end()
    return int(head.group(1)), packages


def _toml_lock_packages(data: dict[str, Any], display: str) -> list[LockPackage]:
    """The [[package]] tables of a Cargo.lock that tomllib read, checked."""
    packages = []
    entries = data.get("package", [])
    if not isinstance(entries, list):
        raise LockfileError(f"{display}: 'package' is not a list of [[package]] tables: regenerate it with 'cargo generate-lockfile'")
    for entry in entries:
        if not isinstance(entry, dict) or "name" not in entry or "version" not in entry:
            raise LockfileError(f"{display}: a [[package]] entry has no name or version: regenerate it with 'cargo generate-lockfile'")
        deps = entry.get("dependencies", [])
        fields_ok = all(isinstance(entry.get(k, ""), str) for k in ("source", "checksum"))
        if not fields_ok or not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            raise LockfileError(
                f"{display}: [[package]] {entry['name']!s}: source, checksum or dependencies has the wrong type: regenerate it with 'cargo generate-lockfile'"
            )
        packages.append(
            LockPackage(
                name=str(entry["name"]),
                version=str(entry["version"]),
                source=entry.get("source"),
                checksum=entry.get("checksum"),
                dependencies=tuple(deps),
            )
        )
    return packages


def read_lockfile(path: Path, display: str = "Cargo.lock") -> Lockfile:
    if not path.is_file():
        raise LockfileError(f"{display}: not found: run 'cargo generate-lockfile' and commit Cargo.lock (a flake needs it to vendor crates)")
    try:
        text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
        canonical = _canonical_lock(text)
        data = tomllib.loads(text) if canonical is None else {}
    except UnicodeDecodeError:
        raise LockfileError(f"{display}: not valid UTF-8: regenerate it with 'cargo generate-lockfile'") from None
    except tomllib.TOMLDecodeError as exc:
        raise LockfileError(f"{display}: invalid TOML: {exc}: regenerate it with 'cargo generate-lockfile'") from None
    except RecursionError:
        raise LockfileError(f"{display}: invalid TOML: arrays or tables nested thousands deep: regenerate it with 'cargo generate-lockfile'") from None
    if canonical is None and not data:
        raise LockfileError(f"{display}: is empty: run 'cargo generate-lockfile' and commit Cargo.lock")
    version = data.get("version") if canonical is None else canonical[0]
    if version is None:
        raise LockfileError(
            f"{display}: lockfile version 1 or 2 is too old: run 'cargo update -w' with cargo 1.53 or newer to write version 3"
        )
    if version not in (3, 4):
        raise LockfileError(f"{display}: lockfile version {version} is not supported (3 and 4 are): regenerate it with a current cargo")
    packages = _toml_lock_packages(data, display) if canonical is None else canonical[1]
    for package in packages:
        if package.source is not None and not _LOCK_SOURCE.match(package.source):
            raise LockfileError(
                f"{display}: [[package]] {package.name} {package.version} has source {package.source!r}, which cargo cannot read "
                "(a source is registry+, sparse+ or git+ and a URL): regenerate it with 'cargo generate-lockfile'"
            )
    packages.sort(key=lambda p: (p.name, p.version, p.source or ""))
    return Lockfile(version=int(version), packages=tuple(packages))


def _check_lock_current(lock: Lockfile, crates: tuple[Crate, ...], display: str) -> None:
    """Cargo.lock must know every in-tree crate and every dependency the manifests name."""
    locked = {(p.name, p.version) for p in lock.packages}
    names = {p.name for p in lock.packages}
    for c in crates:
        if (c.name, c.version) not in locked:
            raise LockfileError(
                f"{display}: has no entry for {c.name} {c.version} ({c.manifest}): it is older than the manifests, run 'cargo update -w'"
            )
        for d in c.deps:
            if d.kind == "dev" and not c.is_member:
                continue  # cargo resolves (and locks) a non-member's dev-dependencies never
            if d.name not in names and not d.optional:
                raise LockfileError(
                    f"{display}: has no entry for '{d.name}', a dependency of {c.name}: it is older than the manifests, run 'cargo update -w'"
                )


# --------------------------------------------------------------------------- workspace


def load(root: Path) -> Workspace:
    """Read the workspace at root: Cargo.toml (and members), Cargo.lock."""
    root = root.resolve()
    if not root.is_dir():
        raise ManifestError(f"{root}: not a directory: pass the workspace directory that holds Cargo.toml")
    top = _read_toml(root / "Cargo.toml", "Cargo.toml")
    ws = top.get("workspace")
    has_package = isinstance(top.get("package"), dict)
    if ws is None and not has_package:
        raise ManifestError("Cargo.toml: neither [workspace] nor [package]: point nixcrate at the root of a Cargo workspace or package")
    if ws is not None and not isinstance(ws, dict):
        raise ManifestError("Cargo.toml: [workspace] must be a table: fix its syntax")
    has_workspace = ws is not None
    ws = ws or {}
    ws_package = ws.get("package", {}) if isinstance(ws.get("package", {}), dict) else {}
    ws_deps = ws.get("dependencies", {}) if isinstance(ws.get("dependencies", {}), dict) else {}

    raw_members = ws.get("members", [])
    if not isinstance(raw_members, list):
        raise ManifestError("Cargo.toml: workspace.members must be a list of paths: fix its syntax")
    for key in ("exclude", "default-members"):
        if not isinstance(ws.get(key, []), list):
            raise ManifestError(f"Cargo.toml: workspace.{key} must be a list of paths: fix its syntax")
    excludes = [_join(".", e) for e in ws.get("exclude", []) if isinstance(e, str)]
    member_dirs, warnings = _expand_members(root, raw_members, "Cargo.toml", excludes)
    # As cargo's is_excluded: `exclude` drops what globs match, never a member listed by its path.
    listed = [_join(".", p) for p in raw_members if isinstance(p, str) and not _is_glob(p)]
    member_dirs = [m for m in member_dirs if not _is_excluded(m, excludes) or m == "." or any(_is_under(m, p) for p in listed)]
    if has_package:
        member_dirs.insert(0, ".")

    crates: dict[str, Crate] = {}  # by directory relative to the root
    for rel in dict.fromkeys(member_dirs):  # in order, without duplicates
        crates[rel] = _read_crate(
            root,
            rel,
            is_member=True,
            ws_package=ws_package,
            ws_deps=ws_deps,
            manifest=top if rel == "." else None,
        )

    # Path dependencies, read too (their own path deps as well). As cargo's
    # Workspace::find_path_deps: with a [workspace] table, a path dependency under the root
    # that `exclude` does not drop is a member; cargo then follows its path dependencies the
    # same way. Without one (a lone package) only the package itself is a member.
    # Members first, so that a crate a member and a non-member both depend on is a member.
    pending = [(d, crates[rel]) for rel in list(crates) for d in crates[rel].deps if d.path is not None]
    later: list[tuple[Dependency, Crate]] = []
    while pending or later:
        dep, owner = pending.pop() if pending else later.pop()
        assert dep.path is not None
        dep_dir = str(dep.path)
        if dep_dir in crates:
            continue
        if dep_dir.startswith("/"):
            raise WorkspaceError(
                f"{owner.manifest}: path dependency '{dep.name}' has an absolute path ({dep.path}): the flake builds a copy of "
                "the workspace in the Nix store, where that path does not exist: write it relative to the manifest's directory"
            )
        if _outside(dep_dir):
            raise WorkspaceError(
                f"{owner.manifest}: path dependency '{dep.name}' ({dep.path}) is outside the workspace root: "
                "a flake only sees files under its own directory, move the crate into the workspace or use a git/registry dependency"
            )
        if not os.path.isfile(os.path.join(root, dep_dir, "Cargo.toml")):
            raise ManifestError(f"{owner.manifest}: path dependency '{dep.name}' points at {dep.path}, which has no Cargo.toml: fix the path")
        # Only a member's path dependencies become members: cargo stops at a non-member.
        is_member = has_workspace and owner.is_member and not _is_excluded_dep(dep_dir, excludes, raw_members)
        if not is_member and pending:
            later.append((dep, owner))
            continue
        crate = _read_crate(root, dep_dir, is_member=is_member, ws_package=ws_package, ws_deps=ws_deps)
        crates[dep_dir] = crate
        # cargo resolves a non-member's dev-dependencies never, nor loads their manifests
        pending.extend((d, crate) for d in crate.deps if d.path is not None and (is_member or d.kind != "dev"))

    _refuse_symlinked(root, crates)
    _refuse_targets_outside(crates.values())
    ordered_crates = host.with_reasons(tuple(crates[rel] for rel in sorted(crates)))
    by_name: dict[str, Crate] = {}
    for c in ordered_crates:
        if c.name in by_name:
            other = by_name[c.name]
            raise WorkspaceError(
                f"{c.manifest}: package name '{c.name}' is also used by {other.manifest}: package names must be unique in a workspace, rename one"
            )
        by_name[c.name] = c

    if not any(c.is_member for c in crates.values()):
        raise WorkspaceError(
            "Cargo.toml: the workspace is virtual and has no members (cargo: the manifest is virtual, and the workspace has no "
            "members): list the member crates in workspace.members"
        )
    _check_path_dep_names(crates)
    globs = [_join(".", m) for m in raw_members if isinstance(m, str) and _is_glob(m)]
    defaults = _default_members(root, ws.get("default-members", []), crates, excludes, globs)

    lock = read_lockfile(root / "Cargo.lock")
    _check_lock_current(lock, ordered_crates, "Cargo.lock")

    members = tuple(sorted(c.name for c in ordered_crates if c.is_member))
    configs = tuple(
        PurePosixPath(".cargo") / n for n in ("config.toml", "config") if (root / ".cargo" / n).is_file()
    )
    toolchain = toolchain_mod.find(root)
    patch_paths, patch_manifests = _patch_paths(top, root, set(crates))
    return Workspace(
        root=root,
        crates=ordered_crates,
        member_names=members,
        default_members=tuple(sorted(set(defaults))),
        lock=lock,
        cargo_configs=configs,
        toolchain_file=toolchain,
        nextest_config=NEXTEST_CONFIG if (root / NEXTEST_CONFIG).is_file() else None,
        warnings=tuple(warnings),
        explicit_members=any(not _is_glob(m) for m in raw_members if isinstance(m, str)),
        patch_paths=patch_paths,
        patch_manifests=patch_manifests,
        profiles=tuple(sorted(top["profile"])) if isinstance(top.get("profile"), dict) else (),
    )


def _check_path_dep_names(crates: dict[str, Crate]) -> None:
    """What cargo's resolver refuses of path dependencies: one naming a package that is not the
    one at its path (`foo = { path = "../b" }` where b's package is `b`), and one crate
    depended on under two names (`b` and `b2 = { path = "../b", package = "b" }`)."""
    for crate in crates.values():
        keys: dict[str, str] = {}
        for dep in crate.deps:
            if dep.path is None or (dep.kind == "dev" and not crate.is_member):
                continue  # a non-member's dev-dependencies cargo never resolves (nor nixcrate reads)
            target = crates[str(dep.path)]
            if dep.name != target.name:
                raise ManifestError(
                    f"{crate.manifest}: path dependency '{dep.table_key}' ({dep.path}) asks for package '{dep.name}', but the package "
                    f"there is '{target.name}' (cargo finds no matching package): write package = \"{target.name}\" in its entry, or fix the path"
                )
            other = keys.setdefault(str(dep.path), dep.table_key)
            if other != dep.table_key:
                first, second = sorted((other, dep.table_key))
                raise ManifestError(
                    f"{crate.manifest}: depends on {target.name} ({dep.path}) under two names, '{first}' and '{second}' (cargo refuses "
                    "a crate depended on multiple times with different names): use one name in every dependency table"
                )


def _default_members(root: Path, raw: list[Any], crates: dict[str, Crate], excludes: list[str], globs: list[str]) -> list[str]:
    """The packages workspace.default-members names (globs expanded as cargo does). Each must
    be a member: cargo refuses one that is not ("listed in default-members but is not a member"),
    but for a directory a members glob matches and `exclude` drops, which it skips."""
    names: list[str] = []
    for entry in raw:
        if not isinstance(entry, str):
            raise ManifestError(f"Cargo.toml: workspace.default-members must be a list of paths: fix the entry {entry!r}")
        if _is_glob(entry):
            dirs = [rel for _, rel in _glob_dirs(root, entry)]
        else:
            dirs = [_join(".", entry)]
        for rel in dirs:
            crate = crates.get(_join(".", rel))
            if crate is None or not crate.is_member:
                if _is_excluded(_join(".", rel), excludes) and any(_glob_matches(_join(".", rel), g) for g in globs):
                    continue
                raise WorkspaceError(
                    f"Cargo.toml: workspace.default-members lists '{entry}', and {_join('.', rel)} is not a member of the workspace "
                    "(cargo refuses it): add it to workspace.members, or remove it from default-members"
                )
            names.append(crate.name)
    return names


def _refuse_symlinked(root: Path, crates: Iterable[str]) -> None:
    """A crate directory (or a directory above it) or its Cargo.toml that is a symlink: the
    flake's source copies the link itself, which dangles in the Nix store (and cargo would
    see the crate under a second path). Refused, not resolved: the user picks the real place."""
    for rel in crates:
        parts = [] if rel == "." else rel.split("/")
        for sub in [*("/".join(parts[:n]) for n in range(1, len(parts) + 1)), "/".join([*parts, "Cargo.toml"])]:
            if os.path.islink(os.path.join(root, sub)):
                raise WorkspaceError(
                    f"{sub}: is a symlink (to {os.readlink(os.path.join(root, sub))}): the flake copies the link, which dangles in the "
                    "Nix store; nixcrate refuses it rather than resolve it: move the real crate (or Cargo.toml) there instead of the link"
                )


def _refuse_targets_outside(crates: Iterable[Crate]) -> None:
    """A target (or build script) whose file is outside the workspace root (`path =
    "../../elsewhere/main.rs"`, or absolute): cargo reads it, the flake's source cannot hold it."""
    for crate in crates:
        targets = [*([crate.lib] if crate.lib else []), *crate.bins, *crate.examples, *crate.tests, *crate.benches]
        paths = [(t.name, str(t.path)) for t in targets]
        if crate.build_script is not None:
            paths.append(("build script", str(crate.build_script)))
        for name, path in paths:
            full = _join(crate.path.as_posix(), path)
            if _outside(full) or full.startswith("/"):
                raise WorkspaceError(
                    f"{crate.manifest}: target '{name}' ({path}) is outside the workspace root: a flake only sees files "
                    "under its own directory, move the file into the workspace and point `path` at it"
                )


def _patch_paths(top: dict[str, Any], root: Path, crates: set[str]) -> tuple[tuple[PurePosixPath, ...], tuple[PurePosixPath, ...]]:
    """Relative dirs of [patch.*] and [replace] path entries inside the workspace that are not
    crates already read (members and their path dependencies), and the path dependencies of
    those, transitively: cargo loads the manifest (and builds the source) of each. Second, the
    Cargo.toml of the workspace roots those crates inherit from when that is not this
    workspace's (a crate patched in from another repository's workspace, its
    `shim = { workspace = true }` found in that root's `[workspace.dependencies]`)."""
    tables: list[Any] = list(top["patch"].values()) if isinstance(top.get("patch"), dict) else []
    tables.append(top.get("replace"))
    pending = [
        _join(".", entry["path"])
        for table in tables
        if isinstance(table, dict)
        for entry in table.values()
        if isinstance(entry, dict) and isinstance(entry.get("path"), str) and not entry["path"].startswith("/")
    ]
    found: set[str] = set()
    roots: set[str] = set()
    while pending:
        rel = pending.pop()
        if _outside(rel):
            raise WorkspaceError(
                f"Cargo.toml: the crate at {rel}, patched in by [patch] or [replace] (or a path dependency of one), is outside "
                "the workspace root: cargo reads it for every package and a flake only sees files under its own directory, "
                "move it into the workspace"
            )
        if rel in crates or rel in found or not (root / rel / "Cargo.toml").is_file():
            continue
        found.add(rel)
        manifest = _read_lenient(root / rel / "Cargo.toml")
        pending.extend(_join(rel, path) for path in _manifest_paths(manifest))
        inherited = _inherited_dep_keys(manifest)
        ws_root = _patched_workspace_root(root, rel, manifest, top) if inherited or _inherits_package(manifest) else None
        if ws_root is None:
            continue
        roots.add(ws_root)
        table = _read_lenient(root / ws_root / "Cargo.toml").get("workspace")
        ws_deps = table.get("dependencies") if isinstance(table, dict) else None
        for key in inherited if isinstance(ws_deps, dict) else ():
            spec = ws_deps.get(key)
            if isinstance(spec, dict) and isinstance(spec.get("path"), str) and not spec["path"].startswith("/"):
                pending.append(_join(ws_root, spec["path"]))
    manifests = {f"{r}/Cargo.toml" for r in roots if r != "." and r not in found and r not in crates and not _outside(r)}
    return tuple(PurePosixPath(r) for r in sorted(found)), tuple(PurePosixPath(m) for m in sorted(manifests))


def _read_lenient(path: Path) -> dict[str, Any]:
    """A manifest read leniently: one that does not parse is empty (cargo names the problem)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8").removeprefix("\ufeff"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return {}


def _inherited_dep_keys(manifest: dict[str, Any]) -> list[str]:
    """The dependencies a manifest takes from its workspace root (`x = { workspace = true }`)."""
    return [key for _, key, spec, _ in _dep_entries(manifest) if isinstance(spec, dict) and spec.get("workspace") is True]


def _inherits_package(manifest: dict[str, Any]) -> bool:
    """Whether a `[package]` field is `{ workspace = true }` (version, edition...)."""
    package = manifest.get("package")
    return isinstance(package, dict) and any(isinstance(v, dict) and v.get("workspace") is True for v in package.values())


def _patched_workspace_root(root: Path, rel: str, manifest: dict[str, Any], top: dict[str, Any]) -> str | None:
    """The workspace root cargo finds for a crate it loads as a dependency (cargo's
    find_workspace_root): `package.workspace` when set; else this workspace's root when the
    crate is under it and not excluded (cargo tries the roots it has loaded first); else the
    nearest directory above the crate whose Cargo.toml has a `[workspace]` not excluding it."""
    package = manifest.get("package")
    explicit = package.get("workspace") if isinstance(package, dict) else None
    if isinstance(explicit, str):
        return _join(rel, explicit)

    def excludes(ws_dir: str, table: Any) -> bool:
        if not isinstance(table, dict):
            return True
        under = [_join(ws_dir, e) for e in table.get("exclude", []) if isinstance(e, str)]
        listed = [_join(ws_dir, m) for m in table.get("members", []) if isinstance(m, str)]
        return _is_excluded(rel, under) and not any(_is_under(rel, m) for m in listed)

    if not excludes(".", top.get("workspace")):
        return "."
    parts = rel.split("/")
    for n in range(len(parts) - 1, 0, -1):
        ancestor = "/".join(parts[:n])
        if (root / ancestor / "Cargo.toml").is_file() and not excludes(ancestor, _read_lenient(root / ancestor / "Cargo.toml").get("workspace")):
            return ancestor
    return None


def _manifest_paths(manifest: dict[str, Any]) -> list[str]:
    """The `path` of every dependency a patched crate's manifest declares (any table, any
    target), as written."""
    return [
        spec["path"]
        for _, _, spec, _ in _dep_entries(manifest)
        if isinstance(spec, dict) and isinstance(spec.get("path"), str) and not spec["path"].startswith("/")
    ]
