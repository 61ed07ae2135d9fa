"""Talking to Nix for `nixcrate build`: version check, flake outputs, the build plan, the build.

The plan is made before building, with three quick store queries and no build:
`nix eval` (output name -> .drv), `nix show-derivation -r` (the .drv closure) and
`nix-store --check-validity` (which outputs are already in the store). The build itself
is one `nix build --log-format internal-json` whose stderr lines go to a callback.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nixcrate import runner
from nixcrate.errors import CommandFailed, NixTooOld, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

MIN_VERSION = (2, 8)
# Output names holding a deps-only closure (crane's cargoArtifacts): built as inputs of the
# services, not on their own.
CLOSURE_SUFFIX = "CargoArtifacts"
FLAKES_FIX = "add 'experimental-features = nix-command flakes' to ~/.config/nix/nix.conf (or to NIX_CONFIG)"


@dataclass(frozen=True, slots=True)
class Derivation:
    drv_path: str
    name: str
    outputs: tuple[tuple[str, str], ...]  # (output name, store path), by name; no path if floating CA
    inputs: tuple[str, ...]  # input .drv paths, sorted
    fixed_output: bool  # a source fetch: its output hash is known in advance

    @property
    def out_paths(self) -> tuple[str, ...]:
        return tuple(path for _, path in self.outputs)

    @property
    def main_output(self) -> str | None:
        """The `out` output, else the first one."""
        paths = dict(self.outputs)
        return paths.get("out") or next(iter(paths.values()), None)


@dataclass(frozen=True, slots=True)
class BuildPlan:
    flake: str
    system: str
    outputs: tuple[tuple[str, str], ...]  # (output name, .drv path), sorted by name
    derivations: Mapping[str, Derivation]  # every .drv in the closure, by path
    valid: frozenset[str]  # .drv paths whose outputs were all in the store before the build

    @property
    def roots(self) -> tuple[str, ...]:
        return tuple(sorted({drv for _, drv in self.outputs}))

    def needed(self) -> tuple[str, ...]:
        """The .drvs nix has to realise: walk down from the roots, stopping at valid ones."""
        seen: set[str] = set()
        stack = list(self.roots)
        while stack:
            drv = stack.pop()
            if drv in seen or drv in self.valid:
                continue
            seen.add(drv)
            known = self.derivations.get(drv)
            if known is not None:
                stack.extend(known.inputs)
        return tuple(sorted(seen))

    def max_parallel(self) -> int:
        """How many needed builds can run at once: the widest level of the needed graph."""
        needed = set(self.needed())
        depth: dict[str, int] = {}

        def level(drv: str) -> int:
            if drv not in depth:
                depth[drv] = 0  # guards cycles, which a valid store cannot have
                inputs = [i for i in self.derivations[drv].inputs if i in needed]
                depth[drv] = 1 + max((level(i) for i in inputs), default=0)
            return depth[drv]

        widths: dict[int, int] = {}
        for drv in needed:
            if drv in self.derivations:
                d = level(drv)
                widths[d] = widths.get(d, 0) + 1
        return max(widths.values(), default=0)


@dataclass(frozen=True, slots=True)
class PathInfo:
    nar_size: int
    registration_time: int  # unix seconds, when the path became valid


@dataclass(frozen=True, slots=True)
class BuildRun:
    returncode: int
    stdout: str
    interrupted: bool
    started: float  # time.time() of spawning nix
    finished: float  # time.time() nix was seen to exit


def parse_version(text: str) -> tuple[int, ...]:
    """`nix (Nix) 2.8.0` -> (2, 8, 0)."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        raise NixTooOld(f"nix: cannot read the version from {text.strip()!r}: install Nix {'.'.join(map(str, MIN_VERSION))} or newer")
    return tuple(int(g) for g in match.groups() if g is not None)


def check_version() -> tuple[int, ...]:
    version = parse_version(runner.run(["nix", "--version"]).stdout)
    _require(version)
    return version


