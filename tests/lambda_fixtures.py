"""A real Lambda handler, built the way the flake builds it, outside Nix.

One tiny workspace (a bin crate using std threads and serde_json, itoa, ryu, memchr from
Debian's vendored registry: no network here) is compiled once per test session:

- `sandbox_builds`: two simulated sandboxed builds, as crane runs them. Step 1 (the deps
  closure) builds a dummy copy of the sources at $TMPDIR/source with TMPDIR a fixed build
  dir and HOME=/homeless-shelter, after `prebuild_shell`, then saves target/ and empties the
  build dir. Step 2 (the handler) puts the real sources at the same path, restores target/,
  and runs the same `zigbuild_command`. The third-party crates cargo reports as `Compiling`
  in step 2 are the closure's misses. A negative control repeats step 2 with a different
  cargo-zigbuild cache dir, and must recompile.
- `host_binary`: the same handler from plain `cargo build --release` (this machine's glibc).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from nixcrate import lambda_pkg

REGISTRY = Path("/usr/share/cargo/registry")
# Crates whose .cargo-checksum.json carries a real checksum (Debian ships syn without one).
DEPS = {"serde": "1", "serde_json": "1", "itoa": "1", "ryu": "1", "memchr": "2"}
PACKAGE = "handler"
GLIBC = "2.26"
ARCH = "x86_64"

HANDLER_MAIN = """\
use std::io::Read;

