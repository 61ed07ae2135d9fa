"""nixcrate.toml: the user's file. Read (tomllib) and validated here, once.

Written on the first `init` (commented, every member's detected kind shown), never
rewritten afterwards: commands that must change it (`nixcrate hashes`) edit it with
tomlkit so the user's comments and layout survive.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from nixcrate import values
from nixcrate.errors import ConfigError
from nixcrate.workspace import MemberKind

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from nixcrate.workspace import Crate, Workspace

FILENAME = "nixcrate.toml"
DEFAULT_SYSTEMS = ("aarch64-darwin", "aarch64-linux", "x86_64-darwin", "x86_64-linux")
LAMBDA_ARCHES = ("x86_64", "arm64")
OPT_LEVELS = values.OPT_LEVELS


@dataclass(frozen=True, slots=True)
class MemberConfig:
    """[members.<name>] of nixcrate.toml."""

    kind: MemberKind | None = None
    arch: str = "x86_64"
    include: tuple[str, ...] = ()
    cargo_extra_args: tuple[str, ...] = ()  # the words of `cargo-extra-args`, as a shell splits them
    features: tuple[str, ...] = ()
    extra_src: tuple[str, ...] = ()
    native_build_inputs: tuple[str, ...] = ()
    build_inputs: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    # A library no member depends on: True gives it a package even when the build machine
    # cannot build it (nixcrate.host), False never; None lets nixcrate decide.
    package: bool | None = None
    # What its sources keep (nixcrate.sources): "code", "whole"; None lets nixcrate decide
    # (its whole directory when it has a build script and no extra-src, else its code).
    source: str | None = None
    # [members.<name>.checks]: CheckConfig fields set for this member, over [checks]
    checks: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class CheckConfig:
    """[checks] (every member) and [members.<name>.checks] (one member, over it): which of a
    member's checks `nix flake check` runs, and with which arguments."""

    clippy: bool = True
    # cargo clippy's arguments after `-p <member>` (crane's cargoClippyExtraArgs)
    clippy_args: tuple[str, ...] = ("--all-targets",)
    # "warn": clippy's own levels and the workspace's [lints] decide what fails;
    # "deny": any warning fails the check (`-- --deny warnings`)
    clippy_warnings: str = "warn"
    test: bool = True
    # cargo test's (cargo nextest run's) arguments after `-p <member>`
    test_args: tuple[str, ...] = ()

    def clippy_words(self) -> tuple[str, ...]:
        """cargo clippy's arguments, `--deny warnings` first among clippy's own when asked for."""
        if self.clippy_warnings != "deny":
            return self.clippy_args
        cut = self.clippy_args.index("--") + 1 if "--" in self.clippy_args else None
        if cut is None:
            return (*self.clippy_args, "--", "--deny", "warnings")
        return (*self.clippy_args[:cut], "--deny", "warnings", *self.clippy_args[cut:])


@dataclass(frozen=True, slots=True)
class NativeOverride:
    """[native."crate"] of nixcrate.toml: extends (or replaces) the table's entry."""

    native_build_inputs: tuple[str, ...] = ()
    build_inputs: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    replace: bool = False
    reason: str = ""
    # only in the handlers' closure (built with cargo-zigbuild)
    lambda_native_build_inputs: tuple[str, ...] = ()
    lambda_build_inputs: tuple[str, ...] = ()
    lambda_env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Registry:
    """[registries.<name>] of nixcrate.toml: an alternate or sparse registry crane downloads from."""

    index: str  # as Cargo.lock's source names it: "sparse+https://…/" or "registry+https://…"
    dl: str  # the download URL (its config.json's `dl`), with or without cargo's {crate}-style markers

    @property
    def cargo_index(self) -> str:
        """The index as cargo's configuration writes it (a git index without `registry+`)."""
        return self.index.removeprefix("registry+")


@dataclass(frozen=True, slots=True)
class ClosureConfig:
    """[services] / [lambda]: what applies to a closure and every package reusing it."""

    native_build_inputs: tuple[str, ...] = ()
    build_inputs: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    profile: str = "release"
    # None: the workspace's own [profile] decides (nixcrate sets nothing)
    codegen_units: int | None = None
    lto: str | None = None

    @property
    def profile_dir(self) -> str:
        """Cargo's output directory for the profile (`dev` builds into target/debug)."""
        return "debug" if self.profile in ("dev", "test") else self.profile


