"""No nixcrate.toml setting becomes Nix code, whatever its key: every key of config.SCHEMA
gets hostile strings, and each is either refused in one line naming that key (nothing
written) or reaches `nix/nixcrate/workspace.nix` as data: real Nix evaluates the file, runs
none of it, and reads back the very string.

The keys come from the schema itself, so a key added to nixcrate.toml later is covered
without a change here. Then the values nixcrate refuses because cargo or Nix would not
take them (environment names, features, systems, profiles, duplicates), key by key.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import tomlkit
from click.testing import CliRunner
from conftest import CRANE_EVAL, EXAMPLE, copy_workspace, needs_crane_eval, needs_nix
from test_errors_catalogue import BASE, snapshot, write

from nixcrate import config, flake_gen, values
from nixcrate.cli import cli

if TYPE_CHECKING:
    from collections.abc import Iterator

MARK = "pwned"
# Each holds MARK: if it reaches the generated file, it must come back from Nix as it is.
HOSTILE = [
    f'" + (builtins.abort "{MARK}") + "',
    f'${{builtins.abort "{MARK}"}}',
    f"''${{builtins.abort \"{MARK}\"}}''",
    f'x"; y = builtins.abort "{MARK}"; z = "',
    f'\\" + builtins.abort "{MARK}" + \\"',
    f"a\nb; {MARK}",
    f"$(touch /tmp/{MARK}) `{MARK}`",
]
# What the placeholders of table names stand for in the test workspace.
NAMES = {"<member>": "api", '"<crate>"': "memchr", '"<source>"': "git+https://example.com/x#0", "<registry>": "my-reg"}
# BASE, with a third-party crate in the services' closure: native."memchr" settings reach the data.
WS = {
    **BASE,
    "services/api/Cargo.toml": BASE["services/api/Cargo.toml"] + 'memchr = "2"\n',
    "Cargo.lock": BASE["Cargo.lock"].replace(' "common",\n', ' "common",\n "memchr",\n')
    + '\n[[package]]\nname = "memchr"\nversion = "2.5.0"\nsource = "registry+https://github.com/rust-lang/crates.io-index"\n',
}
VALID = {
    "git-hashes": "sha256-" + "A" * 43 + "=",
    "registries": {"index": "sparse+https://crates.example.com/index/", "dl": "https://crates.example.com/dl/{crate}/{version}"},
}


def leaves(table: config.Table = config.SCHEMA, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], values.Kind]]:
    """(key path, kind) of every value nixcrate.toml can hold, table names as placeholders."""
    if table.each is not None:
        entry = (*prefix, table.placeholder)
        if isinstance(table.each, values.Kind):
            yield entry, table.each
        else:
            yield from leaves(table.each, entry)
        return
    for key, node in table.keys.items():
        if isinstance(node, values.Kind):
            yield (*prefix, key), node
        else:
            yield from leaves(node, (*prefix, key))


def names() -> Iterator[tuple[str, ...]]:
    """The key path of every table of named entries ([members.<member>], ...)."""

    def walk(table: config.Table, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        if table.each is not None:
            yield prefix
            if isinstance(table.each, config.Table):
                yield from walk(table.each, (*prefix, table.placeholder))
            return
        for key, node in table.keys.items():
            if isinstance(node, config.Table):
                yield from walk(node, (*prefix, key))

    yield from walk(config.SCHEMA, ())


def placed(kind: values.Kind, text: str) -> list[Any]:
    """The TOML values a hostile string can take where a value of this kind goes."""
    if kind.shape == "strings":
        return [[text]]
    if kind.shape == "table":
        return [{"K": text}, {text: "v"}]
    return [text]


def nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    doc: dict[str, Any] = value
    for part in reversed(path):
        doc = {NAMES.get(part, part): doc}
    return doc


def dotted(path: tuple[str, ...]) -> str:
    """The key path as messages show it: TOML's dotted key, a name that is not bare quoted."""
    parts = [NAMES.get(p, p) for p in path]
    return ".".join(p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else json.dumps(p) for p in parts)


def cases() -> Iterator[Any]:
    for path, kind in leaves():
        for i, text in enumerate(HOSTILE):
            for j, value in enumerate(placed(kind, text)):
                yield pytest.param(path, value, id=f"{dotted(path)}-{i}-{j}")
    for path in names():
        for i, text in enumerate(HOSTILE):
            entry = VALID.get(path[-1], {})
            yield pytest.param((*path, text), entry, id=f"{dotted(path)}.<name>-{i}")


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings_in(v)


def evaluate(data_file: Path) -> Any:
    proc = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "--expr", f"import {data_file} {{ pkgs = {{ }}; }}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr  # a hostile string that became code aborts, or breaks the syntax
    return json.loads(proc.stdout)


