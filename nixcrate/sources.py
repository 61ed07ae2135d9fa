"""What each crate's builds read: the paths of the workspace a package's or check's source
keeps for it, so that an edit to anything else (a CHANGELOG, a README, CI files, benchmark
scripts) changes no derivation.

Who reads a crate's files when it is compiled: cargo (manifests, the lock, `.cargo/config.toml`:
every source has those), rustc (its `.rs` files, and what `include_str!`, `include_bytes!`,
`include!` and `#[path]` name), proc-macros (files they are told of or find by convention:
sqlx's `migrations/`, askama's `templates/`, `include_dir!`, rust-embed's `#[folder]`), its
tests at run time (fixtures), and its build script, which may read anything. So, per crate
(its directory minus the crates nested in it):

- a crate with a build script keeps its whole directory, unless nixcrate.toml says what the
  script reads (`extra-src`) or that it reads only the crate's code (`source = "code"`);
- `source = "whole"` keeps any crate's whole directory;
- any other crate keeps its code: every `.rs` file at its top and every top-level directory
  holding a `.rs` file (whole: the data, templates and fixtures beside its modules go with
  them), its top-level `*.toml` files (configuration: rustfmt, clippy, askama), the
  directories proc-macros read by convention (CONVENTIONAL), and every path a string literal
  of its `.rs` files names: resolved from the file's directory or the crate's (`"../README.md"`,
  `concat!(env!("CARGO_MANIFEST_DIR"), "/data")`, `"$CARGO_MANIFEST_DIR/assets"`), and any
  top-level entry a literal holds as one of its path segments (`format!("{}/fixtures/{}", ..)`).
  `tests/`, `benches/` and `examples/` (and what only their files name) go into its own checks'
  sources, not into its packages'.

Every crate, whole or not, also keeps the files outside its directory it reads: the targets
declared there (`[[bin]] path = "../tools/x.rs"`: that file's directory, or the file alone
beside other crates or the workspace root, with the modules it declares, `mod x;` and
`#[path]`, transitively, and what their literals name), the paths its literals name there,
and its `extra-src`. A literal that names nothing is left alone: the
rule keeps more than a build reads, never less, short of a reader that names no path at all
(a proc-macro reading a directory of its own choosing): `extra-src` or `source = "whole"`.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nixcrate.targets import normalize

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from nixcrate.config import Config
    from nixcrate.workspace import Crate, Workspace

# Read by proc-macros when no literal names them: askama/rinja/sailfish templates, sqlx's,
# diesel's and refinery's migrations, sqlx's offline query data, rust-i18n's locales, and
# the .env file dotenvy's `dotenv!` and sqlx read at compile time.
CONVENTIONAL = ("templates", "migrations", ".sqlx", "sqlx-data.json", "locales", "i18n", ".env")
# Template engines whose configuration names further template directories (`[general] dirs`).
TEMPLATE_CONFIGS = ("askama.toml", "rinja.toml")
# Directories of targets only a crate's own checks compile.
CHECK_DIRS = ("tests", "benches", "examples")
# What clippy and rustfmt read from a crate's directory and those above it (each looks
# upwards): in the checks' sources (lint_configs), not the packages'.
CLIPPY_CONFIGS = ("clippy.toml", ".clippy.toml")
RUSTFMT_CONFIGS = ("rustfmt.toml", ".rustfmt.toml")
# Never searched for `.rs` files: build output, JavaScript dependencies, dot-directories (.git).
_SKIPPED_DIRS = ("target", "node_modules")


@dataclass(frozen=True, slots=True)
class CrateSource:
    """What a crate puts into the sources of the builds that compile it (root-relative paths)."""

    name: str
    src: tuple[str, ...]  # what every build compiling it reads (its directory when `whole`)
    check_src: tuple[str, ...]  # what its own checks read besides (tests, benches, examples)
    whole: str | None  # why it keeps its whole directory; None: its code only
    # A whole crate's build script's literals that name files of the crate the code rule
    # would leave out: what `extra-src` would likely list (init's hint).
    build_script_names: tuple[str, ...] = ()


# --------------------------------------------------------------------------- Rust literals

_TOKEN = re.compile(
    r"""
      //[^\n]*                                          # a line comment
    | /\*(?:[^*]|\*(?!/))*\*/                           # a block comment
    | b?r(?P<hashes>\#*)"(?P<raw>.*?)"(?P=hashes)       # a raw string
    | b?"(?P<text>(?:[^"\\]|\\.)*)"                     # a string
    | b?'(?:[^'\\\n]|\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F_]{1,6}\}|.))'   # a character
    | '[A-Za-z_][A-Za-z0-9_]*                           # a lifetime or a label
    """,
    re.DOTALL | re.VERBOSE,
)
_PATHLIKE = re.compile(r"^[^\s\"'<>|]{1,255}$")


# What names a module's file: `#[path = "..."]`, `mod name;` and the braces of inline
# modules (`mod name { mod inner; }` looks for name/inner.rs), comments and literals skipped.
_MODULE_TOKEN = re.compile(
    r"""
      //[^\n]*
    | /\*(?:[^*]|\*(?!/))*\*/
    | \#\s*\[\s*path\s*=\s*"(?P<path>(?:[^"\\]|\\.)*)"\s*\]
    | b?r(?P<hashes>\#*)".*?"(?P=hashes)
    | b?"(?:[^"\\]|\\.)*"
    | b?'(?:[^'\\\n]|\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F_]{1,6}\}|.))'
    | '[A-Za-z_][A-Za-z0-9_]*
    | \bmod\s+(?:r\#)?(?P<mod>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<end>[;{])
    | (?P<brace>[{}])
    """,
    re.DOTALL | re.VERBOSE,
)


def module_files(text: str) -> Iterator[tuple[str, str, str | None]]:
    """The out-of-line modules (`mod name;`) a Rust file declares: (the inline modules around
    the declaration, joined with '/'; the module's name; its `#[path]` as written, or None)."""
    inline: list[str | None] = []  # per open brace: the inline module it opens, or None
    path: str | None = None
    for m in _MODULE_TOKEN.finditer(text):
        if m.group("path") is not None:
            path = m.group("path")
            continue
        if m.group("mod") is not None:
            if m.group("end") == ";":
                yield "/".join(n for n in inline if n is not None), m.group("mod"), path
            else:  # an inline module: `mod a { mod b; }` looks for a/b.rs (a #[path] on it: not followed)
                inline.append(m.group("mod") if path is None else None)
        elif m.group("brace") == "{":
            inline.append(None)
        elif m.group("brace") == "}":
            if inline:
                inline.pop()
        else:
            continue  # a comment or a literal between `#[path]` and its `mod`
        path = None


def string_literals(text: str) -> Iterator[str]:
    """The string literals of Rust source text, comments and character literals skipped
    (a `'"'` does not open a string). Escapes are left as written: paths rarely have any."""
    for m in _TOKEN.finditer(text):
        value = m.group("raw") if m.group("raw") is not None else m.group("text")
        if value is not None and _PATHLIKE.match(value):
            yield value


# --------------------------------------------------------------------------- the tree


class _Tree:
    """The workspace's directories, each listed at most once (name -> is a directory)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._listings: dict[str, dict[str, bool]] = {}

    def listing(self, rel: str) -> dict[str, bool]:
        found = self._listings.get(rel)
        if found is None:
            try:
                with os.scandir(self.root if rel == "." else os.path.join(self.root, rel)) as entries:
                    found = {e.name: e.is_dir() for e in entries}
            except (FileNotFoundError, NotADirectoryError, PermissionError):
                found = {}
            self._listings[rel] = found
        return found

    def kind(self, rel: str) -> bool | None:
        """True for a directory, False for a file, None when rel (collapsed, in the tree) is absent."""
        if rel == ".":
            return True
        parent, _, name = rel.rpartition("/")
        return self.listing(parent or ".").get(name)


def _join(base: str, rel: str) -> str:
    return normalize(rel if base == "." else f"{base}/{rel}")


def _under(path: str, ancestor: str) -> bool:
    return ancestor == "." or path == ancestor or path.startswith(ancestor + "/")


def _prune(paths: Iterable[str]) -> tuple[str, ...]:
    """Sorted, each path once, none inside another of them."""
    kept: list[str] = []
    for p in sorted(set(paths)):
        if not any(_under(p, k) for k in kept):
            kept.append(p)
    return tuple(kept)


# --------------------------------------------------------------------------- one crate


@dataclass
class _Found:
    """What one crate's files name, by who reads it: its builds, or only its own checks."""

    build: set[str]
    checks: set[str]
    build_script: set[str]


class _Crate:
    def __init__(self, tree: _Tree, crate: Crate, generated: set[str]) -> None:
        self.tree = tree
        self.crate = crate
        self.dir = crate.path.as_posix()
        self.generated = generated  # nixcrate's and Nix's files, never anyone's source
        self.set_nested(set())

    def set_nested(self, nested: set[str]) -> None:
        """What in the crate's directory is another's (root-relative): left out of its code."""
        self.nested = nested
        self.top = {
            name: is_dir
            for name, is_dir in self.tree.listing(self.dir).items()
            if _join(self.dir, name) not in nested and not self.is_generated(_join(self.dir, name))
        }
        self._rs: list[tuple[str, str]] | None = None

    def is_generated(self, path: str) -> bool:
        return any(_under(path, g) for g in self.generated)

    def rel(self, name: str) -> str:
        return _join(self.dir, name)

    def rs_files(self) -> list[tuple[str, str]]:
        """(root-relative file, its top-level entry) for every `.rs` file of the crate."""
        if self._rs is None:
            self._rs = list(self._walk_rs())
        return self._rs

    def _walk_rs(self) -> Iterator[tuple[str, str]]:
        for name, is_dir in sorted(self.top.items()):
            if not is_dir:
                if name.endswith(".rs"):
                    yield self.rel(name), name
                continue
            if name.startswith(".") or name in _SKIPPED_DIRS:
                continue
            stack = [self.rel(name)]
            while stack:
                d = stack.pop()
                for entry, sub_dir in sorted(self.tree.listing(d).items()):
                    path = f"{d}/{entry}"
                    if path in self.nested:
                        continue
                    if sub_dir:
                        if not entry.startswith(".") and entry not in _SKIPPED_DIRS:
                            stack.append(path)
                    elif entry.endswith(".rs"):
                        yield path, name

    def check_only(self, top: str) -> bool:
        """A top-level entry only the crate's own checks read: tests/, benches/, examples/
        (unless the lib, a bin or the build script lives there)."""
        if top not in CHECK_DIRS:
            return False
        roots = [t.path for t in (*([self.crate.lib] if self.crate.lib else []), *self.crate.bins)]
        if self.crate.build_script is not None:
            roots.append(self.crate.build_script)
        return not any(str(r).split("/", 1)[0] == top for r in roots)

    def resolve(self, literal: str, file_dir: str) -> Iterator[str]:
        """The existing paths of the workspace a literal of a file in file_dir names."""
        text, rooted = literal, False
        for prefix in ("$CARGO_MANIFEST_DIR", "${CARGO_MANIFEST_DIR}"):
            if text.startswith(prefix):
                text, rooted = text[len(prefix) :], True
        if text.startswith("/"):  # concat!(env!("CARGO_MANIFEST_DIR"), "/x"), wasm-bindgen's module = "/js/x.js"
            text, rooted = text.lstrip("/"), True
        parts = []
        for part in text.split("/"):  # a glob names the directory before its first pattern
            if any(ch in part for ch in "*?[{"):
                break
            parts.append(part)
        text = "/".join(parts)
        if not text or text in (".", ".."):
            return
        bases = [self.dir] if rooted else [file_dir, self.dir, self.rel("src")]
        for base in dict.fromkeys(bases):
            path = _join(base, text)
            if path.startswith(("../", "/")) or path == ".." or _under(self.dir, path) or self.is_generated(path):
                continue  # outside the workspace, or the crate's own directory or one above it
            if path.split("/", 1)[0] in _SKIPPED_DIRS or self.tree.kind(path) is None:
                continue
            yield path

    def segments(self, literal: str) -> Iterator[str]:
        """Top-level entries of the crate a literal holds as a path segment."""
        for part in re.split(r"[/\\]", literal):
            if part and part not in (".", "..") and part in self.top:
                yield self.rel(part)

    def found(self) -> _Found:
        """Every path the crate's `.rs` files name, by the origin of the naming file."""
        found = _Found(set(), set(), set())
        script = _join(self.dir, str(self.crate.build_script)) if self.crate.build_script else None
        for path, top in self.rs_files():
            try:
                with open(os.path.join(self.tree.root, path), encoding="utf-8", errors="replace") as f:
                    text = f.read()
            except OSError:
                continue  # unreadable: the build names it; the crate keeps the file's directory anyway
            into = found.checks if self.check_only(top) else found.build
            file_dir = path.rpartition("/")[0] or "."
            for literal in string_literals(text):
                named = [*self.resolve(literal, file_dir), *self.segments(literal)]
                into.update(named)
                if path == script:
                    found.build_script.update(named)
        # A module file outside the crate (`#[path = "../../shared/util.rs"] mod util;`) brings its
        # own modules and what it names.
        for into in (found.build, found.checks):
            into.update(*(self.modules_of(p) for p in list(into) if p.endswith(".rs") and not _under(p, self.dir)))
        return found

    def modules_of(self, root_file: str) -> set[str]:
        """A target's file outside the crate's directory (root-relative) and what it pulls in,
        as rustc and the literals of each file name them: its modules' files, transitively
        (`mod x;`: x.rs or x/mod.rs; `#[path]`), and the paths their literals name
        (`include_str!("../data.txt")`). The code rule's directories do not reach them."""
        kept: set[str] = set()
        pending = [(root_file, True)]  # (file, whether its modules live beside it, as a crate root's or mod.rs's)
        while pending:
            path, mod_rs = pending.pop()
            if path in kept or path.startswith("../") or self.tree.kind(path) is not False or self.is_generated(path):
                continue
            kept.add(path)
            try:
                with open(os.path.join(self.tree.root, path), encoding="utf-8", errors="replace") as f:
                    text = f.read()
            except OSError:
                continue
            file_dir = path.rpartition("/")[0] or "."
            module_dir = file_dir if mod_rs else _join(file_dir, path.rpartition("/")[2].removesuffix(".rs"))
            for inline, name, attr in module_files(text):
                if attr is not None:
                    child = _join(_join(module_dir, inline) if inline else file_dir, attr)
                    pending.append((child, True))
                    continue
                base = _join(module_dir, inline) if inline else module_dir
                pending += [(_join(base, f"{name}.rs"), False), (_join(base, f"{name}/mod.rs"), True)]
            for literal in string_literals(text):
                kept.update(self.resolve(literal, file_dir))
        return kept

    def targets_outside(self) -> tuple[set[str], set[str]]:
        """The files of targets declared outside the crate's directory, (build, checks): each
        one's directory, or the file alone where that directory holds crates or the workspace."""
        build: set[str] = set()
        checks: set[str] = set()
        lib = [self.crate.lib] if self.crate.lib else []
        for into, targets in (
            (build, [*lib, *self.crate.bins]),
            (checks, [*self.crate.examples, *self.crate.tests, *self.crate.benches]),
        ):
            paths = [str(t.path) for t in targets]
            if into is build and self.crate.build_script is not None:
                paths.append(str(self.crate.build_script))
            for rel in paths:
                if not rel.startswith("../"):
                    continue
                path = _join(self.dir, rel)
                parent = path.rpartition("/")[0] or "."
                holds_crates = parent == "." or _under(self.dir, parent) or self.tree.kind(f"{parent}/Cargo.toml") is False
                into.add(path if holds_crates else parent)
                into.update(self.modules_of(path))
        return build, checks

    def code(self) -> set[str]:
        """The crate's code by the rule: top-level .rs and .toml files, directories holding
        .rs files, the directories proc-macros read by convention (build, not checks-only)."""
        kept = {self.unit(path) for path, top in self.rs_files() if not self.check_only(top)}
        kept.update(
            self.rel(n)
            for n, is_dir in self.top.items()
            # Cargo.toml is in every source already; the lint configs in the checks' (lint_configs)
            if not is_dir and n.endswith(".toml") and n not in ("Cargo.toml", *CLIPPY_CONFIGS, *RUSTFMT_CONFIGS)
        )
        kept.update(self.rel(n) for n in CONVENTIONAL if n in self.top)
        for config in TEMPLATE_CONFIGS:
            if self.top.get(config) is False:
                kept.update(self._template_dirs(config))
        return kept

    def checks_code(self) -> set[str]:
        return {self.unit(path) for path, top in self.rs_files() if self.check_only(top)}

    def unit(self, path: str) -> str:
        """What a `.rs` file keeps: the outermost directory above it in the crate that holds
        nothing of another's (the file alone at the crate's top)."""
        parts = path.split("/")
        start = 0 if self.dir == "." else len(self.dir.split("/"))
        for end in range(start + 1, len(parts)):
            candidate = "/".join(parts[:end])
            if not any(_under(n, candidate) for n in self.nested):
                return candidate
        return path

    def _template_dirs(self, config: str) -> Iterator[str]:
        try:
            with open(os.path.join(self.tree.root, self.rel(config)), "rb") as f:
                dirs = tomllib.load(f).get("general", {}).get("dirs", [])
        except (OSError, tomllib.TOMLDecodeError, AttributeError, RecursionError):
            return
        for d in dirs if isinstance(dirs, list) else []:
            if isinstance(d, str):
                yield from self.resolve(d, self.dir)


# --------------------------------------------------------------------------- the workspace


def _whole_reason(crate: Crate, config: Config) -> str | None:
    member = config.member(crate.name) if crate.is_member else None
    if member is not None and member.source == "whole":
        return 'nixcrate.toml sets source = "whole"'
    if crate.build_script is None:
        return None
    if member is not None and (member.source == "code" or member.extra_src):
        return None
    return f"its build script ({crate.build_script}) may read any file"


def compute(ws: Workspace, config: Config, generated: Iterable[str] = ()) -> dict[str, CrateSource]:
    """Every in-tree crate's sources (see the module's docstring), by name."""
    tree = _Tree(str(ws.root))
    generated_set = set(generated)
    crates = {c.name: _Crate(tree, c, generated_set) for c in ws.crates}
    outside = {name: one.targets_outside() for name, one in crates.items()}
    # What is another's inside a crate's directory: crates nested in it, the crates patched in
    # (in every source already), the files of other crates' targets declared there.
    others = {
        name: {
            *(c.path.as_posix() for c in ws.crates if c.name != name),
            *(p.as_posix() for p in ws.patch_paths),
            *(p for other, (build, checks) in outside.items() if other != name for p in (*build, *checks)),
        }
        for name in crates
    }
    out = {}
    for crate in ws.crates:
        one = crates[crate.name]
        d = one.dir
        one.set_nested({p for p in others[crate.name] if p != d and _under(p, d)})
        found = one.found()
        outside_build, outside_checks = outside[crate.name]
        extra = {normalize(p) for p in (config.member(crate.name).extra_src if crate.is_member else ())}
        whole = _whole_reason(crate, config)

        def inside(paths: set[str], d: str = d) -> set[str]:
            return {p for p in paths if _under(p, d)}

        if whole is None:
            build = one.code() | found.build | outside_build | extra
            checks = one.checks_code() | found.checks | outside_checks
            script_names: tuple[str, ...] = ()
        else:
            build = {d} | (found.build - inside(found.build)) | outside_build | extra
            checks = (found.checks - inside(found.checks)) | outside_checks
            script_names = _prune(inside(found.build_script) - one.code() - {d})
        src = _prune(build)
        check_src = tuple(p for p in _prune(checks) if not any(_under(p, s) for s in src))
        out[crate.name] = CrateSource(crate.name, src, check_src, whole, script_names)
    return out


def summary_lines(ws: Workspace, crate_sources: dict[str, CrateSource]) -> list[str]:
    """init's report: each crate that keeps its whole directory without being told to, why,
    and how to narrow it (what its build script's literals name, as a start)."""
    lines = []
    for crate in ws.crates:
        source = crate_sources[crate.name]
        if source.whole is None or source.whole.startswith("nixcrate.toml"):
            continue
        named = f" (it names {', '.join(source.build_script_names)})" if source.build_script_names else ""
        how = (
            f"set extra-src in [members.{crate.name}] of nixcrate.toml to what it reads{named}, or source = \"code\" if it reads only the crate's code"
            if crate.is_member
            else "it is a path dependency, not a member: no setting narrows it"
        )
        lines.append(f"sources: {crate.name} keeps its whole directory ({crate.path}): {source.whole}; {how}")
    return lines


def lint_configs(ws: Workspace) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """clippy's and rustfmt's configuration files (clippy's, rustfmt's) in the crates'
    directories and those above them, up to the workspace root: the checks read them."""
    tree = _Tree(str(ws.root))
    dirs: set[str] = {"."}
    for crate in ws.crates:
        parts = crate.path.as_posix().split("/")
        dirs.update("/".join(parts[:n]) for n in range(1, len(parts) + 1) if parts != ["."])

    def found(names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(_join(d, n) for d in dirs for n in names if tree.listing(d).get(n) is False))

    return found(CLIPPY_CONFIGS), found(RUSTFMT_CONFIGS)
