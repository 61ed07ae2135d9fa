"""Git dependencies: warned about without a hash, hashed by `nixcrate hashes`, evaluated offline.

The git dependency is a real repository on disk (file://), locked by real cargo, so the
lock's source string, the prefetch and crane's lookup key are the real ones.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CRANE_EVAL, crane_eval_missing, needs_cargo, needs_nix

from nixcrate import git_deps, workspace
from nixcrate.cli import cli

pytestmark = [needs_cargo, needs_nix]


def sh(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def git_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("gitdeps")
    repo = base / "gitdep"
    (repo / "src").mkdir(parents=True)
    (repo / "Cargo.toml").write_text('[package]\nname = "gitdep"\nversion = "0.2.0"\nedition = "2021"\n')
    (repo / "src" / "lib.rs").write_text("pub fn answer() -> u32 { 42 }\n")
    sh("git", "init", "-q", "-b", "main", str(repo))
    sh("git", "-C", str(repo), "add", "-A")
    sh("git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    ws = base / "ws"
    (ws / "svc" / "src").mkdir(parents=True)
    (ws / "Cargo.toml").write_text('[workspace]\nmembers = ["svc"]\nresolver = "2"\n')
    (ws / "svc" / "Cargo.toml").write_text(
        f'[package]\nname = "svc"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\ngitdep = {{ git = "file://{repo}", branch = "main" }}\n'
    )
    (ws / "svc" / "src" / "main.rs").write_text("fn main() { println!(\"{}\", gitdep::answer()); }\n")
    home = base / "cargo-home"
    home.mkdir()
    env = {**os.environ, "CARGO_HOME": str(home), "CARGO_NET_GIT_FETCH_WITH_CLI": "true"}
    sh("cargo", "generate-lockfile", cwd=ws, env=env)
    return ws


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_lock_source_is_parsed_as_crane_keys_it(git_ws: Path) -> None:
    (src,) = git_deps.git_sources(workspace.load(git_ws).lock)
    assert src.source.startswith("git+file://") and "?branch=main#" in src.source
    assert src.ref == "refs/heads/main" and len(src.rev) == 40
    assert src.packages == ("gitdep 0.2.0",)


def test_missing_hash_warns_with_the_command_and_strict_fails(git_ws: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    subprocess.run(["cp", "-r", str(git_ws), str(ws)], check=True)
    code, _, err = run("init", str(ws))
    assert code == 0
    assert "gitdep" in err and "no output hash" in err and "nix-instantiate --eval --expr" in err and "nixcrate hashes" in err
    code, _, err = run("init", "--strict", str(ws))
    assert code == 1 and "--strict" in err


def test_hashes_command_writes_the_hash_keeping_comments(git_ws: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    subprocess.run(["cp", "-r", str(git_ws), str(ws)], check=True)
    assert run("init", str(ws))[0] == 0
    toml = ws / "nixcrate.toml"
    toml.write_text("# my own note, keep me\n" + toml.read_text() + "\n# trailing note\n")
    code, out, err = run("hashes", str(ws))
    assert code == 0, err
    text = toml.read_text()
    assert text.startswith("# my own note, keep me\n") and "# trailing note" in text
    (src,) = git_deps.git_sources(workspace.load(ws).lock)
    import tomllib

    recorded = tomllib.loads(text)["git-hashes"][src.source]
    # independently: the NAR hash of the commit's tree, exported by git itself
    tree = tmp_path / "tree"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", src.url.removeprefix("file://"), "archive", src.rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    assert recorded == sh("nix", "--extra-experimental-features", "nix-command", "hash", "path", str(tree)).strip()
    code, _, err = run("init", str(ws))
    assert code == 0 and "no output hash" not in err
    data = (ws / "nix/nixcrate/workspace.nix").read_text()
    assert f'"{src.source}" = "{recorded}";' in data
    assert run("hashes", str(ws))[1].startswith("every git dependency")


@pytest.mark.skipif(crane_eval_missing() is not None, reason=str(crane_eval_missing()))
def test_hashed_git_dependency_evaluates_as_a_fixed_output_fetch(git_ws: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    subprocess.run(["cp", "-r", str(git_ws), str(ws)], check=True)
    assert run("init", str(ws))[0] == 0
    assert run("hashes", str(ws))[0] == 0
    assert run("init", str(ws))[0] == 0
    proc = subprocess.run([str(CRANE_EVAL / "eval-flake"), str(ws)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    drvs = json.loads(proc.stdout)
    graph = json.loads(sh("nix", "show-derivation", "-r", drvs["svc"]))
    (src,) = git_deps.git_sources(workspace.load(ws).lock)
    fetches = [d for d in graph.values() if d["env"].get("url") == src.url]
    assert len(fetches) == 1
    sri = dict(tomllib_load(ws)["git-hashes"])[src.source]
    expected_hex = base64.b64decode(sri.split("-", 1)[1]).hex()
    assert fetches[0]["outputs"]["out"]["hash"] == expected_hex


def tomllib_load(ws: Path) -> dict[str, dict[str, str]]:
    import tomllib

    return tomllib.loads((ws / "nixcrate.toml").read_text())