// std::thread pulls pthread_create & co, which glibc >= 2.34 versions GLIBC_2.34.
fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).unwrap();
    let text = if input.trim().is_empty() { "{}".to_string() } else { input };
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let worker = std::thread::spawn(move || serde_json::to_string(&value).unwrap());
    let body = worker.join().unwrap();
    let mut ints = itoa::Buffer::new();
    let mut floats = ryu::Buffer::new();
    let brace = memchr::memchr(b'{', body.as_bytes());
    println!("{} {} {} {:?}", body, ints.format(body.len()), floats.format(0.5f64), brace);
}
"""
DUMMY_MAIN = "fn main() {}\n"

# crane's bash function: the command lines run verbatim.
CARGO_WITH_PROFILE = """\
cargoWithProfile() {
  local sub="$1"; shift
  cargo "$sub" --release "$@"
}
"""

_COMPILING = re.compile(r"^\s*Compiling (\S+) v(\S+)(.*)$", re.MULTILINE)

requires_zigbuild = pytest.mark.skipif(
    shutil.which("cargo-zigbuild") is None or shutil.which("cargo") is None,
    reason="cargo and cargo-zigbuild are needed ('pip install cargo-zigbuild ziglang')",
)
requires_registry = pytest.mark.skipif(
    not all(any(REGISTRY.glob(f"{name}-{major}.*")) for name, major in DEPS.items()),
    reason="Debian's vendored crates are missing (apt-get install librust-serde-json-dev librust-memchr-dev)",
)


def write_workspace(root: Path, main_rs: str = HANDLER_MAIN) -> Path:
    (root / PACKAGE / "src").mkdir(parents=True, exist_ok=True)
    (root / "Cargo.toml").write_text(f'[workspace]\nmembers = ["{PACKAGE}"]\nresolver = "2"\n')
    deps = "".join(f'{name} = "{req}"\n' for name, req in DEPS.items())
    (root / PACKAGE / "Cargo.toml").write_text(
        f'[package]\nname = "{PACKAGE}"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n{deps}'
    )
    (root / PACKAGE / "src" / "main.rs").write_text(main_rs)
    (root / "README.md").write_text("handler readme\n")
    (root / "static" / "img").mkdir(parents=True, exist_ok=True)
    (root / "static" / "index.html").write_text("<html></html>\n")
    (root / "static" / "img" / "logo.txt").write_text("logo\n")
    return root


def make_cargo_home(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.toml").write_text(
        '[source.crates-io]\nreplace-with = "debian"\n'
        f'[source.debian]\ndirectory = "{REGISTRY}"\n[net]\noffline = true\n'
    )
    return path


def base_env(cargo_home: Path) -> dict[str, str]:
    """Our PATH and toolchain, a CARGO_HOME on the Debian registry, nothing else of ours."""
    rustup_home = os.environ.get("RUSTUP_HOME") or str(Path.home() / ".rustup")
    keep = ("PATH", "LANG", "PYENV_ROOT", "PYENV_VERSION", "RUSTUP_TOOLCHAIN")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env |= {"CARGO_HOME": str(cargo_home), "RUSTUP_HOME": rustup_home, "CARGO_TERM_COLOR": "never"}
    return env


def run_bash(script: str, *, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )


def compiled_crates(log: str, members: set[str]) -> list[str]:
    """Third-party `Compiling NAME vX` lines: workspace members (they carry a path) excluded."""
    found = []
    for name, version, rest in _COMPILING.findall(log):
        if name in members or rest.strip().startswith("("):
            continue
        found.append(f"{name} v{version}")
    return found


def sandbox_script(build_dir: Path, *, after_prebuild: str = "") -> str:
    """Step 1 / step 2 body: the env both crane derivations get, then the zigbuild line."""
    exports = "".join(f"export {k}={v}\n" for k, v in sorted(lambda_pkg.build_env(ARCH, "2").items()))
    return (
        "set -euo pipefail\n"
        f"export TMPDIR={shlex.quote(str(build_dir))}\n"
        "export HOME=/homeless-shelter\n"
        f"{exports}{CARGO_WITH_PROFILE}"
        f"{lambda_pkg.prebuild_shell()}"
        f"{after_prebuild}"
        'cd "$TMPDIR/source"\n'
        f"{lambda_pkg.zigbuild_command(PACKAGE, ARCH, GLIBC)} 2>&1\n"
    )


@dataclass(frozen=True, slots=True)
class SandboxBuilds:
    step1_log: str
    step2_log: str
    step2_recompiled: list[str]
    control_log: str
    control_recompiled: list[str]
    binary: Path  # the handler step 2 linked (zigbuild, .2.26)
    workspace: Path  # the real sources


def _empty(directory: Path) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)


def _step2(build: Path, ws: Path, saved: Path, env: dict[str, str], after_prebuild: str = "") -> str:
    _empty(build)
    # Fresh mtimes (copyfile, not copy2), as unpacking a new source gives: the handler's
    # own files must look newer than the artifacts of its dummy.
    shutil.copytree(ws, build / "source", symlinks=True, copy_function=shutil.copyfile)
    shutil.copytree(saved, build / "source" / "target", symlinks=True)  # copy2 keeps mtimes
    proc = run_bash(sandbox_script(build, after_prebuild=after_prebuild), env=env, cwd=build)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="session")
def lambda_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lambda")


@pytest.fixture(scope="session")
def handler_workspace(lambda_session: Path) -> tuple[Path, Path]:
    """(workspace with Cargo.lock, CARGO_HOME)."""
    cargo_home = make_cargo_home(lambda_session / "cargo-home")
    ws = write_workspace(lambda_session / "ws")
    proc = subprocess.run(
        ["cargo", "generate-lockfile", "--offline"],
        cwd=ws,
        env=base_env(cargo_home),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return ws, cargo_home


@pytest.fixture(scope="session")
def sandbox_builds(lambda_session: Path, handler_workspace: tuple[Path, Path]) -> SandboxBuilds:
    ws, cargo_home = handler_workspace
    env = base_env(cargo_home)
    build = lambda_session / "sbx" / "build"  # fixed for both steps, like /build
    saved = lambda_session / "closure-target"

    # Step 1: the deps closure, from a dummy copy of the sources.
    _empty(build)
    shutil.copytree(ws, build / "source", symlinks=True, copy_function=shutil.copyfile)
    (build / "source" / PACKAGE / "src" / "main.rs").write_text(DUMMY_MAIN)
    proc = run_bash(sandbox_script(build), env=env, cwd=build)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    step1_log = proc.stdout
    shutil.copytree(build / "source" / "target", saved, symlinks=True)

    # Step 2: the handler, same paths, real sources, the closure's target/.
    step2_log = _step2(build, ws, saved, env)
    binary = lambda_session / "zigbuild-bootstrap"
    shutil.copy2(build / "source" / lambda_pkg.binary_path(ARCH, PACKAGE), binary)

    # Negative control: step 2 with cargo-zigbuild's cache (its linker wrappers) elsewhere.
    control_log = _step2(
        build, ws, saved, env, after_prebuild='export CARGO_ZIGBUILD_CACHE_DIR="$TMPDIR/other-zig-cache"\n'
    )
    _empty(build)
    return SandboxBuilds(
        step1_log=step1_log,
        step2_log=step2_log,
        step2_recompiled=compiled_crates(step2_log, {PACKAGE}),
        control_log=control_log,
        control_recompiled=compiled_crates(control_log, {PACKAGE}),
        binary=binary,
        workspace=ws,
    )


@pytest.fixture(scope="session")
def host_binary(lambda_session: Path, handler_workspace: tuple[Path, Path]) -> Path:
    """The handler from plain `cargo build --release`: linked against this machine's glibc."""
    ws, cargo_home = handler_workspace
    target = lambda_session / "host-target"
    proc = subprocess.run(
        ["cargo", "build", "--release", "--locked", "-p", PACKAGE, "--target-dir", str(target)],
        cwd=ws,
        env=base_env(cargo_home),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return target / "release" / PACKAGE


# A real ELF needing exactly one glibc minor release above the pin: memfd_create is versioned
# GLIBC_2.27, and zig links against the symbol versions of the glibc it is given.
PIN_PLUS_ONE = ("2.27", "memfd_create")
PIN_PLUS_ONE_C = """\
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>

int main(void) {
    int fd = memfd_create("nixcrate", 0);
    printf("%d\\n", fd >= 0);
    return 0;
}
"""


@pytest.fixture(scope="session")
def pin_plus_one_binary(lambda_session: Path) -> Path:
    """An executable zig linked against glibc 2.27: it needs GLIBC_2.27 (for memfd_create)
    and nothing newer, one minor release above the 2.26 pin."""
    src = lambda_session / "pin-plus-one.c"
    src.write_text(PIN_PLUS_ONE_C)
    out = lambda_session / "pin-plus-one"
    target = f"x86_64-linux-gnu.{PIN_PLUS_ONE[0]}"
    proc = subprocess.run(
        [sys.executable, "-m", "ziglang", "cc", "-target", target, "-O1", "-o", str(out), str(src)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out


def package(
    binary: Path, out_dir: Path, *, cwd: Path, includes: tuple[str, ...] = (), umask: str = "022"
) -> Path:
    """Run package_shell's exact text with bash; returns the bootstrap.zip."""
    script = f"umask {umask}\n" + lambda_pkg.package_shell(str(binary), str(out_dir), includes)
    proc = subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return out_dir / "bootstrap.zip"


def check(
    zip_path: Path, *, arch: str = ARCH, glibc: str = GLIBC, includes: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run check_shell's exact text with bash (unzip and readelf from PATH)."""
    script = lambda_pkg.check_shell(str(zip_path), arch, glibc, includes)
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)


def problem_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.search(r"\[[a-z-]+\]$", line)]
