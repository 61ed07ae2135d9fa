"""Shared fixtures: the shipped example, tool availability, crane-eval."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "monorepo"
SHARED = REPO.parent / "shared"
CRANE_EVAL = SHARED / "crane-eval"

sys.path.insert(0, str(Path(__file__).resolve().parent))

# crane-eval re-creates its stub inputs under HARNESS_CACHE on every call: two test workers
# sharing one folder race on it, so each xdist worker gets its own (under $TMPDIR: two test
# sessions on one machine, each with its own TMPDIR, do not share one either).
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("HARNESS_CACHE", f"{tempfile.gettempdir()}/crane-eval-harness-{os.environ['PYTEST_XDIST_WORKER']}")

# `nixcrate build` remembers each closure's last .drv under $XDG_STATE_HOME (closure_reuse):
# the tests' builds write theirs to a folder of this session, never the user's.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="nixcrate-test-state-")

# The same Nix settings scripts/test exports, so a bare `pytest` behaves like CI:
# flakes on, no sandbox, no substituter (there is no network).
os.environ.setdefault(
    "NIX_CONFIG",
    "experimental-features = nix-command flakes\nsandbox = false\nsubstituters =\nwarn-dirty = false\nbuild-users-group =",
)


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


needs_nix = pytest.mark.skipif(not have("nix-instantiate"), reason="nix is not installed (apt-get install nix-bin)")
needs_cargo = pytest.mark.skipif(not have("cargo"), reason="cargo is not installed")
needs_debian_crates = pytest.mark.skipif(
    not (Path("/usr/share/cargo/registry") / "serde_json-1.0.87").is_dir(),
    reason="Debian's vendored crates are not installed (apt-get install librust-serde-json-dev ...)",
)


def _harness_mirror() -> Path | None:
    """crane-eval's own answer to where fetched repositories are (`_harness.MIRROR`: $MIRRORS,
    the nearest `.mirror/` above it, else the folder it remembered), as its README asks."""
    harness = CRANE_EVAL / "_harness.py"
    if not harness.is_file():
        return None
    sys.path.insert(0, str(CRANE_EVAL))
    try:
        import _harness  # noqa: PLC0415 - crane-eval's module, beside the repository
    finally:
        sys.path.remove(str(CRANE_EVAL))
    return Path(_harness.MIRROR)


def mirror_repo(name: str) -> Path | None:
    """A fetched repository (`owner+name`) where crane-eval finds it."""
    mirror = _harness_mirror()
    repo = mirror / name / "repo" if mirror else None
    return repo if repo is not None and repo.exists() else None


def crane_eval_missing() -> str | None:
    """Why crane-eval cannot run here, or None when it can."""
    if not (CRANE_EVAL / "eval-flake").is_file():
        return f"{CRANE_EVAL} is not there (../shared beside the repository)"
    if not have("nix"):
        return "nix is not installed"
    for name in ("ipetkov+crane", "nix-community+nixpkgs.lib"):
        found = mirror_repo(name) is not None
        if not found:
            return f"{name.replace('+', '/')} is not fetched into .mirror/ (crane-eval needs it)"
    return None


needs_crane_eval = pytest.mark.skipif(crane_eval_missing() is not None, reason=str(crane_eval_missing()))


def copy_workspace(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("target", "result", "result-*", ".git"))
    return dest


def copy_in_reverse_order(src: Path, dest: Path) -> Path:
    """Re-create src under dest file by file in reverse order: directory listing order differs."""
    for f in sorted((p for p in src.rglob("*") if p.is_file() and "target" not in p.parts), reverse=True):
        target = dest / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
    return dest


def add_standalone_library(root: Path) -> None:
    """crates/sdk in the example: a library no crate depends on (a published client, say),
    using memchr with a feature set of its own."""
    (root / "crates/sdk/src").mkdir(parents=True)
    (root / "crates/sdk/Cargo.toml").write_text(
        '[package]\nname = "sdk"\nversion.workspace = true\nedition.workspace = true\n\n'
        "[dependencies]\nmemchr = { workspace = true, default-features = false }\n"
    )
    (root / "crates/sdk/src/lib.rs").write_text("pub fn find(b: &[u8]) -> Option<usize> {\n    memchr::memchr(b'x', b)\n}\n")
    lock = (root / "Cargo.lock").read_text()
    (root / "Cargo.lock").write_text(lock + '\n[[package]]\nname = "sdk"\nversion = "0.3.1"\ndependencies = [\n "memchr",\n]\n')


def git_init(path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "add", "-A"], check=True)


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return copy_workspace(EXAMPLE, tmp_path / "monorepo")


def handler_build_drv(zip_drv: str) -> str:
    """The derivation that compiles a handler crate, from its `deploy-lambda-<bin>` zip's .drv
    (the zip packages a binary of that build: see nixcrate/nix/default.nix, mkLambdaZip)."""
    builds = [d for d in input_drvs(zip_drv) if "-lambda-" in d and "-lambda-deploy-deps-" not in d]
    assert len(builds) == 1, builds
    return builds[0]


def input_drvs(drv: str) -> list[str]:
    """The derivations a .drv depends on directly."""
    out = subprocess.run(["nix", "show-derivation", drv], capture_output=True, text=True, check=True).stdout
    (only,) = json.loads(out).values()
    return sorted(only["inputDrvs"])


# --------------------------------------------------------------------------- no silent skips in CI

IN_CI = os.environ.get("CI", "").lower() in ("true", "1")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # noqa: ANN201 - a pluggy hook wrapper
    """In CI (CI=true) a skipped test fails, naming its reason: everything must run there, and
    scripts/test installs what the tests need. Locally a skip stays a skip (`-rs` lists them)."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (CI=true), where every test must run: {reason}"