def _require(version: tuple[int, ...]) -> None:
    if version[:2] < MIN_VERSION:
        have = ".".join(map(str, version))
        need = ".".join(map(str, MIN_VERSION))
        raise NixTooOld(f"nix {have} is older than {need}: upgrade Nix (https://nixos.org/download)")


def _nix_json(argv: Sequence[str]) -> object:
    """Run a nix query printing JSON; explain a disabled experimental feature in one line."""
    try:
        return json.loads(runner.run(argv).stdout)
    except CommandFailed as exc:
        feature = re.search(r"experimental Nix feature '([\w-]+)' is disabled", exc.stderr_tail)
        if feature:
            raise NixTooOld(f"nix: the experimental feature '{feature.group(1)}' is disabled: {FLAKES_FIX}") from None
        raise


def current_system() -> str:
    system = _nix_json(["nix", "eval", "--json", "--impure", "--expr", "builtins.currentSystem"])
    assert isinstance(system, str)
    return system


def version_and_system() -> tuple[tuple[int, ...], str]:
    """Nix's version and system in one `nix eval` (each nix start costs ~30 ms)."""
    try:
        found = _nix_json(["nix", "eval", "--json", "--impure", "--expr", "[ builtins.nixVersion builtins.currentSystem ]"])
    except (CommandFailed, ValueError):
        check_version()  # a Nix too old for `nix eval --expr` is named by its version
        raise
    assert isinstance(found, list)
    _require(parse_version(str(found[0])))
    return parse_version(str(found[0])), str(found[1])


def flake_outputs(flake: str, system: str, wanted: Sequence[str] = ()) -> dict[str, str | None]:
    """Output name -> .drv path of `packages.<system>`; with `wanted`, only those outputs are
    evaluated (the others map to None), as evaluating a crane package is not free."""
    attr = f"{flake}#packages.{system}"
    # Outputs that are deps closures are only evaluated when asked for.
    pick = (
        f"builtins.intersectAttrs (builtins.fromJSON {json.dumps(json.dumps(dict.fromkeys(wanted)))})"
        if wanted
        else f'lib: builtins.removeAttrs lib (builtins.filter (n: builtins.match ".*{CLOSURE_SUFFIX}" n != null) (builtins.attrNames lib))'
    )
    apply = f"ps: {{ names = builtins.attrNames ps; drvs = builtins.mapAttrs (n: p: p.drvPath) (({pick}) ps); }}"
    found = _nix_json(["nix", "eval", "--json", attr, "--apply", apply])
    assert isinstance(found, dict)
    drvs = found["drvs"]
    return {str(n): drvs.get(n) for n in found["names"]}


def select_outputs(available: Iterable[str], requested: Sequence[str]) -> tuple[str, ...]:
    """The outputs to build: the requested ones, or every output but the deps closures."""
    names = sorted(available)
    if not requested:
        chosen = [n for n in names if not n.endswith(CLOSURE_SUFFIX)]
        if not chosen:
            raise UsageError(f"the flake has no outputs to build: it offers {', '.join(names) or 'none'}")
        return tuple(chosen)
    for name in requested:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else f"outputs: {', '.join(names)}"
            raise UsageError(f"'{name}' is not an output of the flake: {hint}")
    return tuple(sorted(set(requested)))


def parse_derivations(shown: Mapping[str, object]) -> dict[str, Derivation]:
    """`nix show-derivation -r` JSON -> Derivation by .drv path."""
    result = {}
    for drv_path, raw in shown.items():
        assert isinstance(raw, dict)
        outputs = raw.get("outputs", {})
        env = raw.get("env", {})
        name = env.get("name") or re.sub(r"^[^-]*-|\.drv$", "", drv_path.rsplit("/", 1)[-1])
        result[drv_path] = Derivation(
            drv_path=drv_path,
            name=name,
            outputs=tuple(sorted((k, o["path"]) for k, o in outputs.items() if "path" in o)),
            inputs=tuple(sorted(raw.get("inputDrvs", {}))),
            fixed_output=any("hash" in o for o in outputs.values()),
        )
    return result


