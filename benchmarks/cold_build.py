"""The cold build of the fleet: nixcrate against a naive crane flake and plain cargo.

    python benchmarks/cold_build.py [--size fleet|xl] [--rounds 2] [--work DIR]

Per round, in alternating order, each from nothing (a new salt in the closures' env, a new
cargo target directory), the services only (the handlers have their own closure):

- nixcrate: `nix build` of deployCargoArtifacts and every service, the flake `nixcrate init`
  generated (with its base snapshot equal to Cargo.lock, so the closure is the base's);
- naive crane: the same workspace with a flake in the style of crane's
  examples/quick-start-workspace: one `buildDepsOnly` of the whole workspace source
  (crane's defaults: `cargo check --all-targets`, `cargo build`, `cargo test --no-run`),
  then one `buildPackage` per service with `-p <service>` on it;
- nixcrate, unified: the same with `[services] unify-features = true` (one command for
  every service in the closure, each service's build narrowed to its bins by `--bin`);
- plain cargo: `cargo build --release --locked -p <every service>` in an empty target dir.

Both Nix builds run through ../shared/crane-build's setup (real crane, Nix 2.8 sandbox,
`cores = 2`, `max-jobs = 1`), timed with /usr/bin/time (wall, user, sys): CPU use is
(user + sys) / (wall x cores). Also printed: the third-party crates each service's own
derivation compiled after its closure (from `nix log`; nixcrate's should be 0), and how many
crate variants each closure compiled.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

import fleet  # noqa: E402
from incremental import frozen_nixcrate, nixcrate, run, third_party_lines  # noqa: E402

CORES = int(os.environ.get("CRANE_BUILD_CORES", "2"))

NAIVE = """\
{
  # crane's examples/quick-start-workspace, trimmed to the services (benchmarks/cold_build.py)
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixpkgs-unstable";
    crane.url = "github:ipetkov/crane";
  };
  outputs =
    { nixpkgs, crane, ... }:
    let
      pkgs = nixpkgs.legacyPackages.x86_64-linux;
      craneLib = crane.mkLib pkgs;
      src = craneLib.cleanCargoSource ./.;
      commonArgs = {
        inherit src;
        strictDeps = true;
        env.BENCH_SALT = "SALT";
      };
      cargoArtifacts = craneLib.buildDepsOnly commonArgs;
      individualCrateArgs = commonArgs // {
        inherit cargoArtifacts;
        inherit (craneLib.crateNameFromCargoToml { inherit src; }) version;
        doCheck = false;
      };
      service = name: craneLib.buildPackage (individualCrateArgs // { pname = name; cargoExtraArgs = "-p ${name}"; });
    in
    {
      packages.x86_64-linux = { inherit cargoArtifacts; } // pkgs.lib.genAttrs [ SERVICES ] service;
    };
}
"""


def timed_nix(ws: Path, attrs: list[str]) -> tuple[float, float, list[str]]:
    """(wall s, CPU share, built drvs) of one `nix build` of these attributes."""
    from crane_build import stage  # noqa: PLC0415

    staged = stage(ws)
    refs = [f"{staged.ref}#{a}" for a in attrs]
    try:
        dry = run(["nix", "build", "--dry-run", "--no-link", *staged.nix_args(), *refs], env=staged.env())
        drvs = sorted(set(re.findall(r"/nix/store/[a-z0-9]{32}-[^\s']+\.drv", dry.stderr)))
        argv = [
            "/usr/bin/time",
            "-f",
            "TIME %e %U %S",
            "nix",
            "build",
            "-L",
            "--no-link",
            *staged.nix_args(),
            *refs,
        ]
        stamped = stamped_run(argv, staged.env())
        wall, user, sys_ = (
            float(x)
            for x in re.findall(
                r"^TIME (\S+) (\S+) (\S+)$", "\n".join(line for _, line in stamped), re.MULTILINE
            )[-1]
        )
        logs = {
            d: subprocess.run(
                ["nix", "log", d], capture_output=True, text=True, check=False, env=staged.env()
            ).stdout
            for d in drvs
        }
    finally:
        staged.cleanup()
    compiled = {d: third_party_lines(log) for d, log in logs.items() if third_party_lines(log)}
    print(f"  where the time went: {phases(stamped)}", flush=True)
    return (
        wall,
        (user + sys_) / (wall * CORES),
        [f"{d.split('-', 1)[1]}: {len(c)}" for d, c in sorted(compiled.items())],
    )


def stamped_run(argv: list[str], env: dict[str, str]) -> list[tuple[float, str]]:
    """Run, keeping every line of its stderr (nix build -L: each derivation's log, prefixed
    with its name) with the second it arrived."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines = [(time.perf_counter() - start, line.rstrip("\n")) for line in proc.stderr]
    if proc.wait() != 0:
        sys.exit(f"cold_build: {' '.join(argv[3:6])}… failed:\n" + "\n".join(line for _, line in lines[-40:]))
    return lines


PHASE = re.compile(r"^(\S+)> (?:Running phase: (\w+)|(decompressing cargo artifacts))")


