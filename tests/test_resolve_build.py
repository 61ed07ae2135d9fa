"""A feature decides whether a native -sys crate is compiled: built for real (crane-build).

`common` has `openssl-sys` behind its `tls` feature, a Windows-only winapi and flate2 (whose
libz-sys is off by default); `api` uses common's defaults. Cargo.lock lists openssl-sys and
winapi whatever the features. What a user checks: with the feature off, the
services' closure has no OpenSSL among its inputs and builds; with `[members.api] features =
["tls"]` it has OpenSSL and compiles openssl-sys; either way the count init prints is the
number of third-party crates the closure's real build compiles.
"""

# ruff: noqa: T201 - prints record the measured figures
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLE
from crane_build import REGISTRY, crane_build_missing
from crane_build import build as crane_build
from resolve_diff import cargo_home, lock

from nixcrate.cli import cli


def _missing() -> str | None:
    if why := crane_build_missing(EXAMPLE):
        return why
    if shutil.which("cargo") is None:
        return "cargo is not installed (it writes the test workspace's Cargo.lock)"
    for crate in ("openssl-sys-0.9.80", "flate2-1.0.25", "libz-sys-1.1.8"):
        if not (REGISTRY / crate).is_dir():
            return f"{REGISTRY / crate} is missing (apt-get install librust-openssl-sys-dev librust-flate2-dev librust-libz-sys-dev)"
    if not Path("/usr/include/openssl/ssl.h").is_file():
        return "libssl-dev is not installed (openssl-sys's build script needs its headers)"
    return None


pytestmark = [pytest.mark.skipif(_missing() is not None, reason=str(_missing())), pytest.mark.nix, pytest.mark.slow]

FILES = {
    "Cargo.toml": '[workspace]\nmembers = ["api", "common"]\nresolver = "2"\n',
    "common/Cargo.toml": """[package]
name = "common"
version = "0.1.0"
edition = "2021"

[dependencies]
flate2 = "1"
openssl-sys = { version = "0.9", optional = true }

[target.'cfg(windows)'.dependencies]
winapi = { version = "0.3", features = ["winbase"] }

[features]
tls = ["dep:openssl-sys"]
""",
    "common/src/lib.rs": """pub fn crc(data: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(data);
    c.sum()
}

#[cfg(feature = "tls")]
pub fn tls() {
    openssl_sys::init();
}
""",
    "api/Cargo.toml": """[package]
name = "api"
version = "0.1.0"
edition = "2021"

[dependencies]
common = { path = "../common" }

[features]
tls = ["common/tls"]
""",
    "api/src/main.rs": 'fn main() {\n    println!("{}", common::crc(b"hi"));\n}\n',
}


def _init(ws: Path, *args: str) -> int:
    result = CliRunner().invoke(cli, ["init", *args, str(ws)])
    assert result.exit_code == 0, result.output
    m = re.search(r"services' closure: (\d+) third-party crates", result.output)
    assert m, result.output
    return int(m.group(1))


def _inputs(drv: str) -> str:
    proc = subprocess.run(["nix", "show-derivation", drv], capture_output=True, text=True, check=True)
    env = next(iter(json.loads(proc.stdout).values()))["env"]
    return env.get("nativeBuildInputs", "") + " " + env.get("buildInputs", "")


def test_the_closure_takes_openssl_only_when_a_feature_compiles_openssl_sys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = cargo_home(tmp_path)
    monkeypatch.setenv("CARGO_HOME", str(home))  # init reads the crates' manifests where cargo unpacked them
    ws = tmp_path / "ws"
    for rel, text in FILES.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(text)
    lock(ws, home)
    locked = (ws / "Cargo.lock").read_text()
    assert all(f'name = "{c}"' in locked for c in ("openssl-sys", "winapi"))

    count = _init(ws)
    off = crane_build(ws, ["deployCargoArtifacts", "api"])
    print({a: (r.ok, r.seconds, r.third_party) for a, r in off.items()})
    assert off["deployCargoArtifacts"].ok, off["deployCargoArtifacts"].error_tail
    assert off["api"].ok, off["api"].error_tail
    assert off["api"].third_party == ()
    compiled_off = set(off["deployCargoArtifacts"].third_party)
    assert not any(c.startswith(("openssl-sys ", "libz-sys ", "winapi ")) for c in compiled_off)
    assert "openssl" not in _inputs(off["deployCargoArtifacts"].drv or "")
    assert count == len(compiled_off), (count, sorted(compiled_off))

    toml = (ws / "nixcrate.toml").read_text()
    assert "\n[members.api]\n" in toml
    (ws / "nixcrate.toml").write_text(toml.replace("\n[members.api]\n", '\n[members.api]\nfeatures = ["tls"]\n', 1))
    # A fresh base snapshot: the closure is then compiled from nothing (not on top of the
    # first one's), so that its build log lists every crate it holds.
    count_on = _init(ws, "--refresh-base")
    on = crane_build(ws, ["deployCargoArtifacts", "api"])
    print({a: (r.ok, r.seconds, r.third_party) for a, r in on.items()})
    assert on["deployCargoArtifacts"].ok, on["deployCargoArtifacts"].error_tail
    assert on["api"].ok, on["api"].error_tail
    compiled_on = set(on["deployCargoArtifacts"].third_party)
    assert any(c.startswith("openssl-sys ") for c in compiled_on)
    assert "openssl" in _inputs(on["deployCargoArtifacts"].drv or "")
    assert count_on == len(compiled_on), (count_on, sorted(compiled_on))
