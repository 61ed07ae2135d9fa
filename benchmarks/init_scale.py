"""How `nixcrate init` scales with the workspace, against cargo's own manifest reader.

    python benchmarks/init_scale.py [--quick] [--rounds 5] [--sizes 50,500,2000] [--eval-sizes 50,500]

Generates synthetic Cargo workspaces (members under globs and explicit paths, services
with src/main.rs, multi-bin tools, workspace.package / workspace.dependencies
inheritance, path dependencies between members, a version-4 Cargo.lock holding the
members plus a DAG of registry packages: 4 per member, 2,000 for 500 members).

Part 1, per size: the wall time of `nixcrate init DIR --force` (the installed console
script, a fresh process each time, as users run it) against `cargo metadata --no-deps
--offline --format-version 1` on the same tree, alternating which goes first, one
untimed warm-up each. Goal: init under 2 s for 2,000 members (15 times the seed-002
workspace), time per member roughly constant (linear).

Part 2, per eval size: `nix eval` of every package's drvPath (crane-eval: real crane,
real nixpkgs lib, stub packages) of the generated flake against a hand-written flake in
the style of crane's examples/quick-start-workspace, alternating. Goal: ratio
generated / hand-written <= 1.0. Skipped, saying why, when crane-eval cannot run.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import itertools
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _installed import compile_bytecode, nixcrate_argv
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
CRANE_EVAL = REPO.parent / "shared" / "crane-eval"
REGISTRY = "registry+https://github.com/rust-lang/crates.io-index"
INIT_GOAL_SECONDS = 2.0
INIT_GOAL_MEMBERS = 2000
LOCK_PER_MEMBER = 4  # 2,000 registry packages for 500 members
WORDS = ("serde", "tokio", "hyper", "tower", "bytes", "futures", "tracing", "rand", "regex", "syn", "quote", "mio", "http", "url", "time", "log")


# --------------------------------------------------------------------------- workspace


@dataclass
class Member:
    name: str
    path: str  # relative to the root
    kind: str  # lib | service | tool
    lib_deps: list[str] = field(default_factory=list)  # member names
    reg_deps: list[tuple[str, str]] = field(default_factory=list)  # (name, version)
    dev_deps: list[tuple[str, str]] = field(default_factory=list)
    build_rs: bool = False


@dataclass
class Shape:
    root: Path
    members: list[Member]
    registry: int  # registry packages in Cargo.lock

    @property
    def binaries(self) -> list[Member]:
        return [m for m in self.members if m.kind != "lib"]

    def closure(self, member: Member) -> list[Member]:
        """The member and every member it depends on (path deps), sorted by path."""
        by_name = {m.name: m for m in self.members}
        seen: dict[str, Member] = {}
        stack = [member]
        while stack:
            m = stack.pop()
            if m.name not in seen:
                seen[m.name] = m
                stack.extend(by_name[d] for d in m.lib_deps)
        return sorted(seen.values(), key=lambda m: m.path)


def _checksum(name: str, version: str) -> str:
    return hashlib.sha256(f"{name}-{version}".encode()).hexdigest()


def _registry(count: int, rng: random.Random) -> tuple[list[tuple[str, str]], dict[tuple[str, str], list[tuple[str, str]]]]:
    """count registry packages (about 5% a second major version of a name) and their dependency DAG."""
    pkgs: list[tuple[str, str]] = []
    i = 0
    while len(pkgs) < count:
        name = f"{WORDS[i % len(WORDS)]}-{i:04d}"
        version = f"{i % 3}.{i % 17}.{i % 5}"
        pkgs.append((name, version))
        if i % 20 == 7 and len(pkgs) < count:
            pkgs.append((name, f"{i % 3 + 1}.0.{i % 7}"))
        i += 1
    deps: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for idx, pkg in enumerate(pkgs):
        # Edges only to earlier packages: a DAG, mostly local, as real lock graphs are.
        earlier = pkgs[max(0, idx - 200) : idx]
        choices = rng.sample(earlier, min(len(earlier), rng.randint(0, 4)))
        picked: dict[str, tuple[str, str]] = {}
        for dep in choices:
            if dep[0] != pkg[0]:
                picked.setdefault(dep[0], dep)  # one version of a name per package
        deps[pkg] = sorted(picked.values())
    return pkgs, deps


def _dep_refs(deps: list[tuple[str, str]], versions: dict[str, list[str]]) -> list[str]:
    """Cargo.lock's form: bare name when the lock holds one version of it, else "name version"."""
    return sorted(n if len(versions[n]) == 1 else f"{n} {v}" for n, v in deps)