@dataclass(frozen=True, slots=True)
class Config:
    """nixcrate.toml, validated; the defaults when there is none."""

    systems: tuple[str, ...] = DEFAULT_SYSTEMS
    exclude: tuple[str, ...] = ()
    members: tuple[tuple[str, MemberConfig], ...] = ()
    lambda_glibc: str = "2.26"
    lambda_opt_level: str = "2"
    service_opt_level: str | None = None  # None: the workspace profile decides
    # [services] unify-features: every service built with the features all of them ask for
    # (one cargo invocation's), so the closure compiles each crate once, not once per variant
    unify_services: bool = False
    git_hashes: tuple[tuple[str, str], ...] = ()
    registries: tuple[tuple[str, Registry], ...] = ()  # sorted by name
    native: tuple[tuple[str, NativeOverride], ...] = ()
    services: ClosureConfig = ClosureConfig()
    lambdas: ClosureConfig = ClosureConfig()
    toolchain: str = "auto"  # auto | nixpkgs | file
    checks_closure: bool = False
    checks: CheckConfig = CheckConfig()
    fmt_check: bool = True
    lambda_verify_check: bool = True
    # [ci] install: how the workflow installs nixcrate, ("pip" | "pipx", requirement), or None:
    # the flake's `nixcrate` input when it has one, else pipx from nixcrate's repository.
    ci_install: tuple[str, str] | None = None
    exists: bool = field(default=False, compare=False)

    def member(self, name: str) -> MemberConfig:
        # members is sorted by name: a binary search, as generation asks for every member often
        i = bisect.bisect_left(self.members, (name,))
        if i < len(self.members) and self.members[i][0] == name:
            return self.members[i][1]
        return MemberConfig()

    def checks_for(self, name: str) -> CheckConfig:
        """A member's check settings: [checks], then its own [members.<name>.checks]."""
        return replace(self.checks, **dict(self.member(name).checks))


# --------------------------------------------------------------------------- the schema


@dataclass(frozen=True, eq=False)
class Table:
    """A table of nixcrate.toml: its keys, each with its kind (nixcrate.values) or a table of
    its own. `each`: a table of named entries instead (`[members.<name>]`), each name checked
    by `name` and shown as `placeholder` in docs and tests."""

    keys: dict[str, values.Kind | Table] = field(default_factory=dict)
    each: values.Kind | Table | None = None
    name: Callable[[str, str], str] | None = None
    placeholder: str = ""


def _lock_source(name: str, key: str) -> str:
    """A [git-hashes] key: the source of a Cargo.lock package, as it is (a Nix attribute name, quoted)."""
    if "\0" in name or "\n" in name:
        raise values.error(key, f"{name!r} is not a source of Cargo.lock: copy the source string from Cargo.lock")
    return name


SOURCES = ("code", "whole")
CLIPPY_WARNINGS = ("warn", "deny")
_INSTALL_FIX = 'write "pipx:<requirement>" or "pip:<requirement>", e.g. "pipx:git+https://github.com/nixcrate/nixcrate@v0.1.0"'


def _install_spec(value: Any, key: str) -> tuple[str, str]:
    """[ci] install: "pip:<requirement>" or "pipx:<requirement>", one word the workflow quotes."""
    if not isinstance(value, str):
        raise _err(key, f"expected a string, got {type(value).__name__}: fix the value")
    tool, sep, spec = value.partition(":")
    if not sep or tool not in ("pip", "pipx"):
        raise _err(key, f"{value!r} names no installer: {_INSTALL_FIX}")
    if not spec or spec.startswith("-") or any(c.isspace() or c in "'\"`$\\" or not c.isprintable() for c in spec):
        raise _err(key, f"{spec!r} is not one requirement (no spaces, quotes, options): {_INSTALL_FIX}")
    return tool, spec


