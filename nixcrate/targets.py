"""A package's targets by cargo's rules: which lib, bins, examples, tests and benches a
manifest has, and at which paths, without running cargo.

Follows cargo's `util/toml/targets.rs` (normalize_lib, normalize_bins, normalize_targets,
toml_targets_and_inferred, target_path; https://github.com/rust-lang/cargo): inferred
targets (`src/lib.rs`, `src/main.rs`, `src/bin/<name>.rs`, `src/bin/<name>/main.rs`,
`examples/`, `tests/`, `benches/` alike) join the declared ones unless a declared target
already has their name or their file, or `auto<kind> = false`, or, in edition 2015, the
manifest declares any target of that kind; a declared target without `path` takes the
inferred file of its name. tests/test_targets.py compares the result with
`cargo metadata` for each layout.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from nixcrate.errors import ManifestError

if TYPE_CHECKING:
    from collections.abc import Sequence

SRC_LIB = "src/lib.rs"
SRC_MAIN = "src/main.rs"
_BUILD_RS = "build.rs"

# (manifest key, auto flag, directory of inferred targets, what cargo calls it)
_OTHER_KINDS = (
    ("example", "autoexamples", "examples", "example"),
    ("test", "autotests", "tests", "test"),
    ("bench", "autobenches", "benches", "bench"),
)


# One PurePosixPath per distinct path: most crates share "src/lib.rs" and "src/main.rs", and
# pathlib's parsing per Target was most of what reading targets cost at 500 members.
_path = functools.lru_cache(maxsize=4096)(PurePosixPath)


@dataclass(frozen=True, slots=True)
class Target:
    """A target of a crate: its name, its root file, and what cargo builds from it."""

    name: str
    path: PurePosixPath  # relative to the crate directory, normalized as cargo does (may start with ../)
    # the lib's crate types as `cargo metadata` lists them (lib, rlib, cdylib, proc-macro, ...);
    # () for bins, and for examples without crate-type
    crate_types: tuple[str, ...] = ()
    required_features: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Targets:
    """Every target of one manifest, by kind, each sorted by name (as cargo sorts them)."""

    lib: Target | None
    bins: tuple[Target, ...]
    examples: tuple[Target, ...]
    tests: tuple[Target, ...]
    benches: tuple[Target, ...]
    build_script: PurePosixPath | None
    # Files cargo needs to find, with the crate's sources gone, to load the manifest with
    # the same lib and bins and without errors (see required_paths).
    required_paths: tuple[str, ...]


def normalize(path: str) -> str:
    """cargo's paths::normalize_path, lexically: drop `.` and empty parts, `..` cancels the
    part before it (a leading `..` stays)."""
    out: list[str] = []
    absolute = path.startswith("/")
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and out and out[-1] != "..":
            out.pop()
        elif part == ".." and absolute and not out:
            continue
        else:
            out.append(part)
    text = "/".join(out)
    return "/" + text if absolute else text or "."


class _Tree:
    """The crate directory, each subdirectory listed at most once: one scandir instead of a
    stat per candidate file, and none for a directory its parent's listing does not hold
    (`init` reads hundreds of crates)."""

    def __init__(self, root: str) -> None:
        self.root = root
        # rel -> {entry: (is a directory following symlinks, is one without following them)}
        self._listings: dict[str, dict[str, tuple[bool, bool]]] = {}

    def listing(self, rel: str) -> dict[str, tuple[bool, bool]]:
        found = self._listings.get(rel)
        if found is None:
            parent, _, name = rel.rpartition("/")
            found = {}
            if not rel or self.listing(parent).get(name, (False, False))[0]:
                try:
                    with os.scandir(os.path.join(self.root, rel)) as entries:
                        found = {e.name: (e.is_dir(), e.is_dir(follow_symlinks=False)) for e in entries}
                except (FileNotFoundError, NotADirectoryError):
                    found = {}  # an unreadable directory is not an empty one: its OSError names it
            self._listings[rel] = found
        return found

    def exists(self, rel: str) -> bool:
        """Path.exists() of root/rel (rel a plain relative path, or any path cargo normalized)."""
        if rel.startswith(("/", "../")) or rel == "..":
            return os.path.exists(os.path.join(self.root, rel))
        parent, _, name = rel.rpartition("/")
        return name in self.listing(parent)


def _infer_from_directory(tree: _Tree, rel: str) -> list[tuple[str, str]]:
    """cargo's infer_from_directory: `<rel>/<name>.rs` and `<rel>/<name>/main.rs`, dotfiles skipped."""
    found = []
    for name, (_, is_dir) in tree.listing(rel).items():
        if name.startswith("."):
            continue
        if is_dir:
            if tree.exists(f"{rel}/{name}/main.rs"):
                found.append((name, f"{rel}/{name}/main.rs"))
        elif name.endswith(".rs"):
            found.append((name[:-3], f"{rel}/{name}"))
    return found


