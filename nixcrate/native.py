"""Native requirements: which nixpkgs packages a closure's crates need to build.

The knowledge is data, `nixcrate/data/native.toml` (crate name -> nativeBuildInputs,
buildInputs, env), read once. `[native."crate"]` tables in nixcrate.toml extend an
entry, or replace it with `replace = true`. A requirement goes only into the closures
that compile its crate (nixcrate.resolve: features and platform resolved as cargo does).

Crates the table does not know are reported when they look native. The signal offline
is weak: Cargo.lock (v3, v4) records no `links` key, so the `-sys` name convention is
the main one; `links` is known only from manifests we can read (in-tree crates, and
vendored or registry sources when the caller has them).
"""

from __future__ import annotations

import functools
import importlib.resources
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nixcrate.config import FILENAME, NativeOverride
from nixcrate.errors import ConfigError
from nixcrate.values import ATTR_PATH, ENV_NAME

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from nixcrate.workspace import Workspace

TABLE_FILE = "native.toml"

_ENTRY_KEYS = (
    "reason",
    "native-build-inputs",
    "build-inputs",
    "env",
    "lambda-native-build-inputs",
    "lambda-build-inputs",
    "lambda-env",
    "lambda-bundled",
)

_NIX_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_'-]*$")
_NIX_KEYWORDS = frozenset({"assert", "else", "if", "in", "inherit", "let", "or", "rec", "then", "with"})
# Env templates: {attr.path} is a package reference, {{ and }} are literal braces.
_TEMPLATE_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
# Cargo's convention names the package that links a native library `<library>-sys`
# (https://doc.rust-lang.org/cargo/reference/build-scripts.html#-sys-packages): openssl-sys,
# libz-sys, aws-lc-sys, onig_sys. Forks keep the name and add a tag after it: cairo-sys-rs,
# libsodium-sys-stable, ffmpeg-sys-next, foo-sys-2. Any other word after `-sys-` names a
# companion crate (jni-sys-macros is a proc-macro), and sys-info or sysinfo are not -sys crates.
_SYS_NAME = re.compile(r"[-_]sys(?:[-_](?:rs|next|stable|\d+))?$")


# --------------------------------------------------------------------------- rendering


def nix_attr(path: str) -> str:
    """`llvmPackages.libclang` -> `pkgs.llvmPackages.libclang`; quotes names that need it."""
    parts = [p if _NIX_IDENT.match(p) and p not in _NIX_KEYWORDS else f'"{_nix_literal(p)}"' for p in path.split(".")]
    return "pkgs." + ".".join(parts)


def _nix_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")


def _parse_template(template: str) -> list[tuple[str, str]]:
    """[("text", ...), ("attr", ...)]; ValueError on a stray brace or a bad attribute path."""
    out: list[tuple[str, str]] = []
    pos = 0
    for m in _TEMPLATE_TOKEN.finditer(template):
        if m.start() > pos:
            out.append(("text", template[pos : m.start()]))
        token = m.group(0)
        if token in ("{{", "}}"):
            out.append(("text", token[0]))
        elif m.group(1) is not None and ATTR_PATH.match(m.group(1)):
            out.append(("attr", m.group(1)))
        else:
            raise ValueError(
                f"{template!r}: '{token}' is not a package reference like {{protobuf}} (write {{{{ or }}}} for a brace)"
            )
        pos = m.end()
    if pos < len(template):
        out.append(("text", template[pos:]))
    merged: list[tuple[str, str]] = []
    for kind, value in out:  # one text part between references, so escaping sees all of it
        if kind == "text" and merged and merged[-1][0] == "text":
            merged[-1] = ("text", merged[-1][1] + value)
        else:
            merged.append((kind, value))
    return merged


def template_attrs(template: str) -> tuple[str, ...]:
    """The nixpkgs attribute paths an env template refers to, in order."""
    return tuple(value for kind, value in _parse_template(template) if kind == "attr")


