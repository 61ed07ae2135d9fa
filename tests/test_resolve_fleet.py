"""The fleet (benchmarks/fleet.py, Debian's crates): init counts what cargo compiles.

Cargo.lock lists 129 third-party crates; the services' builds compile fewer (Windows-only
and feature-gated entries). init's count per closure is compared with the union of `cargo
tree -e normal,build --target x86_64-unknown-linux-gnu -p <member>` over the closure's
members, one invocation each as the closure runs them, and with what the closures' real
builds compile (crane-build; ~4.5 minutes cold on 2 cores, then cached in the store). Which
members share a closure does not move: the generated data is the same byte for byte as
with the lock's answer (no manifests on disk).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLE, REPO, have
from crane_build import crane_build_missing
from crane_build import build as crane_build
from resolve_diff import DEBIAN_REGISTRY, cargo_env, cargo_home

from nixcrate.cli import cli

sys.path.insert(0, str(REPO / "benchmarks"))
import fleet  # noqa: E402


def _missing() -> str | None:
    if not have("cargo"):
        return "cargo is not installed"
    for p in fleet.DEBIAN_PACKAGES:
        proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True, check=False)
        if "install ok installed" not in proc.stdout:
            return f"{p} is not installed (scripts/test installs the fleet's librust-*-dev)"
    return None


pytestmark = [pytest.mark.skipif(_missing() is not None, reason=str(_missing())), pytest.mark.slow]


def _cargo_compiles(root: Path, home: Path, members: tuple[str, ...]) -> set[str]:
    out: set[str] = set()
    for m in members:
        proc = subprocess.run(
            ["cargo", "tree", "--offline", "-e", "normal,build", "--target", "x86_64-unknown-linux-gnu", "-p", m, "--prefix", "none", "-f", "{p}"],
            cwd=root, env=cargo_env(home), capture_output=True, text=True, check=True,
        )  # fmt: skip
        out |= {" ".join(line.split()[:2]) for line in proc.stdout.splitlines() if line.strip() and "(/" not in line}
    return out


def _init(root: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, str]]:
    monkeypatch.setenv("CARGO_HOME", str(home))
    result = CliRunner().invoke(cli, ["init", str(root)])
    assert result.exit_code == 0, result.output
    nix = {p.relative_to(root).as_posix(): p.read_text() for p in sorted((root / "nix").rglob("*")) if p.is_file()}
    return " ".join(result.output.split()), nix


def test_fleet_counts_what_cargo_compiles_and_keeps_its_closures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = fleet.write_workspace(tmp_path / "fleet", "fleet", DEBIAN_REGISTRY)
    home = cargo_home(tmp_path)
    output, nix = _init(written.root, home, monkeypatch)
    services = _cargo_compiles(written.root, home, written.services)
    handlers = _cargo_compiles(written.root, home, written.handlers)
    assert len(services) < len(written.third_party)  # the lock lists more than the build compiles
    assert f"services' closure: {len(services)} third-party crates" in output
    assert f"handlers' closure: {len(handlers)} third-party crates" in output
    assert "not on disk" not in output

    # The same workspace with no manifests on disk: the lock's count, the same generated Nix.
    again = fleet.write_workspace(tmp_path / "fleet-lock", "fleet", DEBIAN_REGISTRY)
    empty = tmp_path / "empty-home"
    empty.mkdir()
    output_lock, nix_lock = _init(again.root, empty, monkeypatch)
    assert re.search(r"services' closure: (\d+) third-party", output_lock).group(1) == str(len(written.third_party))  # type: ignore[union-attr]
    assert nix_lock == nix


@pytest.mark.nix
@pytest.mark.skipif(crane_build_missing(EXAMPLE) is not None, reason=str(crane_build_missing(EXAMPLE)))
def test_fleet_closures_compile_what_init_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = fleet.write_workspace(tmp_path / "fleet", "fleet", DEBIAN_REGISTRY)
    output, _nix = _init(written.root, cargo_home(tmp_path), monkeypatch)
    counts = dict(re.findall(r"(services|handlers)' closure: (\d+) third-party crates", output))
    built = crane_build(written.root, ["deployCargoArtifacts", "lambdaDeployCargoArtifacts"])
    assert all(r.ok for r in built.values()), {a: r.error_tail for a, r in built.items()}
    # distinct crates: cargo compiles a few twice (host and target sides, other features)
    assert int(counts["services"]) == len(set(built["deployCargoArtifacts"].third_party))
    assert int(counts["handlers"]) == len(set(built["lambdaDeployCargoArtifacts"].third_party))
