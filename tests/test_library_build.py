"""A library-only workspace builds for real (../shared/crane-build): every package and check.

tests/library_workspace.py: a plain library on a proc-macro and a registry crate, a proc-macro
nothing uses, a cdylib, a staticlib, a dylib, an `autobins = false` crate, a library with an
example and a crate of examples alone; none has a bin target. What a user would check: `nixcrate init` accepts it, each
library nothing depends on is a package (the cdylib's holds a libffi.so that loads and answers,
the staticlib's a libstat.a), every package and check builds on the one closure and compiles
no third-party crate after it, and editing one library changes one package.
"""

# ruff: noqa: T201 - prints record the measured figures
from __future__ import annotations

import ctypes
import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CRANE_EVAL
from crane_build import Result, crane_build_and_cargo_missing, drv_paths
from crane_build import build as crane_build
from library_workspace import PACKAGES, write_library_workspace

from nixcrate.cli import cli

C = "checks.x86_64-linux"
MEMBERS = ("base", "demos", "dy", "ffi", "names", "nobins", "stat", "tag", "withex")



pytestmark = [
    pytest.mark.skipif(crane_build_and_cargo_missing() is not None, reason=str(crane_build_and_cargo_missing())),
    pytest.mark.nix,
    pytest.mark.slow,
    pytest.mark.xdist_group("library-build"),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, Result], dict[str, str]]:
    ws = write_library_workspace(tmp_path_factory.mktemp("libraries") / "libs")
    result = CliRunner().invoke(cli, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    drvs = drv_paths(ws)
    results = crane_build(ws, ["deployCargoArtifacts", *sorted(a for a in drvs if a != "deployCargoArtifacts")])
    failed = {a: r.error_tail for a, r in results.items() if not r.ok}
    assert not failed, json.dumps(failed, indent=1)[-4000:]
    return ws, result.output, results, drvs


def test_init_gives_each_library_nothing_depends_on_a_package_and_every_member_checks(
    built: tuple[Path, str, dict[str, Result], dict[str, str]],
) -> None:
    _, output, _, drvs = built
    assert "nix build .#base" in output  # init's next steps name one of them
    checks = {f"{C}.{kind}-{m}" for m in MEMBERS for kind in ("clippy", "test")} | {f"{C}.fmt"}
    # names has no package (base uses it), nor demos (examples alone); seven packages, so no `default`
    assert set(drvs) == {"deployCargoArtifacts", *PACKAGES} | checks


def test_every_package_and_check_builds_and_compiles_no_dependency_after_the_closure(
    built: tuple[Path, str, dict[str, Result], dict[str, str]],
) -> None:
    _, _, results, _ = built
    assert "itoa v1.0.1" in results["deployCargoArtifacts"].third_party
    for attr, result in results.items():
        if attr != "deployCargoArtifacts" and not attr.endswith("fmt"):
            assert (result.third_party, result.checked_third_party) == ((), ()), attr
            assert result.local or result.checked_local, attr  # it compiled its own crate
    print(f"\n{len(results)} outputs built; 0 third-party crates compiled after the closure")


def test_the_cdylib_staticlib_and_dylib_packages_hold_their_library_files(
    built: tuple[Path, str, dict[str, Result], dict[str, str]],
) -> None:
    _, _, results, _ = built
    ffi = Path(str(results["ffi"].out))
    assert ctypes.CDLL(str(ffi / "lib" / "libffi.so")).ffi_answer() == 4  # "4242" has 4 digits
    assert (Path(str(results["stat"].out)) / "lib" / "libstat.a").is_file()
    assert (Path(str(results["dy"].out)) / "lib" / "libdy.so").is_file()
    for plain in ("base", "nobins", "tag", "withex"):  # an rlib or a proc-macro: nothing to install
        assert list(Path(str(results[plain].out)).iterdir()) == [], plain


def test_a_leaf_edit_changes_one_package(built: tuple[Path, str, dict[str, Result], dict[str, str]]) -> None:
    """crane-eval's amplification appends to each member's lib target (else its first target)
    in turn: one package changes (names' edit: base, its user; demos' example: none, its checks
    only), and the closure keeps its .drv."""
    ws = built[0]
    proc = subprocess.run([str(CRANE_EVAL / "amplification"), str(ws)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {line.split()[0]: line.split()[-1] for line in proc.stdout.splitlines() if line.split() and line.split()[0] in MEMBERS}
    assert rows == {m: m for m in PACKAGES} | {"names": "base", "demos": "-"}, proc.stdout
    last = proc.stdout.strip().splitlines()[-1]
    assert last.endswith("deps closure stable under .rs edits: yes"), proc.stdout