def nix_env_value(template: str) -> str:
    """An env template as a Nix string: "{protobuf}/bin/protoc" -> "${pkgs.protobuf}/bin/protoc"."""
    parts = _parse_template(template)
    body: list[str] = []
    for i, (kind, value) in enumerate(parts):
        if kind == "attr":
            body.append("${" + nix_attr(value) + "}")
            continue
        text = _nix_literal(value)
        if text.endswith("$") and i + 1 < len(parts):
            # a '$' right before an interpolation would read as '$${': escape it
            text = text[:-1] + "\\$"
        body.append(text)
    return '"' + "".join(body) + '"'


# --------------------------------------------------------------------------- model


def normalize(crate: str) -> str:
    """crates.io treats '-' and '_' (and case) as the same name: `onig-sys` is `onig_sys`."""
    return crate.replace("_", "-").lower()


def looks_native(crate: str) -> bool:
    # "sys" first: most names lack it, and the substring test is far cheaper than the search
    return "sys" in crate and bool(_SYS_NAME.search(crate))


@dataclass(frozen=True, slots=True)
class NativeEntry:
    """One crate's requirements, from the table, nixcrate.toml, or both (`origin`)."""

    crate: str
    reason: str
    native_build_inputs: tuple[str, ...] = ()
    build_inputs: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # (NAME, template), sorted
    lambda_native_build_inputs: tuple[str, ...] = ()
    lambda_build_inputs: tuple[str, ...] = ()
    lambda_env: tuple[tuple[str, str], ...] = ()
    origin: str = "table"  # table | nixcrate.toml | table+nixcrate.toml
    # In a handlers' closure the entry gives nothing, so the crate compiles its bundled copy:
    # a static library, where one linked from nixpkgs would need a .so Lambda does not have.
    lambda_bundled: bool = False

    @property
    def needs_nothing(self) -> bool:
        return not (
            self.native_build_inputs
            or self.build_inputs
            or self.env
            or self.lambda_native_build_inputs
            or self.lambda_build_inputs
            or self.lambda_env
        )

    def attrs(self) -> frozenset[str]:
        """Every nixpkgs attribute path the entry names, env references included."""
        names = {
            *self.native_build_inputs,
            *self.build_inputs,
            *self.lambda_native_build_inputs,
            *self.lambda_build_inputs,
        }
        for _, template in (*self.env, *self.lambda_env):
            names.update(template_attrs(template))
        return frozenset(names)

    def applied(self, *, lambda_closure: bool) -> AppliedEntry:
        if lambda_closure and self.lambda_bundled:
            return AppliedEntry(self.crate, f"bundled in handlers: {self.reason}", (), (), (), self.origin)
        if not lambda_closure:
            return AppliedEntry(
                self.crate, self.reason, self.native_build_inputs, self.build_inputs, self.env, self.origin
            )
        env = dict(self.env)
        env.update(self.lambda_env)
        return AppliedEntry(
            crate=self.crate,
            reason=self.reason,
            native_build_inputs=_uniq(self.native_build_inputs + self.lambda_native_build_inputs),
            build_inputs=_uniq(self.build_inputs + self.lambda_build_inputs),
            env=tuple(sorted(env.items())),
            origin=self.origin,
        )


@dataclass(frozen=True, slots=True)
class AppliedEntry:
    """An entry as it applies to one closure (Lambda-only fields folded in or left out)."""

    crate: str
    reason: str
    native_build_inputs: tuple[str, ...]
    build_inputs: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    origin: str


@dataclass(frozen=True, slots=True)
class NativeTable:
    """The native table, indexed by normalized crate name."""

    entries: tuple[NativeEntry, ...]  # sorted by crate
    _index: dict[str, NativeEntry] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {normalize(e.crate): e for e in self.entries})

    def get(self, crate: str) -> NativeEntry | None:
        return self._index.get(normalize(crate))

    def __len__(self) -> int:
        return len(self.entries)