def _layout(n_members: int, rng: random.Random) -> tuple[list[Member], list[Member], list[Member]]:
    """(libraries, the core layer of them, all members) with path dependencies between them."""
    n_tools = max(2, n_members // 50)  # multi-bin, explicit paths
    n_services = n_members * 3 // 10  # services/* glob
    n_explicit = max(2, n_members // 25)  # libs listed one by one
    n_libs = n_members - n_tools - n_services - n_explicit  # crates/* glob
    libs = [Member(f"lib-{i:04d}", f"crates/lib-{i:04d}", "lib") for i in range(n_libs)]
    libs += [Member(f"shared-{i:03d}", f"libs/shared-{i:03d}", "lib") for i in range(n_explicit)]
    # Three layers of libraries: services reach a handful of crates, not all of them.
    core, mid, top = libs[: len(libs) // 10 or 1], libs[len(libs) // 10 : len(libs) * 4 // 10], libs[len(libs) * 4 // 10 :]
    for layer, below in ((mid, core), (top, mid or core)):
        for m in layer:
            m.lib_deps = sorted({d.name for d in rng.sample(below, min(len(below), rng.randint(0, 2)))})
    services = [Member(f"svc-{i:04d}", f"services/svc-{i:04d}", "service") for i in range(n_services)]
    tools = [Member(f"tool-{i:03d}", f"tools/tool-{i:03d}", "tool") for i in range(n_tools)]
    for m in services + tools:
        m.lib_deps = sorted({d.name for d in rng.sample(top + mid, min(len(top + mid), rng.randint(1, 3)))})
    members = libs + services + tools
    return libs, core, members


def generate(root: Path, n_members: int, n_registry: int, seed: int = 1) -> Shape:
    rng = random.Random(seed)
    pkgs, reg_deps = _registry(n_registry, rng)
    versions: dict[str, list[str]] = {}
    for n, v in pkgs:
        versions.setdefault(n, []).append(v)

    libs, core, members = _layout(n_members, rng)
    # workspace.dependencies (one version per name): late packages pull in long chains
    ws_version = dict(reversed(pkgs[-40:]))
    for i, m in enumerate(members):
        chosen = {n: (n, ws_version.get(n, v)) for n, v in rng.sample(pkgs, rng.randint(1, 4))}
        if i % 2 == 0:
            n = sorted(ws_version)[i % len(ws_version)]
            chosen[n] = (n, ws_version[n])
        m.reg_deps = sorted(chosen.values())
        if i % 7 == 0:
            dn, dv = pkgs[(i * 13) % len(pkgs)]
            if dn not in chosen:
                m.dev_deps = [(dn, dv)]
        m.build_rs = i % 33 == 5

    root.mkdir(parents=True, exist_ok=True)
    ws_deps = [f'"{n}" = "{v}"' for n, v in sorted(ws_version.items())]
    ws_deps += [f'"{m.name}" = {{ path = "{m.path}" }}' for m in core]
    explicit = [m.path for m in libs if m.path.startswith("libs/")] + [m.path for m in members if m.kind == "tool"]
    (root / "Cargo.toml").write_text(
        "[workspace]\n"
        f"members = {json.dumps(['crates/*', 'services/*', *explicit])}\n"
        'resolver = "2"\n\n'
        '[workspace.package]\nversion = "0.1.0"\nedition = "2021"\nlicense = "MIT"\n\n'
        "[workspace.dependencies]\n" + "\n".join(ws_deps) + "\n\n"
        "[profile.release]\ncodegen-units = 4\n"
    )
    ws_names = set(ws_version) | {m.name for m in core}
    by_name = {m.name: m for m in members}
    for m in members:
        _write_member(root, m, by_name, ws_names)

    lines = ["# This file is automatically @generated by Cargo.", "# It is not intended for manual editing.", "version = 4", "", ""]
    entries: list[tuple[str, str, str]] = []  # (name, version, text)
    for m in members:
        refs = sorted(_dep_refs(m.reg_deps + m.dev_deps, versions) + m.lib_deps)
        entries.append((m.name, "0.1.0", _lock_entry(m.name, "0.1.0", None, refs)))
    entries += [(n, v, _lock_entry(n, v, REGISTRY, _dep_refs(reg_deps[(n, v)], versions))) for n, v in pkgs]
    entries.sort(key=lambda e: (e[0], [int(x) for x in e[1].split(".")]))
    (root / "Cargo.lock").write_text("\n".join(lines) + "".join(e[2] for e in entries).rstrip("\n") + "\n")
    return Shape(root, members, len(pkgs))


def _lock_entry(name: str, version: str, source: str | None, refs: list[str]) -> str:
    out = f'[[package]]\nname = "{name}"\nversion = "{version}"\n'
    if source:
        out += f'source = "{source}"\nchecksum = "{_checksum(name, version)}"\n'
    if refs:
        out += "dependencies = [\n" + "".join(f' "{r}",\n' for r in refs) + "]\n"
    return out + "\n"


def _write_member(root: Path, m: Member, by_name: dict[str, Member], ws_names: set[str]) -> None:
    d = root / m.path
    (d / "src").mkdir(parents=True, exist_ok=True)
    own_version = m.kind == "tool"  # a few set their own version, the rest inherit
    toml = [
        "[package]",
        f'name = "{m.name}"',
        'version = "0.1.0"' if own_version else "version.workspace = true",
        "edition.workspace = true",
        "license.workspace = true",
    ]
    if m.build_rs:
        (d / "build.rs").write_text("fn main() {}\n")
    toml += ["", "[dependencies]"]
    for dep in m.lib_deps:
        if dep in ws_names:
            toml.append(f"{dep} = {{ workspace = true }}")
        else:
            rel = Path(*[".."] * len(Path(m.path).parts)) / by_name[dep].path
            toml.append(f'{dep} = {{ path = "{rel.as_posix()}" }}')
    for n, v in m.reg_deps:
        toml.append(f'"{n}" = {{ workspace = true }}' if n in ws_names else f'"{n}" = "{v}"')
    if m.dev_deps:
        toml += ["", "[dev-dependencies]", *(f'"{n}" = "{v}"' for n, v in m.dev_deps)]
    (d / "Cargo.toml").write_text("\n".join(toml) + "\n")
    if m.kind == "lib":
        (d / "src" / "lib.rs").write_text(f"pub fn {m.name.replace('-', '_')}() -> u32 {{ 1 }}\n")
    elif m.kind == "service":
        (d / "src" / "main.rs").write_text("fn main() {}\n")
    else:
        (d / "src" / "lib.rs").write_text("pub fn shared() {}\n")
        (d / "src" / "bin").mkdir(exist_ok=True)
        for b in ("migrate", "serve", "admin"):
            (d / "src" / "bin" / f"{b}.rs").write_text("fn main() {}\n")


# --------------------------------------------------------------------------- part 1: init



def wall(argv: list[str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed


@dataclass
class InitRow:
    members: int
    registry: int
    init: float
    cargo: float | None

    @property
    def ratio(self) -> float | None:
        return self.init / self.cargo if self.cargo else None


def time_init(shape: Shape, rounds: int, budget: float) -> InitRow:
    init = [*nixcrate_argv(), "init", str(shape.root), "--force"]
    cargo = ["cargo", "metadata", "--no-deps", "--offline", "--format-version", "1"] if shutil.which("cargo") else None
    # Warm-up, not counted: the first init also writes nixcrate.toml; page cache, cargo's own caches.
    first = wall(init)
    if cargo:
        out = subprocess.run(cargo, cwd=shape.root, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise SystemExit(f"cargo metadata rejects the synthetic tree:\n{out.stderr[-3000:]}")
        seen = len(json.loads(out.stdout)["packages"])
        if seen != len(shape.members):
            raise SystemExit(f"cargo metadata sees {seen} packages, the generator wrote {len(shape.members)}")
    inits: list[float] = []
    cargos: list[float] = []
    if first > budget:
        # Far off the goal anyway: the warm-up run (which also wrote nixcrate.toml, a few ms) is the figure.
        print(f"  {len(shape.members)} members: init took {first:.1f} s (> --budget {budget:.0f} s): that run is the figure")
        inits.append(first)
        rounds = 0
        if cargo:
            cargos += [wall(cargo, cwd=shape.root) for _ in range(3)]
    for n in range(rounds):
        if n % 2 == 0 or not cargo:
            inits.append(wall(init))
            if cargo:
                cargos.append(wall(cargo, cwd=shape.root))
        else:
            cargos.append(wall(cargo, cwd=shape.root))
            inits.append(wall(init))
    return InitRow(len(shape.members), shape.registry, statistics.median(inits), statistics.median(cargos) if cargos else None)


def print_init_table(rows: list[InitRow]) -> None:
    print(f"{'members':>8} {'lock pkgs':>9} {'init s':>8} {'cargo s':>8} {'ratio':>7} {'init ms/member':>15} {'cargo ms/member':>16}")
    for r in rows:
        cargo = f"{r.cargo:8.3f}" if r.cargo else f"{'-':>8}"
        ratio = f"{r.ratio:6.2f}x" if r.ratio else f"{'-':>7}"
        cpm = f"{r.cargo / r.members * 1000:16.3f}" if r.cargo else f"{'-':>16}"
        print(f"{r.members:>8} {r.registry:>9} {r.init:8.3f} {cargo} {ratio} {r.init / r.members * 1000:15.3f} {cpm}")
    for r in rows:
        if r.ratio:
            print(f"ratio init/cargo-metadata at {r.members} members: {r.ratio:.2f}x")
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        growth = (last.init / first.init) / (last.members / first.members)
        print(
            f"growth {first.members} -> {last.members} members ({last.members / first.members:.0f}x): init {last.init / first.init:.2f}x"
            + (f", cargo {last.cargo / first.cargo:.2f}x" if first.cargo and last.cargo else "")
            + f"; init per member {first.init / first.members * 1000:.2f} -> {last.init / last.members * 1000:.2f} ms"
            + f" ({growth:.2f}x what linear growth predicts; ~1 or below is linear)"
        )
        # Marginal cost between neighbouring sizes: constant when init is linear in members.
        for a, b in itertools.pairwise(rows):
            print(f"marginal init cost {a.members} -> {b.members} members: {(b.init - a.init) / (b.members - a.members) * 1000:.2f} ms/member")
    for r in rows:
        if r.members == INIT_GOAL_MEMBERS:
            ok = r.init < INIT_GOAL_SECONDS
            print(f"goal at {INIT_GOAL_MEMBERS} members (init < {INIT_GOAL_SECONDS} s): {'met' if ok else 'NOT met'}")


# --------------------------------------------------------------------------- part 2: eval


def nix_path(rel: str) -> str:
    return f"./{rel}"


def hand_written_flake(shape: Shape) -> str:
    """crane's examples/quick-start-workspace, written out for this tree by hand."""
    pkgs = []
    for m in sorted(shape.binaries, key=lambda m: m.name):
        crates = " ".join(nix_path(c.path) for c in shape.closure(m))
        pkgs.append(
            f"""        {m.name} = craneLib.buildPackage (
          individualCrateArgs
          // {{
            pname = "{m.name}";
            cargoExtraArgs = "-p {m.name}";
            src = fileSetForCrates [ {crates} ];
          }}
        );"""
        )
    names = " ".join(m.name for m in sorted(shape.binaries, key=lambda m: m.name))
    return f"""{{
  description = "Build a cargo workspace (hand-written, crane quick-start-workspace style)";

  inputs = {{
    nixpkgs.url = "github:NixOS/nixpkgs/nixpkgs-unstable";
    crane.url = "github:ipetkov/crane";
    flake-utils.url = "github:numtide/flake-utils";
  }};

  outputs =
    {{ self, nixpkgs, crane, flake-utils, ... }}:
    flake-utils.lib.eachDefaultSystem (
      system:
      let
        pkgs = nixpkgs.legacyPackages.${{system}};
        inherit (pkgs) lib;
        craneLib = crane.mkLib pkgs;
        src = craneLib.cleanCargoSource ./.;

        commonArgs = {{
          inherit src;
          strictDeps = true;
          buildInputs = [ ];
        }};

        cargoArtifacts = craneLib.buildDepsOnly commonArgs;

        individualCrateArgs = commonArgs // {{
          inherit cargoArtifacts;
          inherit (craneLib.crateNameFromCargoToml {{ inherit src; }}) version;
          doCheck = false;
        }};

        fileSetForCrates =
          crates:
          lib.fileset.toSource {{
            root = ./.;
            fileset = lib.fileset.unions ([ ./Cargo.toml ./Cargo.lock ] ++ map craneLib.fileset.commonCargoSources crates);
          }};

{chr(10).join(pkgs)}
      in
      {{
        packages = {{
          inherit cargoArtifacts {names};
        }};
      }}
    );
}}
"""


def crane_eval_missing() -> str | None:
    if not (CRANE_EVAL / "_harness.py").is_file():
        return f"{CRANE_EVAL} is not there (../shared beside the repository)"
    if not shutil.which("nix") or not shutil.which("git"):
        return "nix or git is not installed"
    return None


def load_harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crane_eval_harness", CRANE_EVAL / "_harness.py")
    assert spec
    assert spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@dataclass
class EvalRow:
    members: int
    packages_generated: int
    packages_hand: int
    generated: float
    hand: float

    @property
    def ratio(self) -> float:
        return self.generated / self.hand


def offline_check(harness: ModuleType, inputs: Any, flake_dir: Path) -> str:
    """Evaluate once with no network at all: proof that drvPaths fetch nothing (crates, inputs)."""
    if not shutil.which("unshare") or subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False).returncode != 0:
        return "not checked (unshare -n unavailable)"
    declared = harness.flake_inputs(flake_dir)
    cmd = ["unshare", "-n", "nix", "eval", "--json", "--no-write-lock-file", *harness.override_args(inputs, declared, [])]
    cmd += [f"git+file://{flake_dir}#packages.{harness.SYSTEM}", "--apply", "ps: builtins.mapAttrs (n: p: p.drvPath) ps"]
    proc = subprocess.run(cmd, env=harness.nix_env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return "FAILED without network: " + str(harness.tail(proc.stderr, 5))
    return f"yes, {len(json.loads(proc.stdout))} drvPaths evaluated with no network (unshare -n)"


def time_eval(shape: Shape, rounds: int, harness: ModuleType, inputs: Any) -> EvalRow:
    (shape.root / "flake-hand.nix").write_text(hand_written_flake(shape))
    work = Path(tempfile.mkdtemp(prefix="init-scale-eval-"))
    try:
        gen_dir = harness.stage(shape.root, work / "generated")
        hand_dir = harness.stage(shape.root, work / "hand", flake_file="flake-hand.nix")
        gen, _, _ = harness.evaluate(gen_dir, inputs)  # warm-up: copies the sources, writes the .drv files
        hand, _, _ = harness.evaluate(hand_dir, inputs)
        services = {m.name for m in shape.binaries}
        if not services <= set(gen) or not services <= set(hand):
            raise SystemExit(f"a flake lacks packages: generated {sorted(services - set(gen))[:5]}, hand {sorted(services - set(hand))[:5]}")
        print(f"  {len(shape.members)} members: offline (nothing fetched for drvPaths): {offline_check(harness, inputs, gen_dir)}")
        gens: list[float] = []
        hands: list[float] = []
        for n in range(rounds):
            order = [(gen_dir, gens), (hand_dir, hands)] if n % 2 == 0 else [(hand_dir, hands), (gen_dir, gens)]
            for flake, times in order:
                times.append(harness.evaluate(flake, inputs)[1])
        return EvalRow(len(shape.members), len(gen), len(hand), statistics.median(gens), statistics.median(hands))
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- main


def run_eval_part(shapes: dict[int, Shape], sizes: list[int], rounds: int) -> None:
    why = crane_eval_missing()
    if why is None:
        harness = load_harness()
        try:
            inputs = harness.setup()
        except harness.HarnessError as exc:
            why = str(exc).splitlines()[0]
    if why is not None:
        print(f"eval: skipped: {why}")
        return
    print(f"eval of every package's drvPath ({harness.provenance(inputs)}), {rounds} round(s), alternating, medians:")
    evals = []
    for n in sizes:
        if not (shapes[n].root / "flake.nix").exists():
            wall([*nixcrate_argv(), "init", str(shapes[n].root), "--force"])
        try:
            evals.append(time_eval(shapes[n], rounds, harness, inputs))
        except harness.HarnessError as exc:
            raise SystemExit(f"eval at {n} members failed: {str(exc).strip().splitlines()[-1]}") from None
    print(f"{'members':>8} {'pkgs gen':>8} {'pkgs hand':>9} {'generated s':>12} {'hand-written s':>15} {'ratio':>7}")
    for e in evals:
        print(f"{e.members:>8} {e.packages_generated:>8} {e.packages_hand:>9} {e.generated:12.2f} {e.hand:15.2f} {e.ratio:6.2f}x")
    for e in evals:
        verdict = "met" if e.ratio <= 1.0 else "NOT met"
        print(f"ratio eval generated/hand-written at {e.members} members: {e.ratio:.2f}x (goal <= 1.0: {verdict})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI smoke: fewer rounds, smaller trees")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per size (default 5, quick 3)")
    parser.add_argument("--sizes", default=None, help="member counts (default 50,500,2000; quick 50,200)")
    parser.add_argument("--eval-sizes", default=None, help="member counts for the eval part (default 50,500; quick 50; 'none' skips)")
    parser.add_argument("--eval-rounds", type=int, default=None, help="timed eval rounds (default 3, quick 1)")
    parser.add_argument("--budget", type=float, default=20.0, help="an init slower than this many seconds is timed once")
    parser.add_argument("--keep", type=Path, default=None, help="generate the trees here and keep them")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress shows when piped, too
    compile_bytecode()
    rounds = args.rounds or (3 if args.quick else 5)
    eval_rounds = args.eval_rounds or (1 if args.quick else 3)
    sizes = [int(s) for s in (args.sizes or ("50,200" if args.quick else "50,500,2000")).split(",")]
    eval_spec = args.eval_sizes or ("50" if args.quick else "50,500")
    eval_sizes = [] if eval_spec == "none" else [int(s) for s in eval_spec.split(",")]

    base = args.keep or Path(tempfile.mkdtemp(prefix="init-scale-"))
    try:
        print(f"nixcrate: {' '.join(nixcrate_argv())}; {rounds} rounds, alternating, medians; trees under {base}")
        if not shutil.which("cargo"):
            print("cargo metadata: skipped (cargo is not installed); init times only")
        shapes = {n: generate(base / f"ws-{n}", n, n * LOCK_PER_MEMBER) for n in sorted(set(sizes) | set(eval_sizes))}
        print_init_table([time_init(shapes[n], rounds, args.budget) for n in sorted(sizes)])
        if eval_sizes:
            print()
            run_eval_part(shapes, eval_sizes, eval_rounds)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
