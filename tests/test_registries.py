"""Alternate and sparse registries reach crane through nixcrate.toml [registries].

Crane downloads a crate from the `dl` of the registry its lock entry names and knows only
crates.io's by itself; cargo in the build resolves a `registry = "<name>"` dependency by that
name. Evaluated with the real crane (../shared/crane-eval): the fetch of each crate has the
registry's download URL, crane's vendor configuration replaces each registry, and every build
gets the registry's index. And built for real with ../shared/crane-build, which seeds the
crates' downloads whatever registry they come from.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CRANE_EVAL, EXAMPLE, needs_crane_eval
from crane_build import build as crane_build
from crane_build import REGISTRY, crane_build_missing
from test_errors_catalogue import BASE, snapshot, write

from nixcrate.cli import cli

SPARSE = "sparse+https://crates.example.com/index/"
GIT_INDEX = "https://git.example.com/index"
REGISTRIES = (
    f'[registries.my-reg]\nindex = "{SPARSE}"\ndl = "https://crates.example.com/api/v1/crates/{{crate}}/{{version}}/download"\n\n'
    f'[registries.git-reg]\nindex = "{GIT_INDEX}"\ndl = "https://git.example.com/dl"\n'
)
WS = {
    **BASE,
    "services/api/Cargo.toml": BASE["services/api/Cargo.toml"]
    + 'fancy = { version = "1", registry = "my-reg" }\nplain = { version = "2", registry = "git-reg" }\n',
    "Cargo.lock": BASE["Cargo.lock"].replace(' "common",\n', ' "common",\n "fancy",\n "plain",\n')
    + f'\n[[package]]\nname = "fancy"\nversion = "1.2.3"\nsource = "{SPARSE}"\nchecksum = "{"a" * 64}"\n'
    + f'\n[[package]]\nname = "plain"\nversion = "2.0.0"\nsource = "registry+{GIT_INDEX}"\nchecksum = "{"b" * 64}"\n',
}


def init(root: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["init", str(root)])
    return result.exit_code, result.output


def show(drv: str) -> dict[str, object]:
    out = subprocess.run(["nix", "show-derivation", drv], capture_output=True, text=True, check=True).stdout
    return next(iter(json.loads(out).values()))  # type: ignore[no-any-return]


def requisites(drv: str) -> list[str]:
    return subprocess.run(["nix-store", "-q", "--requisites", drv], capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ("", "registries.my-reg: not set, but services/api/Cargo.toml's dependency 'fancy' comes from registry 'my-reg'"),
        # both names configured, but the sparse one with another index than the lock's source
        (REGISTRIES.replace(SPARSE, "sparse+https://other.example.com/index/"), f"registries: none has index {SPARSE}"),
    ],
)
def test_a_registry_crane_cannot_download_from_is_refused_naming_the_setting(tmp_path: Path, toml: str, says: str) -> None:
    root = tmp_path / "ws"
    write(root, {**WS, "nixcrate.toml": toml})
    before = snapshot(root)
    code, output = init(root)
    assert code == 1
    assert output.strip().splitlines() == [next(line for line in output.splitlines() if line.startswith("error:"))]
    assert says in output and "add [registries." in output and "dl =" in output
    assert snapshot(root) == before


@needs_crane_eval
@pytest.mark.nix
def test_registries_reach_crane_downloads_source_replacement_and_cargo(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    write(root, {**WS, "nixcrate.toml": REGISTRIES})
    code, output = init(root)
    assert code == 0, output
    proc = subprocess.run([str(CRANE_EVAL / "eval-flake"), "--details", str(root), "api"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]  # crane throws "not sure how to download crates from" otherwise
    api = json.loads(proc.stdout)["api"]["drvPath"]
    closure = requisites(api)

    # each crate is fetched from its registry's dl (markers filled in, or crane's default path)
    urls = {}
    for drv in closure:
        if drv.endswith(".drv") and "-cargo-src-" in drv:
            env = show(drv)["env"]
            assert isinstance(env, dict)
            urls[drv.split("-cargo-src-", 1)[1]] = env.get("url") or env.get("urls")  # fetchurl writes `urls`
    assert urls == {
        "fancy-1.2.3.drv": "https://crates.example.com/api/v1/crates/fancy/1.2.3/download",
        "plain-2.0.0.drv": "https://git.example.com/dl/plain/2.0.0/download",
    }

    # crane's vendor configuration replaces both registries with the vendored crates
    vendor = next(d for d in closure if d.endswith("-vendor-cargo-deps.drv"))
    script = show(vendor)["env"]["buildCommand"]  # type: ignore[index]
    assert f'[source.my-reg]\nregistry = "{SPARSE}"\nreplace-with = "nix-sources-' in script
    assert f'[source.git-reg]\nregistry = "{GIT_INDEX}"\nreplace-with = "nix-sources-' in script

    # and cargo in every build (the package and its closure) finds each registry by name
    for drv in (api, json.loads(proc.stdout)["api"]["cargoArtifacts"][0]):
        env = show(drv)["env"]
        assert isinstance(env, dict)
        assert env.get("CARGO_REGISTRIES_MY_REG_INDEX") == SPARSE
        assert env.get("CARGO_REGISTRIES_GIT_REG_INDEX") == GIT_INDEX


CORP = "sparse+https://crates.corp.example/index/"


def debian_checksum(crate: str) -> str:
    """The checksum Debian's registry gives a crate: what a lock made against it holds (and
    crane-build swaps for its own tarball's, in the workspace and in the base snapshot)."""
    return str(json.loads((REGISTRY / crate / ".cargo-checksum.json").read_text())["package"])


