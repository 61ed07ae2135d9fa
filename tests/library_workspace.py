"""A library-only workspace (no service, no handler), for real builds of its packages.

Every kind of library a workspace publishes, none with a bin target:

- crates/names: a proc-macro (`#[derive(Named)]`) base uses, so no package of its own;
- crates/base: a plain library on a registry crate (itoa) and that proc-macro;
- crates/tag: a proc-macro nothing uses;
- crates/ffi: a cdylib (`libffi.so`, one C symbol) on itoa;
- crates/stat: a staticlib (`libstat.a`);
- crates/dy: a dylib;
- crates/nobins: `autobins = false` beside a src/main.rs: no bin target, so a library;
- crates/withex: a library with an example (examples are not bins);
- crates/demos: examples alone, on itoa: no lib, no bin (cargo accepts it), so no package
  (it would build nothing), only checks, which compile the examples.

Packages: every one of them but names and demos; ffi's, stat's and dy's hold their library files under lib/.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from test_layout_builds import update_lock

if TYPE_CHECKING:
    from pathlib import Path


def _manifest(name: str, extra: str = "") -> str:
    return f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\n{extra}'


NAMES_RS = """\
use proc_macro::TokenStream;

/// `impl crate::Named for <the struct>`, its name as a string.
#[proc_macro_derive(Named)]
pub fn named(input: TokenStream) -> TokenStream {
    let text = input.to_string();
    let mut words = text.split_whitespace().skip_while(|w| *w != "struct");
    let name = words.nth(1).unwrap_or("X").trim_end_matches(';');
    format!("impl crate::Named for {name} {{ fn name() -> &'static str {{ \\"{name}\\" }} }}")
        .parse()
        .unwrap()
}
"""

BASE_RS = """\
pub trait Named {
    fn name() -> &'static str;
}

#[derive(names::Named)]
pub struct Base;

pub fn describe(n: u32) -> String {
    let digits = itoa::Buffer::new().format(n).to_string();
    format!("{} {digits}", <Base as Named>::name())
}

#[test]
fn the_derived_name_is_the_structs() {
    assert_eq!(describe(42), "Base 42");
}
"""

FILES = {
    "Cargo.toml": '[workspace]\nmembers = ["crates/*"]\nresolver = "2"\n',
    "crates/names/Cargo.toml": _manifest("names", "\n[lib]\nproc-macro = true\n"),
    "crates/names/src/lib.rs": NAMES_RS,
    "crates/base/Cargo.toml": _manifest("base", '\n[dependencies]\nnames = { path = "../names" }\nitoa = "1"\n'),
    "crates/base/src/lib.rs": BASE_RS,
    "crates/tag/Cargo.toml": _manifest("tag", "\n[lib]\nproc-macro = true\n"),
    "crates/tag/src/lib.rs": (
        "use proc_macro::TokenStream;\n\n"
        "/// The item, unchanged.\n"
        "#[proc_macro_attribute]\n"
        "pub fn tag(_: TokenStream, item: TokenStream) -> TokenStream {\n"
        "    item\n"
        "}\n"
    ),
    "crates/ffi/Cargo.toml": _manifest("ffi", '\n[lib]\ncrate-type = ["cdylib"]\n\n[dependencies]\nitoa = "1"\n'),
    "crates/ffi/src/lib.rs": (
        "/// The number of digits of 4242.\n"
        "#[no_mangle]\n"
        'pub extern "C" fn ffi_answer() -> u32 {\n'
        "    itoa::Buffer::new().format(4242).len() as u32\n"
        "}\n"
    ),
    "crates/stat/Cargo.toml": _manifest("stat", '\n[lib]\ncrate-type = ["staticlib"]\n'),
    "crates/stat/src/lib.rs": '#[no_mangle]\npub extern "C" fn stat_one() -> u32 {\n    1\n}\n',
    "crates/dy/Cargo.toml": _manifest("dy", '\n[lib]\ncrate-type = ["dylib"]\n'),
    "crates/dy/src/lib.rs": "pub fn two() -> u32 {\n    2\n}\n",
    "crates/nobins/Cargo.toml": _manifest("nobins", "autobins = false\n"),
    "crates/nobins/src/lib.rs": "pub fn three() -> u32 {\n    3\n}\n",
    "crates/nobins/src/main.rs": "fn main() {}\n",
    "crates/withex/Cargo.toml": _manifest("withex"),
    "crates/withex/src/lib.rs": "pub fn seven() -> u32 {\n    7\n}\n\n#[test]\nfn seven_is_seven() {\n    assert_eq!(seven(), 7);\n}\n",
    "crates/withex/examples/demo.rs": 'fn main() {\n    println!("{}", withex::seven());\n}\n',
    "crates/demos/Cargo.toml": _manifest("demos", '\n[dependencies]\nitoa = "1"\n'),
    "crates/demos/examples/digits.rs": 'fn main() {\n    println!("{}", itoa::Buffer::new().format(12));\n}\n',
}

PACKAGES = ("base", "dy", "ffi", "nobins", "stat", "tag", "withex")


def write_library_workspace(ws: Path) -> Path:
    """The workspace above at ws, its Cargo.lock resolved by real cargo (Debian's registry)."""
    for rel, text in FILES.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(text)
    update_lock(ws)
    return ws