def phases(stamped: list[tuple[float, str]]) -> str:
    """Seconds per (closure or package, phase), from the stamped `-L` lines: the closures'
    own ("...-deps") apart, the packages' summed; patchPhase is mostly crane extracting the
    inherited target.tar.zst, installPhase compressing a closure's."""
    marks: dict[str, list[tuple[float, str]]] = {}
    last: dict[str, float] = {}
    for t, line in stamped:
        if m := re.match(r"^(\S+)> ", line):
            last[m[1]] = t
        if m := PHASE.match(line):
            marks.setdefault(m[1], []).append((t, m[2] or "extract"))
    totals: dict[tuple[str, str], float] = {}
    for drv, seq in marks.items():
        who = drv if drv.endswith("-deps") else "packages"
        for (t, phase), (t_next, _) in zip(seq, [*seq[1:], (last[drv], "")], strict=True):
            totals[who, phase] = totals.get((who, phase), 0.0) + t_next - t
    return ", ".join(f"{who} {phase} {secs:.1f} s" for (who, phase), secs in totals.items() if secs >= 0.5)


def plain_cargo(
    root: Path, registry: Path, services: tuple[str, ...], target: Path
) -> tuple[float, float, int]:
    """(wall s, CPU share, third-party crate variants compiled): one invocation, so cargo
    unifies the services' features (fewer variants than the closure's one command per service)."""
    env = {
        **os.environ,
        "CARGO_HOME": str(fleet.cargo_home(root, registry)),
        "CARGO_TARGET_DIR": str(target),
        "CARGO_TERM_COLOR": "never",
    }
    argv = ["/usr/bin/time", "-f", "TIME %e %U %S", "cargo", "build", "--release", "--locked", "--offline"]
    argv += [a for s in services for a in ("-p", s)]
    out = run(argv, cwd=root, env=env)
    wall, user, sys_ = (
        float(x) for x in re.findall(r"^TIME (\S+) (\S+) (\S+)$", out.stderr, re.MULTILINE)[-1]
    )
    return wall, (user + sys_) / (wall * CORES), len(third_party_lines(out.stderr))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(fleet.SIZES), default="fleet")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", type=Path)
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="nixcrate-cold-"))
    work.mkdir(parents=True, exist_ok=True)
    from crane_build import seed_lock  # noqa: PLC0415

    env = frozen_nixcrate(work)

    plain = work / "plain"
    written = fleet.write_workspace(plain, a.size)
    ours, unified, naive = work / "nixcrate", work / "unified", work / "naive"
    for ws in (ours, unified, naive):
        shutil.copytree(plain, ws)
        seed_lock(ws / "Cargo.lock")
    services = written.services
    (naive / "flake.nix").write_text(NAIVE.replace("SERVICES", " ".join(f'"{s}"' for s in services)))
    toml = (ours / "nixcrate.toml").read_text()
    salt = f"{time.time_ns()}"
    print(
        f"{a.size}: {len(services)} services, {len(written.third_party)} third-party crates in the lock; salt {salt}"
    )
    totals: dict[str, list[float]] = {"nixcrate": [], "unified": [], "naive": [], "cargo": []}
    for rnd in range(1, a.rounds + 1):
        order = ["nixcrate", "unified", "naive", "cargo"]
        order = order if rnd % 2 else order[::-1]
        for who in order:
            tag = f"{salt}-{rnd}"
            if who in ("nixcrate", "unified"):
                ws = ours if who == "nixcrate" else unified
                unify = "unify-features = true\n" if who == "unified" else ""
                (ws / "nixcrate.toml").write_text(
                    toml + f'\n[services]\n{unify}env = {{ BENCH_SALT = "{tag}" }}\n'
                )
                nixcrate(env, "init", "--refresh-base", str(ws))
                wall, cpu, compiled = timed_nix(ws, ["deployCargoArtifacts", *services])
            elif who == "naive":
                (naive / "flake.nix").write_text(
                    NAIVE.replace("SERVICES", " ".join(f'"{s}"' for s in services)).replace("SALT", tag)
                )
                wall, cpu, compiled = timed_nix(naive, ["cargoArtifacts", *services])
            else:
                wall, cpu, variants = plain_cargo(
                    plain, fleet.DEBIAN_REGISTRY, services, work / f"target-{tag}"
                )
                compiled = [f"cargo: {variants}"]
                shutil.rmtree(work / f"target-{tag}", ignore_errors=True)
            totals[who].append(wall)
            print(
                f"round {rnd}, {who}: {wall:.1f} s wall, CPU {cpu:.0%} of {CORES} cores; compiled third-party per derivation: {compiled}",
                flush=True,
            )
        n, u, v, c = (totals[k][-1] for k in ("nixcrate", "unified", "naive", "cargo"))
        print(
            f"round {rnd}: nixcrate / naive {n / v:.2f}x, nixcrate / cargo {n / c:.2f}x; "
            f"unified / naive {u / v:.2f}x, unified / cargo {u / c:.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