@needs_nix
@pytest.mark.parametrize(("path", "value"), list(cases()))
def test_no_setting_becomes_nix_code(tmp_path: Path, path: tuple[str, ...], value: Any) -> None:
    root = tmp_path / "ws"
    write(root, dict(WS))
    doc = nested(path, value)
    (root / "nixcrate.toml").write_text(tomlkit.dumps(doc))
    before = snapshot(root)
    result = CliRunner().invoke(cli, ["init", str(root)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code != 0:
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1, result.stderr
        named = path[:2] if all(MARK not in p for p in path) else path[:1]  # a hostile name is shown quoted
        assert lines[0].startswith(f"error: nixcrate.toml: {dotted(named)}"), lines[0]
        assert snapshot(root) == before  # nothing written
        return
    generated = root / "nix/nixcrate/workspace.nix"
    if MARK not in generated.read_text():
        return  # accepted, and nothing of it reached the data (a reason, a crate no closure has)
    carried = [s for s in strings_in(evaluate(generated)) if MARK in s]
    hostile = next(s for s in [*strings_in(value), *path] if MARK in s)
    assert carried, "the hostile string is in the file but Nix read none of it as a string"
    # the whole string, or the words a shell splits it into (cargo-extra-args), came back as data
    assert hostile in carried or all(word in carried for word in shlex.split(hostile) if MARK in word), carried


def test_the_schema_walk_reaches_every_table() -> None:
    """The walk above sees nested tables and tables of named entries alike."""
    found = {dotted(p) for p, _ in leaves()}
    assert {"systems", "services.env", "lambda.glibc", "members.api.features", "native.memchr.lambda-env", 'git-hashes."git+https://example.com/x#0"'} <= found
    assert {"checks.clippy-args", "ci.install", "members.api.checks.test-args", "members.api.source"} <= found
    assert {"registries.my-reg.index", "registries.my-reg.dl"} <= found
    assert {dotted(p) for p in names()} == {"members", "native", "git-hashes", "registries"}


# --------------------------------------------------------------------------- values cargo or Nix would not take


@pytest.mark.parametrize(
    ("toml", "key", "says"),
    [
        ('[services]\nenv = { "" = "x" }\n', "services.env", "is not an environment variable name"),
        ('[services]\nenv = { "A B" = "x" }\n', "services.env", "is not an environment variable name"),
        ('[lambda]\nenv = { "1X" = "x" }\n', "lambda.env", "is not an environment variable name"),
        ('[members.api]\nenv = { "A-B" = "x" }\n', "members.api.env", "is not an environment variable name"),
        ('[members.api]\nfeatures = ["a,b"]\n', "members.api.features", "is not a cargo feature name"),
        ('[members.api]\nfeatures = ["--all-features"]\n', "members.api.features", "is not a cargo feature name"),
        ('[members.api]\nfeatures = ["a b"]\n', "members.api.features", "is not a cargo feature name"),
        ('[members.api]\nfeatures = ["nope"]\n', "members.api.features", "'nope' is not a feature of api"),
        ('systems = ["x86_64-linuxx"]\n', "systems", "is not a system nixpkgs builds for"),
        ('systems = ["x86_64-linux", "x86_64-linux"]\n', "systems", "is listed twice"),
        ('systems = ["x86_64-windows"]\n', "systems", "is not a system nixpkgs builds for"),
        ('exclude = ["api", "api"]\n', "exclude", "is listed twice"),
        ('exclude = ["a b"]\n', "exclude", "is not a package name"),
        ('[services]\nprofile = "fast"\n', "services.profile", "'fast' is not a profile of the workspace"),
        ('[services]\nprofile = "a b"\n', "services.profile", "expected a cargo profile name"),
        ('[services]\nnative-build-inputs = ["openssl; rm"]\n', "services.native-build-inputs", "is not a nixpkgs attribute path"),
        ('[lambda]\nbuild-inputs = ["a..b"]\n', "lambda.build-inputs", "is not a nixpkgs attribute path"),
        ('[members.api]\nnative-build-inputs = ["x\\"y"]\n', "members.api.native-build-inputs", "is not a nixpkgs attribute path"),
        ('[members.api]\ncargo-extra-args = "--config \'a"\n', "members.api.cargo-extra-args", "holds an unclosed quote"),
        ('[registries.r]\nindex = "sparse+https://x.example/index"\ndl = "https://x.example/dl"\n', "registries.r.index", "ends with '/'"),
        ('[registries.r]\nindex = "ftp://x.example/index"\ndl = "https://x.example/dl"\n', "registries.r.index", "is not a registry index URL"),
        ('[registries.r]\nindex = "https://x.example/index"\ndl = "https://x.example/{crat}"\n', "registries.r.dl", "is not an http(s) URL"),
        ('[registries."a b"]\nindex = "https://x.example/index"\ndl = "https://x.example/dl"\n', 'registries."a b"', "is not a registry name"),
        ('[git-hashes]\n"git+https://x#0" = "abc"\n', 'git-hashes."git+https://x#0"', "is not a Nix hash"),
        ('[native."foo-sys"]\nreason = "a\\nb"\n', "native.foo-sys.reason", "holds a line break"),
    ],
)
def test_values_cargo_or_nix_would_not_take_are_refused(tmp_path: Path, toml: str, key: str, says: str) -> None:
    root = tmp_path / "ws"
    write(root, {**BASE, "nixcrate.toml": toml})
    before = snapshot(root)
    result = CliRunner().invoke(cli, ["init", str(root)])
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: nixcrate.toml: {key}: ") and says in line, line
    assert snapshot(root) == before


@pytest.mark.parametrize(
    "toml",
    [
        '[services]\nenv = { _X1 = "a b" }\nprofile = "dev"\n',
        'systems = ["x86_64-linux", "riscv64-linux"]\n',
        '[members.api]\ncargo-extra-args = "--config \'net.retry = 2\' -j 2"\n',
        '[members.common]\nfeatures = ["fast", "serde/derive"]\n',
    ],
)
def test_values_cargo_takes_are_accepted(tmp_path: Path, toml: str) -> None:
    root = tmp_path / "ws"
    common = BASE["crates/common/Cargo.toml"] + '\n[features]\nfast = []\n\n[dependencies]\nserde = { version = "1", optional = true }\n'
    write(root, {**BASE, "crates/common/Cargo.toml": common, "Cargo.lock": BASE["Cargo.lock"] + '\n[[package]]\nname = "serde"\nversion = "1.0.152"\nsource = "registry+https://github.com/rust-lang/crates.io-index"\n', "nixcrate.toml": toml})
    result = CliRunner().invoke(cli, ["init", str(root)])
    assert result.exit_code == 0, result.output


def test_a_custom_profile_defined_in_cargo_toml_is_accepted(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    write(root, {**BASE, "Cargo.toml": BASE["Cargo.toml"] + '\n[profile.fast]\ninherits = "release"\n', "nixcrate.toml": '[services]\nprofile = "fast"\n'})
    assert CliRunner().invoke(cli, ["init", str(root)]).exit_code == 0


# --------------------------------------------------------------------------- settings on cargo's command line

# Words a shell would run or split if they reached the build's line unquoted.
SHELL_HOSTILE = "--config 'env.X=\"$(touch pwned) `id`; a b\"' -j2 --message-format=short"


@needs_crane_eval
def test_cargo_extra_args_reach_cargo_as_their_words_through_real_crane(tmp_path: Path) -> None:
    """cargo-extra-args is split once, as a shell splits it, and each word is quoted on every
    cargo line of the package crane builds: the builder's bash gives cargo exactly those
    words and runs none of them. The line is the one nixcrate's base snapshot records too."""
    ws = copy_workspace(EXAMPLE, tmp_path / "ws")
    toml = ws / "nixcrate.toml"
    toml.write_text(toml.read_text().replace("[members.api]\n", f"[members.api]\ncargo-extra-args = {json.dumps(SHELL_HOSTILE)}\n", 1))
    assert CliRunner().invoke(cli, ["init", str(ws)]).exit_code == 0
    proc = subprocess.run([str(CRANE_EVAL / "eval-flake"), str(ws), "api"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = subprocess.run(["nix", "show-derivation", json.loads(proc.stdout)["api"]], capture_output=True, text=True, check=True)
    (drv,) = json.loads(shown.stdout).values()
    line = next(l for l in drv["env"]["buildPhase"].splitlines() if l.startswith("cargoWithProfile build"))
    # the builder's shell, with cargo replaced by a printer of the words it would get
    script = f"cargoWithProfile() {{ printf '%s\\0' \"$@\"; }}\ncd {shlex.quote(str(tmp_path))}\n{line.partition('>')[0]}"
    words = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.split("\0")[:-1]
    assert words[-len(shlex.split(SHELL_HOSTILE)) :] == shlex.split(SHELL_HOSTILE)
    assert not (tmp_path / "pwned").exists()  # the shell ran in tmp_path
    # nixcrate's own rendering of the line (base snapshot) is the library's, byte for byte
    assert flake_gen.cargo_args("api", config.load(ws)) in line
