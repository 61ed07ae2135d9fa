"""A one-crate Cargo.lock bump on the fleet: what nixcrate rebuilds, against plain cargo.

    python benchmarks/incremental.py [--size fleet|xl] [--rounds 2] [--work DIR]

The fleet workspace (benchmarks/fleet.py) is written and locked from Debian's registry, its
base snapshot taken by `nixcrate init`, and every output built for real with
../shared/crane-build's setup (real crane, real Nix 2.8 in its sandbox): that is the base
state A. Two changes, each a Renovate-style lock bump measured from A (the base):

- B, `hex` 0.4.3 -> 0.4.4: one service (billing) uses it, nothing depends on it;
- C, B plus `memchr` 2.5.0 -> 2.5.1: aho-corasick, regex, tokio's `io-util` variant and
  env_logger depend on it (the versions are made up in a registry of links to Debian's).

For each, `nixcrate init --check` must pass (no regeneration), then one `nix build` of
the services' side (deployCargoArtifacts and every service) and one of the handlers' side
(lambdaDeployCargoArtifacts and every handler zip), timed. What Nix built comes from
`nix build --dry-run`, what each built derivation compiled from its `nix log`. Plain cargo
runs the very commands the services' closure runs (`cargo build --release --locked -p S`,
once per service, in one warm target directory), from A to the same lock, timed, in the same
round. Before each change, the outputs of every derivation it needs that A's outputs do not are
deleted from the store, so every round rebuilds them (an earlier run may have left them).

Prints one line per change and round, then a summary: third-party crates compiled by every
derivation the change rebuilt (and cargo's own list for the same change), the derivations
rebuilt, whether the handlers' side kept every derivation, and the wall-time ratio of the
services' side to cargo.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

import fleet  # noqa: E402

STATUS = re.compile(r"^\s*Compiling (\S+) v(\S+)( \(.+\))?\s*$")


def frozen_nixcrate(work: Path) -> dict[str, str]:
    """An environment running a copy of this checkout's nixcrate, taken now: editing the
    checkout while a benchmark runs does not change what it generates halfway."""
    dest = work / "nixcrate-src"
    if not dest.exists():
        shutil.copytree(REPO / "nixcrate", dest / "nixcrate", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(REPO / "templates", dest / "templates")
    return {**os.environ, "PYTHONPATH": str(dest)}


def nixcrate(env: dict[str, str], *args: str) -> None:
    run([sys.executable, "-m", "nixcrate.cli", *args], env=env)


def run(
    argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"incremental: {' '.join(argv[:4])}… failed:\n{proc.stderr[-4000:]}")
    return proc


def third_party_lines(log: str) -> list[str]:
    """'name vX' of every third-party crate cargo compiled (no path in its status line)."""
    out = []
    for line in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", log).splitlines():
        m = STATUS.match(line)
        if m and not m[3]:
            out.append(f"{m[1]} v{m[2]}")
    return sorted(out)


# --------------------------------------------------------------------------- plain cargo


@dataclass
class Cargo:
    """Plain cargo in one warm target directory, with the services' closure's commands."""

    root: Path
    registry: Path
    services: tuple[str, ...]

    def build(self) -> tuple[float, list[str]]:
        env = {
            **os.environ,
            "CARGO_HOME": str(fleet.cargo_home(self.root, self.registry)),
            "CARGO_TERM_COLOR": "never",
        }
        start = time.perf_counter()
        logs = [
            run(
                ["cargo", "build", "--release", "--locked", "--offline", "-p", s], cwd=self.root, env=env
            ).stderr
            for s in self.services
        ]
        return time.perf_counter() - start, third_party_lines("\n".join(logs))

    def keep_warm(self) -> None:
        """Keep target/ as it is now (state A), for reset()."""
        self.warm = self.root.parent / "plain-target-A"
        shutil.rmtree(self.warm, ignore_errors=True)
        shutil.copytree(self.root / "target", self.warm, symlinks=True)

    def reset(self) -> None:
        """target/ exactly as A left it: cargo keeps every version's artifacts side by side, so
        going back to A's lock alone would leave a later change nothing to compile."""
        shutil.rmtree(self.root / "target")
        shutil.copytree(self.warm, self.root / "target", symlinks=True)

    def at(self, lock: Path) -> tuple[float, list[str]]:
        shutil.copyfile(lock, self.root / "Cargo.lock")
        return self.build()


