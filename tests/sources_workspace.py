"""A root-package workspace shaped like ripgrep, for real builds of what sources keep.

The binary is the root package (`tool`, its bin at crates/core/main.rs beside the nested
crates, as ripgrep's is), with a build script reading a data file (`data/words.txt`,
declared with `extra-src`) and the files a repository carries that no build reads: a
CHANGELOG, READMEs, a doc folder, CI files, a benchmark script. Around it, one workspace
for the other shapes sources must get right:

- crates/words: a library whose docs are its README (`#![doc = include_str!("../README.md")]`),
  that includes a file outside its directory (`shared/banner.txt`), and whose integration test
  reads a fixture (`tests/data/input.txt`) its package builds do not need;
- crates/extra: a service whose bin lives outside its directory (`../../tools/extra.rs`, with a
  module beside it, which has a clippy lint);
- crates/lints: a library with a clippy lint (`needless_return`), nothing depends on it;
- memchr patched in from the tree (`[patch.crates-io]`), with a path dependency of its own
  (`patched/memchr-shim`): cargo reads both for every package.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from crane_build import REGISTRY
from test_layout_builds import update_lock

if TYPE_CHECKING:
    from pathlib import Path

ROOT_MANIFEST = """\
[package]
name = "tool"
version = "0.1.0"
edition = "2021"
build = "build.rs"

[[bin]]
name = "tool"
path = "crates/core/main.rs"

[workspace]
members = ["crates/words", "crates/extra", "crates/lints"]

[dependencies]
words = { path = "crates/words" }
anyhow = "1"
memchr = "2"

[patch.crates-io]
memchr = { path = "patched/memchr" }
"""

BUILD_RS = """\
use std::{env, fs, path::Path};

fn main() {
    let words = fs::read_to_string("data/words.txt").unwrap();
    let count = words.split_whitespace().count();
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("count.rs");
    fs::write(out, format!("pub const WORDS: usize = {count};\\n")).unwrap();
    println!("cargo:rerun-if-changed=data/words.txt");
}
"""

MAIN_RS = """\
mod app;

include!(concat!(env!("OUT_DIR"), "/count.rs"));