@dataclass(frozen=True, slots=True)
class UnknownNativeCrate:
    """A crate that looks native (a -sys name or a `links` key) and has no table entry."""

    crate: str
    links: str | None = None

    @property
    def signal(self) -> str:
        return f'links = "{self.links}"' if self.links else "a -sys crate"

    @property
    def message(self) -> str:
        return (
            f"{self.crate}: {self.signal} nixcrate has no native requirements for: "
            f'add [native."{self.crate}"] to {FILENAME} (or replace = true if it needs nothing)'
        )

    @property
    def override_text(self) -> str:
        """A nixcrate.toml table to start from; the library name is a guess."""
        guess = self.links or _SYS_NAME.sub("", self.crate, count=1) or self.crate
        return "\n".join(
            [
                f'[native."{self.crate}"]',
                f'reason = "links {guess}"',
                'native-build-inputs = ["pkg-config"]',
                f'build-inputs = ["{guess}"]  # a guess from the crate name: check the nixpkgs attribute',
            ]
        )


@dataclass(frozen=True, slots=True)
class NativeRequirements:
    """What one closure needs: sorted, deduplicated; `applied` says which crate asked."""

    native_build_inputs: tuple[str, ...]
    build_inputs: tuple[str, ...]
    env: tuple[tuple[str, str], ...]  # (NAME, template), sorted by name
    applied: tuple[AppliedEntry, ...]  # sorted by crate
    unknown: tuple[UnknownNativeCrate, ...]  # sorted by crate

    @property
    def is_empty(self) -> bool:
        return not (self.native_build_inputs or self.build_inputs or self.env)

    def triggered_by(self, item: str) -> tuple[str, ...]:
        """Crates that asked for an attribute path (either list) or an env variable name."""
        return tuple(
            a.crate
            for a in self.applied
            if item in a.native_build_inputs
            or item in a.build_inputs
            or any(name == item for name, _ in a.env)
        )

    def nix_native_build_inputs(self) -> list[str]:
        return [nix_attr(a) for a in self.native_build_inputs]

    def nix_build_inputs(self) -> list[str]:
        return [nix_attr(a) for a in self.build_inputs]

    def nix_env(self) -> list[tuple[str, str]]:
        return [(name, nix_env_value(template)) for name, template in self.env]


# --------------------------------------------------------------------------- loading


