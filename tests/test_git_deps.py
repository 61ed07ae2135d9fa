"""Git dependencies: warned about without a hash, hashed by `nixcrate hashes`, evaluated offline.

The git dependencies are real repositories on disk, served bare over file:// (so Nix fetches
them as remotes), one by branch and one by tag, locked by real cargo, so the
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


def git_repo(base: Path, name: str, tag: str | None = None) -> str:
    """A crate in a git repository served as a remote (a bare repository: Nix fetches from it
    as from any remote, into its own cache, instead of reading a local checkout); its URL.
    With `tag`, the tag names the first commit and the branch moves on past it."""
    work = base / f"{name}-work"
    (work / "src").mkdir(parents=True)
    (work / "Cargo.toml").write_text(f'[package]\nname = "{name}"\nversion = "0.2.0"\nedition = "2021"\n')
    (work / "src" / "lib.rs").write_text("pub fn answer() -> u32 { 42 }\n")
    git = ("git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t")
    sh("git", "init", "-q", "-b", "main", str(work))
    sh(*git, "add", "-A")
    sh(*git, "commit", "-q", "-m", "init")
    if tag is not None:
        sh(*git, "tag", tag)
        (work / "src" / "lib.rs").write_text("pub fn answer() -> u32 { 43 }\n")
        sh(*git, "commit", "-q", "-am", "after the tag")
    sh("git", "clone", "-q", "--bare", str(work), str(base / f"{name}.git"))
    return f"file://{base / f'{name}.git'}"


@pytest.fixture(scope="module")
def git_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """svc depends on two git crates: `gitdep` by branch, `gittag` by tag."""
    base = tmp_path_factory.mktemp("gitdeps")
    branch_url, tag_url = git_repo(base, "gitdep"), git_repo(base, "gittag", tag="v1.0")
    ws = base / "ws"
    (ws / "svc" / "src").mkdir(parents=True)
    (ws / "Cargo.toml").write_text('[workspace]\nmembers = ["svc"]\nresolver = "2"\n')
    (ws / "svc" / "Cargo.toml").write_text(
        '[package]\nname = "svc"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n'
        f'gitdep = {{ git = "{branch_url}", branch = "main" }}\ngittag = {{ git = "{tag_url}", tag = "v1.0" }}\n'
    )
    (ws / "svc" / "src" / "main.rs").write_text("fn main() { println!(\"{}\", gitdep::answer() + gittag::answer()); }\n")
    home = base / "cargo-home"
    home.mkdir()
    env = {**os.environ, "CARGO_HOME": str(home), "CARGO_NET_GIT_FETCH_WITH_CLI": "true"}
    sh("cargo", "generate-lockfile", cwd=ws, env=env)
    return ws


def source_of(ws: Path, package: str) -> git_deps.GitSource:
    (src,) = (s for s in git_deps.git_sources(workspace.load(ws).lock) if s.packages == (f"{package} 0.2.0",))
    return src


def nar_hash_of_commit(url: str, rev: str, tmp_path: Path) -> str:
    """Independently of Nix's fetchers: the NAR hash of the commit's tree, exported by git."""
    tree = tmp_path / f"tree-{rev}"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", url.removeprefix("file://"), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return sh("nix", "--extra-experimental-features", "nix-command", "hash", "path", str(tree)).strip()


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_lock_source_is_parsed_as_crane_keys_it(git_ws: Path) -> None:
    branch, tag = source_of(git_ws, "gitdep"), source_of(git_ws, "gittag")
    assert branch.source.startswith("git+file://") and "?branch=main#" in branch.source
    assert branch.ref == "refs/heads/main" and len(branch.rev) == 40
    assert "?tag=v1.0#" in tag.source and tag.ref == "refs/tags/v1.0"


def test_missing_hash_warns_with_the_command_and_strict_fails(git_ws: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    subprocess.run(["cp", "-r", str(git_ws), str(ws)], check=True)
    code, _, err = run("init", str(ws))
    assert code == 0
    assert "gitdep" in err and "no output hash" in err and "nix-instantiate --eval --expr" in err and "nixcrate hashes" in err
    code, _, err = run("init", "--strict", str(ws))
    assert code == 1 and "--strict" in err


def test_hashes_fetches_branch_and_tag_dependencies_from_a_remote_on_a_fresh_machine(
    git_ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`nixcrate hashes` with an empty Nix cache (a fresh machine, a CI runner), so each locked
    commit is fetched from its remote by the ref Cargo.lock names: a branch, and a tag. Nix
    (2.8, libfetchers/git.cc) fetches `<ref>:<ref>` from the remote when the commit is not in
    its cache, so a tag asked for as refs/heads/v1.0 is not found there and the prefetch
    fails. The hashes are checked against git's own export of each commit."""
    ws = tmp_path / "ws"
    subprocess.run(["cp", "-r", str(git_ws), str(ws)], check=True)
    assert run("init", str(ws))[0] == 0
    toml = ws / "nixcrate.toml"
    toml.write_text("# my own note, keep me\n" + toml.read_text() + "\n# trailing note\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "fresh-cache"))  # where Nix keeps its git clones
    code, out, err = run("hashes", str(ws))
    assert code == 0, err
    text = toml.read_text()
    assert text.startswith("# my own note, keep me\n") and "# trailing note" in text
    import tomllib

    recorded = tomllib.loads(text)["git-hashes"]
    for package in ("gitdep", "gittag"):
        src = source_of(ws, package)
        assert recorded[src.source] == nar_hash_of_commit(src.url, src.rev, tmp_path), package
    code, _, err = run("init", str(ws))
    assert code == 0 and "no output hash" not in err
    data = (ws / "nix/nixcrate/workspace.nix").read_text()
    for source, value in recorded.items():
        assert f'"{source}" = "{value}";' in data
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
    for package in ("gitdep", "gittag"):
        src = source_of(ws, package)
        fetches = [d for d in graph.values() if d["env"].get("url") == src.url]
        assert len(fetches) == 1, package
        sri = dict(tomllib_load(ws)["git-hashes"])[src.source]
        expected_hex = base64.b64decode(sri.split("-", 1)[1]).hex()
        assert fetches[0]["outputs"]["out"]["hash"] == expected_hex, package


def tomllib_load(ws: Path) -> dict[str, dict[str, str]]:
    import tomllib

    return tomllib.loads((ws / "nixcrate.toml").read_text())