# --------------------------------------------------------------------------- nix


class Nix:
    def __init__(self, ws: Path) -> None:
        from crane_build import stage  # noqa: PLC0415

        self.staged = stage(ws)

    def _env(self) -> dict[str, str]:
        return self.staged.env()

    def _refs(self, attrs: list[str]) -> list[str]:
        return [f"{self.staged.ref}#{a}" for a in attrs]

    def to_build(self, attrs: list[str]) -> list[str]:
        proc = run(
            ["nix", "build", "--dry-run", "--no-link", *self.staged.nix_args(), *self._refs(attrs)],
            env=self._env(),
        )
        return sorted(set(re.findall(r"/nix/store/[a-z0-9]{32}-[^\s']+\.drv", proc.stderr)))

    def build(self, attrs: list[str]) -> tuple[float, list[str]]:
        drvs = self.to_build(attrs)
        start = time.perf_counter()
        run(["nix", "build", "--no-link", *self.staged.nix_args(), *self._refs(attrs)], env=self._env())
        return time.perf_counter() - start, drvs

    def drv(self, attr: str) -> str:
        return run(
            ["nix", "eval", "--raw", *self.staged.nix_args(), f"{self.staged.ref}#{attr}.drvPath"],
            env=self._env(),
        ).stdout

    def log(self, drv: str) -> str:
        proc = subprocess.run(
            ["nix", "log", drv], capture_output=True, text=True, check=False, env=self._env()
        )
        return proc.stdout

    def drv_closure(self, attrs: list[str]) -> set[str]:
        """Every derivation these attributes' builds need, transitively."""
        drvs = [self.drv(a) for a in attrs]
        return {
            p for p in run(["nix-store", "-qR", *drvs], env=self._env()).stdout.split() if p.endswith(".drv")
        }

    def forget_new(self, attrs: list[str], kept: set[str]) -> None:
        """Delete the outputs of every derivation these attributes need that is not in `kept`
        (A's): what the change rebuilds, even when an earlier run left it in the store."""
        self.forget(sorted(self.drv_closure(attrs) - kept))

    def forget(self, drvs: list[str]) -> None:
        """Delete what these derivations built, so that the next round builds them again."""
        outs = [
            o for d in drvs for o in run(["nix-store", "-q", "--outputs", d], env=self._env()).stdout.split()
        ]
        subprocess.run(["nix-store", "--delete", *outs], capture_output=True, check=False, env=self._env())

    def cleanup(self) -> None:
        self.staged.cleanup()


def name_of(drv: str) -> str:
    return drv.split("-", 1)[1].removesuffix(".drv")


# --------------------------------------------------------------------------- the benchmark


@dataclass
class Change:
    label: str
    lock: Path  # cargo's lock (registry checksums)
    seeded: Path  # the same, seeded as crane-build seeds it


def prepare(work: Path, size: str, env: dict[str, str]) -> tuple[Path, Path, fleet.Written, list[Change]]:
    """The workspace at A (seeded lock, base snapshot), the registry, and the changes B, C."""
    plain = work / "plain"
    written = fleet.write_workspace(plain, size)
    regs = {
        "hex": fleet.write_registry(work / "registry-hex", {"hex": "0.4.4"}),
        "all": fleet.write_registry(work / "registry-all", {"hex": "0.4.4", "memchr": "2.5.1"}),
    }
    locks = {"A": work / "A.lock"}
    shutil.copyfile(plain / "Cargo.lock", locks["A"])
    fleet.bump_lock(plain, "hex", "0.4.4", regs["hex"])
    locks["B"] = work / "B.lock"
    shutil.copyfile(plain / "Cargo.lock", locks["B"])
    fleet.bump_lock(plain, "memchr", "2.5.1", regs["all"])
    locks["C"] = work / "C.lock"
    shutil.copyfile(plain / "Cargo.lock", locks["C"])
    shutil.copyfile(locks["A"], plain / "Cargo.lock")

    os.environ["CRANE_BUILD_REGISTRY"] = str(regs["all"])
    from crane_build import seed_lock  # noqa: PLC0415

    seeded = {}
    for label, lock in locks.items():
        seeded[label] = work / f"{label}.seeded.lock"
        shutil.copyfile(lock, seeded[label])
        seed_lock(seeded[label], regs["all"])
    ws = work / "ws"
    shutil.copytree(plain, ws, ignore=shutil.ignore_patterns("target"))
    shutil.copyfile(seeded["A"], ws / "Cargo.lock")
    nixcrate(env, "init", str(ws))
    changes = [
        Change("hex 0.4.3 -> 0.4.4", locks["B"], seeded["B"]),
        Change("memchr 2.5.0 -> 2.5.1 on top", locks["C"], seeded["C"]),
    ]
    return ws, regs["all"], written, changes


