"""Native inputs land in exactly the derivations whose closure needs them (real crane).

A workspace whose lock holds openssl-sys, aws-lc-sys, libz-sys and a hashed git
dependency, written by hand (crates.io is out of reach; evaluation fetches nothing):
the services' closure and the service using openssl-sys get pkg-config + openssl, the
handlers' closure and handler get cmake + nasm + the aws-lc cmake builder, and neither
gets the other's. Then amplification: a leaf edit still changes one package.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CRANE_EVAL, handler_build_drv, needs_crane_eval

from nixcrate.cli import cli

pytestmark = [needs_crane_eval, pytest.mark.nix]

REG = 'source = "registry+https://github.com/rust-lang/crates.io-index"'
GIT = "git+https://github.com/example/gitdep?branch=main#0123456789abcdef0123456789abcdef01234567"
GIT_HASH = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


def _pkg(name: str, version: str, deps: tuple[str, ...] = (), source: str | None = REG) -> str:
    lines = ["[[package]]", f'name = "{name}"', f'version = "{version}"']
    if source == REG:
        lines += [REG, f'checksum = "{(name.encode().hex() * 64)[:64]}"']
    elif source:
        lines.append(f'source = "{source}"')
    if deps:
        lines.append("dependencies = [" + ", ".join(f'"{d}"' for d in deps) + "]")
    return "\n".join(lines) + "\n"


def make_ws(root: Path) -> Path:
    files = {
        "Cargo.toml": '[workspace]\nmembers = ["services/*", "lambdas/*"]\nresolver = "2"\n',
        "services/db/Cargo.toml": '[package]\nname = "db"\nversion = "0.1.0"\nedition = "2021"\n[dependencies]\nopenssl-sys = "0.9"\nlibz-sys = "1"\n',
        "services/db/src/main.rs": "fn main() {}\n",
        "services/plain/Cargo.toml": '[package]\nname = "plain"\nversion = "0.1.0"\nedition = "2021"\n',
        "services/plain/src/main.rs": "fn main() {}\n",
        "lambdas/h/Cargo.toml": textwrap.dedent(
            """\
            [package]
            name = "h"
            version = "0.1.0"
            edition = "2021"
            [dependencies]
            lambda_runtime = "0.13"
            aws-lc-sys = "0.28"
            gitdep = { git = "https://github.com/example/gitdep", branch = "main" }
            """
        ),
        "lambdas/h/src/main.rs": "fn main() {}\n",
        "nixcrate.toml": f'[git-hashes]\n"{GIT}" = "{GIT_HASH}"\n',
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    lock = ["version = 4\n"]
    lock += [
        _pkg("aws-lc-sys", "0.28.0"),
        _pkg("db", "0.1.0", ("libz-sys", "openssl-sys"), source=None),
        _pkg("gitdep", "0.2.0", source=GIT),
        _pkg("h", "0.1.0", ("aws-lc-sys", "gitdep", "lambda_runtime"), source=None),
        _pkg("lambda_runtime", "0.13.0"),
        _pkg("libz-sys", "1.1.20"),
        _pkg("openssl-sys", "0.9.104"),
        _pkg("plain", "0.1.0", source=None),
    ]
    (root / "Cargo.lock").write_text("\n".join(lock))
    return root


def drv_env(drv: str) -> dict[str, str]:
    out = subprocess.run(["nix", "show-derivation", drv], capture_output=True, text=True, check=True).stdout
    (only,) = json.loads(out).values()
    return only["env"]


def inputs_of(env: dict[str, str]) -> str:
    return " ".join(env.get(k, "") for k in ("nativeBuildInputs", "buildInputs"))


def test_native_inputs_go_only_where_their_crates_are(tmp_path: Path) -> None:
    ws = make_ws(tmp_path / "ws")
    result = CliRunner().invoke(cli, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    assert "no output hash" not in result.stderr
    proc = subprocess.run([str(CRANE_EVAL / "eval-flake"), str(ws)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    drvs = json.loads(proc.stdout)
    drvs["deploy-lambda-h"] = handler_build_drv(drvs["deploy-lambda-h"])  # the zip's compiling build
    env = {name: drv_env(drv) for name, drv in drvs.items()}

    for name in ("deployCargoArtifacts", "db", "plain"):
        assert "-openssl-" in inputs_of(env[name]) and "-pkg-config-" in inputs_of(env[name]), name
        assert "-nasm-" not in inputs_of(env[name]) and "AWS_LC_SYS_CMAKE_BUILDER" not in env[name], name
    for name in ("lambdaDeployCargoArtifacts", "deploy-lambda-h"):
        assert "-cmake-" in inputs_of(env[name]) and "-nasm-" in inputs_of(env[name]), name
        assert env[name]["AWS_LC_SYS_CMAKE_BUILDER"] == "1"
        assert "-openssl-" not in inputs_of(env[name]), name
    # a closure and the packages that reuse it see the same inputs (PKG_CONFIG_PATH would differ otherwise)
    # (buildPackage adds only crane's own hooks on top)
    assert set(inputs_of(env["deployCargoArtifacts"]).split()) <= set(inputs_of(env["db"]).split())
    assert set(inputs_of(env["lambdaDeployCargoArtifacts"]).split()) <= set(inputs_of(env["deploy-lambda-h"]).split())

    amp = subprocess.run([str(CRANE_EVAL / "amplification"), str(ws)], capture_output=True, text=True, check=False)
    assert amp.returncode == 0, amp.stderr[-2000:]
    last = amp.stdout.strip().splitlines()[-1]
    assert "leaf-edit rebuild amplification: mean 1.0 " in last and last.endswith("stable under .rs edits: yes"), amp.stdout
