"""crane-build (`../shared/crane-build`) from the tests: real crane builds of a workspace.

`build()` runs its `build --json` script, as a user would. `stage()` reuses its setup (the
staged, seeded git checkout, the `--override-input`s and the NIX_CONFIG it builds with) for
tests that run `nix` or `nixcrate build` themselves on the same flake.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from conftest import SHARED, crane_eval_missing, have

CRANE_BUILD = SHARED / "crane-build"
REGISTRY = Path("/usr/share/cargo/registry")


def crane_build_missing(workspace: Path) -> str | None:
    """Why crane-build cannot build `workspace` here, or None when it can."""
    if not (CRANE_BUILD / "build").is_file():
        return f"{CRANE_BUILD} is not there (../shared beside the repository)"
    if why := crane_eval_missing():
        return why
    for tool, package in (("rsync", "apt-get install rsync"), ("rustc", "a Rust toolchain")):
        if not have(tool):
            return f"{tool} is not installed ({package}), crane-build needs it"
    if "CRANE_BUILD_ZIG_VENV" not in zig_env():
        return "the ziglang and cargo-zigbuild wheels are not installed (pip install -e '.[test]'), crane-build needs them"
    lock = tomllib.loads((workspace / "Cargo.lock").read_text())
    for pkg in lock.get("package", []):
        if (
            pkg.get("source", "").startswith("registry+")
            and not (REGISTRY / f"{pkg['name']}-{pkg['version']}").is_dir()
        ):
            return f"{pkg['name']}-{pkg['version']} is not in {REGISTRY} (scripts/test installs Debian's librust-*-dev)"
    return None


def crane_build_and_cargo_missing() -> str | None:
    """Why a test that writes its workspace's Cargo.lock with cargo, then builds it with
    crane-build, cannot run here (the shipped example's crates stand for its own)."""
    if not have("cargo"):
        return "cargo is not installed (it writes the test workspace's Cargo.lock)"
    return crane_build_missing(Path(__file__).parent.parent / "examples" / "monorepo")


@dataclass(frozen=True)
class Result:
    attr: str
    ok: bool
    out: str | None
    drv: str | None
    seconds: float
    third_party: tuple[str, ...]  # crates its own build compiled ("Compiling", no path)
    local: tuple[str, ...]
    checked_third_party: tuple[str, ...]  # "Checking" lines (clippy)
    checked_local: tuple[str, ...]
    error_tail: str


def zig_env() -> dict[str, str]:
    """The environment for crane-build, naming the Python environment that holds the ziglang
    and cargo-zigbuild wheels (scripts/test installs them with nixcrate's test extras).

    crane-build looks for `cargo-zigbuild` on PATH; behind a pyenv shim or from a venv with
    system site-packages that is not the environment holding ziglang."""
    env = dict(os.environ)
    try:
        import ziglang  # noqa: PLC0415
    except ImportError:
        return env
    root = (
        Path(ziglang.__file__).resolve().parents[4]
    )  # <env>/lib/python3.X/site-packages/ziglang/__init__.py
    if "CRANE_BUILD_ZIG_VENV" not in env and (root / "bin" / "cargo-zigbuild").is_file():
        env["CRANE_BUILD_ZIG_VENV"] = str(root)
    return env


def build(workspace: Path, attrs: list[str], log_dir: Path | None = None, overrides: tuple[tuple[str, str], ...] = ()) -> dict[str, Result]:
    """`crane-build/build --json WORKSPACE ATTR...`: one result per attribute (the workspace's
    base snapshot seeded first, in place: see seed_base_snapshot)."""
    seed_base_snapshot(workspace)
    argv = [sys.executable, str(CRANE_BUILD / "build"), "--json", *(a for name, ref in overrides for a in ("--override-input", name, ref))]
    if log_dir is not None:
        argv += ["--log-dir", str(log_dir)]
    proc = subprocess.run(
        [*argv, str(workspace), *attrs], capture_output=True, text=True, check=False, env=zig_env()
    )
    if proc.returncode == 2 or not proc.stdout.strip():
        raise RuntimeError(f"crane-build could not run: {proc.stderr[-3000:]}")
    results = json.loads(proc.stdout)["results"]
    return {
        attr: Result(
            attr,
            r["ok"],
            r["out"],
            r["drv"],
            r["seconds"],
            tuple(r["compiled"]["third_party"]),
            tuple(r["compiled"]["local"]),
            tuple(r["compiled"]["checked_third_party"]),
            tuple(r["compiled"]["checked_local"]),
            r["error_tail"],
        )
        for attr, r in results.items()
    }


@dataclass(frozen=True)
class Staged:
    """A workspace staged and seeded as crane-build does, and how it runs nix on it."""

    flake: Path  # a git checkout: use as git+file://
    overrides: tuple[str, ...]  # --override-input nixpkgs/crane/flake-utils ...
    nix_config: str  # crane-build's settings (sandbox, its sandbox paths...) after the caller's

    @property
    def ref(self) -> str:
        return f"git+file://{self.flake}"

    def env(self, extra_config: str = "") -> dict[str, str]:
        env = dict(os.environ)
        env["NIX_CONFIG"] = self.nix_config + ("\n" + extra_config if extra_config else "")
        return env

    def nix_args(self) -> list[str]:
        """What `nixcrate build ... -- <these>` passes on to nix build and its plan."""
        return ["--no-write-lock-file", *self.overrides]

    def cleanup(self) -> None:
        shutil.rmtree(self.flake.parent, ignore_errors=True)


def stage(workspace: Path, overrides: tuple[tuple[str, str], ...] = ()) -> Staged:
    os.environ.update({k: v for k, v in zig_env().items() if k == "CRANE_BUILD_ZIG_VENV"})
    sys.path.insert(0, str(CRANE_BUILD))
    try:
        import _cbuild as cb  # noqa: PLC0415 - crane-build's module, beside the repository
    finally:
        sys.path.remove(str(CRANE_BUILD))
    s = cb.setup()
    staged = cb.stage(workspace.resolve())
    env = cb.nix_env(s)
    # crane-build reads CRANE_BUILD_REGISTRY once, when its module is first imported: take it
    # as it is now, as its `build` command would.
    cb.REGISTRY = Path(os.environ.get("CRANE_BUILD_REGISTRY", str(REGISTRY)))
    try:
        cb.seed_lock(staged / "Cargo.lock", env)
    finally:
        cb.REGISTRY = REGISTRY
    seed_base_snapshot(staged)
    cb.h.git_add(staged)
    return Staged(staged, tuple(cb.overrides_for(s, staged, [list(o) for o in overrides])), env["NIX_CONFIG"])


def drv_paths(workspace: Path, system: str = "x86_64-linux") -> dict[str, str]:
    """Every package's and check's .drv, as crane-build's flake evaluates them (no build), keyed
    as crane-build's attributes are: `<name>` for packages, `checks.<system>.<name>` for checks."""
    staged = stage(workspace)
    try:
        found: dict[str, str] = {}
        for outputs, prefix in (("packages", ""), ("checks", f"checks.{system}.")):
            proc = subprocess.run(
                ["nix", "eval", "--json", *staged.nix_args(), f"{staged.ref}#{outputs}.{system}", "--apply", "builtins.mapAttrs (_: p: p.drvPath)"],
                capture_output=True, text=True, check=False, env=staged.env(),
            )  # fmt: skip
            if proc.returncode != 0:
                raise RuntimeError(f"nix eval {outputs}: {proc.stderr[-3000:]}")
            found.update({prefix + name: drv for name, drv in json.loads(proc.stdout).items()})
        return found
    finally:
        staged.cleanup()


def _cbuild():  # type: ignore[no-untyped-def]  # crane-build's module, beside the repository
    sys.path.insert(0, str(CRANE_BUILD))
    try:
        import _cbuild as cb  # noqa: PLC0415
    finally:
        sys.path.remove(str(CRANE_BUILD))
    return cb


def seed_lock(lock: Path, registry: Path = REGISTRY, *, fresh: tuple[str, ...] = ()) -> None:
    """Rewrite `lock`'s checksums in place to those crane-build gives its seeded crates (what
    its `build` does to the staged copy only), so that a base snapshot taken from this lock
    agrees with what crane-build seeds. fresh: `name-version`s whose content in `registry`
    changed since crane-build last packed them (its tarball cache is keyed by name-version)."""
    cb = _cbuild()
    s = cb.setup()
    for crate in fresh:
        (cb.CRATE_CACHE / f"{crate}.crate").unlink(missing_ok=True)
    cb.REGISTRY = registry
    try:
        cb.seed_lock(lock, cb.nix_env(s))
    finally:
        cb.REGISTRY = REGISTRY


def build_with_registry(workspace: Path, attrs: list[str], registry: Path) -> dict[str, Result]:
    """build(), with crane-build seeding crates from `registry` (CRANE_BUILD_REGISTRY)."""
    before = os.environ.get("CRANE_BUILD_REGISTRY")
    os.environ["CRANE_BUILD_REGISTRY"] = str(registry)
    try:
        return build(workspace, attrs)
    finally:
        if before is None:
            del os.environ["CRANE_BUILD_REGISTRY"]
        else:
            os.environ["CRANE_BUILD_REGISTRY"] = before


def seed_base_snapshot(workspace: Path) -> None:
    """crane-build seeds the crates of ./Cargo.lock and rewrites its checksums to those of its
    own tarballs, in its staged copy; the base snapshot's lock (nix/nixcrate/base/Cargo.lock)
    needs the same, or its closures cannot be vendored here. Each entry still holding its
    registry's own checksum (Debian's `.cargo-checksum.json`) gets crane-build's, and base.nix
    records the lock's new sha256 (its header rehashed). Entries seeded already are left as
    they are: a base taken from a seeded lock keeps exactly what it was built from. Nothing of
    this is needed with a real registry, whose checksums are the crates'."""
    from nixcrate import files  # noqa: PLC0415

    lock = workspace / "nix" / "nixcrate" / "base" / "Cargo.lock"
    data = lock.with_name("base.nix")
    if not lock.is_file() or not data.is_file():
        return
    cb = _cbuild()
    registry = Path(os.environ.get("CRANE_BUILD_REGISTRY", str(REGISTRY)))
    old_text = lock.read_text()
    seeded = lock.with_name("Cargo.lock.seeding")
    seeded.write_text(old_text)
    cb.REGISTRY = registry
    try:
        cb.seed_lock(seeded, cb.nix_env(cb.setup()))
    finally:
        cb.REGISTRY = REGISTRY
    sums = {
        (p["name"], p["version"]): p.get("checksum") for p in tomllib.loads(seeded.read_text())["package"]
    }
    seeded.unlink()

    def reseed(block: str) -> str:
        name = re.search(r'(?m)^name = "([^"]+)"', block)
        version = re.search(r'(?m)^version = "([^"]+)"', block)
        checksum = re.search(r'(?m)^checksum = "([^"]+)"', block)
        if not (name and version and checksum):
            return block
        own = registry / f"{name[1]}-{version[1]}" / ".cargo-checksum.json"
        if (
            own.is_file()
            and json.loads(own.read_text()).get("package") == checksum[1]
            and sums.get((name[1], version[1]))
        ):
            return block.replace(checksum[0], f'checksum = "{sums[(name[1], version[1])]}"')
        return block

    new_text = "".join(reseed(b) for b in re.split(r"(?m)^(?=\[\[package\]\]\s*$)", old_text))
    if new_text == old_text:
        return
    lock.write_text(new_text)
    _, body = files.split_header(data.read_text())
    old_sum, new_sum = (hashlib.sha256(t.encode()).hexdigest() for t in (old_text, new_text))
    data.write_text(
        files.with_header(body.replace(f'"Cargo.lock" = "{old_sum}";', f'"Cargo.lock" = "{new_sum}";'))
    )
