"""nixcrate.toml: the user's file. Read (tomllib) and validated here, once.

Written on the first `init` (commented, every member's detected kind shown), never
rewritten afterwards: commands that must change it (`nixcrate hashes`) edit it with
tomlkit so the user's comments and layout survive.
"""

from __future__ import annotations

import bisect
import os
import tomllib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nixcrate.errors import ConfigError
from nixcrate.workspace import MemberKind

if TYPE_CHECKING:
    from pathlib import Path

    from nixcrate.workspace import Workspace

FILENAME = "nixcrate.toml"
DEFAULT_SYSTEMS = ("aarch64-darwin", "aarch64-linux", "x86_64-darwin", "x86_64-linux")
LAMBDA_ARCHES = ("x86_64", "arm64")
OPT_LEVELS = ("0", "1", "2", "3", "s", "z")


@dataclass(frozen=True, slots=True)
class MemberConfig:
    """[members.<name>] of nixcrate.toml."""

    kind: MemberKind | None = None
    arch: str = "x86_64"
    include: tuple[str, ...] = ()
    cargo_extra_args: str = ""
    features: tuple[str, ...] = ()
    extra_src: tuple[str, ...] = ()
    native_build_inputs: tuple[str, ...] = ()
    build_inputs: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    # A library no member depends on: True gives it a package even when the build machine
    # cannot build it (nixcrate.host), False never; None lets nixcrate decide.
    package: bool | None = None


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
    git_hashes: tuple[tuple[str, str], ...] = ()
    native: tuple[tuple[str, NativeOverride], ...] = ()
    services: ClosureConfig = ClosureConfig()
    lambdas: ClosureConfig = ClosureConfig()
    toolchain: str = "auto"  # auto | nixpkgs | file
    checks_closure: bool = False
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


# --------------------------------------------------------------------------- validation

_MEMBER_KEYS = {
    "kind": "one of library, service, lambda",
    "arch": "x86_64 or arm64 (Lambda handlers)",
    "include": "list of paths added to bootstrap.zip",
    "cargo-extra-args": "string",
    "features": "list of feature names",
    "extra-src": "list of paths added to the member's source",
    "native-build-inputs": "list of nixpkgs attribute names",
    "build-inputs": "list of nixpkgs attribute names",
    "env": "table of strings",
    "package": "true or false (a library no member depends on: build it as a package of its own or not)",
}
_TOP_KEYS = ("systems", "exclude", "members", "lambda", "services", "git-hashes", "native", "toolchain", "checks", "ci")


def _err(key: str, what: str) -> ConfigError:
    return ConfigError(f"{FILENAME}: {key}: {what}")


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise _err(key, f"expected a string, got {type(value).__name__}: fix the value")
    return value