def variant(ws: Path, seeded: Path, dest: Path, env: dict[str, str]) -> Path:
    """The workspace with another lock and nothing else: init --check must pass."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(ws, dest)
    shutil.copyfile(seeded, dest / "Cargo.lock")
    nixcrate(env, "init", "--check", str(dest))
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(fleet.SIZES), default="fleet")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", type=Path, help="keep the workspaces here (default: a temporary directory)")
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="nixcrate-incremental-"))
    work.mkdir(parents=True, exist_ok=True)
    env = frozen_nixcrate(work)
    ws, registry, written, changes = prepare(work, a.size, env)
    services = ["deployCargoArtifacts", *written.services]
    handlers = ["lambdaDeployCargoArtifacts", *(f"deploy-lambda-{b}" for b in written.handler_bins)]
    print(
        f"{a.size}: {len(written.services)} services, {len(written.handler_bins)} handlers, {len(written.third_party)} third-party crates in the lock"
    )

    cargo = Cargo(work / "plain", registry, written.services)
    secs, _ = cargo.build()
    cargo.keep_warm()
    print(f"plain cargo, A from nothing (the services' closure's commands): {secs:.1f} s")
    base = Nix(ws)
    secs_s, drvs_s = base.build(services)
    secs_h, drvs_h = base.build(handlers)
    before = {attr: base.drv(attr) for attr in services + handlers}
    kept = base.drv_closure(services + handlers)
    print(
        f"nix, A (base closures and every output): services' side {secs_s:.1f} s, handlers' side {secs_h:.1f} s ({len(drvs_s) + len(drvs_h)} derivations)"
    )
    base.cleanup()

    summary: dict[str, list[str]] = {}
    for rnd in range(1, a.rounds + 1):
        for change in changes:
            cargo.reset()  # back to A (untimed)
            c_secs, c_compiled = cargo.at(change.lock)
            nix = Nix(variant(ws, change.seeded, work / "variant", env))
            nix.forget_new(services + handlers, kept)
            n_secs, n_drvs = nix.build(services)
            h_secs, h_drvs = nix.build(handlers)
            side = {"services": n_drvs, "handlers": h_drvs}
            compiled = {
                k: sorted(c for d in drvs for c in third_party_lines(nix.log(d))) for k, drvs in side.items()
            }
            kept_handlers = not h_drvs and all(nix.drv(attr) == before[attr] for attr in handlers)
            names = {attr.removeprefix("deploy-lambda-") for attr in services + handlers} | {
                "deploy-deps",
                "lambda-deploy-deps",
                "lambda-",
            }
            rebuilt = sorted(
                name_of(d)
                for d in n_drvs + h_drvs
                if any(name_of(d).startswith(n) for n in names) or "deploy-lambda-" in d
            )
            line = (
                f"round {rnd}, {change.label}: third-party crates compiled by every derivation rebuilt: services' side "
                f"{len(compiled['services'])} {compiled['services']}, handlers' side {len(compiled['handlers'])} {compiled['handlers']}; "
                f"cargo's own (the services' commands, from A) {len(c_compiled)} {c_compiled} "
                f"({'the same' if c_compiled == compiled['services'] else 'NOT the same'}); rebuilt {rebuilt}; "
                f"handlers' closure and zips kept: {'yes' if kept_handlers else 'no'}; "
                f"services' side {n_secs:.2f} s, handlers' side {h_secs:.2f} s, cargo {c_secs:.2f} s, ratio {n_secs / c_secs:.1f}x"
            )
            print(line, flush=True)
            summary.setdefault(change.label, []).append(f"{n_secs / c_secs:.1f}x")
            nix.forget(n_drvs + h_drvs)
            nix.cleanup()
    for label, ratios in summary.items():
        print(f"summary, {label}: services' side / cargo over {len(ratios)} round(s): {', '.join(ratios)}")
    print(json.dumps({"work": str(work)}))


if __name__ == "__main__":
    main()
