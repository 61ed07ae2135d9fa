"""Incremental closures, built for real with ../shared/crane-build: the regression guard.

Everything here rests on cargo's fingerprints of registry crates: a crate read through the
same (stable) vendor path, at the same version, with the same features is fresh and kept;
one whose path changed is recompiled. A small workspace of Debian's crates (a service on
serde_json, which depends on itoa, and on `stamp`, a crate made up in the test's registry;
another on smallvec, a handler on smallvec) is built once with its base snapshot, then:

- itoa 1.0.1 -> 1.0.2 (a made-up release in the test's registry): the services' closure
  compiles itoa and serde_json, its one dependent, and nothing else. It fails the day cargo
  stops honouring the stable paths (everything recompiled again). The other service (tool,
  on smallvec), the handlers' closure and the handler's zip keep their derivations: they
  reach neither crate.
- `stamp` changes its content at the same version (an overridden or re-packed source): it is
  recompiled and the service prints the new text. It fails the day a stale artifact is kept
  (a vendor path named by crate and version alone, without the digest of its source).
- `label`, a crate the workspace patches in from the tree ([patch] to a path), changes its
  content at the same version: the service prints the new text. It fails the day a closure
  inherits the old artifacts without seeing the new source (cargo's fingerprint of a path
  crate compares file times, and all of the store's are the same).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLE
from crane_build import REGISTRY, Result, build_with_registry, crane_build_missing, drv_paths, seed_lock

from nixcrate.cli import cli

ITOA = "itoa-1.0.1"


def _missing() -> str | None:
    if why := crane_build_missing(EXAMPLE):
        return why
    if not (REGISTRY / ITOA).is_dir() or not (REGISTRY / "smallvec-1.9.0").is_dir():
        return f"{REGISTRY / ITOA} or smallvec is missing (scripts/test installs librust-itoa-dev, librust-smallvec-dev)"
    if shutil.which("cargo") is None:
        return "cargo is not installed (it writes the test workspace's Cargo.lock)"
    return None


pytestmark = [
    pytest.mark.skipif(_missing() is not None, reason=str(_missing())),
    pytest.mark.nix,
    pytest.mark.slow,
    pytest.mark.xdist_group("incremental-build"),  # one worker builds the fixture once
]

FILES = {
    "Cargo.toml": (
        '[workspace]\nmembers = ["services/app", "services/tool", "lambdas/hook"]\nresolver = "2"\n\n'
        '[workspace.package]\nversion = "0.1.0"\nedition = "2021"\n\n'
        '[patch.crates-io]\nlabel = { path = "vendor/label" }\n'
    ),
    "services/app/Cargo.toml": (
        '[package]\nname = "app"\nversion.workspace = true\nedition.workspace = true\n\n'
        '[dependencies]\nlabel = "0.1"\nserde_json = "1"\nstamp = "0.1"\n'
    ),
    "services/app/src/main.rs": (
        'fn main() {\n    println!("{} {} {}", serde_json::json!([1]), stamp::STAMP, label::LABEL);\n}\n'
    ),
    # A crate patched in from the tree: the closures compile it from its real source.
    "vendor/label/Cargo.toml": '[package]\nname = "label"\nversion = "0.1.0"\nedition = "2021"\n',
    "vendor/label/src/lib.rs": 'pub const LABEL: &str = "first";\n',
    "services/tool/Cargo.toml": (
        '[package]\nname = "tool"\nversion.workspace = true\nedition.workspace = true\n\n[dependencies]\nsmallvec = "1"\n'
    ),
    "services/tool/src/main.rs": 'fn main() {\n    println!("{}", smallvec::SmallVec::<[u8; 1]>::new().len());\n}\n',
    "lambdas/hook/Cargo.toml": (
        '[package]\nname = "hook"\nversion.workspace = true\nedition.workspace = true\n\n[dependencies]\nsmallvec = "1"\n'
    ),
    "lambdas/hook/src/main.rs": 'fn main() {\n    let v: smallvec::SmallVec<[u8; 2]> = smallvec::smallvec![1];\n    println!("{}", v.len());\n}\n',
    "nixcrate.toml": '[members.hook]\nkind = "lambda"\n',
}
ATTRS = ["deployCargoArtifacts", "lambdaDeployCargoArtifacts", "app", "tool", "deploy-lambda-hook"]


def registry(dest: Path, stamp: str, *, bumped: bool = True) -> Path:
    """Debian's registry (links), stamp 0.1.0 saying `stamp`, and (bumped) a made-up itoa
    1.0.2, 1.0.1's sources under a new version: the newest, so `cargo update -p itoa` takes it."""
    dest.mkdir(parents=True)
    for entry in REGISTRY.iterdir():
        (dest / entry.name).symlink_to(entry.resolve())
    crate = dest / "stamp-0.1.0"
    (crate / "src").mkdir(parents=True)
    (crate / "Cargo.toml").write_text('[package]\nname = "stamp"\nversion = "0.1.0"\nedition = "2021"\n')
    (crate / "src" / "lib.rs").write_text(f'pub const STAMP: &str = "{stamp}";\n')
    made = [crate]
    if bumped:
        itoa = dest / "itoa-1.0.2"
        shutil.copytree(REGISTRY / ITOA, itoa)
        manifest = itoa / "Cargo.toml"
        manifest.write_text(manifest.read_text().replace('version = "1.0.1"', 'version = "1.0.2"', 1))
        made.append(itoa)
    for m in made:
        (m / ".cargo-checksum.json").write_text(json.dumps({"package": "0" * 64, "files": {}}))
    return dest