def _str_list(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _err(key, "expected a list of strings: fix the value")
    return tuple(value)


def _str_table(value: Any, key: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _err(key, "expected a table of strings: fix the value")
    return tuple(sorted(value.items()))


def _opt_level(value: Any, key: str) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if text not in OPT_LEVELS:
        raise _err(key, f"expected one of {', '.join(OPT_LEVELS)}, got {value!r}: fix the value")
    return str(text)


def _unknown(table: dict[str, Any], known: Any, prefix: str) -> None:
    for key in table:
        if key not in known:
            raise _err(f"{prefix}{key}", f"unknown key (known: {', '.join(sorted(known))}): check the spelling")


def _member(name: str, raw: Any) -> MemberConfig:
    prefix = f"members.{name}."
    if not isinstance(raw, dict):
        raise _err(f"members.{name}", "expected a table: fix the value")
    if not raw:  # the table `init` writes per member holds only comments: the defaults, unchecked
        return MemberConfig()
    _unknown(raw, _MEMBER_KEYS, prefix)
    kind = None
    if "kind" in raw:
        value = _str(raw["kind"], prefix + "kind")
        try:
            kind = MemberKind(value)
        except ValueError:
            raise _err(prefix + "kind", f"expected library, service or lambda, got {value!r}: fix the value") from None
    arch = _str(raw.get("arch", "x86_64"), prefix + "arch")
    if arch not in LAMBDA_ARCHES:
        raise _err(prefix + "arch", f"expected x86_64 or arm64, got {arch!r}: fix the value")
    package = raw.get("package")
    if package is not None and not isinstance(package, bool):
        raise _err(prefix + "package", f"expected true or false, got {type(package).__name__}: fix the value")
    return MemberConfig(
        package=package,
        kind=kind,
        arch=arch,
        include=_str_list(raw.get("include", []), prefix + "include"),
        cargo_extra_args=_str(raw.get("cargo-extra-args", ""), prefix + "cargo-extra-args"),
        features=_str_list(raw.get("features", []), prefix + "features"),
        extra_src=_str_list(raw.get("extra-src", []), prefix + "extra-src"),
        native_build_inputs=_str_list(raw.get("native-build-inputs", []), prefix + "native-build-inputs"),
        build_inputs=_str_list(raw.get("build-inputs", []), prefix + "build-inputs"),
        env=_str_table(raw.get("env", {}), prefix + "env"),
    )


def _native(name: str, raw: Any) -> NativeOverride:
    prefix = f"native.{name}."
    if not isinstance(raw, dict):
        raise _err(f"native.{name}", "expected a table: fix the value")
    _unknown(
        raw,
        ("native-build-inputs", "build-inputs", "env", "replace", "reason", "lambda-native-build-inputs", "lambda-build-inputs", "lambda-env"),
        prefix,
    )
    replace = raw.get("replace", False)
    if not isinstance(replace, bool):
        raise _err(prefix + "replace", "expected true or false: fix the value")
    return NativeOverride(
        native_build_inputs=_str_list(raw.get("native-build-inputs", []), prefix + "native-build-inputs"),
        build_inputs=_str_list(raw.get("build-inputs", []), prefix + "build-inputs"),
        env=_str_table(raw.get("env", {}), prefix + "env"),
        replace=replace,
        reason=_str(raw.get("reason", ""), prefix + "reason"),
        lambda_native_build_inputs=_str_list(raw.get("lambda-native-build-inputs", []), prefix + "lambda-native-build-inputs"),
        lambda_build_inputs=_str_list(raw.get("lambda-build-inputs", []), prefix + "lambda-build-inputs"),
        lambda_env=_str_table(raw.get("lambda-env", {}), prefix + "lambda-env"),
    )


_CLOSURE_KEYS = ("native-build-inputs", "build-inputs", "env", "profile", "codegen-units", "lto")
_LTO = ("false", "true", "thin", "fat", "off")


def _closure(key: str, raw: dict[str, Any]) -> ClosureConfig:
    profile = _str(raw.get("profile", "release"), f"{key}.profile")
    if not profile or not all(ch.isalnum() or ch in "-_" for ch in profile):
        raise _err(f"{key}.profile", f"expected a cargo profile name, got {profile!r}: fix the value")
    return ClosureConfig(
        native_build_inputs=_str_list(raw.get("native-build-inputs", []), f"{key}.native-build-inputs"),
        build_inputs=_str_list(raw.get("build-inputs", []), f"{key}.build-inputs"),
        env=_str_table(raw.get("env", {}), f"{key}.env"),
        profile=profile,
        codegen_units=_codegen_units(raw, key),
        lto=_lto(raw, key),
    )


_U32_MAX = 2**32 - 1


def _codegen_units(raw: dict[str, Any], key: str) -> int | None:
    value = raw.get("codegen-units")
    if value is None:
        return None
    # cargo reads codegen-units as a u32 and rustc refuses 0 (checked with cargo 1.8x and rustc)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _U32_MAX:
        raise _err(f"{key}.codegen-units", f"expected a whole number from 1 to {_U32_MAX} (what cargo takes), got {value!r}: fix the value")
    return value


def _lto(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get("lto")
    if value is None:
        return None
    text = str(value).lower() if isinstance(value, bool) else value
    if text not in _LTO:
        raise _err(f"{key}.lto", f"expected true, false, \"thin\", \"fat\" or \"off\", got {value!r}: fix the value")
    return str(text)


_INSTALL_FIX = 'write "pipx:<requirement>" or "pip:<requirement>", e.g. "pipx:git+https://github.com/nixcrate/nixcrate@v0.1.0"'


def _install_spec(value: Any) -> tuple[str, str]:
    """[ci] install: "pip:<requirement>" or "pipx:<requirement>", one word the workflow quotes."""
    text = _str(value, "ci.install")
    tool, sep, spec = text.partition(":")
    if not sep or tool not in ("pip", "pipx"):
        raise _err("ci.install", f"{text!r} names no installer: {_INSTALL_FIX}")
    if not spec or spec.startswith("-") or any(c.isspace() or c in "'\"`$\\" or not c.isprintable() for c in spec):
        raise _err("ci.install", f"{spec!r} is not one requirement (no spaces, quotes, options): {_INSTALL_FIX}")
    return tool, spec


def parse(data: dict[str, Any]) -> Config:
    _unknown(data, _TOP_KEYS, "")
    members_raw = data.get("members", {})
    if not isinstance(members_raw, dict):
        raise _err("members", "expected a table of [members.<name>] tables: fix the value")
    lam = data.get("lambda", {})
    svc = data.get("services", {})
    checks = data.get("checks", {})
    for key, table, known in (
        ("lambda", lam, ("glibc", "opt-level", *_CLOSURE_KEYS)),
        ("services", svc, ("opt-level", *_CLOSURE_KEYS)),
        ("checks", checks, ("closure",)),
        ("ci", data.get("ci", {}), ("install",)),
    ):
        if not isinstance(table, dict):
            raise _err(key, "expected a table: fix the value")
        _unknown(table, known, f"{key}.")
    glibc = _str(lam.get("glibc", "2.26"), "lambda.glibc")
    parts = glibc.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise _err("lambda.glibc", f"expected a glibc version like \"2.26\", got {glibc!r}: fix the value")
    hashes = data.get("git-hashes", {})
    native = data.get("native", {})
    if not isinstance(native, dict):
        raise _err("native", "expected a table of [native.\"crate\"] tables: fix the value")
    toolchain = _str(data.get("toolchain", "auto"), "toolchain")
    if toolchain not in ("auto", "nixpkgs", "file"):
        raise _err("toolchain", f"expected \"nixpkgs\" or \"file\", got {toolchain!r}: fix the value")
    closure = checks.get("closure", False)
    if not isinstance(closure, bool):
        raise _err("checks.closure", "expected true or false: fix the value")
    systems = _str_list(data.get("systems", list(DEFAULT_SYSTEMS)), "systems")
    if not systems:
        raise _err("systems", "must name at least one system: add one, e.g. \"x86_64-linux\"")
    return Config(
        systems=tuple(sorted(set(systems))),
        exclude=tuple(sorted(_str_list(data.get("exclude", []), "exclude"))),
        members=tuple(sorted((name, _member(name, raw)) for name, raw in members_raw.items())),
        lambda_glibc=glibc,
        lambda_opt_level=_opt_level(lam.get("opt-level", 2), "lambda.opt-level"),
        service_opt_level=_opt_level(svc["opt-level"], "services.opt-level") if "opt-level" in svc else None,
        git_hashes=_str_table(hashes, "git-hashes"),
        native=tuple(sorted((name, _native(name, raw)) for name, raw in native.items())),
        services=_closure("services", svc),
        lambdas=_closure("lambda", lam),
        toolchain=toolchain,
        checks_closure=closure,
        ci_install=_install_spec(data["ci"]["install"]) if "install" in data.get("ci", {}) else None,
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


def _check_in_tree(root: Path, raw: str, key: str) -> None:
    """A path the flake copies from the workspace: relative, inside it (symlinks resolved), present."""
    rel = os.path.normpath(raw) if raw else ""
    if not raw or raw.startswith("/") or rel == ".." or rel.startswith("../"):
        raise _err(key, f"'{raw}' is outside the workspace: the flake only sees files under its own directory: give a path relative to the workspace root, inside it")
    path = root / rel
    if not path.exists() and not path.is_symlink():
        raise _err(key, f"'{raw}' does not exist in the workspace: fix the path, or add the file")
    real = path.resolve()
    if real != root.resolve() and root.resolve() not in real.parents:
        raise _err(key, f"'{raw}' is outside the workspace (a symlink to {real}): the flake only sees files under its own directory: give a path relative to the workspace root, inside it")


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
