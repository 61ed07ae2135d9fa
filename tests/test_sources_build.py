"""What a package's and a check's source keep, built for real (../shared/crane-build).

On a root-package workspace shaped like ripgrep (tests/sources_workspace.py: the binary is the
root package, its build script reads data/words.txt, declared with `extra-src`), what a user
would check: every output builds and runs, an edit no build reads (a CHANGELOG, READMEs, docs,
CI files, a benchmark script) changes no derivation, an edit to the data file the build script
reads or to a `.rs` file rebuilds the package (compiling no dependency), an edit to an
integration test re-runs only its checks. Files cargo reads outside a crate's directory are
there: a bin declared at ../../tools/extra.rs, an include_str! of ../../../shared/banner.txt,
the path dependency of a crate patched in with [patch]. And clippy's checks warn by default
and fail with `clippy-warnings = "deny"`, unless the lint is allowed.
"""

# ruff: noqa: T201 - prints record the measured figures
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CRANE_EVAL, input_drvs
from crane_build import Result, crane_build_and_cargo_missing, drv_paths
from crane_build import build as crane_build
from sources_workspace import write_outside_workspace, write_workspace

from nixcrate.cli import cli

C = "checks.x86_64-linux"
PACKAGES = ["deployCargoArtifacts", "tool", "extra", "lints"]
CHECKS = [f"{C}.{k}-{m}" for m in ("tool", "words", "extra", "lints") for k in ("clippy", "test")] + [f"{C}.fmt"]
WORKSPACE_CRATES = {"tool", "words", "extra", "lints"}



pytestmark = [
    pytest.mark.skipif(crane_build_and_cargo_missing() is not None, reason=str(crane_build_and_cargo_missing())),
    pytest.mark.nix,
    pytest.mark.slow,
    pytest.mark.xdist_group("sources-build"),
]


def init(ws: Path) -> str:
    result = CliRunner().invoke(cli, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    return result.output


def build(ws: Path, *attrs: str, ok: bool = True) -> dict[str, Result]:
    results = crane_build(ws, list(attrs))
    if ok:
        failed = {a: r.error_tail for a, r in results.items() if not r.ok}
        assert not failed, json.dumps(failed, indent=1)[-4000:]
    return results


def run(result: Result, binary: str) -> str:
    return subprocess.run([Path(str(result.out)) / "bin" / binary], capture_output=True, text=True, check=True, timeout=30).stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Result], dict[str, str]]:
    ws = write_workspace(tmp_path_factory.mktemp("sources") / "tool")
    init(ws)
    return ws, build(ws, *PACKAGES, *CHECKS), drv_paths(ws)


def variant(built: tuple[Path, dict[str, Result], dict[str, str]], tmp_path: Path, edits: dict[str, str]) -> Path:
    """A copy of the built workspace with files appended to (or, with a leading '=', replaced)."""
    ws = shutil.copytree(built[0], tmp_path / "tool")
    for rel, text in edits.items():
        path = ws / rel
        path.write_text(text[1:] if text.startswith("=") else path.read_text() + text)
    return ws


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    assert before.keys() == after.keys()
    return {attr for attr in before if before[attr] != after[attr]}


def test_every_output_builds_and_runs_and_no_package_compiles_a_dependency(built: tuple[Path, dict[str, Result], dict[str, str]]) -> None:
    _, results, _ = built
    assert run(results["tool"], "tool") == "tool: 3 words, app at 1\n"  # build.rs read data/words.txt
    assert run(results["extra"], "extra") == "extra 42\n"  # its bin is ../../tools/extra.rs
    closure = results["deployCargoArtifacts"]
    assert {"memchr v2.5.0", "memchr-shim v0.1.0"} <= set(closure.local)  # patched in, and its path dependency
    for attr, result in results.items():
        if attr != "deployCargoArtifacts":
            compiled = {c.split(" ")[0] for c in (*result.local, *result.checked_local)}
            assert (result.third_party, result.checked_third_party) == ((), ()), attr
            assert compiled <= WORKSPACE_CRATES, (attr, compiled)  # memchr and its shim come from the closure
    print(f"\n{len(results)} outputs built; 0 dependencies compiled after the closure")


