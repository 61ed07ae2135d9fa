"""How the generated workflow installs nixcrate, and its steps run for real.

The drift job's steps (flake.lock is committed, Install nixcrate, init --check, ci --check)
are taken from the rendered workflow and run with bash in a clean environment: PATH without
this test's Python, pipx homes of their own. nixcrate's published home is stood in for by a
wheel built from this checkout (nixcrate.toml `[ci] install = "pipx:<wheel>"`), which is also
what "installed with pipx" means for a user without the flake input.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import EXAMPLE, REPO, copy_workspace
from ruamel.yaml import YAML

from nixcrate import ci_gen
from nixcrate.cli import cli


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def drift_steps(root: Path) -> list[dict[str, Any]]:
    doc = YAML(typ="safe").load((root / ci_gen.WORKFLOW).read_text())
    return list(doc["jobs"]["drift"]["steps"])


def step(steps: list[dict[str, Any]], name: str) -> str:
    return next(s["run"] for s in steps if s.get("name") == name)


def test_a_flake_with_a_nixcrate_input_installs_the_pinned_one_after_nix(tmp_path: Path) -> None:
    ws = copy_workspace(EXAMPLE, tmp_path / "ws")
    flake = ws / "flake.nix"
    text = flake.read_text()
    assert "    # nixcrate = {\n" in text  # the starter's input, commented out
    flake.write_text(text.replace("    # nixcrate = {\n    #   url", "    nixcrate = {\n      url").replace(
        '    #   inputs.nixpkgs.follows = "nixpkgs";\n    # };', '      inputs.nixpkgs.follows = "nixpkgs";\n    };'
    ))
    assert run("ci", str(ws))[0] == 0
    steps = drift_steps(ws)
    names = [s.get("name") or s.get("uses", "").split("@")[0] for s in steps]
    assert names.index("cachix/install-nix-action") < names.index("Install nixcrate")
    assert "nix profile install --inputs-from . nixcrate" in step(steps, "Install nixcrate")
    assert "pipx" not in (ws / ci_gen.WORKFLOW).read_text()


def test_an_install_spec_that_is_not_one_requirement_is_refused_in_one_line(tmp_path: Path) -> None:
    ws = copy_workspace(EXAMPLE, tmp_path / "ws")
    (ws / "nixcrate.toml").write_text('[ci]\ninstall = "pipx:nixcrate; rm -rf /"\n' + (ws / "nixcrate.toml").read_text())
    code, _, err = run("ci", str(ws))
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "nixcrate.toml: ci.install:" in err and "pipx:<requirement>" in err
    assert not (ws / ".github").exists()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)], check=True)
    (found,) = out.glob("nixcrate-*.whl")
    return found


def clean_env(home: Path) -> dict[str, str]:
    """No virtualenv, no PYTHONPATH, this test's nixcrate off PATH: pipx's own bin dir first."""
    bindir = home / "bin"
    system_path = [p for p in ("/usr/local/bin", "/usr/bin", "/bin") if Path(p).is_dir()]
    pipx = shutil.which("pipx")
    assert pipx, "pipx is not installed (scripts/test installs it)"
    env = {
        "HOME": str(home),
        "PATH": os.pathsep.join([str(bindir), str(Path(pipx).parent), *system_path]),
        "PIPX_HOME": str(home / "pipx"),
        "PIPX_BIN_DIR": str(bindir),
        "LANG": "C.UTF-8",
    }
    for key in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_CERT", "SSL_CERT_FILE", "PIP_DEFAULT_TIMEOUT"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, check=False)


def test_the_drift_jobs_steps_run_for_real_with_nixcrate_installed_by_pipx(tmp_path: Path, wheel: Path) -> None:
    ws = copy_workspace(EXAMPLE, tmp_path / "ws")
    (ws / "nixcrate.toml").write_text(f'[ci]\ninstall = "pipx:{wheel}"\n' + (ws / "nixcrate.toml").read_text())
    assert run("ci", str(ws))[0] == 0
    steps = drift_steps(ws)
    env = clean_env(tmp_path / "home")

    # No flake.lock: the job stops at once, naming the file and the fix.
    proc = bash(step(steps, "flake.lock is committed"), ws, env)
    assert proc.returncode == 1
    assert "::error file=flake.lock::flake.lock is missing: run 'nix flake lock' and commit flake.lock" in proc.stdout
    (ws / "flake.lock").write_text('{"nodes": {"root": {}}, "root": "root", "version": 7}\n')
    assert bash(step(steps, "flake.lock is committed"), ws, env).returncode == 0

    proc = bash(step(steps, "Install nixcrate"), ws, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    installed = Path(env["PIPX_BIN_DIR"]) / "nixcrate"
    assert installed.is_file()
    for name in ("nixcrate init --check", "nixcrate ci --check"):
        proc = bash(step(steps, name), ws, env)
        assert proc.returncode == 0, (name, proc.stdout, proc.stderr)

    # The same pipx-installed nixcrate runs `init` on the example from scratch.
    fresh = copy_workspace(EXAMPLE, tmp_path / "fresh")
    shutil.rmtree(fresh / "nix")
    (fresh / "flake.nix").unlink()
    proc = bash("nixcrate init .", fresh, env)
    assert proc.returncode == 0, proc.stderr
    assert (fresh / "nix" / "nixcrate" / "default.nix").is_file() and (fresh / "flake.nix").is_file()
    assert bash("command -v nixcrate", fresh, env).stdout.strip() == str(installed)
