"""docs/errors.md, mechanically: one section per error id, each triggered through the real CLI.

For every id the catalogue lists, a case below produces it; the test checks the printed
message against the catalogue's message (its `<placeholders>` match anything), the exit
code, that stderr holds one `error:` line plus at most a `hint:` line, that the message
names what the catalogue says it names, and that nothing was written. A catalogued id with
no case, or a case with no catalogued id, fails `test_every_id_has_a_case`.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from nixcrate import files
from nixcrate.cli import cli

REPO = Path(__file__).resolve().parent.parent
CATALOGUE = REPO / "docs" / "errors.md"
HAVE_NIX = shutil.which("nix") is not None


# --------------------------------------------------------------------------- the catalogue


@dataclass(frozen=True)
class Entry:
    id: str
    severity: str  # error | warning
    message: str  # with <placeholders>
    hint: str | None
    exit_code: int
    names: str  # what the message must name: a file, a key, a program

    @property
    def pattern(self) -> re.Pattern[str]:
        return template_pattern(self.message)


def template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(<[^<>]+>)", template)
    return re.compile("".join(".*?" if p.startswith("<") and p.endswith(">") else re.escape(p) for p in parts))


SECTION = re.compile(r"^### `([a-z0-9-]+)`\n(.*?)(?=^##|\Z)", re.MULTILINE | re.DOTALL)


@functools.cache
def catalogue() -> dict[str, Entry]:
    entries = {}
    for m in SECTION.finditer(CATALOGUE.read_text(encoding="utf-8")):
        ident, body = m.group(1), m.group(2)
        block = re.search(r"```text\n(.*?)\n```", body, re.DOTALL)
        assert block, f"{ident}: no ```text block"
        lines = block.group(1).splitlines()
        severity, _, message = lines[0].partition(": ")
        hint = lines[1].removeprefix("hint: ") if len(lines) > 1 else None
        exit_match = re.search(r"^- Exit code: (\d+)", body, re.MULTILINE)
        names = re.search(r"^- Names: `([^`]+)`", body, re.MULTILINE)
        assert exit_match and names, f"{ident}: needs '- Exit code: N' and '- Names: `...`'"
        for field in ("Cause", "Fix"):
            assert re.search(rf"^- {field}: \S", body, re.MULTILINE), f"{ident}: no '- {field}:'"
        entries[ident] = Entry(ident, severity, message, hint, int(exit_match.group(1)), names.group(1))
    return entries


# --------------------------------------------------------------------------- workspaces

BASE = {
    "Cargo.toml": '[workspace]\nmembers = ["crates/*", "services/api"]\nresolver = "2"\n\n[workspace.package]\nversion = "0.1.0"\n',
    "crates/common/Cargo.toml": '[package]\nname = "common"\nversion.workspace = true\nedition = "2021"\n',
    "crates/common/src/lib.rs": "pub fn f() {}\n",
    "services/api/Cargo.toml": (
        '[package]\nname = "api"\nversion.workspace = true\nedition = "2021"\n\n'
        '[dependencies]\ncommon = { path = "../../crates/common" }\n'
    ),
    "services/api/src/main.rs": "fn main() {}\n",
    "Cargo.lock": (
        'version = 3\n\n[[package]]\nname = "api"\nversion = "0.1.0"\ndependencies = [\n "common",\n]\n\n'
        '[[package]]\nname = "common"\nversion = "0.1.0"\n'
    ),
}
LOCK_ENTRY = '\n[[package]]\nname = "{}"\nversion = "0.1.0"\n'
GIT_REV = "0123456789abcdef0123456789abcdef01234567"
REGISTRY = "registry+https://github.com/rust-lang/crates.io-index"
# BASE's lock with a crate from a sparse alternate registry
ALT_LOCK = BASE["Cargo.lock"].replace(' "common",\n', ' "common",\n "fancy",\n') + (
    '\n[[package]]\nname = "fancy"\nversion = "1.2.3"\nsource = "sparse+https://crates.example.com/index/"\nchecksum = "' + "a" * 64 + '"\n'
)
OLD_FLAKE = (REPO / "tests" / "fixtures" / "old-generated-flake.nix").read_text()  # nixcrate's flake.nix before the library


def write(root: Path, files: dict[str, str | bytes | None]) -> None:
    for rel, content in files.items():
        path = root / rel
        if content is None:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def member(name: str, *, bin_: bool = False, extra: str = "") -> dict[str, str | bytes | None]:
    d = f"crates/{name}"
    src = {f"{d}/src/main.rs": "fn main() {}\n"} if bin_ else {f"{d}/src/lib.rs": ""}
    return {f"{d}/Cargo.toml": f'[package]\nname = "{name}"\nversion = "0.1.0"\n{extra}', **src}


def with_lock(*names: str) -> str:
    return BASE["Cargo.lock"] + "".join(LOCK_ENTRY.format(n) for n in names)


@dataclass(frozen=True)
class Case:
    files: dict[str, str | bytes | None]
    args: tuple[str, ...] = ("init", "{root}")
    runner: str = "cli"  # cli | readonly | readonly-generated | nix-cli | nix-build | nix-old | nix-garbled | nix-interrupt
    env: tuple[tuple[str, str], ...] = ()
    writes: bool = False  # only --strict: the (valid) files are written, the exit status fails


CASES: dict[str, Case] = {
    "no-cargo-toml": Case({"Cargo.toml": None}),
    "not-a-directory": Case({}, args=("init", "{root}/Cargo.toml/x")),
    "toml-syntax": Case({"services/api/Cargo.toml": '[package]\nname = "api"\nversion = \n'}),
    "toml-too-deep": Case({"services/api/Cargo.toml": b"a = " + b"[" * 10000 + b"]" * 10000 + b"\n"}),
    "not-utf8": Case({"Cargo.toml": b'[workspace]\nmembers = ["\xff"]\n'}),
    "not-workspace-or-package": Case({"Cargo.toml": "[profile.release]\nlto = true\n"}),
    "wrong-shape": Case({"Cargo.toml": '[workspace]\nmembers = "crates/*"\n'}),
    "member-glob-matches-nothing": Case({"Cargo.toml": BASE["Cargo.toml"].replace('"services/api"', '"services/api", "tools/*"')}),
    "member-glob-takes-nix-dir": Case({"Cargo.toml": BASE["Cargo.toml"].replace('"crates/*", "services/api"', '"*"').replace("members", 'exclude = ["services"]\nmembers')}),
    "member-glob-without-manifest": Case({"crates/docs/README.md": "notes\n"}),
    "member-with-own-workspace": Case({"crates/common/Cargo.toml": BASE["crates/common/Cargo.toml"] + "\n[workspace]\n"}),
    "workspace-without-members": Case({"Cargo.toml": '[workspace]\nmembers = ["tools/*"]\n'}),
    "member-without-manifest": Case({"Cargo.toml": BASE["Cargo.toml"].replace('"services/api"', '"services/api", "services/gone"')}),
    "member-not-a-package": Case({"crates/common/Cargo.toml": '[lib]\npath = "src/lib.rs"\n'}),
    "member-outside-root": Case({"Cargo.toml": BASE["Cargo.toml"].replace('"services/api"', '"services/api", "../elsewhere"')}),
    "package-name-missing": Case({"crates/common/Cargo.toml": '[package]\nversion = "0.1.0"\n'}),
    "inherited-key-missing": Case({"Cargo.toml": '[workspace]\nmembers = ["crates/*", "services/api"]\n'}),
    "workspace-dependency-missing": Case(
        {"services/api/Cargo.toml": '[package]\nname = "api"\nversion = "0.1.0"\n[dependencies]\nserde = { workspace = true }\n'}
    ),
    "target-outside-root": Case(
        {"services/api/Cargo.toml": BASE["services/api/Cargo.toml"] + '\n[[bin]]\nname = "api"\npath = "../../../elsewhere/main.rs"\n'}
    ),
    "patch-outside-root": Case({"Cargo.toml": BASE["Cargo.toml"] + '\n[patch.crates-io]\nitoa = { path = "../forks/itoa" }\n'}),
    "dependency-wrong-type": Case({"services/api/Cargo.toml": '[package]\nname = "api"\nversion = "0.1.0"\n[dependencies]\nserde = 1\n'}),
    "no-lockfile": Case({"Cargo.lock": None}),
    "lockfile-invalid": Case({"Cargo.lock": "version = 3\n[[package]\n"}),
    "lockfile-malformed": Case({"Cargo.lock": 'version = 3\n[[package]]\nname = "api"\n'}),
    "lockfile-empty": Case({"Cargo.lock": ""}),
    "lockfile-too-old": Case({"Cargo.lock": BASE["Cargo.lock"].replace("version = 3\n", "")}),
    "lockfile-version-unsupported": Case({"Cargo.lock": BASE["Cargo.lock"].replace("version = 3", "version = 9")}),
    "lockfile-source-unreadable": Case({"Cargo.lock": BASE["Cargo.lock"] + '\n[[package]]\nname = "zz"\nversion = "1.0.0"\nsource = "local-registry+file:///srv/registry"\n'}),
    "lockfile-stale-member": Case(
        {**member("billing", bin_=True), "Cargo.toml": BASE["Cargo.toml"]}
    ),
    "lockfile-stale-dependency": Case(
        {"services/api/Cargo.toml": BASE["services/api/Cargo.toml"] + 'anyhow = "1"\n'}
    ),
    "path-dependency-outside-root": Case(
        {"services/api/Cargo.toml": BASE["services/api/Cargo.toml"] + 'shared = { path = "../../../shared" }\n'}
    ),
    "path-dependency-absolute": Case(
        {"services/api/Cargo.toml": BASE["services/api/Cargo.toml"] + 'shared = { path = "/usr/share/cargo/registry/itoa" }\n'}
    ),
    "path-dependency-without-manifest": Case(
        {"services/api/Cargo.toml": BASE["services/api/Cargo.toml"] + 'util = { path = "../util" }\n'}
    ),
    "git-dependency-without-hash": Case(
        {
            "services/api/Cargo.toml": BASE["services/api/Cargo.toml"] + 'gitdep = { git = "https://example.com/gitdep.git" }\n',
            "Cargo.lock": BASE["Cargo.lock"].replace(' "common",\n', ' "common",\n "gitdep",\n')
            + f'\n[[package]]\nname = "gitdep"\nversion = "0.2.0"\nsource = "git+https://example.com/gitdep.git#{GIT_REV}"\n',
        }
    ),
    "unknown-edition": Case({"crates/common/Cargo.toml": '[package]\nname = "common"\nversion = "0.1.0"\nedition = "2027"\n'}),
    "default-member-not-a-member": Case({"Cargo.toml": BASE["Cargo.toml"].replace('resolver = "2"\n', 'resolver = "2"\ndefault-members = ["services/api", "tools/gen"]\n')}),
    "path-dependency-wrong-name": Case({"services/api/Cargo.toml": BASE["services/api/Cargo.toml"].replace("common = {", "core = {")}),
    "dependency-under-two-names": Case(
        {"services/api/Cargo.toml": BASE["services/api/Cargo.toml"] + '\n[dev-dependencies]\ncommon2 = { path = "../../crates/common", package = "common" }\n'}
    ),
    "duplicate-package-name": Case(
        {**member("other"), "crates/other/Cargo.toml": '[package]\nname = "common"\nversion = "0.1.0"\n'}
    ),
    "invalid-nix-name": Case({**member("café"), "Cargo.lock": with_lock("café")}),
    "bin-required-features-off": Case(
        {
            "services/api/Cargo.toml": BASE["services/api/Cargo.toml"]
            + '\n[features]\nadmin = []\n\n[[bin]]\nname = "api"\npath = "src/main.rs"\n\n'
            + '[[bin]]\nname = "admin"\npath = "src/main.rs"\nrequired-features = ["admin"]\n'
        }
    ),
    "invalid-bin-name": Case(
        {"services/api/Cargo.toml": BASE["services/api/Cargo.toml"] + '\n[[bin]]\nname = "api server"\npath = "src/main.rs"\n'}
    ),
    "cargo-rejects-target": Case(
        {"crates/common/Cargo.toml": '[package]\nname = "common"\nversion = "0.1.0"\n[lib]\nname = "common"\npath = "src/lib.rs"\n[[bin]]\nname = "tool"\n'}
    ),
    "target-path-wrong-type": Case({"crates/common/Cargo.toml": '[package]\nname = "common"\nversion = "0.1.0"\n[lib]\npath = 5\n'}),
    "config-invalid-toml": Case({"nixcrate.toml": "[members.api\n"}),
    "config-too-deep": Case({"nixcrate.toml": b"a = " + b"{b=" * 10000 + b"1" + b"}" * 10000 + b"\n"}),
    "config-is-a-directory": Case({"nixcrate.toml/keep": ""}),
    "config-unknown-key": Case({"nixcrate.toml": '[members.api]\nknd = "service"\n'}),
    "config-wrong-type": Case({"nixcrate.toml": "[members.api]\nkind = 3\n"}),
    "config-bad-value": Case({"nixcrate.toml": '[lambda]\nglibc = "two"\n'}),
    "config-args-line-break": Case({"nixcrate.toml": '[checks]\nclippy-args = "--all-targets\\n-- -D warnings"\n'}),
    "config-args-unclosed-quote": Case({"nixcrate.toml": "[members.api.checks]\ntest-args = \"--skip 'slow\"\n"}),
    # every nixcrate.toml value is checked against one schema (nixcrate.config.SCHEMA)
    "config-invalid-value": Case({"nixcrate.toml": '[services]\nnative-build-inputs = ["pkg-config\\"; evil = builtins.abort \\"x"]\n'}),
    "config-string-unusable": Case({"nixcrate.toml": '[native."foo-sys"]\nreason = "a\\nb"\n'}),
    "config-duplicate": Case({"nixcrate.toml": 'exclude = ["api", "api"]\n'}),
    "config-unknown-feature": Case({"nixcrate.toml": '[members.api]\nfeatures = ["nope"]\n'}),
    "config-unknown-profile": Case({"nixcrate.toml": '[services]\nprofile = "fast"\n'}),
    "config-unify-extra-args": Case(
        {"nixcrate.toml": '[services]\nunify-features = true\n\n[members.api]\ncargo-extra-args = "--no-default-features"\n'}
    ),
    "config-unify-dependency-feature": Case(
        {"nixcrate.toml": '[services]\nunify-features = true\n\n[members.api]\nfeatures = ["common/extra"]\n'}
    ),
    "config-path-outside": Case({"nixcrate.toml": '[members.api]\nextra-src = ["/etc/passwd"]\n'}),
    "config-path-missing": Case({"nixcrate.toml": '[members.api]\nextra-src = ["proto"]\n'}),
    "member-symlink": Case({}),  # crates/common/Cargo.toml a symlink, made below
    "registry-not-configured": Case(
        {"services/api/Cargo.toml": BASE["services/api/Cargo.toml"] + 'fancy = { version = "1", registry = "my-reg" }\n', "Cargo.lock": ALT_LOCK}
    ),
    "registry-source-not-configured": Case({"Cargo.lock": ALT_LOCK}),
    "config-registry-incomplete": Case({"nixcrate.toml": '[registries.my-reg]\nindex = "sparse+https://crates.example.com/index/"\n'}),
    "config-names-no-member": Case({"nixcrate.toml": '[members.apii]\nkind = "service"\n'}),
    "config-exclude-names-no-member": Case({"nixcrate.toml": 'exclude = ["apii"]\n'}),
    "kind-override-without-bin": Case({"nixcrate.toml": '[members.common]\nkind = "service"\n'}),
    "nothing-to-build": Case({"nixcrate.toml": 'exclude = ["api"]\n'}),
    "handler-bin-clash": Case(
        {
            **member("h1", bin_=True, extra='[dependencies]\nlambda_runtime = "0.8"\n'),
            **{k.replace("h1", "h2"): v for k, v in member("h2", extra='[dependencies]\nlambda_runtime = "0.8"\n[[bin]]\nname = "h1"\npath = "src/lib.rs"\n').items()},
            "Cargo.lock": with_lock("h1", "h2", "lambda_runtime"),
        }
    ),
    "unified-bin-clash": Case(
        {
            **member("svc2", bin_=True, extra='\n[[bin]]\nname = "api"\npath = "src/main.rs"\n'),
            "Cargo.lock": with_lock("svc2"),
            "nixcrate.toml": "[services]\nunify-features = true\n",
        }
    ),
    "output-name-clash": Case({**member("deployCargoArtifacts", bin_=True), "Cargo.lock": with_lock("deployCargoArtifacts")}),
    "generated-file-edited": Case({"nix/nixcrate/workspace.nix": "{ pkgs }: { }\n"}),
    "flake-out-of-date": Case({}, args=("init", "--check", "{root}")),
    # A base snapshot taken by a first `init` (below), then damaged.
    "base-snapshot-missing": Case({"nix/nixcrate/base": None}, args=("init", "--check", "{root}")),
    "base-snapshot-edited": Case({"nix/nixcrate/base/Cargo.lock": BASE["Cargo.lock"] + LOCK_ENTRY.format("hand-added")}),
    "base-snapshot-copy-missing": Case({"nix/nixcrate/base/services/api/Cargo.toml": None}, args=("init", "--check", "{root}")),
    "base-snapshot-other-version": Case({}),  # base.nix rewritten with another format, below
    "base-snapshot-patch-gone": Case({}),  # a snapshot naming a patched crate, removed below
    "flake-out-of-date-edited": Case({}, args=("init", "--check", "{root}")),
    "strict-warnings": Case(
        {"Cargo.toml": BASE["Cargo.toml"].replace('"services/api"', '"services/api", "tools/*"')}, args=("init", "--strict", "{root}"), writes=True
    ),
    "generated-path-is-a-directory": Case({"nix/nixcrate/workspace.nix/keep": ""}),
    "read-only-directory": Case({}, runner="readonly"),
    "file-system": Case({}),  # flake.nix a symlink loop, made below
    "usage": Case({}, args=("init", "--no-such-flag", "{root}")),
    "nix-not-installed": Case({}, args=("build", "--flake", "{root}"), env=(("PATH", "{root}/no-bin"),)),
    "nix-too-old": Case({}, args=("build", "--flake", "{root}"), runner="nix-old"),
    "flakes-disabled": Case({}, args=("build", "--flake", "{root}"), runner="nix-build", env=(("NIX_CONFIG", "experimental-features = nix-command\n"),)),
    "unknown-output": Case({}, args=("build", "--flake", "{root}", "apii"), runner="nix-build"),
    "summary-file-directory-missing": Case({}, args=("build", "--flake", "{root}", "--summary-file", "{root}/missing/summary.md", "api"), runner="nix-build"),
    "build-failed": Case({}, args=("build", "--flake", "{root}", "broken"), runner="nix-build"),
    "interrupted": Case({}, args=("build", "--flake", "{root}", "slow"), runner="nix-interrupt"),
    # nixcrate build's notes on a deps closure it built: each case's earlier build is in `before_build`
    "closure-not-reused-first": Case({}, args=("build", "--flake", "{root}", "api"), runner="nix-build", env=(("XDG_STATE_HOME", "{root}/../state"),)),
    "closure-not-reused-changed": Case({}, args=("build", "--flake", "{root}", "api"), runner="nix-build", env=(("XDG_STATE_HOME", "{root}/../state"),)),
    "closure-not-reused-collected": Case({}, args=("build", "--flake", "{root}", "deployCargoArtifacts"), runner="nix-build", env=(("XDG_STATE_HOME", "{root}/../state"),)),
    "closure-not-reused-unknown": Case({}, args=("build", "--flake", "{root}", "api"), runner="nix-build", env=(("XDG_STATE_HOME", "{root}/../state"),)),
    "closure-memory-unwritable": Case({}, args=("build", "--flake", "{root}", "api"), runner="nix-build", env=(("XDG_STATE_HOME", "{root}/flake.nix"),)),
    "manifest-is-a-directory": Case({"Cargo.toml": None, "Cargo.toml/keep": ""}),
    "dependency-features-wrong-type": Case(
        {
            "Cargo.toml": BASE["Cargo.toml"] + '\n[workspace.dependencies]\nserde = "1"\n',
            "services/api/Cargo.toml": BASE["services/api/Cargo.toml"] + 'serde = { workspace = true, features = "derive" }\n',
        }
    ),
    "lockfile-package-wrong-type": Case({"Cargo.lock": BASE["Cargo.lock"].replace(' "common",\n]', " 5,\n]")}),
    "lockfile-too-deep": Case({"Cargo.lock": b"a = " + b"[" * 10000 + b"]" * 10000 + b"\n"}),
    "config-not-utf8": Case({"nixcrate.toml": b'[members.api]\nkind = "\xff"\n'}),
    "config-no-systems": Case({"nixcrate.toml": "systems = []\n"}),
    "config-install-no-installer": Case({"nixcrate.toml": '[ci]\ninstall = "npm:nixcrate"\n'}),
    "config-install-not-one-requirement": Case({"nixcrate.toml": '[ci]\ninstall = "pipx:nixcrate --pre"\n'}),
    "native-not-a-crate-name": Case({"nixcrate.toml": '[native."a b"]\nreason = "x"\n'}),
    "native-conflict": Case(
        {
            "services/api/Cargo.toml": BASE["services/api/Cargo.toml"] + 'foo-sys = "1"\nbar-sys = "1"\n',
            "Cargo.lock": BASE["Cargo.lock"].replace(' "common",\n', ' "bar-sys",\n "common",\n "foo-sys",\n')
            + "".join(f'\n[[package]]\nname = "{n}"\nversion = "1.0.0"\nsource = "{REGISTRY}"\n' for n in ("bar-sys", "foo-sys")),
            "nixcrate.toml": '[native."foo-sys"]\nreason = "a"\nenv = { LIB_DIR = "/a" }\n[native."bar-sys"]\nreason = "b"\nenv = { LIB_DIR = "/b" }\n',
        }
    ),
    "toolchain-file-missing": Case({"nixcrate.toml": 'toolchain = "file"\n'}),
    "toolchain-file-invalid": Case({"rust-toolchain.toml": '[toolchain]\nprofile = "default"\n'}),
    "flake-from-earlier-nixcrate": Case({"flake.nix": OLD_FLAKE}, args=("init", "--check", "{root}")),
    "flake-from-earlier-nixcrate-edited": Case({"flake.nix": OLD_FLAKE.replace("{\n", "{\n  # mine\n", 1)}),
    "write-failed": Case({"nix/nixcrate/keep": ""}, runner="readonly-generated"),
    "nix-version-unreadable": Case({}, args=("build", "--flake", "{root}"), runner="nix-garbled"),
    "hashes-no-config": Case({}, args=("hashes", "{root}")),
    "hashes-fetch-failed": Case(
        {
            "services/api/Cargo.toml": BASE["services/api/Cargo.toml"] + 'gitdep = { git = "file:///nonexistent/gitdep" }\n',
            "Cargo.lock": BASE["Cargo.lock"].replace(' "common",\n', ' "common",\n "gitdep",\n')
            + f'\n[[package]]\nname = "gitdep"\nversion = "0.2.0"\nsource = "git+file:///nonexistent/gitdep#{GIT_REV}"\n',
            "nixcrate.toml": "",
        },
        args=("hashes", "{root}"),
        runner="nix-cli",
    ),
}


def test_every_id_has_a_case() -> None:
    assert sorted(catalogue()) == sorted(CASES)


def test_the_readme_links_the_catalogue() -> None:
    assert "docs/errors.md" in (REPO / "README.md").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- runners


def run_cli(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stderr


def run_subprocess(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    full = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run(argv, cwd=REPO, env=full, capture_output=True, text=True, check=False, timeout=120)
    return proc.returncode, proc.stderr


def readonly_mechanism() -> str | None:
    """How to make a directory read-only for the CLI: chmod when not root, else a read-only bind
    mount in a private mount namespace (root ignores permissions, but not a read-only mount)."""
    if os.geteuid() != 0:
        return "chmod"
    if shutil.which("unshare") is None:
        return None
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", 'd=$(mktemp -d) && mount --bind "$d" "$d" && mount -o remount,bind,ro "$d" && ! touch "$d/x" 2>/dev/null'],
        capture_output=True,
        check=False,
    )
    return "unshare" if probe.returncode == 0 else None


def run_readonly(root: Path, directory: Path | None = None) -> tuple[int, str]:
    """`nixcrate init root` with `directory` (default: root itself) read-only."""
    mechanism = readonly_mechanism()
    if mechanism is None:
        pytest.skip("no way to make a directory read-only for root here (unshare -m with mount is not permitted)")
    directory = directory or root
    cmd = [sys.executable, "-m", "nixcrate.cli", "init", str(root)]
    if mechanism == "chmod":
        directory.chmod(0o555)
        try:
            return run_subprocess(cmd)
        finally:
            directory.chmod(0o755)
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    return run_subprocess(["unshare", "-m", "sh", "-c", script, "sh", str(directory), *cmd])


def nix_flake(root: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """A FakeCraneFlake (see test_nix_build) in a private store; returns the environment."""
    from test_nix_build import FakeCraneFlake, isolated_env  # noqa: PLC0415

    env = isolated_env(root / "store")
    system = subprocess.run(
        ["nix", "eval", "--raw", "--impure", "--expr", "builtins.currentSystem"], env={**os.environ, **env}, capture_output=True, text=True, check=True
    ).stdout
    shutil.rmtree(root)
    FakeCraneFlake(root, system, f"{request.node.name}-{time.time_ns()}", broken=True, slow_pidfile=root.parent / "slow.pid")
    return env


def before_build(ident: str, root: Path, env: dict[str, str], request: pytest.FixtureRequest) -> None:
    """What a closure note needs done first: an earlier build, then a change."""
    from test_nix_build import FakeCraneFlake  # noqa: PLC0415

    def build(*outputs: str) -> None:
        code, stderr = run_subprocess([sys.executable, "-m", "nixcrate.cli", "build", "--flake", str(root), *outputs], env)
        assert code == 0, stderr

    system = subprocess.run(["nix", "eval", "--raw", "--impure", "--expr", "builtins.currentSystem"], env={**os.environ, **env}, capture_output=True, text=True, check=True).stdout
    if ident == "closure-not-reused-changed":
        build("api")
        FakeCraneFlake(root, system, f"{request.node.name}-changed", closure_env={"NIXCRATE_TEST": "changed"})
    elif ident == "closure-not-reused-collected":
        build("deployCargoArtifacts")
        out = subprocess.run(["nix", "eval", "--raw", f"{root}#deployCargoArtifacts.outPath"], env={**os.environ, **env}, capture_output=True, text=True, check=True).stdout
        subprocess.run(["nix-store", "--delete", out], env={**os.environ, **env}, capture_output=True, check=True)
    elif ident == "closure-not-reused-unknown":
        gone = f"{env['NIX_STORE_DIR']}/{'0' * 32}-deploy-deps-0.0.0.drv"
        memory = Path(env["XDG_STATE_HOME"]) / "nixcrate" / "closures.json"
        memory.parent.mkdir(parents=True)
        memory.write_text(json.dumps({"version": 1, "flakes": {f"{root}#{system}": {"deploy-deps-0.0.0": gone}}}))


def _default_sigint() -> None:
    # A shell's background job (`cmd &`) starts with SIGINT ignored, and Python then never
    # turns Ctrl-C into KeyboardInterrupt: the CLI would not see the SIGINT sent below.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_interrupt(argv: list[str], env: dict[str, str], pidfile: Path) -> tuple[int, str]:
    proc = subprocess.Popen(
        argv, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_default_sigint,  # noqa: PLW1509 - a signal disposition, nothing thread-unsafe
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    return proc.returncode, stderr


# --------------------------------------------------------------------------- the test


@pytest.mark.parametrize("ident", sorted(CASES))
def test_catalogued_error(ident: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    entry = catalogue()[ident]
    case = CASES[ident]
    root = tmp_path / "ws"
    write(root, dict(BASE))
    if ident.startswith("base-snapshot-"):
        if ident == "base-snapshot-patch-gone":
            write(root, {"Cargo.toml": BASE["Cargo.toml"] + '\n[patch.crates-io]\nitoa = { path = "patched" }\n',
                         "patched/Cargo.toml": '[package]\nname = "itoa"\nversion = "1.0.1"\n', "patched/src/lib.rs": ""})  # fmt: skip
        assert run_cli(["init", str(root)], {})[0] == 0
        if ident == "base-snapshot-other-version":
            data = root / "nix/nixcrate/base/base.nix"
            data.write_text(files.with_header(files.split_header(data.read_text())[1].replace("format = 1;", "format = 0;")))
        if ident == "base-snapshot-patch-gone":
            shutil.rmtree(root / "patched")
    write(root, case.files)
    if ident == "flake-out-of-date":
        assert run_cli(["init", str(root)], {})[0] == 0
        write(root, {**member("billing", bin_=True), "Cargo.lock": with_lock("billing")})
    if ident == "flake-out-of-date-edited":
        assert run_cli(["init", str(root)], {})[0] == 0
        data = root / "nix/nixcrate/workspace.nix"
        data.write_text(data.read_text().replace(" = ", " = # mine\n  ", 1))
    if ident == "file-system":
        (root / "flake.nix").symlink_to("flake.nix")
    if ident == "member-symlink":
        (root / "common.toml").write_bytes((root / "crates/common/Cargo.toml").read_bytes())
        (root / "crates/common/Cargo.toml").unlink()
        (root / "crates/common/Cargo.toml").symlink_to("../../common.toml")
    env = {k: v.format(root=root) for k, v in case.env}
    if case.runner.startswith("nix") and not HAVE_NIX:
        pytest.skip("nix is not installed")
    if case.runner.startswith("nix") and case.runner != "nix-cli":
        env = {**nix_flake(root, request), **env}
        if ident.startswith("closure-not-reused-"):
            before_build(ident, root, env, request)
    if case.runner in ("nix-old", "nix-garbled"):
        # FakeNix 2.3 (no `nix eval --expr`), or a nix whose --version is not a version
        version = "nix (Nix) 2.3.16" if case.runner == "nix-old" else "nix wrapper: see https://example.com"
        fake = tmp_path / "bin" / "nix"
        fake.parent.mkdir()
        fake.write_text(f"#!/bin/sh\n[ \"$1\" = --version ] && exec echo '{version}'\necho \"error: unrecognised flag '--json'\" >&2; exit 1\n")
        fake.chmod(0o755)
        env["PATH"] = f"{fake.parent}:{os.environ['PATH']}"
    before = snapshot(root)
    args = [a.format(root=root) for a in case.args]

    if case.runner == "readonly":
        code, stderr = run_readonly(root)
    elif case.runner == "readonly-generated":
        code, stderr = run_readonly(root, root / "nix" / "nixcrate")
    elif case.runner == "nix-interrupt":
        code, stderr = run_interrupt([sys.executable, "-m", "nixcrate.cli", *args], env, tmp_path / "slow.pid")
    elif case.runner == "nix-build":
        code, stderr = run_subprocess([sys.executable, "-m", "nixcrate.cli", *args], env)
    else:
        code, stderr = run_cli(args, env)

    assert "Traceback" not in stderr
    assert code == entry.exit_code, stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith(f"{entry.severity}: ")]
    assert any(entry.pattern.fullmatch(ln.partition(": ")[2]) for ln in lines), f"{stderr!r} does not match {entry.message!r}"
    line = next(ln for ln in lines if entry.pattern.fullmatch(ln.partition(": ")[2]))
    assert entry.names in line, f"{line!r} does not name {entry.names!r}"
    if entry.severity == "error":
        # nixcrate's own part of stderr: one error line, then at most a hint (a build's report
        # and a failed derivation's log come before it)
        ours = stderr[stderr.index("error: ") :].splitlines()
        assert len(ours) == 1 or (len(ours) == 2 and ours[1].startswith("hint: ")), stderr
        if entry.hint is not None:
            assert template_pattern(entry.hint).fullmatch(ours[1].removeprefix("hint: ")), stderr
        if not case.runner.startswith("nix") and not case.writes:
            assert snapshot(root) == before  # nothing written


# --------------------------------------------------------------------------- every message in the code

# Where the messages of these modules are catalogued instead of docs/errors.md.
CATALOGUED_ELSEWHERE = {
    "ci_gen.py": "docs/ci.md lists `nixcrate ci`'s option errors",
    "lambda_pkg.py": "the README lists `nixcrate lambda verify`'s problems and errors",
}
SLOT = "\0"  # a part of a message the code fills in (an f-string field, a <placeholder>)


def _error_classes() -> set[str]:
    from nixcrate import errors  # noqa: PLC0415

    found, stack = set(), [errors.NixcrateError]
    while stack:
        cls = stack.pop()
        found.add(cls.__name__)
        stack.extend(cls.__subclasses__())
    return found


def _text(node: ast.expr, consts: dict[str, str], args: dict[str, str]) -> str | None:
    """A message as the code writes it, each field it fills in a SLOT; None when not literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and node.id in args:
        return args[node.id]
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(str(v.value))
            elif isinstance(v, ast.FormattedValue) and isinstance(v.value, ast.Name) and v.conversion == -1 and v.format_spec is None:
                parts.append(args.get(v.value.id, consts.get(v.value.id, SLOT)))
            else:
                parts.append(SLOT)
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left, consts, args), _text(node.right, consts, args)
        return None if left is None or right is None else left + right
    return None


