"""rust-toolchain(.toml) -> the pinned toolchain the flake builds with.

The flake reads the file itself at evaluation time with rust-overlay's
`fromRustupToolchainFile` (oxalica/rust-overlay lib/rust-bin.nix), so the file stays the one
source of truth; nixcrate reads it here only to decide what the flake must add to it:

- the std of every target a handler links for (an `arch = "arm64"` handler built on x86_64
  needs `aarch64-unknown-linux-gnu`'s std; rust-overlay always adds the host's own);
- clippy and rustfmt when checks are generated and the file's profile is `minimal` (the
  `default` profile has both).

Why rust-overlay and not fenix: rust-overlay ships every channel's manifest in its own
repository (`manifests/`), so a file naming `1.85.0` evaluates purely, offline, with no
hash to supply. fenix's `fromToolchainFile` fetches `channel-rust-<channel>.toml` at
evaluation time (`builtins.fetchurl`, which pure flake evaluation refuses, or `pkgs.fetchurl`
with a `sha256` the user must find, then reads it: import from derivation).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from nixcrate.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

# rustup: "If both files are present in a directory, the latter [rust-toolchain] is used
# for backwards compatibility" (https://rust-lang.github.io/rustup/overrides.html).
FILE_NAMES = ("rust-toolchain", "rust-toolchain.toml")
INPUT = "rust-overlay"
INPUT_URL = "github:oxalica/rust-overlay"
CHECK_COMPONENTS = ("clippy", "rustfmt")

_LEGACY = re.compile(r"^([^\r\n]+)\r?\n?$")


@dataclass(frozen=True, slots=True)
class ToolchainFile:
    """A rust-toolchain(.toml) as rustup reads it."""

    path: PurePosixPath  # relative to the workspace root (may start with ../)
    channel: str
    profile: str  # rustup's default profile is "default"
    components: tuple[str, ...]
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ToolchainChoice:
    """The toolchain file the flake builds with, and what the flake adds to it."""

    file: ToolchainFile
    extra_targets: tuple[str, ...]  # added to the file's targets, sorted
    extra_components: tuple[str, ...]  # added to the file's components, sorted


def find(root: Path) -> PurePosixPath | None:
    """The toolchain file rustup would use for the workspace: its root, then each parent up
    to the repository root (the directory holding .git); relative to `root`."""
    up = PurePosixPath(".")
    here = root
    while True:
        for name in FILE_NAMES:
            if (here / name).is_file():
                return up / name if up != PurePosixPath(".") else PurePosixPath(name)
        if (here / ".git").exists() or here.parent == here:
            return None
        here = here.parent
        up = up / ".."


def _list(value: object, key: str, display: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{display}: toolchain.{key} must be a list of strings: fix the file (rustup rejects it too)")
    return tuple(value)


def read(root: Path, rel: PurePosixPath) -> ToolchainFile:
    display = str(rel)
    try:
        text = (root / rel).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f'{display}: cannot read ({exc}): fix the file or set toolchain = "nixpkgs" in nixcrate.toml') from None
    legacy = _LEGACY.match(text)
    if legacy is not None and "=" not in text and "[" not in text:
        return ToolchainFile(rel, legacy.group(1).strip(), "default", (), ())
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{display}: invalid TOML: {exc}: fix the syntax") from None
    table = data.get("toolchain")
    if not isinstance(table, dict):
        raise ConfigError(f'{display}: no [toolchain] table: add one with channel = "1.xx.y"')
    if "path" in table:
        raise ConfigError(
            f"{display}: toolchain.path (a local toolchain) cannot be pinned in a flake: name a channel, "
            'or set toolchain = "nixpkgs" in nixcrate.toml'
        )
    channel = table.get("channel")
    if not isinstance(channel, str) or not channel:
        raise ConfigError(f'{display}: toolchain.channel is missing: add channel = "1.xx.y" (or stable, nightly-YYYY-MM-DD)')
    profile = table.get("profile", "default")
    if not isinstance(profile, str):
        raise ConfigError(f"{display}: toolchain.profile must be a string: fix the file")
    return ToolchainFile(
        path=rel,
        channel=channel,
        profile=profile,
        components=_list(table.get("components", []), "components", display),
        targets=_list(table.get("targets", []), "targets", display),
    )


def choose(
    setting: str, found: PurePosixPath | None, root: Path, *, link_targets: Iterable[str], with_checks: bool
) -> ToolchainChoice | None:
    """None: nixpkgs' rustc and cargo. Otherwise the file plus what the flake needs added."""
    if setting == "nixpkgs" or (setting == "auto" and found is None):
        return None
    if found is None:
        raise ConfigError(
            'nixcrate.toml: toolchain = "file" but there is no rust-toolchain.toml or rust-toolchain '
            'in the workspace or above it: add one, or set toolchain = "auto"'
        )
    file = read(root, found)
    extra_targets = tuple(sorted(set(link_targets) - set(file.targets)))
    extra_components: tuple[str, ...] = ()
    if with_checks and file.profile == "minimal":
        have = {c.removesuffix("-preview") for c in file.components}
        extra_components = tuple(c for c in CHECK_COMPONENTS if c not in have)
    return ToolchainChoice(file, extra_targets, extra_components)
