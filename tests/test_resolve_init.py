"""init counts, and takes native inputs for, what the build compiles (nixcrate.resolve).

A service whose Cargo.lock lists four registry crates: `plain` (always compiled),
`openssl-sys` (behind the service's `tls` feature), `pcre2-sys` (an optional dependency of
plain's that no feature turns on) and `winonly-sys` (under `cfg(windows)`). Their manifests sit in a directory source the
CARGO_HOME's config names, as `cargo vendor` or Debian's registry would have them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from nixcrate.cli import cli

REGISTRY = "registry+https://github.com/rust-lang/crates.io-index"
CRATES = {"openssl-sys": "0.9.80", "pcre2-sys": "0.2.5", "plain": "1.0.0", "winonly-sys": "0.1.0"}

API = """[package]
name = "api"
version = "0.1.0"
edition = "2021"

[dependencies]
plain = "1"
openssl-sys = { version = "0.9", optional = true }

[target.'cfg(windows)'.dependencies]
winonly-sys = "0.1"

[features]
tls = ["dep:openssl-sys"]
"""


def _workspace(tmp_path: Path, *, manifests: bool) -> tuple[Path, Path]:
    ws = tmp_path / "ws"
    (ws / "api" / "src").mkdir(parents=True)
    (ws / "Cargo.toml").write_text('[workspace]\nmembers = ["api"]\nresolver = "2"\n')
    (ws / "api" / "Cargo.toml").write_text(API)
    (ws / "api" / "src" / "main.rs").write_text("fn main() {}\n")
    lock = ['version = 3\n', '[[package]]\nname = "api"\nversion = "0.1.0"\ndependencies = [\n "openssl-sys",\n "plain",\n "winonly-sys",\n]\n']
    lock += [
        f'[[package]]\nname = "{c}"\nversion = "{v}"\nsource = "{REGISTRY}"\nchecksum = "{"0" * 64}"\n'
        + ('dependencies = [\n "pcre2-sys",\n]\n' if c == "plain" else "")
        for c, v in CRATES.items()
    ]
    (ws / "Cargo.lock").write_text("\n".join(lock))
    home = tmp_path / "cargo-home"
    home.mkdir()
    vendor = tmp_path / "vendor"
    if manifests:
        for c, v in CRATES.items():
            (vendor / f"{c}-{v}").mkdir(parents=True)
            deps = '[dependencies]\npcre2-sys = { version = "0.2", optional = true }\n' if c == "plain" else ""
            (vendor / f"{c}-{v}" / "Cargo.toml").write_text(f'[package]\nname = "{c}"\nversion = "{v}"\n{deps}')
        (home / "config.toml").write_text(f'[source.crates-io]\nreplace-with = "v"\n[source.v]\ndirectory = "{vendor}"\n')
    return ws, home


def _init(ws: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, str]:
    monkeypatch.setenv("CARGO_HOME", str(home))
    result = CliRunner().invoke(cli, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    data = (ws / "nix" / "nixcrate" / "workspace.nix").read_text()
    m = re.search(r"services' closure: (\d+) third-party crates", result.output)
    assert m, result.output
    return m.group(1), result.output, data


def test_init_counts_only_the_crates_the_build_compiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws, home = _workspace(tmp_path, manifests=True)
    count, output, data = _init(ws, home, monkeypatch)
    assert count == "1"  # plain; not the feature-gated, never-enabled or Windows-only ones
    assert "pcre2-sys" not in output and "winonly-sys" not in output  # no warning for a -sys crate never compiled
    assert "openssl" not in data
    assert "manifests are not on disk" not in output


def test_a_feature_turning_on_openssl_sys_brings_openssl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws, home = _workspace(tmp_path, manifests=True)
    (ws / "nixcrate.toml").write_text('[members.api]\nfeatures = ["tls"]\n')
    count, output, data = _init(ws, home, monkeypatch)
    assert count == "2"
    assert "pkgs.openssl" in data
    assert "native (deployCargoArtifacts): openssl-sys" in output
    assert "pcre2-sys" not in output


def test_without_the_manifests_init_counts_the_lock_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws, home = _workspace(tmp_path, manifests=False)
    count, output, data = _init(ws, home, monkeypatch)
    # the member's own manifest still decides (no openssl-sys, no winonly-sys); below plain,
    # whose manifest is missing, everything Cargo.lock lists: pcre2-sys, and its warning
    assert count == "2"
    assert "below 1 crate whose manifest is not on disk (plain 1.0.0), the closures count, and take native inputs for, everything Cargo.lock lists" in " ".join(output.split())
    assert "pcre2-sys" in output
    assert "openssl" not in data


def test_a_dev_dependency_on_openssl_sys_brings_openssl_to_the_checks_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks compile the members' dev-dependencies (clippy --all-targets, the test build);
    the deploy closure does not."""
    ws, home = _workspace(tmp_path, manifests=True)
    manifest = ws / "api" / "Cargo.toml"
    manifest.write_text(manifest.read_text() + '\n[dev-dependencies]\nopenssl-sys = "0.9"\n')
    _count, _output, data = _init(ws, home, monkeypatch)
    closures = data.split("closures = {", 1)[1].split("\n  };", 1)[0]
    services = closures.split("services = ", 1)[1].split("};", 1)[0]
    checks = closures.split("checks = ", 1)[1].split("};", 1)[0]
    assert "openssl" not in services
    assert "pkgs.openssl" in checks


@pytest.mark.skipif(not Path("/usr/share/cargo/registry/serde_json-1.0.87").is_dir(), reason="Debian's vendored crates are not installed")
def test_init_counts_the_variants_the_services_closure_builds_and_names_the_opt_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The example's services ask serde_json and its dependencies for other features: its
    closure builds 7 crates 10 times (tests/test_real_build.py counts the same from the real
    build's log); with [services] unify-features, once each."""
    from conftest import EXAMPLE, copy_workspace  # noqa: PLC0415

    ws = copy_workspace(EXAMPLE, tmp_path / "ws")
    home = tmp_path / "cargo-home"
    home.mkdir()
    (home / "config.toml").write_text('[source.crates-io]\nreplace-with = "d"\n[source.d]\ndirectory = "/usr/share/cargo/registry"\n')
    monkeypatch.setenv("CARGO_HOME", str(home))
    out = CliRunner().invoke(cli, ["init", str(ws)]).output
    assert "services' closure: 7 third-party crates (about 10 builds: once per feature set the services ask for; " in out
    assert "[services] unify-features = true would build each once" in out
    toml = ws / "nixcrate.toml"
    toml.write_text(toml.read_text().replace("\n[services]\n", "\n[services]\nunify-features = true\n", 1))
    out = CliRunner().invoke(cli, ["init", str(ws)]).output
    assert "services' closure: 7 third-party crates, " in out, out