_CLOSURE_KEYS: dict[str, values.Kind | Table] = {
    "native-build-inputs": values.ATTR_PATHS,
    "build-inputs": values.ATTR_PATHS,
    "env": values.ENV,
    "profile": values.PROFILE_NAME,
    "codegen-units": values.CODEGEN_UNITS,
    "lto": values.LTO_SETTING,
}
# A member's checks ([checks] for every member, [members.<name>.checks] over it): key ->
# (CheckConfig field, kind).
_CHECK_FIELDS = {
    "clippy": "clippy",
    "clippy-args": "clippy_args",
    "clippy-warnings": "clippy_warnings",
    "test": "test",
    "test-args": "test_args",
}
_CHECK_KEYS: dict[str, values.Kind | Table] = {
    "clippy": values.boolean(),
    "clippy-args": values.SHELL_WORDS,
    "clippy-warnings": values.choice(*CLIPPY_WARNINGS),
    "test": values.boolean(),
    "test-args": values.SHELL_WORDS,
}
_MEMBER = Table(
    {
        "kind": values.choice("library", "service", "lambda"),
        "arch": values.choice(*LAMBDA_ARCHES),
        "include": values.PATHS,
        "cargo-extra-args": values.SHELL_WORDS,
        "features": values.FEATURES,
        "extra-src": values.PATHS,
        "native-build-inputs": values.ATTR_PATHS,
        "build-inputs": values.ATTR_PATHS,
        "env": values.ENV,
        # a library no member depends on: build it as a package of its own or not
        "package": values.boolean(),
        "source": values.choice(*SOURCES),  # what its sources keep
        # this member's checks: the keys of [checks] but closure, fmt and lambda-verify
        "checks": Table(_CHECK_KEYS),
    }
)
_NATIVE = Table(
    {
        "native-build-inputs": values.ATTR_PATHS,
        "build-inputs": values.ATTR_PATHS,
        "env": values.ENV_TEMPLATES,
        "replace": values.boolean(),
        "reason": values.one_line(),
        "lambda-native-build-inputs": values.ATTR_PATHS,
        "lambda-build-inputs": values.ATTR_PATHS,
        "lambda-env": values.ENV_TEMPLATES,
    }
)
# Every key of nixcrate.toml and its kind. `parse` walks it before it reads anything: a key
# added here is validated (and covered by tests/test_config_schema.py's hostile strings).
SCHEMA = Table(
    {
        "systems": values.SYSTEMS,
        "exclude": values.MEMBER_NAMES,
        "toolchain": values.choice("auto", "nixpkgs", "file"),
        "services": Table({"opt-level": values.OPT_LEVEL, "unify-features": values.boolean(), **_CLOSURE_KEYS}),
        "lambda": Table({"glibc": values.GLIBC, "opt-level": values.OPT_LEVEL, **_CLOSURE_KEYS}),
        "checks": Table({**_CHECK_KEYS, "closure": values.boolean(), "fmt": values.boolean(), "lambda-verify": values.boolean()}),
        "ci": Table({"install": values.Kind("string", '"pipx:<requirement>" or "pip:<requirement>"', _install_spec)}),
        "members": Table(each=_MEMBER, name=values.member_name, placeholder="<member>"),
        "native": Table(each=_NATIVE, name=values.crate_name, placeholder='"<crate>"'),
        "git-hashes": Table(each=values.HASH, name=_lock_source, placeholder='"<source>"'),
        # alternate and sparse registries: where crane downloads their crates from
        "registries": Table(
            each=Table({"index": values.REGISTRY_INDEX, "dl": values.DOWNLOAD_URL}), name=values.registry_name, placeholder="<registry>"
        ),
    }
)


def _err(key: str, what: str) -> ConfigError:
    return values.error(key, what)


def _dotted(prefix: str, key: str) -> str:
    """A key path as TOML writes it: a name that is not a bare key is quoted (on one line)."""
    shown = key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)
    return f"{prefix}.{shown}" if prefix else shown


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _walk(node: values.Kind | Table, raw: Any, key: str) -> Any:
    """raw, checked against node: a Kind's checked value, or a table's checked entries."""
    if isinstance(node, values.Kind):
        return node.check(raw, key)
    if not isinstance(raw, dict):
        raise _err(key, "expected a table: fix the value")
    if node.each is not None:
        assert node.name is not None
        out: dict[str, Any] = {}
        for name, value in raw.items():
            node.name(name, _dotted(key, name))
            if isinstance(node.each, Table) and not value and isinstance(value, dict):
                out[name] = {}  # the table `init` writes per member holds only comments: the defaults
                continue
            out[name] = _walk(node.each, value, _dotted(key, name))
        return out
    for name in raw:
        if name not in node.keys:
            raise _err(_dotted(key, name), f"unknown key (known: {', '.join(sorted(node.keys))}): check the spelling")
    return {name: _walk(node.keys[name], value, _dotted(key, name)) for name, value in raw.items()}