def _uniq(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _attr_list(value: Any, where: str, fail: type[Exception]) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail(f"{where}: expected a list of nixpkgs attribute names: fix the value")
    for v in value:
        if not ATTR_PATH.match(v):
            raise fail(
                f'{where}: {v!r} is not a nixpkgs attribute path like "pkg-config" or "llvmPackages.libclang": fix the value'
            )
    return _uniq(value)


def _env_table(value: Any, where: str, fail: type[Exception]) -> tuple[tuple[str, str], ...]:
    if isinstance(value, tuple):  # NativeOverride.env, already pairs
        value = dict(value)
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise fail(f"{where}: expected a table of strings: fix the value")
    for name, template in value.items():
        if not ENV_NAME.match(name):
            raise fail(f"{where}: {name!r} is not an environment variable name: use letters, digits and '_'")
        try:
            _parse_template(template)
        except ValueError as exc:
            raise fail(f"{where}.{name}: {exc}") from None
    return tuple(sorted(value.items()))


class TableError(Exception):
    """The shipped native.toml is malformed: a bug in nixcrate, not a user error."""


def parse_table(data: Mapping[str, Any], source: str = TABLE_FILE) -> NativeTable:
    unknown_top = set(data) - {"native"}
    if unknown_top:
        raise TableError(f"{source}: unknown top-level keys {sorted(unknown_top)}")
    raw = data.get("native", {})
    entries: list[NativeEntry] = []
    seen: dict[str, str] = {}
    for crate, body in raw.items():
        where = f'{source}: native."{crate}"'
        key = normalize(crate)
        if key in seen:
            raise TableError(
                f"{where}: same crate as native.\"{seen[key]}\" ('-'/'_' and case do not matter)"
            )
        seen[key] = crate
        if not isinstance(body, dict):
            raise TableError(f"{where}: expected a table")
        extra = set(body) - set(_ENTRY_KEYS)
        if extra:
            raise TableError(f"{where}: unknown keys {sorted(extra)}")
        reason = body.get("reason")
        if not isinstance(reason, str) or not reason.strip() or "\n" in reason:
            raise TableError(f"{where}: needs a one-line reason")
        entries.append(
            NativeEntry(
                crate=crate,
                reason=reason,
                native_build_inputs=_attr_list(
                    body.get("native-build-inputs", []), f"{where}.native-build-inputs", TableError
                ),
                build_inputs=_attr_list(body.get("build-inputs", []), f"{where}.build-inputs", TableError),
                env=_env_table(body.get("env", {}), f"{where}.env", TableError),
                lambda_native_build_inputs=_attr_list(
                    body.get("lambda-native-build-inputs", []),
                    f"{where}.lambda-native-build-inputs",
                    TableError,
                ),
                lambda_build_inputs=_attr_list(
                    body.get("lambda-build-inputs", []), f"{where}.lambda-build-inputs", TableError
                ),
                lambda_env=_env_table(body.get("lambda-env", {}), f"{where}.lambda-env", TableError),
                lambda_bundled=_flag(body.get("lambda-bundled", False), f"{where}.lambda-bundled"),
            )
        )
    return NativeTable(tuple(sorted(entries, key=lambda e: e.crate)))


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise TableError(f"{where}: expected true or false")
    return value


@functools.cache
def load_table() -> NativeTable:
    """The table shipped in the package, read once."""
    text = importlib.resources.files("nixcrate.data").joinpath(TABLE_FILE).read_text(encoding="utf-8")
    return parse_table(tomllib.loads(text))


def _override_entry(crate: str, ov: NativeOverride, base: NativeEntry | None) -> NativeEntry:
    where = f'{FILENAME}: native."{crate}"'
    nbi = _attr_list(list(ov.native_build_inputs), f"{where}.native-build-inputs", ConfigError)
    bi = _attr_list(list(ov.build_inputs), f"{where}.build-inputs", ConfigError)
    env = _env_table(ov.env, f"{where}.env", ConfigError)
    l_nbi = _attr_list(list(ov.lambda_native_build_inputs), f"{where}.lambda-native-build-inputs", ConfigError)
    l_bi = _attr_list(list(ov.lambda_build_inputs), f"{where}.lambda-build-inputs", ConfigError)
    l_env = _env_table(ov.lambda_env, f"{where}.lambda-env", ConfigError)
    lambda_only = {"lambda_native_build_inputs": l_nbi, "lambda_build_inputs": l_bi, "lambda_env": l_env}
    if base is None:
        return NativeEntry(crate, ov.reason or f"set in {FILENAME}", nbi, bi, env, origin=FILENAME, **lambda_only)
    if ov.replace:
        return NativeEntry(base.crate, ov.reason or f"replaced in {FILENAME}", nbi, bi, env, origin=FILENAME, **lambda_only)
    merged_env = dict(base.env)
    merged_env.update(env)
    return NativeEntry(
        crate=base.crate,
        reason=ov.reason or base.reason,
        native_build_inputs=_uniq(base.native_build_inputs + nbi),
        build_inputs=_uniq(base.build_inputs + bi),
        env=tuple(sorted(merged_env.items())),
        lambda_native_build_inputs=_uniq(base.lambda_native_build_inputs + l_nbi),
        lambda_build_inputs=_uniq(base.lambda_build_inputs + l_bi),
        lambda_env=tuple(sorted({**dict(base.lambda_env), **dict(l_env)}.items())),
        origin=f"table+{FILENAME}",
        lambda_bundled=base.lambda_bundled,
    )


def with_overrides(table: NativeTable, overrides: Iterable[tuple[str, NativeOverride]]) -> NativeTable:
    """The table with nixcrate.toml's [native."crate"] tables applied (extend, or replace);
    their names and values were checked when nixcrate.toml was read (config.SCHEMA)."""
    by_key = {normalize(e.crate): e for e in table.entries}
    for crate, ov in overrides:
        key = normalize(crate)
        by_key[key] = _override_entry(crate, ov, by_key.get(key))
    return NativeTable(tuple(sorted(by_key.values(), key=lambda e: e.crate)))


@functools.lru_cache(maxsize=32)
def _merged(overrides: tuple[tuple[str, NativeOverride], ...]) -> NativeTable:
    return with_overrides(load_table(), overrides)


# --------------------------------------------------------------------------- per closure


def requirements_for(
    crate_names: Iterable[str],
    *,
    lambda_closure: bool,
    overrides: Iterable[tuple[str, NativeOverride]] | Mapping[str, NativeOverride] = (),
    links: Mapping[str, str] | None = None,
) -> NativeRequirements:
    """The native requirements of one closure.

    crate_names: the closure's crates (`Closure.crate_names`).
    lambda_closure: True for the Lambda closure (built with cargo-zigbuild): adds lambda-* fields.
    overrides: nixcrate.toml's `Config.native` (pairs), or a crate -> NativeOverride mapping.
    links: crate name -> `links` value from the manifests we could read (`links_signal`);
        consulted only for crates in crate_names (add in-tree crates there to check them).
    """
    pairs = overrides.items() if isinstance(overrides, Mapping) else overrides
    table = _merged(tuple(pairs))
    links = dict(links or {})
    names = sorted(set(crate_names))
    applied: list[AppliedEntry] = []
    unknown: list[UnknownNativeCrate] = []
    for name in names:
        entry = table.get(name)
        if entry is not None:
            if not entry.needs_nothing:
                applied.append(entry.applied(lambda_closure=lambda_closure))
        elif looks_native(name) or name in links:
            unknown.append(UnknownNativeCrate(name, links.get(name)))
    env: dict[str, tuple[str, str]] = {}  # NAME -> (template, crate)
    for a in applied:
        for name, template in a.env:
            if name in env and env[name][0] != template:
                other_value, other = env[name]
                raise ConfigError(
                    f"{FILENAME}: crates {other} and {a.crate} set {name} to different values "
                    f'({other_value!r}, {template!r}): give both the same value in [native."{other}"] and [native."{a.crate}"]'
                )
            env.setdefault(name, (template, a.crate))
    return NativeRequirements(
        native_build_inputs=tuple(sorted({x for a in applied for x in a.native_build_inputs})),
        build_inputs=tuple(sorted({x for a in applied for x in a.build_inputs})),
        env=tuple(sorted((name, value[0]) for name, value in env.items())),
        applied=tuple(applied),
        unknown=tuple(unknown),
    )


def links_signal(ws: Workspace, source_dirs: Iterable[Path] = ()) -> dict[str, str]:
    """crate name -> `links`, from every manifest we can read offline.

    In-tree crates always; plus crate sources under `source_dirs` (a `cargo vendor`
    directory, or `~/.cargo/registry/src/<index>`), one crate per subdirectory.
    Unreadable manifests are skipped: this is a hint, not a requirement.
    """
    found = {c.name: c.links for c in ws.crates if c.links}
    for root in source_dirs:
        try:
            subdirs = sorted(p for p in root.iterdir() if p.is_dir())
        except OSError:
            continue
        for sub in subdirs:
            try:
                package = tomllib.loads((sub / "Cargo.toml").read_text(encoding="utf-8")).get("package", {})
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                continue
            name, value = package.get("name"), package.get("links")
            if isinstance(name, str) and isinstance(value, str):
                found.setdefault(name, value)
    return dict(sorted(found.items()))