def _flag(package: dict[str, Any], key: str, display: str) -> bool | None:
    value = package.get(key)
    if value is not None and not isinstance(value, bool):
        raise ManifestError(
            f"{display}: package.{key} must be true or false: fix the value (cargo rejects it too)"
        )
    return value


def _tables(manifest: dict[str, Any], key: str, display: str) -> list[dict[str, Any]] | None:
    """The [[key]] array of tables, checked: None when the manifest has none."""
    raw = manifest.get(key)
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise ManifestError(
            f"{display}: [[{key}]] must be an array of tables: fix its syntax (cargo rejects it too)"
        )
    for table in raw:
        _check_strings(table, key, display)
    return raw


def _check_strings(table: dict[str, Any], key: str, display: str) -> None:
    if "path" in table and not isinstance(table["path"], str):
        raise ManifestError(f"{display}: a [lib] or [[bin]] path is not a string: fix it")
    if "name" in table and not isinstance(table["name"], str):
        raise ManifestError(f"{display}: {key}.name must be a string: fix the value (cargo rejects it too)")
    for field in ("crate-type", "crate_type", "required-features"):
        value = table.get(field)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise ManifestError(
                f"{display}: {key}.{field} must be a list of strings: fix the value (cargo rejects it too)"
            )


def _required_features(table: dict[str, Any]) -> tuple[str, ...]:
    return tuple(table.get("required-features", ()))


def _merge(
    declared: list[dict[str, Any]] | None,
    inferred: list[tuple[str, str]],
    auto: bool | None,
    edition: str,
) -> list[dict[str, Any]]:
    """cargo's toml_targets_and_inferred: the declared targets plus the inferred ones cargo keeps."""
    as_tables = [{"name": name, "path": path} for name, path in inferred]
    if declared is None:
        return [] if auto is False else as_tables
    names = {t.get("name") for t in declared}
    # cargo compares package_root.join(path): equal up to `.` and repeated slashes
    paths = {"/".join(p for p in t["path"].split("/") if p not in ("", ".")) for t in declared if "path" in t}
    rest = [t for t in as_tables if t["name"] not in names and t["path"] not in paths]
    keep = auto if auto is not None else edition != "2015"
    return [*declared, *rest] if keep else list(declared)


def _target_path(
    table: dict[str, Any],
    inferred: list[tuple[str, str]],
    *,
    what: str,
    default_dir: str,
    legacy: list[str],
    tree: _Tree,
    display: str,
) -> str:
    """cargo's target_path: the declared path, else the one inferred file of that name
    (else, in edition 2015, a legacy location)."""
    if "path" in table:
        return normalize(table["path"])
    name = table["name"]
    matching = [path for n, path in inferred if n == name]
    if len(matching) == 1:
        return matching[0]
    for path in legacy:
        if tree.exists(path):
            return path
    if matching:
        raise ManifestError(
            f"{display}: {what} '{name}' could be {matching[0]} or {matching[1]}: set {what}.path (cargo rejects it too)"
        )
    raise ManifestError(
        f"{display}: {what} '{name}' has no {default_dir}/{name}.rs or {default_dir}/{name}/main.rs: "
        f"add the file or set {what}.path (cargo rejects it too)"
    )


def _check_unique(targets: list[Target], what: str, display: str) -> None:
    names = [t.name for t in targets]
    for name in names:
        if names.count(name) > 1:
            raise ManifestError(
                f"{display}: two [[{what}]] targets are named '{name}': rename one (cargo rejects it too)"
            )


def _named(table: dict[str, Any], what: str, display: str) -> str:
    name = table.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ManifestError(f'{display}: a [[{what}]] has no name: add name = "..." (cargo rejects it too)')
    return name