def validate(data: dict[str, Any]) -> dict[str, Any]:
    """nixcrate.toml's data, every value checked against SCHEMA (one-line ConfigError)."""
    checked: dict[str, Any] = _walk(SCHEMA, data, "")
    return checked


def _check_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """A checked [checks] table's CheckConfig fields (closure, fmt and lambda-verify left out)."""
    return {_CHECK_FIELDS[k]: v for k, v in raw.items() if k in _CHECK_FIELDS}


def _member(raw: dict[str, Any]) -> MemberConfig:
    kind = raw.get("kind")
    return MemberConfig(
        package=raw.get("package"),
        source=raw.get("source"),
        checks=tuple(sorted(_check_settings(raw.get("checks", {})).items())),
        kind=MemberKind(kind) if kind else None,
        arch=raw.get("arch", "x86_64"),
        include=raw.get("include", ()),
        cargo_extra_args=raw.get("cargo-extra-args", ()),
        features=raw.get("features", ()),
        extra_src=raw.get("extra-src", ()),
        native_build_inputs=_uniq(raw.get("native-build-inputs", ())),
        build_inputs=_uniq(raw.get("build-inputs", ())),
        env=raw.get("env", ()),
    )


def _registry(name: str, raw: dict[str, Any]) -> Registry:
    if "index" not in raw or "dl" not in raw:
        raise _err(
            _dotted("registries", name),
            'needs both index and dl: add index = "<its index, as .cargo/config.toml has it>" and dl = "<the dl of its config.json>"',
        )
    return Registry(index=raw["index"], dl=raw["dl"])


def _native(raw: dict[str, Any]) -> NativeOverride:
    return NativeOverride(
        native_build_inputs=raw.get("native-build-inputs", ()),
        build_inputs=raw.get("build-inputs", ()),
        env=raw.get("env", ()),
        replace=raw.get("replace", False),
        reason=raw.get("reason", ""),
        lambda_native_build_inputs=raw.get("lambda-native-build-inputs", ()),
        lambda_build_inputs=raw.get("lambda-build-inputs", ()),
        lambda_env=raw.get("lambda-env", ()),
    )


def _closure(raw: dict[str, Any]) -> ClosureConfig:
    return ClosureConfig(
        native_build_inputs=_uniq(raw.get("native-build-inputs", ())),
        build_inputs=_uniq(raw.get("build-inputs", ())),
        env=raw.get("env", ()),
        profile=raw.get("profile", "release"),
        codegen_units=raw.get("codegen-units"),
        lto=raw.get("lto"),
    )


