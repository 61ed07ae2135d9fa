"""nixcrate.resolve against real cargo: what `cargo tree` says one invocation compiles, and
with which features, next to what the resolver says, as sets of `name version features`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from cargo_sim import DEBIAN_REGISTRY, cargo_home

from nixcrate import closure as closure_mod
from nixcrate import resolve, workspace

__all__ = ["DEBIAN_REGISTRY", "cargo_env", "cargo_home", "cargo_rows", "lock", "nixcrate_rows"]


def cargo_env(home: Path) -> dict[str, str]:
    return {**os.environ, "CARGO_HOME": str(home), "CARGO_TERM_COLOR": "never"}


def lock(root: Path, home: Path) -> None:
    proc = subprocess.run(["cargo", "generate-lockfile", "--offline"], cwd=root, env=cargo_env(home), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def cargo_rows(root: Path, home: Path, requests: list[resolve.Request], target: str = resolve.HOST) -> set[str]:
    """`cargo tree -e normal,build --target T -p <member>... -f '{p} {f}'`: `name version features`."""
    argv = ["cargo", "tree", "--offline", "-e", "normal,build", "--target", target, "--prefix", "none", "-f", "{p} {f}"]
    for r in requests:
        argv += ["-p", r.crate]
    feats = [f"{r.crate}/{f}" for r in requests for f in r.features]
    if feats:
        argv += ["--features", ",".join(feats)]
    if any(not r.default_features for r in requests):
        argv.append("--no-default-features")
    proc = subprocess.run(argv, cwd=root, env=cargo_env(home), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = set()
    for line in proc.stdout.splitlines():
        line = line.strip().removesuffix("(*)").strip()
        if not line:
            continue
        words = line.split(" ")
        name, version = words[0], words[1].removeprefix("v")
        rest = [w for w in words[2:] if not (w.startswith("(") or w.endswith(")"))]
        rows.add(f"{name} {version} {''.join(rest)}")
    return rows


def nixcrate_rows(root: Path, home: Path, requests: list[resolve.Request], target: str = resolve.HOST) -> set[str]:
    ws = workspace.load(root)
    graph = closure_mod.LockGraph(ws)
    resolver = resolve.Resolver(graph, resolve.ManifestIndex(resolve.sources_roots(ws, {"CARGO_HOME": str(home)})), target)
    res = resolver.resolve(requests)
    assert not res.unresolved, res.unresolved
    return {f"{key} {','.join(feats)}" for key, _host, feats in res.features}
