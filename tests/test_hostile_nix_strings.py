"""Hostile strings from Cargo.lock reach Nix as data, never as code (`nixcrate hashes`).

A lock `source` is percent-decoded (as crane keys it), so `%22` is a `"`: spliced into a
`--expr`, it closed the string and evaluated what followed. The values now travel as one
JSON `--argstr`, read by `builtins.fromJSON` in a fixed expression.
"""

from __future__ import annotations

import json
import subprocess
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from conftest import needs_nix
from test_errors_catalogue import BASE, write

from nixcrate import git_deps, runner
from nixcrate.cli import cli

if TYPE_CHECKING:
    from pathlib import Path

PAYLOAD = '" + (builtins.abort "pwned") + "'
HOSTILE = [
    PAYLOAD,
    '${builtins.abort "pwned"}',
    '\\" + builtins.abort "pwned" + \\"',
    "''${builtins.abort \"pwned\"}''",
    'x\ny"; rev = "0"; }',
]
REV = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize("hostile", HOSTILE)
def test_lock_values_are_data_not_code(hostile: str) -> None:
    src = git_deps.GitSource("s", f"file:///x{hostile}", REV, f"refs/heads/{hostile}", ("a 1",))
    argv = src.prefetch_argv()
    assert argv[-1] == git_deps.GitSource.FETCH_EXPR  # the code is fixed
    assert all(hostile not in a for a in argv if a != src.fetch_args())
    assert json.loads(src.fetch_args()) == {"url": f"file:///x{hostile}", "rev": REV, "ref": f"refs/heads/{hostile}"}


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def hostile_repo(tmp_path: Path) -> tuple[Path, str]:
    """A real git repository whose directory name is a Nix injection."""
    repo = tmp_path / f"repo{PAYLOAD}"
    repo.mkdir()
    (repo / "Cargo.toml").write_text('[package]\nname = "gitdep"\nversion = "0.2.0"\n')
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", "-A", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init", cwd=repo)
    return repo, git("rev-parse", "HEAD", cwd=repo)


@needs_nix
def test_hashes_passes_a_hostile_url_as_a_url(tmp_path: Path, hostile_repo: tuple[Path, str]) -> None:
    """Nix gets the decoded URL verbatim (and refuses it as a URL); nothing of it is evaluated."""
    repo, rev = hostile_repo
    source = f"git+file://{quote(str(repo))}?branch=main#{rev}"  # percent-encoded, as lockfile v4 writes it
    ws = tmp_path / "ws"
    write(ws, dict(BASE))
    write(
        ws,
        {
            "services/api/Cargo.toml": BASE["services/api/Cargo.toml"] + f'gitdep = {{ git = "file://{quote(str(repo))}", branch = "main" }}\n',
            "Cargo.lock": BASE["Cargo.lock"].replace(' "common",\n', ' "common",\n "gitdep",\n')
            + f'\n[[package]]\nname = "gitdep"\nversion = "0.2.0"\nsource = "{source}"\n',
        },
    )
    runner_ = CliRunner()
    assert runner_.invoke(cli, ["init", str(ws)]).exit_code == 0
    before = (ws / "nixcrate.toml").read_bytes()
    result = runner_.invoke(cli, ["hashes", str(ws)])
    assert "pwned" not in result.stderr.replace(str(repo), "") and "aborted" not in result.stderr, result.stderr
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert line.startswith("error: Cargo.lock: cannot fetch") and f"{repo}' is not a valid URL" in line
    assert (ws / "nixcrate.toml").read_bytes() == before


@needs_nix
@pytest.mark.parametrize("hostile", HOSTILE)
def test_nix_sees_the_hostile_url_verbatim(hostile: str) -> None:
    src = git_deps.GitSource("s", f"file:///nonexistent/x{hostile}", REV, None, ("a 1",))
    proc = runner.run(src.prefetch_argv(), check=False)
    assert proc.returncode != 0
    assert "pwned" not in proc.stderr.replace(src.url, "") and "aborted" not in proc.stderr, proc.stderr
