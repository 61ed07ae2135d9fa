"""Overhead of `nixcrate build` over a raw `nix build` of the same derivations.

    python benchmarks/build_overhead.py [--rounds 5] [--seconds 2.0]

A private store, a flake of plain derivations shaped like a generated one (a deps
closure, then four services on it, each sleeping --seconds). Every round builds a fresh
salt with raw `nix build` and another with `nixcrate build`, alternating which goes
first, with the same --max-jobs/--cores; nixcrate is the installed console script, a fresh
process each time, as users run it. Report latency: from nixcrate's "nix exited"
line (-v) to nixcrate's own exit, measured from outside.

The two builds of a round run back to back, so their difference is also given per round
(median and quartiles): on a busy machine it drifts less than the two medians do.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _installed import compile_bytecode, nixcrate_argv

REPO = Path(__file__).resolve().parent.parent
CONFIG = "experimental-features = nix-command flakes\nsandbox = false\nsubstituters =\nbuild-users-group =\n"
SERVICES = ("api", "worker", "billing", "ingest")


def write_flake(root: Path, system: str, salts: list[str], seconds: float) -> None:
    """One flake, one output set per salt: each round builds outputs no earlier round built."""
    outputs = []
    for salt in salts:
        outputs.append(f'deps-{salt} = mk "workspace-deps-0.0.0" "{salt}" [];')
        outputs += [f'{s}-{salt} = mk "{s}-0.1.0" "{salt}" [ self.packages.{system}.deps-{salt} ];' for s in SERVICES]
    root.mkdir(parents=True, exist_ok=True)
    (root / "flake.nix").write_text(
        f"""{{
  outputs = {{ self }}: let
    mk = name: salt: inputs: derivation {{
      inherit name salt;
      system = "{system}";
      builder = "/bin/sh";
      args = [ "-c" "export PATH=/bin:/usr/bin; : ${{toString inputs}}; echo building; sleep {seconds}; mkdir $out; echo ok > $out/bin" ];
    }};
  in {{ packages.{system} = {{ {" ".join(outputs)} }}; }};
}}
"""
    )
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)


def raw_nix(flake: Path, salt: str, jobs: int, cores: int) -> float:
    refs = [f"{flake}#{s}-{salt}" for s in SERVICES]
    start = time.perf_counter()
    subprocess.run(["nix", "build", "--no-link", "--max-jobs", str(jobs), "--cores", str(cores), *refs], check=True, capture_output=True)
    return time.perf_counter() - start



def nixcrate(flake: Path, salt: str, jobs: int, cores: int, *, plan_first: bool) -> tuple[float, float]:
    argv = [*nixcrate_argv(), "build", "--flake", str(flake), "--json", "-v"]
    if not plan_first:  # else nixcrate picks them (the same numbers) from its plan
        argv += ["--max-jobs", str(jobs), "--cores", str(cores)]
    argv += [f"{s}-{salt}" for s in SERVICES]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    nix_exited = None
    for line in proc.stderr:
        if line.startswith("nix exited with status"):
            nix_exited = time.perf_counter()
    stdout = proc.stdout.read() if proc.stdout else ""
    proc.wait()
    end = time.perf_counter()
    assert proc.returncode == 0 and '"built": 5' in stdout, stdout
    assert nix_exited is not None
    return end - start, end - nix_exited


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="sleep of each derivation")
    parser.add_argument(
        "--plan-first",
        action="store_true",
        help="no --max-jobs for nixcrate: its default parallelism, planned before nix starts (raw nix gets the same numbers)",
    )
    args = parser.parse_args()
    compile_bytecode()

    with tempfile.TemporaryDirectory(prefix="nixcrate-bench-") as tmp:
        root = Path(tmp)
        os.environ.update(
            NIX_STORE_DIR=str(root / "nix/store"),
            NIX_STATE_DIR=str(root / "nix/var/nix"),
            NIX_LOG_DIR=str(root / "nix/var/log/nix"),
            NIX_CONFIG=CONFIG,
            XDG_CACHE_HOME=str(root / "cache"),
        )
        system = subprocess.run(["nix", "eval", "--raw", "--impure", "--expr", "builtins.currentSystem"], capture_output=True, text=True, check=True).stdout
        salts = [f"{kind}{n}-{time.time_ns()}" for n in range(args.rounds + 1) for kind in ("raw", "nc")]
        flake = root / "flake"
        write_flake(flake, system, salts, args.seconds)
        jobs, cores = 4, max(1, (os.cpu_count() or 1) // 4)
        if args.plan_first:
            sys.path.insert(0, str(REPO))
            from nixcrate.nix import available_cores, parallelism  # noqa: PLC0415

            jobs, cores = parallelism(available_cores(), len(SERVICES))

        # Warm-up round (not counted): the flake's source copy, nix's eval cache, Python imports.
        raw_nix(flake, salts[0], jobs, cores)
        nixcrate(flake, salts[1], jobs, cores, plan_first=args.plan_first)

        raws: list[float] = []
        ours: list[float] = []
        latencies: list[float] = []
        for n in range(1, args.rounds + 1):
            raw_salt, nc_salt = salts[2 * n], salts[2 * n + 1]
            if n % 2:
                raws.append(raw_nix(flake, raw_salt, jobs, cores))
                wall, latency = nixcrate(flake, nc_salt, jobs, cores, plan_first=args.plan_first)
            else:
                wall, latency = nixcrate(flake, nc_salt, jobs, cores, plan_first=args.plan_first)
                raws.append(raw_nix(flake, raw_salt, jobs, cores))
            ours.append(wall)
            latencies.append(latency)
            print(f"round {n}: nix build {raws[-1]:.3f} s, nixcrate build {wall:.3f} s, report {latency * 1000:.0f} ms after nix exited")

        raw_med, our_med = statistics.median(raws), statistics.median(ours)
        overhead = (our_med - raw_med) / raw_med
        paired = sorted(o - r for o, r in zip(ours, raws, strict=True))
        q1, _, q3 = statistics.quantiles(paired, n=4) if len(paired) > 1 else (paired[0],) * 3
        print(f"derivations: 5 a round (1 deps closure + {len(SERVICES)} services, {args.seconds} s each), --max-jobs {jobs} --cores {cores}" + (" (nixcrate's default, planned first)" if args.plan_first else ""))
        print(f"median wall: nix build {raw_med:.3f} s, nixcrate build {our_med:.3f} s")
        print(f"overhead: {our_med - raw_med:+.3f} s = {overhead:+.1%} of wall time (goal <= 3%)")
        print(f"per round: median {statistics.median(paired):+.3f} s = {statistics.median(paired) / raw_med:+.1%}, quartiles {q1:+.3f} s .. {q3:+.3f} s")
        print(f"report latency after nix exited: median {statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms (goal <= 500 ms)")


if __name__ == "__main__":
    main()