def test_an_edit_no_build_reads_changes_no_derivation(built: tuple[Path, dict[str, Result], dict[str, str]], tmp_path: Path) -> None:
    ws = variant(built, tmp_path, {
        "CHANGELOG.md": "\n## 0.1.1\n", "README.md": "More.\n", "LICENSE": "\n", "doc/guide.md": "More.\n",
        "benchsuite/bench.py": "print(2)\n", ".github/workflows/ci.yml": "# more\n",
        "crates/words/CHANGELOG.md": "\n## 0.1.1\n", "crates/extra/README.md": "More.\n",
    })  # fmt: skip
    assert CliRunner().invoke(cli, ["init", "--check", str(ws)]).exit_code == 0  # nothing to regenerate either
    assert changed(built[2], drv_paths(ws)) == set()


def test_an_edit_to_the_file_the_build_script_reads_rebuilds_the_package(
    built: tuple[Path, dict[str, Result], dict[str, str]], tmp_path: Path
) -> None:
    ws = variant(built, tmp_path, {"data/words.txt": "delta\n"})
    # The root package's own derivations (the fmt check's source holds every crate's too); the
    # closure, the other packages and the other members' checks keep theirs.
    assert changed(built[2], drv_paths(ws)) == {"tool", f"{C}.clippy-tool", f"{C}.test-tool", f"{C}.fmt"}
    tool = build(ws, "tool")["tool"]
    assert run(tool, "tool") == "tool: 4 words, app at 1\n"
    assert tool.third_party == ()


def test_a_rust_edit_rebuilds_the_package(built: tuple[Path, dict[str, Result], dict[str, str]], tmp_path: Path) -> None:
    ws = variant(built, tmp_path, {"crates/core/app.rs": '\npub fn unused() -> &\'static str {\n    "x"\n}\n'})
    assert changed(built[2], drv_paths(ws)) == {"tool", f"{C}.clippy-tool", f"{C}.test-tool", f"{C}.fmt"}
    tool = build(ws, "tool")["tool"]
    # the package compiles its in-tree crates (words) and no third-party one: memchr, its shim
    # and anyhow come from the closure, which the edit left alone
    assert tool.third_party == ()
    assert {c.split(" ")[0] for c in tool.local} == {"tool", "words"}


def test_an_integration_test_edit_reruns_only_its_members_checks(
    built: tuple[Path, dict[str, Result], dict[str, str]], tmp_path: Path
) -> None:
    ws = variant(built, tmp_path, {"crates/words/tests/fixture.rs": "\n#[test]\nfn more() {}\n", "crates/words/tests/data/input.txt": "=input\n"})
    assert changed(built[2], drv_paths(ws)) == {f"{C}.clippy-words", f"{C}.test-words", f"{C}.fmt"}


def test_clippy_warns_by_default_and_deny_fails_unless_the_lint_is_allowed(
    built: tuple[Path, dict[str, Result], dict[str, str]], tmp_path: Path
) -> None:
    """lints and extra each have a `needless_return`: by default both clippy checks pass (the
    warning is in the log). With `clippy-warnings = "deny"` lints' fails on that lint, and
    extra's passes: its own clippy-args allow it. Neither recompiles the checks' closure."""
    _, before, _ = built
    ws = variant(built, tmp_path, {
        "nixcrate.toml": '\n[checks]\nclippy-warnings = "deny"\n\n'
        '[members.extra.checks]\nclippy-args = "--all-targets -- --allow clippy::needless_return"\n',
    })  # fmt: skip
    init(ws)
    after = build(ws, f"{C}.clippy-lints", f"{C}.clippy-extra", ok=False)
    lints, extra = after[f"{C}.clippy-lints"], after[f"{C}.clippy-extra"]
    assert not lints.ok
    assert "needless_return" in lints.error_tail, lints.error_tail[-2000:]
    assert extra.ok, extra.error_tail
    # the same checks' closure (deps-only) as the default's: only clippy's arguments changed
    deps = [d for d in input_drvs(str(before[f"{C}.clippy-extra"].drv)) if "-checks-deps-" in d]
    assert len(deps) == 1
    assert deps == [d for d in input_drvs(str(extra.drv)) if "-checks-deps-" in d]