@pytest.mark.skipif(crane_build_missing(EXAMPLE) is not None, reason=str(crane_build_missing(EXAMPLE)))
@pytest.mark.nix
@pytest.mark.slow
def test_a_crate_from_an_alternate_registry_builds_for_real(tmp_path: Path) -> None:
    """Built with ../shared/crane-build: itoa from a sparse alternate registry `corp`. crane
    fetches it under the name its fetchurl gives every crate (crane-build seeds Debian's
    itoa there, as a binary cache or a first download would), cargo in the sandbox finds
    `corp` by name and takes it from the vendored sources; the service runs."""
    root = tmp_path / "ws"
    write(
        root,
        {
            **BASE,
            "services/api/Cargo.toml": BASE["services/api/Cargo.toml"] + 'itoa = { version = "1", registry = "corp" }\n',
            "services/api/src/main.rs": 'fn main() {\n    println!("{}", itoa::Buffer::new().format(2026u32));\n}\n',
            "Cargo.lock": BASE["Cargo.lock"].replace(' "common",\n', ' "common",\n "itoa",\n')
            + f'\n[[package]]\nname = "itoa"\nversion = "1.0.1"\nsource = "{CORP}"\nchecksum = "{debian_checksum("itoa-1.0.1")}"\n',
            "nixcrate.toml": f'[registries.corp]\nindex = "{CORP}"\ndl = "https://crates.corp.example/api/v1/crates"\n',
        },
    )
    code, output = init(root)
    assert code == 0, output
    results = crane_build(root, ["deployCargoArtifacts", "api"])
    closure, api = results["deployCargoArtifacts"], results["api"]
    assert closure.ok, closure.error_tail
    assert api.ok, api.error_tail
    # cargo prints `Compiling itoa v1.0.1 (registry `corp`)`, which crane-build's report
    # files with the local crates (a parenthesis after the version): read both lists
    compiled = [c.split()[0] for c in (*closure.third_party, *closure.local)]
    assert "itoa" in compiled
    assert [c.split()[0] for c in (*api.third_party, *api.local)] == ["common", "api"]  # not itoa: the closure's
    ran = subprocess.run([f"{api.out}/bin/api"], capture_output=True, text=True, check=True)
    assert ran.stdout == "2026\n"
