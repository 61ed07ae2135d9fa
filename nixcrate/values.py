"""What a nixcrate.toml value may be: one checker per kind of value that reaches Nix.

Every setting ends up in `nix/nixcrate/workspace.nix` (a Nix string, a package reference
`pkgs.<path>`, an attribute name) or on a cargo command line the library builds (a feature,
an argument). A string is escaped where it is written (flake_gen.nix_str), but a value that is
*code* there, a package reference or a word of a shell line, cannot be escaped into meaning
what the user meant: it has to be one of the things its key names. So each kind below says
what it accepts, and refuses anything else in one line naming the key and the fix.
`nixcrate.config.SCHEMA` gives every key of nixcrate.toml its kind; a key added to the
schema is checked, and tested with hostile strings (tests/test_config_schema.py), from
then on.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nixcrate.errors import ConfigError

FILENAME = "nixcrate.toml"

# A nixpkgs attribute path: dot-separated names. Names that are not Nix identifiers (a
# leading digit, a '+') are quoted when rendered, so they are accepted here; nothing that
# could end the quoted name (", \, $) is.
ATTR_NAME = r"[A-Za-z0-9_][A-Za-z0-9_+'-]*"
ATTR_PATH = re.compile(rf"^{ATTR_NAME}(?:\.{ATTR_NAME})*$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# cargo's feature names (util/toml: validate_feature_name, ASCII part): a letter, digit or
# '_' first, then also '-', '+' and '.'; on a command line also `dependency/feature`.
_FEATURE_PART = r"[A-Za-z0-9_][A-Za-z0-9_+.-]*"
FEATURE = re.compile(rf"^{_FEATURE_PART}(?:/{_FEATURE_PART})?$")
# cargo's profile names (util/toml: validate_profile_name): ASCII letters, digits, '-', '_'.
PROFILE = re.compile(r"^[A-Za-z0-9_-]+$")
# What cargo takes as a package name, and what we emit as Nix attributes and derivation names.
CRATE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
# A Nix hash as outputHashes takes it: SRI (`sha256-<base64>`) or `sha256:<nix base32>`.
NIX_HASH = re.compile(r"^(?:(?:sha256|sha512)-[A-Za-z0-9+/]+={0,2}|sha256:[0-9a-z]{52})$")
URL = re.compile(r"^https?://[^\s\"'\\`$<>{}|^]+$")


def error(key: str, what: str) -> ConfigError:
    return ConfigError(f"{FILENAME}: {key}: {what}")


def _shown(value: str) -> str:
    """A value as a message quotes it: on one line, whatever it holds."""
    return repr(value)


def _type_name(value: Any) -> str:
    return type(value).__name__  # as TOML values arrive: str, int, bool, list, dict


# --------------------------------------------------------------------------- kinds


@dataclass(frozen=True, slots=True)
class Kind:
    """The kind of one nixcrate.toml value: what TOML it takes (`shape`: string, strings (a
    list), table (of strings), bool, int or int-or-string), what it means (`expected`, for
    messages), and its checker (value, key) -> the value as nixcrate keeps it."""

    shape: str
    expected: str
    check: Callable[[Any, str], Any]


def _string(value: Any, key: str, expected: str) -> str:
    if not isinstance(value, str):
        raise error(key, f"expected {expected}, got {_type_name(value)}: fix the value")
    if "\0" in value:
        raise error(key, f"{_shown(value)} holds a NUL character, which no Nix string can hold: remove it")
    return value


def _strings(value: Any, key: str, expected: str, *, unique: bool = False) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise error(key, f"expected {expected}, got {_type_name(value)}: fix the value")
    for item in value:
        _string(item, key, expected)
    if unique:
        for item in value:
            if value.count(item) > 1:
                raise error(key, f"{_shown(item)} is listed twice: remove one")
    return tuple(value)


def _matching(pattern: re.Pattern[str], what: str, fix: str) -> Callable[[str, str], str]:
    def check(item: str, key: str) -> str:
        if not pattern.match(item):
            raise error(key, f"{_shown(item)} is not {what}: {fix}")
        return item

    return check


def text(expected: str = "a string") -> Kind:
    """Any one string: it reaches Nix as a string literal, escaped (flake_gen.nix_str)."""
    return Kind("string", expected, lambda v, k: _string(v, k, expected))


def one_line(expected: str = "one line of text") -> Kind:
    def check(value: Any, key: str) -> str:
        string = _string(value, key, expected)
        if any(ch in string for ch in "\n\r"):
            raise error(key, f"{_shown(string)} holds a line break: write it on one line")
        return string

    return Kind("string", expected, check)


def choice(*choices: str) -> Kind:
    listed = ", ".join(choices)

    def check(value: Any, key: str) -> str:
        string = _string(value, key, "a string")
        if string not in choices:
            raise error(key, f"expected one of {listed}, got {_shown(string)}: fix the value")
        return string

    return Kind("string", f"one of {listed}", check)


def boolean() -> Kind:
    def check(value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise error(key, f"expected true or false, got {_type_name(value)}: fix the value")
        return value

    return Kind("bool", "true or false", check)


def string_list(item: Callable[[str, str], str] | None, expected: str, *, unique: bool = False) -> Kind:
    def check(value: Any, key: str) -> tuple[str, ...]:
        items = _strings(value, key, expected, unique=unique)
        return tuple(item(i, key) for i in items) if item else items

    return Kind("strings", expected, check)


def string_table(name: Callable[[str, str], str], value_kind: Kind, expected: str) -> Kind:
    """A table of strings: names checked by `name`, values by `value_kind`; sorted pairs."""

    def check(value: Any, key: str) -> tuple[tuple[str, str], ...]:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise error(key, f"expected {expected}, got {_type_name(value)}: fix the value")
        pairs = []
        for k, v in value.items():
            name(_string(k, key, expected), key)
            pairs.append((k, value_kind.check(v, f"{key}.{k}" if ENV_NAME.match(k) else key)))
        return tuple(sorted(pairs))

    return Kind("table", expected, check)


# --------------------------------------------------------------------------- the kinds nixcrate.toml uses

attr_name = _matching(
    ATTR_PATH, 'a nixpkgs attribute path like "pkg-config" or "llvmPackages.libclang"', "fix the value"
)
env_name = _matching(
    ENV_NAME,
    "an environment variable name (letters, digits and '_', not starting with a digit)",
    "rename it",
)
feature_name = _matching(
    FEATURE,
    "a cargo feature name (letters, digits, '_', '-', '+', '.'; or dependency/feature)",
    "list each feature as a string of its own, without cargo's flags",
)
crate_name = _matching(CRATE_NAME, "a crate name (ASCII letters, digits, '-' and '_')", "fix the table name")
member_name = _matching(CRATE_NAME, "a package name (ASCII letters, digits, '-' and '_')", "fix the name")
# cargo's registry names are package-name-like (util/toml: validate_registry_name)
registry_name = _matching(CRATE_NAME, "a registry name (ASCII letters, digits, '-' and '_')", "use the name .cargo/config.toml gives it")


def _system(item: str, key: str) -> str:
    known = systems_known()
    if item not in known:
        raise error(key, f"{_shown(item)} is not a system nixpkgs builds for (one of {', '.join(sorted(known))}): fix the entry")
    return item


def _shell_words(value: Any, key: str) -> tuple[str, ...]:
    """A string of arguments, split as a POSIX shell splits words (quotes group, nothing is
    expanded). The library quotes each word again (lib.escapeShellArgs): whatever the string
    holds, cargo gets these words and the shell runs nothing of them."""
    string = _string(value, key, "a string of arguments")
    if any(ord(ch) < 32 and ch not in "\t" for ch in string):
        raise error(key, f"{_shown(string)} holds a line break or control character: write the arguments on one line")
    try:
        return tuple(shlex.split(string))
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        raise error(key, f"{_shown(string)} holds an unclosed quote or a trailing backslash ({str(exc).lower()}): close the quote") from None


def _in_range(low: int, high: int, expected: str) -> Callable[[Any, str], int]:
    def check(value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise error(key, f"expected {expected}, got {value!r}: fix the value")
        return value

    return check


OPT_LEVELS = ("0", "1", "2", "3", "s", "z")
LTO = ("false", "true", "thin", "fat", "off")


def _opt_level(value: Any, key: str) -> str:
    text_ = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if text_ not in OPT_LEVELS:
        raise error(key, f"expected one of {', '.join(OPT_LEVELS)}, got {value!r}: fix the value")
    return str(text_)


def _lto(value: Any, key: str) -> str:
    text_ = str(value).lower() if isinstance(value, bool) else value
    if text_ not in LTO:
        raise error(key, f'expected true, false, "thin", "fat" or "off", got {value!r}: fix the value')
    return str(text_)


def _glibc(value: Any, key: str) -> str:
    string = _string(value, key, 'a glibc version like "2.26"')
    parts = string.split(".")
    if len(parts) != 2 or not all(p.isdigit() and p.isascii() for p in parts):
        raise error(key, f'expected a glibc version like "2.26", got {string!r}: fix the value')
    return string


def _profile(value: Any, key: str) -> str:
    string = _string(value, key, "a cargo profile name")
    if not PROFILE.match(string):
        raise error(key, f"expected a cargo profile name, got {string!r}: fix the value")
    return string


def _env_template(value: Any, key: str) -> str:
    """A [native] env value: text with {attr.path} package references ({{ and }} are braces)."""
    from nixcrate import native  # noqa: PLC0415 - the template grammar lives with its renderer

    string = _string(value, key, "a string")
    try:
        native.template_attrs(string)
    except ValueError as exc:
        raise error(key, str(exc)) from None
    return string


# The markers cargo (and crane's registryFromDownloadUrl) replace in a registry's `dl`.
DL_MARKERS = ("{crate}", "{version}", "{prefix}", "{lowerprefix}", "{sha256-checksum}")


def _url(value: Any, key: str) -> str:
    string = _string(value, key, "a download URL")
    bare = string
    for marker in DL_MARKERS:
        bare = bare.replace(marker, "x")
    if not URL.match(bare):
        raise error(key, f"{_shown(string)} is not an http(s) URL: give the registry's download URL (the dl of its config.json)")
    return string


def _registry_index(value: Any, key: str) -> str:
    """A registry's index as Cargo.lock names it: `sparse+https://…/` for a sparse index,
    `registry+https://…` for a git one (written `https://…` too, as .cargo/config.toml has it)."""
    string = _string(value, key, "a registry index URL")
    protocol, plus, url = string.partition("+")
    if not plus or protocol not in ("sparse", "registry"):
        protocol, url = "registry", string
    if not URL.match(url):
        raise error(
            key,
            f"{_shown(string)} is not a registry index URL: write it as .cargo/config.toml has it (sparse+ then the URL, or a git index's URL)",
        )
    if protocol == "sparse" and not url.endswith("/"):
        raise error(key, f"{_shown(string)} is not a sparse index URL cargo takes (it ends with '/'): add the '/'")
    return f"{protocol}+{url}"


def _nix_hash(value: Any, key: str) -> str:
    string = _string(value, key, 'a hash like "sha256-…"')
    if not NIX_HASH.match(string):
        raise error(key, f'{_shown(string)} is not a Nix hash like "sha256-…=": run \'nixcrate hashes\' to compute it')
    return string


ATTR_PATHS = string_list(attr_name, "a list of nixpkgs attribute paths")
ENV = string_table(env_name, text(), "a table of strings")
ENV_TEMPLATES = string_table(env_name, Kind("string", "a string", _env_template), "a table of strings")
FEATURES = string_list(feature_name, "a list of feature names", unique=True)
SYSTEMS = string_list(_system, "a list of systems", unique=True)
MEMBER_NAMES = string_list(member_name, "a list of member names", unique=True)
PATHS = string_list(None, "a list of paths relative to the workspace root")
SHELL_WORDS = Kind("string", "a string of arguments", _shell_words)
OPT_LEVEL = Kind("int-or-string", f"one of {', '.join(OPT_LEVELS)}", _opt_level)
LTO_SETTING = Kind("bool-or-string", 'true, false, "thin", "fat" or "off"', _lto)
CODEGEN_UNITS = Kind("int", "a whole number from 1 to 4294967295", _in_range(1, 2**32 - 1, "a whole number from 1 to 4294967295 (what cargo takes)"))
GLIBC = Kind("string", 'a glibc version like "2.26"', _glibc)
PROFILE_NAME = Kind("string", "a cargo profile name", _profile)
DOWNLOAD_URL = Kind("string", "a download URL", _url)
REGISTRY_INDEX = Kind("string", "a registry index URL", _registry_index)
HASH = Kind("string", 'a hash like "sha256-…"', _nix_hash)


@functools.cache
def systems_known() -> frozenset[str]:
    """nixpkgs' lib.systems.flakeExposed: the systems a flake's packages are built on."""
    return frozenset(targets_table())


@functools.cache
def targets_table() -> dict[str, dict[str, Any]]:
    """nixcrate/data/targets.toml: per system, its Rust target and `rustc --print cfg`."""
    text_ = importlib.resources.files("nixcrate.data").joinpath("targets.toml").read_text(encoding="utf-8")
    return dict(tomllib.loads(text_)["system"])
