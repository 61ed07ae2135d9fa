"""Run a generated flake's cargo commands for real, outside Nix, as two sandboxed builds would.

Step 1 (the deps-only closure): the workspace dummified the way crane's mkDummySrc does it
(manifests and lock kept, every target replaced by an empty one) at a fixed path, and the
closure's command lines run there. Step 2 (a package): the build directory emptied, the
package's filtered source put at the same path with the closure's target/ restored, and
its command run. The third-party crates cargo compiles in step 2 are what the closure
failed to provide: the goal is none.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from nixcrate import closure as closure_mod
from nixcrate import flake_gen
from nixcrate.workspace import Workspace

DEBIAN_REGISTRY = Path("/usr/share/cargo/registry")
# `Checking` is what cargo check / clippy print for a crate they compile (metadata only).
_COMPILING = re.compile(r"^\s*(?:Compiling|Checking) (\S+) v(\S+)", re.MULTILINE)

# crane's bash helper, so the command lines run verbatim.
CARGO_WITH_PROFILE = r"""
cargoWithProfile() {
  local profileArgs=()
  if [[ "${CARGO_PROFILE}" == "release" ]]; then profileArgs+=("--release");
  elif [[ -n "${CARGO_PROFILE:-}" ]]; then profileArgs+=("--profile" "${CARGO_PROFILE}"); fi
  cargo "${@:1:1}" "${profileArgs[@]}" "${@:2}"
}
CARGO_PROFILE=release
"""

DUMMY_LIB = "#![allow(dead_code)]\n"
DUMMY_MAIN = "fn main() {}\n"


def cargo_home(tmp: Path) -> Path:
    """A CARGO_HOME whose crates-io is Debian's vendored registry (no network here)."""
    home = tmp / "cargo-home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        '[source.crates-io]\nreplace-with = "debian"\n'
        f'[source.debian]\ndirectory = "{DEBIAN_REGISTRY}"\n[net]\noffline = true\n'
    )
    return home


def _copy_file(src: Path, dst: Path) -> None:
    # A fresh mtime, as unpacking a new source in a new sandbox gives: the package's own
    # crates must look newer than the closure's artifacts of their dummies.
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def make_dummy(ws: Workspace, dest: Path) -> None:
    """What crane's mkDummySrc keeps: manifests, lock, cargo configs; every target emptied."""
    root = ws.root
    _copy_file(root / "Cargo.toml", dest / "Cargo.toml")
    _copy_file(root / "Cargo.lock", dest / "Cargo.lock")
    for cfg in ws.cargo_configs:
        _copy_file(root / cfg, dest / cfg)
    for crate in ws.crates:
        base = dest / crate.path
        _copy_file(root / crate.manifest, base / "Cargo.toml")
        if crate.lib:
            _write(base / crate.lib.path, DUMMY_LIB)
        for b in crate.bins:
            _write(base / b.path, DUMMY_MAIN)
        if crate.build_script:
            _write(base / crate.build_script, DUMMY_MAIN)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def source_files(ws: Workspace, member: str, *, dev: bool = False) -> list[Path]:
    """The files a package's `src` holds (relative), as the flake's fileset selects them.

    dev: a check's source (the member's dev-dependencies' crates too).
    """
    graph = closure_mod.graph_for(ws)
    compiled = graph.path_closure(ws.crate(member), dev=dev)
    rels = {Path("Cargo.toml"), *(Path(c) for c in ws.cargo_configs)}  # Cargo.lock comes as crane's cargoLock
    rels |= {Path(c.manifest) for c in ws.crates}
    crate_dirs = {c.path for c in ws.crates}
    for c in compiled:
        top = ws.root / c.path
        nested = [ws.root / d for d in crate_dirs if d != c.path and (c.path.as_posix() == "." or c.path in d.parents)]
        for f in top.rglob("*"):
            if not f.is_file() or "target" in f.relative_to(ws.root).parts or ".git" in f.parts:
                continue
            if any(n == f or n in f.parents for n in nested):
                continue
            rel = f.relative_to(ws.root)
            if c.path.as_posix() == "." and rel.parts[0] in flake_gen.GENERATED:
                continue
            rels.add(rel)
    return sorted(rels)


def place_stubs(ws: Workspace, src: Path) -> None:
    """What the flake's stubTargets does in a package's source: an empty target file for
    every manifest declaring none whose src/ directory the source left out."""
    for stub in flake_gen.workspace_stubs(ws):
        if not (src / stub).parent.exists():
            _write(src / stub, "")


@dataclass(frozen=True)
class StepResult:
    compiled: tuple[str, ...]  # every crate cargo reported compiling
    output: str


def run_commands(commands: str, cwd: Path, env: dict[str, str], prelude: str = "") -> StepResult:
    script = "set -euo pipefail\n" + CARGO_WITH_PROFILE + prelude + "\n" + commands + "\n"
    proc = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        msg = f"cargo step failed in {cwd}:\n{out[-4000:]}"
        raise AssertionError(msg)
    return StepResult(tuple(f"{m[0]} {m[1]}" for m in _COMPILING.findall(out)), out)


class Sandbox:
    """A fixed build directory reused by every step, emptied between steps like /build."""

    def __init__(self, base: Path, home: Path) -> None:
        self.top = base / "build"
        self.saved = base / "saved-target"
        self.env = {
            "PATH": os.environ["PATH"],
            "CARGO_HOME": str(home),
            "HOME": "/homeless-shelter",
            "TMPDIR": str(self.top),
            "CARGO_BUILD_INCREMENTAL": "false",
            "CARGO_TERM_COLOR": "never",
        }
        for var in ("RUSTUP_HOME", "RUSTUP_TOOLCHAIN"):
            if var in os.environ:
                self.env[var] = os.environ[var]
        if "RUSTUP_HOME" not in self.env and Path.home().joinpath(".rustup").is_dir():
            self.env["RUSTUP_HOME"] = str(Path.home() / ".rustup")

    def fresh(self) -> Path:
        shutil.rmtree(self.top, ignore_errors=True)
        self.top.mkdir(parents=True)
        return self.top / "source"

    def closure_step(self, ws: Workspace, commands: str, prelude: str = "") -> StepResult:
        src = self.fresh()
        make_dummy(ws, src)
        result = run_commands(commands, src, self.env, prelude)
        shutil.rmtree(self.saved, ignore_errors=True)
        shutil.copytree(src / "target", self.saved, symlinks=True)
        return result

    def chained_closure_step(self, ws: Workspace, commands: str, prelude: str = "") -> StepResult:
        """A deps-only derivation whose cargoArtifacts is the previous closure's target/."""
        src = self.fresh()
        make_dummy(ws, src)
        shutil.copytree(self.saved, src / "target", symlinks=True)
        result = run_commands(commands, src, self.env, prelude)
        shutil.rmtree(self.saved, ignore_errors=True)
        shutil.copytree(src / "target", self.saved, symlinks=True)
        return result

    def package_step(self, ws: Workspace, member: str, command: str, prelude: str = "", *, dev: bool = False) -> StepResult:
        src = self.fresh()
        for rel in (*source_files(ws, member, dev=dev), Path("Cargo.lock")):  # the lock: crane's replaceCargoLockHook
            _copy_file(ws.root / rel, src / rel)
        place_stubs(ws, src)
        shutil.copytree(self.saved, src / "target", symlinks=True)
        return run_commands(command, src, self.env, prelude)


def third_party(ws: Workspace, compiled: tuple[str, ...]) -> list[str]:
    in_tree = {c.name for c in ws.crates}
    return sorted(c for c in compiled if c.split(" ")[0] not in in_tree)