def _uniq(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def parse(data: dict[str, Any]) -> Config:
    raw = validate(data)
    lam = raw.get("lambda", {})
    svc = raw.get("services", {})
    checks = raw.get("checks", {})
    systems = raw.get("systems", DEFAULT_SYSTEMS)
    if not systems:
        raise _err("systems", "must name at least one system: add one, e.g. \"x86_64-linux\"")
    return Config(
        systems=tuple(sorted(systems)),
        exclude=tuple(sorted(raw.get("exclude", ()))),
        members=tuple(sorted((name, _member(m)) for name, m in raw.get("members", {}).items())),
        lambda_glibc=lam.get("glibc", "2.26"),
        lambda_opt_level=lam.get("opt-level", "2"),
        service_opt_level=svc.get("opt-level"),
        unify_services=svc.get("unify-features", False),
        git_hashes=tuple(sorted(raw.get("git-hashes", {}).items())),
        registries=tuple(sorted((name, _registry(name, r)) for name, r in raw.get("registries", {}).items())),
        native=tuple(sorted((name, _native(n)) for name, n in raw.get("native", {}).items())),
        services=_closure(svc),
        lambdas=_closure(lam),
        toolchain=raw.get("toolchain", "auto"),
        checks_closure=checks.get("closure", False),
        fmt_check=checks.get("fmt", True),
        lambda_verify_check=checks.get("lambda-verify", True),
        checks=CheckConfig(**_check_settings(checks)),
        ci_install=raw.get("ci", {}).get("install"),
        exists=True,
    )


def load(root: Path) -> Config:
    path = root / FILENAME
    try:
        text = path.read_text(encoding="utf-8").removeprefix("\ufeff")  # a BOM, as cargo allows in TOML
    except FileNotFoundError:
        return Config()
    except IsADirectoryError:
        raise ConfigError(f"{FILENAME}: is a directory, not a file: move it away (init then writes a fresh one)") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{FILENAME}: not valid UTF-8: save it as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{FILENAME}: invalid TOML: {exc}: fix the syntax") from None
    except RecursionError:
        raise ConfigError(f"{FILENAME}: invalid TOML: arrays or tables nested thousands deep: fix the syntax") from None
    return parse(data)


def check_against(config: Config, ws: Workspace) -> None:
    """Every member named in nixcrate.toml must exist in the workspace."""
    names = set(ws.member_names)
    for name in config.exclude:
        if name not in names:
            raise _err("exclude", f"'{name}' is not a workspace member: fix the name or remove it")
    for name, member in config.members:
        if name not in names and member != MemberConfig():
            raise _err(f"members.{name}", f"'{name}' is not a workspace member: fix the name or remove the table")
        for key, paths in (("extra-src", member.extra_src), ("include", member.include)):
            for raw in paths:
                _check_in_tree(ws.root, raw, f"members.{name}.{key}")
        if member.features:
            _check_features(ws.crate(name), member.features, f"members.{name}.features")
    _check_registries(config, ws)
    for key, closure in (("services", config.services), ("lambda", config.lambdas)):
        if closure.profile not in BUILTIN_PROFILES and closure.profile not in ws.profiles:
            raise _err(
                f"{key}.profile",
                f"'{closure.profile}' is not a profile of the workspace (cargo has {', '.join(BUILTIN_PROFILES)}; "
                "Cargo.toml defines " + (", ".join(ws.profiles) or "none") + "): fix the name, or add [profile."
                + closure.profile + '] with inherits = "release" to Cargo.toml',
            )


# The one registry crane downloads from without configuration (lib/default.nix: crateRegistries).
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
_REGISTRY_FIX = 'with index = "{index}" (as .cargo/config.toml has it) and dl = "<the dl of its config.json>"'


def _check_registries(config: Config, ws: Workspace) -> None:
    """Every registry the workspace uses but crates.io is in [registries]: crane downloads a
    crate from the `dl` of the registry its lock entry names (lib/urlForCargoPackage.nix), and
    cargo in the build finds a `registry = "<name>"` dependency's index by that name. Without
    them the flake fails inside Nix ("not sure how to download crates from ...")."""
    configured = dict(config.registries)
    for crate in ws.crates:
        for dep in crate.deps:
            if dep.registry is not None and dep.registry not in configured:
                raise _err(
                    f"registries.{dep.registry}",
                    f"not set, but {crate.manifest}'s dependency '{dep.table_key}' comes from registry '{dep.registry}' (crane cannot "
                    f"download from it unconfigured): add [registries.{dep.registry}] " + _REGISTRY_FIX.format(index="<its index>"),
                )
    indexes = {r.index for _, r in config.registries}
    for package in ws.lock.packages:
        source = package.source or ""
        if source.startswith(("registry+", "sparse+")) and source != CRATES_IO and source not in indexes:
            name = next((d.registry for c in ws.crates for d in c.deps if d.name == package.name and d.registry), None) or "<name>"
            raise _err(
                "registries",
                f"none has index {source}, the registry Cargo.lock's {package.name} {package.version} comes from (crane cannot "
                f"download from it unconfigured): add [registries.{name}] " + _REGISTRY_FIX.format(index=source.removeprefix("registry+")),
            )


# cargo's own profiles; any other must be a [profile.<name>] of the root Cargo.toml
BUILTIN_PROFILES = ("bench", "dev", "release", "test")


def _check_features(crate: Crate, features: tuple[str, ...], key: str) -> None:
    """Each feature is one cargo accepts for the package on its command line: one of its
    [features], an optional dependency's implicit feature, or `dependency/feature`."""
    declared = dict(crate.features)
    explicit = {item.removeprefix("dep:") for items in declared.values() for item in items if item.startswith("dep:")}
    implicit = {d.table_key for d in crate.deps if d.optional and d.kind != "dev" and d.table_key not in explicit}
    dep_keys = {d.table_key for d in crate.deps}
    for feature in features:
        dep, slash, _ = feature.partition("/")
        known = dep in dep_keys if slash else feature in declared or feature in implicit
        if not known:
            listed = ", ".join(sorted({*declared, *implicit})) or "none"
            raise _err(
                key,
                f"'{feature}' is not a feature of {crate.name} (its features: {listed}): fix the name "
                f"(cargo refuses it: the package '{crate.name}' does not contain this feature)",
            )


def _check_in_tree(root: Path, raw: str, key: str) -> None:
    """A path the flake copies from the workspace: relative, inside it (symlinks resolved), present."""
    rel = os.path.normpath(raw) if raw else ""
    if not raw or raw.startswith("/") or rel == ".." or rel.startswith("../"):
        raise _err(key, f"{raw!r} is outside the workspace: the flake only sees files under its own directory: give a path relative to the workspace root, inside it")
    path = root / rel
    if not path.exists() and not path.is_symlink():
        raise _err(key, f"{raw!r} does not exist in the workspace: fix the path, or add the file")
    real = path.resolve()
    if real != root.resolve() and root.resolve() not in real.parents:
        raise _err(key, f"{raw!r} is outside the workspace (a symlink to {real}): the flake only sees files under its own directory: give a path relative to the workspace root, inside it")


def render_initial(ws: Workspace, kinds: dict[str, MemberKind]) -> str:
    """The first nixcrate.toml: every setting commented out at its default, every member listed."""
    lines = [
        "# nixcrate.toml: settings for the flake nixcrate generates from this workspace.",
        "# Yours to edit: nixcrate reads it on every run and never rewrites it.",
        "# After a change, run 'nixcrate init': it regenerates nix/nixcrate/ (flake.nix is yours, never rewritten).",
        "",
        "# Systems of the starter flake.nix, read when init writes it (a workspace without one);",
        "# after that, flake.nix's own `systems` list decides.",
        f"# systems = [{', '.join(repr(s).replace(chr(39), chr(34)) for s in DEFAULT_SYSTEMS)}]",
        "",
        "# Members to leave out of the flake entirely.",
        "# exclude = []",
        "",
        "[services]",
        "# opt-level = 3  (unset: the workspace's own [profile.release] decides)",
        "# unify-features = true  (every service gets the features all of them ask for: one shorter closure)",
        "",
        "[lambda]",
        "# glibc the handlers link against (Amazon Linux 2: 2.26; AL2023 is newer and also runs it).",
        '# glibc = "2.26"',
        "# opt-level = 2",
        "",
        "# One table per member. The kind nixcrate detected is shown; set `kind` to override it.",
        "# Keys: kind, arch (handlers: x86_64 | arm64), include (files added to bootstrap.zip),",
        "#       features, cargo-extra-args, extra-src, native-build-inputs, build-inputs, env.",
    ]
    for name in ws.member_names:
        lines += ["", f"[members.{_toml_key(name)}]", f'# kind = "{kinds[name].value}"  (detected)']
    lines += [
        "",
        "# Output hashes of git dependencies, keyed by the exact source in Cargo.lock.",
        "[git-hashes]",
        "",
    ]
    return "\n".join(lines)


def _toml_key(name: str) -> str:
    bare = all(ch.isalnum() or ch in "-_" for ch in name) and name.isascii()
    return name if bare else f'"{name}"'


def set_git_hashes(root: Path, hashes: dict[str, str]) -> None:
    """Add hashes under [git-hashes], keeping every comment and edit of the user's file."""
    import tomlkit  # noqa: PLC0415 - only `nixcrate hashes` edits the file

    from nixcrate import files  # noqa: PLC0415

    path = root / FILENAME
    raw = path.read_text(encoding="utf-8") if path.is_file() else ""
    bom = "\ufeff" if raw.startswith("\ufeff") else ""  # kept as the user saved it
    doc = tomlkit.parse(raw.removeprefix(bom))
    table = doc.get("git-hashes")
    if table is None:
        table = tomlkit.table()
        doc["git-hashes"] = table
    for source, value in sorted(hashes.items()):
        table[source] = value
    files.atomic_write(path, bom + tomlkit.dumps(doc))
