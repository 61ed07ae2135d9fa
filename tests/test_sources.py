"""What each crate's sources keep (nixcrate/sources.py), read from the tree as init reads it.

The real builds of the same workspace (tests/test_sources_build.py) show that these sources
are enough for cargo and that other edits change no derivation; these tests pin down the rule
itself, fast: what a crate keeps, what it leaves out, and what `init` says about it.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sources_workspace import write_outside_workspace, write_workspace

from nixcrate import config, sources, workspace
from nixcrate.cli import cli
from nixcrate.flake_gen import GENERATED

REPO = Path(__file__).parent.parent

pytestmark = pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed (it writes the test workspace's Cargo.lock)")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_workspace(tmp_path_factory.mktemp("sources") / "tool")


def compute(root: Path, settings: dict[str, Any] | None = None) -> dict[str, sources.CrateSource]:
    if settings is None:
        settings = tomllib.loads((root / "nixcrate.toml").read_text())
    return sources.compute(workspace.load(root), config.parse(settings), GENERATED)


def test_each_crate_keeps_its_code_and_what_it_reads_and_nothing_else(tree: Path) -> None:
    found = compute(tree)
    # the root package: its bin's directory, the build script and what extra-src names; not the
    # CHANGELOG, README, LICENSE, doc/, benchsuite/, .github/ beside them, nor the other crates
    assert found["tool"].src == ("build.rs", "crates/core", "data")
    # words: its README (#![doc = include_str!]) and shared/banner.txt (outside its directory);
    # its integration test and the fixture it reads go into its own checks only
    assert found["words"].src == ("crates/words/README.md", "crates/words/src", "shared/banner.txt")
    assert found["words"].check_src == ("crates/words/tests",)
    assert found["extra"].src == ("tools",)  # [[bin]] path = "../../tools/extra.rs", and helper.rs beside it
    assert found["lints"].src == ("crates/lints/src",)
    assert all(s.whole is None for s in found.values())


def test_a_build_script_keeps_its_crates_whole_directory_until_told_what_it_reads(tree: Path) -> None:
    found = compute(tree, {})
    assert found["tool"].src == (".",)
    assert found["tool"].whole == "its build script (build.rs) may read any file"
    assert found["tool"].build_script_names == ("data",)  # the hint: what its literals name
    assert compute(tree, {"members": {"tool": {"source": "code"}}})["tool"].src == ("build.rs", "crates/core", "data")
    # extra-src adds what no literal names
    assert compute(tree, {"members": {"tool": {"extra-src": ["data", "doc"]}}})["tool"].src == ("build.rs", "crates/core", "data", "doc")
    assert compute(tree, {"members": {"words": {"source": "whole"}}})["words"].src == ("crates/words", "shared/banner.txt")


def test_init_names_each_crate_that_keeps_everything_and_how_to_narrow_it(tree: Path, tmp_path: Path) -> None:
    ws = shutil.copytree(tree, tmp_path / "tool")
    (ws / "nixcrate.toml").unlink()
    result = CliRunner().invoke(cli, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("sources:")]
    assert lines == [
        (
            "sources: tool keeps its whole directory (.): its build script (build.rs) may read any file; set extra-src "
            'in [members.tool] of nixcrate.toml to what it reads (it names data), or source = "code" if it reads only '
            "the crate's code"
        )
    ]
    (ws / "nixcrate.toml").write_text('[members.tool]\nextra-src = ["data"]\n')
    result = CliRunner().invoke(cli, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    assert "sources:" not in result.output


@pytest.mark.parametrize(
    ("text", "literals"),
    [
        ('include_str!("a.txt") // "not.txt"\n/* "nor.txt" */ b"b.bin"', ["a.txt", "b.bin"]),
        ("let q = '\"'; let p = \"x/y\";", ["x/y"]),  # a char literal opens no string
        ('r#"raw/path"#; br"bytes"; "two words"', ["raw/path", "bytes"]),  # no path holds a space
        ("fn f<'a>(s: &'a str) -> &'a str { \"data\" }", ["data"]),  # lifetimes are not chars
    ],
)
def test_string_literals_skip_comments_and_characters(text: str, literals: list[str]) -> None:
    assert list(sources.string_literals(text)) == literals


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_outside_workspace(tmp_path_factory.mktemp("outside") / "odd")


def test_a_target_outside_its_crate_keeps_the_modules_and_files_it_pulls_in(outside: Path) -> None:
    """A bin or lib whose file is outside the crate, beside the workspace root or other crates
    (so its directory cannot be kept whole): the file, the modules it declares (`mod util;`,
    `#[path]`), transitively, and what its literals name (`include_str!("data.txt")`)."""
    found = compute(outside, {})
    assert found["app"].src == ("data.txt", "extra/numbers.rs", "main.rs", "util.rs")  # not Cargo.toml's neighbours
    assert found["lib2"].src == ("crates/inner.rs", "crates/lib2.rs")


def test_a_module_named_by_path_outside_the_crate_brings_its_own_modules(tmp_path: Path) -> None:
    """`#[path = "../../shared/util.rs"] mod util;` in a crate's own file: util.rs is a module
    file like a mod.rs (its `mod inner;` is shared/inner.rs, as rustc resolves it)."""
    (tmp_path / "Cargo.toml").write_text('[workspace]\nmembers = ["app"]\n')
    files = {
        "app/Cargo.toml": '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n',
        "app/src/main.rs": '#[path = "../../shared/util.rs"]\nmod util;\nfn main() {}\n',
        "shared/util.rs": "pub mod inner;\n",
        "shared/inner.rs": "mod deeper;\n",  # not a mod.rs: its modules are under shared/inner/
        "shared/inner/deeper.rs": "",
        "shared/unrelated.rs": "",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "Cargo.lock").write_text('version = 3\n\n[[package]]\nname = "app"\nversion = "0.1.0"\n')
    assert compute(tmp_path, {})["app"].src == ("app/src", "shared/inner.rs", "shared/inner/deeper.rs", "shared/util.rs")


@pytest.mark.parametrize(
    ("text", "modules"),
    [
        ("mod a;\npub(crate) mod b;\nmod r#type;", [("", "a", None), ("", "b", None), ("", "type", None)]),
        ('#[path = "x/y.rs"]\n// a comment\n#[cfg(unix)]\nmod y;', [("", "y", "x/y.rs")]),
        ("mod outer { fn f() { } mod inner; }\nmod after;", [("outer", "inner", None), ("", "after", None)]),
        ('// mod no;\n/* mod no; */ let s = "mod no;";\nmod tests {}', []),
    ],
)
def test_module_files_are_the_out_of_line_modules_a_file_declares(text: str, modules: list[tuple[str, str, str | None]]) -> None:
    assert list(sources.module_files(text)) == modules


def test_a_crate_patched_in_from_another_workspace_brings_what_it_inherits(outside: Path) -> None:
    """memchr, patched in from vendor/repo (a workspace of its own, excluded from this one), takes
    `shim = { workspace = true }` from vendor/repo's [workspace.dependencies], and shim takes
    shim2 likewise: all three crates and that root's manifest are in every source."""
    ws = workspace.load(outside)
    assert [p.as_posix() for p in ws.patch_paths] == ["vendor/repo/memchr", "vendor/repo/shim", "vendor/repo/shim2"]
    assert [p.as_posix() for p in ws.patch_manifests] == ["vendor/repo/Cargo.toml"]


def test_the_readmes_nixcrate_toml_example_is_valid_settings() -> None:
    """Every key the README shows parses, check settings included."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    example = re.search(r"### nixcrate.toml\n\n```toml\n(.*?)```", readme, re.DOTALL)
    assert example is not None
    parsed = config.parse(tomllib.loads(example.group(1)))
    assert parsed.checks_for("ingest").clippy_args == ("--all-targets", "--", "--allow", "clippy::large_enum_variant")
    assert parsed.checks_for("ingest").test_args == ("--", "--skip", "slow_")
    assert parsed.checks.clippy_words() == ("--all-targets",)