fn main() -> anyhow::Result<()> {
    let at = memchr::memchr(b'o', b"tool").unwrap_or(0);
    println!("{} {} words, {}", words::banner().trim(), WORDS, app::name(at));
    Ok(())
}
"""

FILES = {
    "Cargo.toml": ROOT_MANIFEST,
    "build.rs": BUILD_RS,
    "crates/core/main.rs": MAIN_RS,
    "crates/core/app.rs": 'pub fn name(at: usize) -> String {\n    format!("app at {at}")\n}\n',
    "data/words.txt": "alpha beta gamma\n",
    # main.rs is laid out for this (one println! line): the fmt check passes only if it reads it
    "rustfmt.toml": 'use_small_heuristics = "Max"\n',
    "README.md": "# tool\n",
    "CHANGELOG.md": "# Changelog\n\n## 0.1.0\n",
    "LICENSE": "MIT\n",
    "doc/guide.md": "A guide.\n",
    "benchsuite/bench.py": "print('bench')\n",
    ".github/workflows/ci.yml": "on: push\n",
    "shared/banner.txt": "tool:\n",
    "crates/words/Cargo.toml": '[package]\nname = "words"\nversion = "0.1.0"\nedition = "2021"\n',
    "crates/words/README.md": "Words for the tool.\n",
    "crates/words/CHANGELOG.md": "# Changelog\n",
    "crates/words/src/lib.rs": (
        '#![doc = include_str!("../README.md")]\n\n'
        "/// The banner the tool prints first.\n"
        "pub fn banner() -> &'static str {\n"
        '    include_str!("../../../shared/banner.txt")\n'
        "}\n"
    ),
    "crates/words/tests/fixture.rs": (
        "#[test]\n"
        "fn the_fixture_is_read() {\n"
        '    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/input.txt");\n'
        '    assert_eq!(std::fs::read_to_string(path).unwrap(), "input\\n");\n'
        '    assert_eq!(words::banner(), "tool:\\n");\n'
        "}\n"
    ),
    "crates/words/tests/data/input.txt": "input\n",
    "crates/extra/Cargo.toml": (
        '[package]\nname = "extra"\nversion = "0.1.0"\nedition = "2021"\n\n'
        '[[bin]]\nname = "extra"\npath = "../../tools/extra.rs"\n'
    ),
    "crates/extra/README.md": "A bin outside its crate.\n",
    "tools/extra.rs": 'mod helper;\n\nfn main() {\n    println!("extra {}", helper::answer());\n}\n',
    "tools/helper.rs": "pub fn answer() -> u32 {\n    return 42;\n}\n",  # clippy::needless_return too
    "crates/lints/Cargo.toml": '[package]\nname = "lints"\nversion = "0.1.0"\nedition = "2021"\n',
    "crates/lints/src/lib.rs": "pub fn one() -> u32 {\n    return 1;\n}\n",
    "patched/memchr-shim/Cargo.toml": '[package]\nname = "memchr-shim"\nversion = "0.1.0"\nedition = "2021"\n',
    "patched/memchr-shim/src/lib.rs": "pub const SHIM: bool = true;\n",
    "nixcrate.toml": '[members.tool]\nextra-src = ["data"]  # build.rs reads data/words.txt\n',
}


def write_workspace(ws: Path) -> Path:
    """The workspace above at ws, its Cargo.lock resolved by real cargo (Debian's registry)."""
    for rel, text in FILES.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(text)
    memchr = ws / "patched" / "memchr"
    shutil.copytree(REGISTRY / "memchr-2.5.0", memchr, ignore=shutil.ignore_patterns(".cargo-checksum.json"))
    manifest = memchr / "Cargo.toml"
    manifest.write_text(manifest.read_text() + '\n[dependencies.memchr-shim]\npath = "../memchr-shim"\n')
    update_lock(ws)
    return ws


# The shapes a source used to miss (issue 22), each legal in cargo, in one workspace:
# - app's bin is the workspace root's main.rs (`path = "../main.rs"`): its modules (util.rs, a
#   `#[path]` module under extra/) and the data file it includes are beside it, at the root,
#   where nothing but that file was kept;
# - lib2's lib is crates/lib2.rs (`[lib] path = "../lib2.rs"`), its module crates/inner.rs;
# - memchr is patched in from another repository's workspace (vendor/repo, excluded from this
#   one), whose crates take their path dependencies from that workspace's root
#   (`shim = { workspace = true }`, and shim's `shim2` likewise): cargo reads vendor/repo/Cargo.toml
#   and both shims.
OUTSIDE_FILES = {
    "Cargo.toml": (
        '[workspace]\nmembers = ["app", "crates/lib2"]\nexclude = ["vendor"]\nresolver = "2"\n\n'
        '[patch.crates-io]\nmemchr = { path = "vendor/repo/memchr" }\n'
    ),
    "app/Cargo.toml": (
        '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n'
        '[[bin]]\nname = "app"\npath = "../main.rs"\n\n'
        '[dependencies]\nlib2 = { path = "../crates/lib2" }\nmemchr = "2"\n'
    ),
    "main.rs": (
        "mod util;\n\n"
        '#[path = "extra/numbers.rs"]\n'
        "mod numbers;\n\n"
        "fn main() {\n"
        '    let at = memchr::memchr(b\'p\', b"app").unwrap_or(9);\n'
        '    let data = include_str!("data.txt").trim();\n'
        '    println!("{} {} {} {} {at} {}", util::name(), numbers::ONE, lib2::two(), data, memchr::SHIM);\n'
        "}\n"
    ),
    "util.rs": "pub fn name() -> &'static str {\n    \"app\"\n}\n",
    "extra/numbers.rs": "pub const ONE: u32 = 1;\n",
    "data.txt": "data\n",
    "crates/lib2/Cargo.toml": '[package]\nname = "lib2"\nversion = "0.1.0"\nedition = "2021"\n\n[lib]\npath = "../lib2.rs"\n',
    "crates/lib2.rs": "mod inner;\n\npub fn two() -> u32 {\n    inner::TWO\n}\n",
    "crates/inner.rs": "pub const TWO: u32 = 2;\n",
    "vendor/repo/Cargo.toml": (
        '[workspace]\nmembers = ["memchr", "shim", "shim2"]\n\n'
        '[workspace.dependencies]\nshim = { path = "shim" }\nshim2 = { path = "shim2" }\n'
    ),
    "vendor/repo/shim/Cargo.toml": '[package]\nname = "shim"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\nshim2 = { workspace = true }\n',
    "vendor/repo/shim/src/lib.rs": "pub const SHIM: &str = shim2::SHIM2;\n",
    "vendor/repo/shim2/Cargo.toml": '[package]\nname = "shim2"\nversion = "0.1.0"\nedition = "2021"\n',
    "vendor/repo/shim2/src/lib.rs": 'pub const SHIM2: &str = "shimmed";\n',
}


def write_outside_workspace(ws: Path) -> Path:
    """The workspace above at ws, its Cargo.lock resolved by real cargo (Debian's registry)."""
    for rel, text in OUTSIDE_FILES.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(text)
    memchr = ws / "vendor" / "repo" / "memchr"
    shutil.copytree(REGISTRY / "memchr-2.5.0", memchr, ignore=shutil.ignore_patterns(".cargo-checksum.json"))
    manifest = memchr / "Cargo.toml"
    manifest.write_text(manifest.read_text() + "\n[dependencies.shim]\nworkspace = true\n")
    lib = memchr / "src" / "lib.rs"
    lib.write_text(lib.read_text() + "\npub use shim::SHIM;\n")
    update_lock(ws)
    return ws