def cargo(ws: Path, reg: Path, *args: str) -> None:
    home = ws.parent / f"{ws.name}-cargo-home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(
        f'[source.crates-io]\nreplace-with = "r"\n[source.r]\ndirectory = "{reg}"\n'
    )
    subprocess.run(
        ["cargo", *args, "--offline"],
        cwd=ws,
        env={**os.environ, "CARGO_HOME": str(home)},
        capture_output=True,
        check=True,
    )


def names(result: Result) -> set[str]:
    return {c.split(" ")[0] for c in result.third_party}


def build(ws: Path, reg: Path) -> dict[str, Result]:
    results = build_with_registry(ws, ATTRS, reg)
    failed = {a: r.error_tail for a, r in results.items() if not r.ok}
    assert not failed, json.dumps(failed, indent=1)[-4000:]
    return results


def run_app(result: Result) -> str:
    return subprocess.run([f"{result.out}/bin/app"], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Result]]:
    """The workspace at itoa 1.0.1 with its base snapshot, everything built."""
    root = tmp_path_factory.mktemp("incremental")
    reg = registry(root / "registry-one", "one")
    ws = root / "ws"
    for rel, text in FILES.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(text)
    # (cargo's --precise does not move a crate of a directory source: lock before the release)
    cargo(ws, registry(root / "registry-before", "one", bumped=False), "generate-lockfile")
    shutil.copyfile(ws / "Cargo.lock", root / "Cargo.lock.registry")  # the registry's checksums, for cargo
    seed_lock(ws / "Cargo.lock", reg, fresh=("stamp-0.1.0",))
    assert CliRunner().invoke(cli, ["init", str(ws)]).exit_code == 0
    results = build(ws, reg)
    assert run_app(results["app"]) == "[1] one first\n"
    return ws, reg, results


def later(first: tuple[Path, Path, dict[str, Result]], dest: Path) -> Path:
    """A copy of the workspace: its lock as cargo left it, the generated files and base kept."""
    ws, _, _ = first
    shutil.copytree(ws, dest)
    shutil.copyfile(ws.parent / "Cargo.lock.registry", dest / "Cargo.lock")
    return dest


def check_untouched(ws: Path) -> None:
    """The generated files need no regeneration: init --check passes, as in CI after the bot's PR."""
    result = CliRunner().invoke(cli, ["init", "--check", str(ws)])
    assert result.exit_code == 0, result.output


def test_a_one_crate_bump_recompiles_that_crate_and_its_dependents_only(
    first: tuple[Path, Path, dict[str, Result]], tmp_path: Path
) -> None:
    _, reg, before = first
    ws = later(first, tmp_path / "ws")
    cargo(ws, reg, "update", "-p", "itoa")
    assert 'name = "itoa"\nversion = "1.0.2"' in (ws / "Cargo.lock").read_text()
    seed_lock(ws / "Cargo.lock", reg, fresh=("stamp-0.1.0",))
    check_untouched(ws)
    after = build(ws, reg)
    assert names(after["deployCargoArtifacts"]) == {"itoa", "serde_json"}, after[
        "deployCargoArtifacts"
    ].third_party
    assert after["app"].third_party == ()
    assert run_app(after["app"]) == "[1] one first\n"
    # tool and the handler reach neither: the very derivations built before (the zip too)
    for attr in ("tool", "lambdaDeployCargoArtifacts", "deploy-lambda-hook"):
        assert after[attr].drv == before[attr].drv, attr
    # The checks too: a member's clippy and test checks whose crates did not move start from
    # the base's checks closure, with the base's lock (their command lines, [checks]' `deps`
    # included, are what the base recorded), so their derivations stay.
    os.environ["CRANE_BUILD_REGISTRY"] = str(reg)
    try:
        checks_before, checks_after = (
            {a: d for a, d in drv_paths(w).items() if a.startswith("checks.")} for w in (first[0], ws)
        )
    finally:
        del os.environ["CRANE_BUILD_REGISTRY"]
    moved = {a for a in checks_before if checks_after[a] != checks_before[a]}
    assert moved == {"checks.x86_64-linux.clippy-app", "checks.x86_64-linux.test-app"}, sorted(moved)
    print(
        "\nitoa bump: services' closure compiled",
        sorted(after["deployCargoArtifacts"].third_party),
        "; handler kept",
    )  # noqa: T201


def test_a_crate_changed_at_the_same_version_is_recompiled_not_kept_stale(
    first: tuple[Path, Path, dict[str, Result]], tmp_path: Path
) -> None:
    reg = registry(tmp_path / "registry-two", "two")  # stamp 0.1.0 again, another content
    ws = later(first, tmp_path / "ws")
    seed_lock(ws / "Cargo.lock", reg, fresh=("stamp-0.1.0",))
    check_untouched(ws)
    after = build(ws, reg)
    assert run_app(after["app"]) == "[1] two first\n"  # not the stale "one"
    assert names(after["deployCargoArtifacts"]) == {"stamp"}, after["deployCargoArtifacts"].third_party


def test_a_patched_path_crate_changed_at_the_same_version_is_recompiled_not_kept_stale(
    first: tuple[Path, Path, dict[str, Result]], tmp_path: Path
) -> None:
    """`label` (a [patch] to a path crate) changes its content, not its version. Cargo's
    fingerprint of a path crate compares file times, and every file in the Nix store has the
    same one: only a closure that sees the new content compiles it again."""
    _, reg, _ = first
    ws = later(first, tmp_path / "ws")
    (ws / "vendor" / "label" / "src" / "lib.rs").write_text('pub const LABEL: &str = "second";\n')
    seed_lock(ws / "Cargo.lock", reg, fresh=("stamp-0.1.0",))  # (the test before packed another stamp)
    check_untouched(ws)
    after = build(ws, reg)
    assert run_app(after["app"]) == "[1] one second\n"  # not the stale "first"