def show_derivations(drv_paths: Sequence[str]) -> dict[str, Derivation]:
    shown = _nix_json(["nix", "show-derivation", "-r", *drv_paths])
    assert isinstance(shown, dict)
    return parse_derivations(shown)


def invalid_paths(paths: Sequence[str]) -> frozenset[str]:
    """The store paths among `paths` that are not valid (not in the store)."""
    if not paths:
        return frozenset()
    proc = runner.run(["nix-store", "--check-validity", "--print-invalid", *paths])
    return frozenset(proc.stdout.split())


def path_info(paths: Sequence[str], *, all_valid: bool = False) -> dict[str, PathInfo]:
    """Size and registration time of the valid store paths among `paths`."""
    if not all_valid:
        # path-info would query the substituters for an invalid path: leave those out first.
        invalid = invalid_paths(paths)
        paths = [p for p in paths if p not in invalid]
    if not paths:
        return {}
    proc = runner.run(["nix", "path-info", "--json", *paths], check=False)
    try:
        entries = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        return {}
    return {
        e["path"]: PathInfo(int(e.get("narSize", 0)), int(e.get("registrationTime", 0)))
        for e in entries
        if e.get("valid", True) and "narSize" in e
    }


def plan_build(flake: str, requested: Sequence[str]) -> BuildPlan:
    _, system = version_and_system()
    available = flake_outputs(flake, system, requested)
    chosen = select_outputs(available, requested)
    outputs = tuple((name, str(available[name])) for name in chosen)
    derivations = show_derivations(sorted({drv for _, drv in outputs}))
    all_outputs = sorted({p for d in derivations.values() for p in d.out_paths})
    invalid = invalid_paths(all_outputs)
    valid = frozenset(
        d.drv_path for d in derivations.values() if d.outputs and not any(p in invalid for p in d.out_paths)
    )
    return BuildPlan(flake=flake, system=system, outputs=outputs, derivations=derivations, valid=valid)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parallelism(cores: int, buildable: int) -> tuple[int, int]:
    """(max-jobs, cores per job) so that jobs x threads ~ cores, without oversubscribing.

    Jobs: as many as can build at once, at most one per core; each job gets an equal
    share of the cores, at least one.
    """
    cores = max(1, cores)
    jobs = max(1, min(buildable, cores))
    return jobs, max(1, cores // jobs)


def installable(flake: str, output: str) -> str:
    # An output name with a dot would otherwise read as a nested attribute.
    return f"{flake}#{json.dumps(output) if '.' in output else output}"


def build_argv(
    plan: BuildPlan,
    *,
    max_jobs: int,
    cores: int,
    low_priority: bool,
    extra: Sequence[str] = (),
) -> list[str]:
    argv = ["nix", "build", "--log-format", "internal-json", "-v", "--no-link", "--json"]
    argv += ["--max-jobs", str(max_jobs), "--cores", str(cores)]
    argv += [installable(plan.flake, name) for name, _ in plan.outputs]
    argv += list(extra)
    if low_priority:
        # Lowest CPU priority and idle I/O class: an interactive machine stays usable.
        argv = ["nice", "-n", "19", "ionice", "-c", "3", *argv]
    return argv


def run_build(argv: Sequence[str], on_line: Callable[[str], None]) -> BuildRun:
    """Run `nix build`, passing each stderr line to on_line. Ctrl-C is forwarded to nix as
    SIGINT (to its process group) and ends the run with interrupted=True."""
    started = time.time()
    proc = runner.popen(argv)
    assert proc.stderr is not None
    assert proc.stdout is not None
    interrupted = False
    try:
        for line in proc.stderr:
            on_line(line)
    except KeyboardInterrupt:
        interrupted = True
        runner.signal_group(proc, signal.SIGINT)
        try:
            for line in proc.stderr:  # nix's last words: stops and "interrupted by the user"
                on_line(line)
        except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
            runner.signal_group(proc, signal.SIGKILL)
    stdout = proc.stdout.read()
    returncode = proc.wait()
    return BuildRun(returncode, stdout, interrupted, started, time.time())