def _lib_path(tree: _Tree, table: dict[str, Any], lib_name: str, edition: str, display: str) -> str:
    """The root file of a [lib] table (or of the inferred lib, `table` empty)."""
    if "path" in table:
        return normalize(table["path"])
    if tree.exists(SRC_LIB):
        return SRC_LIB
    if edition == "2015" and tree.exists(f"src/{lib_name}.rs"):
        return f"src/{lib_name}.rs"
    raise ManifestError(
        f"{display}: [lib] has no path and {SRC_LIB} does not exist: add {SRC_LIB} or set lib.path (cargo rejects it too)"
    )


def _crate_types(table: dict[str, Any]) -> tuple[str, ...]:
    kinds = table.get("crate-type", table.get("crate_type"))
    if kinds is not None:
        return ("proc-macro",) if "proc-macro" in kinds else tuple(kinds)
    return ("proc-macro",) if table.get("proc-macro", table.get("proc_macro")) is True else ("lib",)


def _lib(
    tree: _Tree,
    manifest: dict[str, Any],
    package: dict[str, Any],
    *,
    name: str,
    edition: str,
    display: str,
) -> Target | None:
    """cargo's normalize_lib and to_lib_target."""
    table = manifest.get("lib")
    if table is not None and not isinstance(table, dict):
        raise ManifestError(f"{display}: [lib] must be a table: fix its syntax (cargo rejects it too)")
    if table is not None:
        _check_strings(table, "lib", display)
    elif _flag(package, "autolib", display) is False or not tree.exists(SRC_LIB):
        return None
    table = table or {}
    lib_name = str(table.get("name", name.replace("-", "_")))
    if "-" in lib_name:
        raise ManifestError(f"{display}: lib name '{lib_name}' has a '-': use '_' (cargo rejects it too)")
    # With autolib = false and both name and path set cargo takes the table as it is; in
    # every other case a missing path is inferred, whatever autolib says.
    path = _lib_path(tree, table, lib_name, edition, display)
    return Target(lib_name, _path(path), _crate_types(table), _required_features(table))


def _bins(
    tree: _Tree,
    manifest: dict[str, Any],
    package: dict[str, Any],
    *,
    name: str,
    edition: str,
    has_lib: bool,
    display: str,
) -> list[Target]:
    """cargo's normalize_bins."""
    declared = _tables(manifest, "bin", display)
    auto = _flag(package, "autobins", display)
    for table in declared or ():
        _named(table, "bin", display)
    if auto is False and all("path" in t for t in declared or ()):
        tables, inferred = list(declared or ()), []
    else:
        inferred = ([(name, SRC_MAIN)] if tree.exists(SRC_MAIN) else []) + _infer_from_directory(
            tree, "src/bin"
        )
        tables = _merge(declared, inferred, auto, edition)
    bins = []
    for table in tables:
        bin_name = table["name"]
        legacy = (
            []
            if edition != "2015"
            else [*([] if has_lib else [f"src/{bin_name}.rs"]), SRC_MAIN, "src/bin/main.rs"]
        )
        path = _target_path(
            table,
            inferred,
            what="bin",
            default_dir="src/bin",
            legacy=legacy,
            tree=tree,
            display=display,
        )
        bins.append(Target(bin_name, _path(path), (), _required_features(table)))
    _check_unique(bins, "bin", display)
    return sorted(bins, key=lambda t: t.name)


