"""Git dependencies: the output hashes crane needs to fetch them as cacheable derivations.

crane looks a git package's hash up in `outputHashes` by the package's `source` in
Cargo.lock, percent-decoded (lockfile v4 encodes URLs; crane decodes them first, see
lib/vendorGitDeps.nix). With a hash, the checkout is a fixed-output derivation:
fetched once, pushed to a binary cache like any other path. Without one, crane falls
back to `builtins.fetchGit` while the flake is *evaluated*: every evaluation needs the
network and nothing of it is cacheable.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote

if TYPE_CHECKING:
    from nixcrate.workspace import Lockfile


@dataclass(frozen=True, slots=True)
class GitSource:
    """One git source of Cargo.lock and the lock packages from it."""

    source: str  # as crane keys it: percent-decoded `source` of Cargo.lock
    url: str  # the repository, without `git+`, query or fragment
    rev: str  # the locked commit
    ref: str | None  # refs/heads/<branch> or refs/tags/<tag>, when the lock names one
    packages: tuple[str, ...]  # "name version" of the lock packages from it

    # The values are data: they reach Nix as one JSON string (--argstr), never spliced into the
    # expression, so a hostile Cargo.lock source cannot inject code.
    FETCH_EXPR = (
        "{ args }: let a = builtins.fromJSON args; in "
        "(builtins.fetchGit ({ inherit (a) url rev; submodules = true; } // (if a ? ref then { inherit (a) ref; } else { }))).narHash"
    )

    def fetch_args(self) -> str:
        """The JSON data FETCH_EXPR reads: url, rev and (when the lock names one) ref."""
        data = {"url": self.url, "rev": self.rev, **({"ref": self.ref} if self.ref else {})}
        return json.dumps(data, sort_keys=True)

    def prefetch_argv(self) -> list[str]:
        # nix-instantiate needs neither flakes nor the flake registry (which is fetched online)
        return ["nix-instantiate", "--eval", "--expr", "--json", "--argstr", "args", self.fetch_args(), self.FETCH_EXPR]

    def prefetch_command(self) -> str:
        return shlex.join(self.prefetch_argv())


def normalize(source: str) -> str:
    return unquote(source)


def git_sources(lock: Lockfile) -> tuple[GitSource, ...]:
    grouped: dict[str, list[str]] = {}
    for p in lock.packages:
        if p.is_git and p.source:
            grouped.setdefault(normalize(p.source), []).append(p.key)
    out = []
    for source, packages in sorted(grouped.items()):
        rest = source.removeprefix("git+")
        base, _, rev = rest.partition("#")
        url, _, query = base.partition("?")
        params = dict(parse_qsl(query))
        ref = None
        if "branch" in params:
            ref = f"refs/heads/{params['branch']}"
        elif "tag" in params:
            ref = f"refs/tags/{params['tag']}"
        out.append(GitSource(source, url, rev or params.get("rev", ""), ref, tuple(sorted(packages))))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class HashStatus:
    """[git-hashes] of nixcrate.toml against the git sources of Cargo.lock."""

    hashes: tuple[tuple[str, str], ...]  # (source, hash) for the sources in the lock
    missing: tuple[GitSource, ...]
    stale: tuple[str, ...]  # keys of [git-hashes] no lock source has


def status(lock: Lockfile, configured: tuple[tuple[str, str], ...]) -> HashStatus:
    given = {normalize(k): v for k, v in configured}
    sources = git_sources(lock)
    wanted = {s.source for s in sources}
    return HashStatus(
        hashes=tuple(sorted((s.source, given[s.source]) for s in sources if s.source in given)),
        missing=tuple(s for s in sources if s.source not in given),
        stale=tuple(sorted(k for k in given if k not in wanted)),
    )


def missing_warning(src: GitSource) -> str:
    return (
        f"Cargo.lock: git dependency {src.packages[0].split()[0]} ({src.source}) has no output hash in nixcrate.toml [git-hashes]: "
        f"without it crane fetches it while evaluating the flake (network needed, nothing cacheable); "
        f"run 'nixcrate hashes', or {src.prefetch_command()} and add its hash"
    )


def parse_prefetch(stdout: str) -> str:
    """The SRI hash printed (as a JSON string) by `prefetch_argv`."""
    value = json.loads(stdout)
    if not isinstance(value, str) or not value.startswith("sha256-"):
        msg = f"unexpected hash from nix: {stdout.strip()[:80]}"
        raise ValueError(msg)
    return value