def test_an_edit_to_a_file_read_outside_its_crate_rebuilds_those_that_read_it(
    built: tuple[Path, dict[str, Result], dict[str, str]], tmp_path: Path
) -> None:
    """tools/helper.rs (a module of extra's bin, ../../tools/extra.rs) and shared/banner.txt
    (words' include_str!) are in the sources of the builds that compile them, and only there."""
    ws = variant(built, tmp_path, {"tools/helper.rs": "\npub fn more() {}\n", "shared/banner.txt": "=tool!\n"})
    words = {"tool", f"{C}.clippy-tool", f"{C}.test-tool", f"{C}.clippy-words", f"{C}.test-words"}
    assert changed(built[2], drv_paths(ws)) == {"extra", f"{C}.clippy-extra", f"{C}.test-extra", f"{C}.fmt", *words}


# ---------------------------------------------------------------------------- outside the crate

OUTSIDE_BUILT = ["deployCargoArtifacts", "app", f"{C}.test-app", f"{C}.clippy-lib2"]


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Result], dict[str, str]]:
    ws = write_outside_workspace(tmp_path_factory.mktemp("outside") / "odd")
    init(ws)
    return ws, build(ws, *OUTSIDE_BUILT), drv_paths(ws)


def test_targets_outside_their_crate_and_a_patched_crates_inherited_path_dependencies_build(
    outside: tuple[Path, dict[str, Result], dict[str, str]],
) -> None:
    """app's bin is the root's main.rs, whose modules (util.rs, a #[path] module) and included
    data.txt are beside it; lib2's lib is crates/lib2.rs with its module crates/inner.rs; memchr
    is patched in from another workspace, whose root gives it and its shim their path
    dependencies. Each was missing from the source, and every build failed inside Nix."""
    _, results, _ = outside
    assert run(results["app"], "app") == "app 1 2 data 1 shimmed\n"
    assert {"memchr v2.5.0", "shim v0.1.0", "shim2 v0.1.0"} <= set(results["deployCargoArtifacts"].local)
    for attr in OUTSIDE_BUILT[1:]:
        result = results[attr]
        assert (result.third_party, result.checked_third_party) == ((), ()), attr
        compiled = {c.split(" ")[0] for c in (*result.local, *result.checked_local)}
        assert compiled <= {"app", "lib2"}, (attr, compiled)  # memchr and the shims come from the closure


def test_a_leaf_edit_outside_the_crate_changes_one_package(outside: tuple[Path, dict[str, Result], dict[str, str]], tmp_path: Path) -> None:
    """crane-eval's amplification appends to each member's lib (else first bin) target, here the
    files outside the crates: one package changes per edit and the closure keeps its .drv. An
    edit to a module of those files rebuilds the package that compiles it, and the closure stays."""
    ws, _, before = outside
    proc = subprocess.run([str(CRANE_EVAL / "amplification"), str(ws)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert "leaf-edit rebuild amplification: mean 1.0 " in last, proc.stdout
    assert last.endswith("deps closure stable under .rs edits: yes"), proc.stdout
    copy = shutil.copytree(ws, tmp_path / "odd")
    for rel in ("util.rs", "crates/inner.rs", "data.txt"):
        (copy / rel).write_text((copy / rel).read_text() + "\n")
    app = {"app", "default", f"{C}.clippy-app", f"{C}.test-app", f"{C}.fmt"}  # default: app, the one package
    lib2 = {f"{C}.clippy-lib2", f"{C}.test-lib2"}  # inner.rs; fmt reads every crate's code
    assert changed(before, drv_paths(copy)) == app | lib2