def _others(
    tree: _Tree, manifest: dict[str, Any], package: dict[str, Any], *, edition: str, display: str
) -> tuple[tuple[tuple[Target, ...], ...], list[str]]:
    """cargo's normalize_examples, _tests and _benches: the targets of each, and the paths of
    the declared ones (with or without `path`: cargo refuses to build the workspace without them)."""
    out: list[tuple[Target, ...]] = []
    declared_paths: list[str] = []
    root = tree.listing("")
    for key, flag, directory, what in _OTHER_KINDS:
        auto = _flag(package, flag, display)
        if key not in manifest and directory not in root:  # the usual case: nothing to find
            out.append(())
            continue
        declared = _tables(manifest, key, display)
        for table in declared or ():
            _named(table, key, display)
        if auto is False and all("path" in t for t in declared or ()):
            tables, inferred = list(declared or ()), []
        else:
            inferred = _infer_from_directory(tree, directory)
            tables = _merge(declared, inferred, auto, edition)
        targets = []
        for table in tables:
            legacy = (
                ["src/bench.rs"] if key == "bench" and edition == "2015" and table["name"] == "bench" else []
            )
            try:
                path = _target_path(
                    table,
                    inferred,
                    what=what,
                    default_dir=directory,
                    legacy=legacy,
                    tree=tree,
                    display=display,
                )
            except ManifestError:
                # cargo skips it (a "critical warning"): metadata lists the rest, a build fails
                continue
            if declared is not None and any(t is table for t in declared):
                declared_paths.append(path)
            kinds = tuple(table.get("crate-type", table.get("crate_type")) or ())
            targets.append(Target(table["name"], _path(path), kinds, _required_features(table)))
        _check_unique(targets, key, display)
        out.append(tuple(sorted(targets, key=lambda t: t.name)))
    return tuple(out), declared_paths


def build_script(
    crate_dir: str, package: dict[str, Any], display: str, tree: _Tree | None = None
) -> PurePosixPath | None:
    """cargo's normalize_build: `build = false` none, `true` build.rs, a path that file
    (existing or not), unset build.rs when it is a file."""
    build = package.get("build")
    if build is False:
        return None
    if build is True:
        return _path(_BUILD_RS)
    if isinstance(build, str):
        return _path(normalize(build))
    if isinstance(build, list) and build and all(isinstance(b, str) for b in build):
        # several build scripts (unstable `multiple-build-scripts`): the first one
        return _path(normalize(build[0]))
    if build is not None:
        raise ManifestError(
            f"{display}: package.build must be true, false or a path: fix the value (cargo rejects it too)"
        )
    entry = (tree or _Tree(crate_dir)).listing("").get(_BUILD_RS)
    return _path(_BUILD_RS) if entry is not None and not entry[0] else None


def discover(
    crate_dir: str,
    manifest: dict[str, Any],
    package: dict[str, Any],
    *,
    name: str,
    edition: str,
    display: str,
) -> Targets:
    """Every target of the manifest at crate_dir, as cargo 1.95 finds them."""
    tree = _Tree(crate_dir)
    lib = _lib(tree, manifest, package, name=name, edition=edition, display=display)
    bins = _bins(
        tree, manifest, package, name=name, edition=edition, has_lib=lib is not None, display=display
    )
    (examples, tests, benches), declared_other = _others(
        tree, manifest, package, edition=edition, display=display
    )
    build = build_script(crate_dir, package, display, tree)
    return Targets(
        lib=lib,
        bins=tuple(bins),
        examples=examples,
        tests=tests,
        benches=benches,
        build_script=build,
        required_paths=required_paths(lib, bins, declared_other, build, inferred=[*examples, *tests, *benches]),
    )


def required_paths(
    lib: Target | None,
    bins: list[Target],
    declared_other: list[str],
    build: PurePosixPath | None = None,
    inferred: Sequence[Target] = (),
) -> tuple[str, ...]:
    """The files that, created empty where the crate's sources are absent, let cargo load
    the manifest with the same lib, bins and build script, and build the other members.

    Each of the lib's and bins' files: a declared target without `path` needs its inferred
    file ("can't find library", "can't find bin"), and an inferred one comes back only if its
    file exists. The build script: a package with `links` must have one ("package specifies
    that it links to `nix` but does not have a custom build script", nickel-lang-core), and
    build.rs counts only if it exists. The files of [[example]], [[test]] and [[bench]]
    tables: without them `cargo metadata` still loads the workspace but
    `cargo build -p <any member>` fails. The examples, tests and benches cargo infers from
    their directories are left out: cargo drops them quietly when absent, and adding one
    must not change the flake. Unless they are all the crate has (a crate of examples alone,
    no lib, no bin: cargo 1.95 accepts it): with them absent cargo finds no target ("no
    targets specified in the manifest"), so the first one (`inferred`) is listed. A declared
    `path` is listed too (cargo does not need it, an empty file there does no harm)."""
    paths = ([str(lib.path)] if lib else []) + [str(b.path) for b in bins] + declared_other
    if not paths and inferred:
        paths.append(str(inferred[0].path))
    if build is not None:
        paths.append(str(build))
    return tuple(sorted(set(paths)))