def raised_messages(path: Path) -> list[tuple[int, str, str]]:
    """(line, error class, message) for every `raise SomeNixcrateError("...")` in a module, and every raise of
    a helper of that module that returns one (`raise _err(key, "...")`), fields as SLOTs."""
    classes = _error_classes()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    consts = {
        t.id: n.value.value
        for n in tree.body
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    helpers: dict[str, tuple[list[str], str, ast.expr]] = {}
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        returned = fn.body[-1].value if isinstance(fn.body[-1], ast.Return) else None
        if isinstance(returned, ast.Call) and isinstance(returned.func, ast.Name) and returned.func.id in classes and returned.args:
            helpers[fn.name] = ([a.arg for a in fn.args.args], returned.func.id, returned.args[0])
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Raise) and isinstance(call := node.exc, ast.Call) and isinstance(call.func, ast.Name) and call.args):
            continue
        if call.func.id in classes:
            cls, message = call.func.id, _text(call.args[0], consts, {})
        elif call.func.id in helpers:
            params, cls, template = helpers[call.func.id]
            filled = {p: _text(a, consts, {}) for p, a in zip(params, call.args, strict=False)}
            message = _text(template, consts, {p: SLOT if v is None else v for p, v in filled.items()})
        else:
            continue
        if message is not None:  # built elsewhere (a drift report, an OSError's): not checked here
            found.append((node.lineno, cls, message))
    return found


def could_be(message: str, template: str) -> bool:
    """Whether some line is both `message` (SLOTs filled in any way) and `template` (its
    <placeholders> likewise). Neither side's slot stands for a literal ':' of the other: the
    colons that separate file, what and fix must line up, so a bare `'<name>' ...: <hint>`
    does not swallow every message. A field that ends the message (`...status {code}{what}`)
    may hold anything."""
    q = re.sub(r"<[^<>]+>", SLOT, template)

    @functools.cache
    def match(i: int, j: int) -> bool:
        if i == len(message) and j == len(q):
            return True
        if i == len(message) - 1 and message[i] == SLOT:
            return True
        if i < len(message) and message[i] == SLOT:
            return match(i + 1, j) or (j < len(q) and q[j] != ":" and match(i, j + 1))
        if j < len(q) and q[j] == SLOT:
            return match(i, j + 1) or (i < len(message) and message[i] != ":" and match(i + 1, j))
        return i < len(message) and j < len(q) and message[i] == q[j] and match(i + 1, j + 1)

    return match(0, 0)


def test_every_message_the_code_raises_is_catalogued() -> None:
    """Each one-line error the code can raise has an entry whose message it can be: a new
    message without one fails here, before a user (or the property test's random draw) meets it.
    UsageError (exit 2) is click's `usage` shape; messages built at run time are not checked."""
    import sys  # noqa: PLC0415

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))
    templates = [e.message for e in catalogue().values() if re.sub(r"<[^<>]+>", "", e.message).strip()]
    missing = []
    for path in sorted((REPO / "nixcrate").glob("*.py")):
        if path.name in CATALOGUED_ELSEWHERE:
            continue
        for line, cls, message in raised_messages(path):
            if cls == "UsageError":  # exit 2: `usage`
                continue
            if not any(could_be(message, t) for t in templates):
                missing.append(f"{path.name}:{line}: {message.replace(SLOT, '<...>')}")
    assert not missing, "not in docs/errors.md:\n" + "\n".join(missing)
