"""Talking to Nix for `nixcrate build`: version check, flake outputs, the build plan, the build.

The plan takes three quick store queries and no build: `nix eval` (output name -> .drv),
`nix show-derivation -r` (the .drv closure) and `nix-store --check-validity` (which
outputs are in the store). The build itself is one `nix build --log-format internal-json`
whose stderr lines go to a callback.

When the command line of `nix build` does not depend on the plan (outputs and --max-jobs
given), nix starts first and `BackgroundPlan` runs the queries during the build: they
cost no wall time. Their validity answer may then come after nix built or fetched some
of the closure, so it is only a claim: the report trusts nix's own build and substitute
events first (see `BuildTracker.was_present`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nixcrate import runner
from nixcrate.errors import CommandFailed, NixcrateError, NixTooOld, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from subprocess import Popen

MIN_VERSION = (2, 8)
# Output names holding a deps-only closure (crane's cargoArtifacts): built as inputs of the
# services, not on their own.
CLOSURE_SUFFIX = "CargoArtifacts"
WORK = (105, 108)  # build_report.ActivityType BUILD and SUBSTITUTE, without importing the report
FLAKES_FIX = "add 'experimental-features = nix-command flakes' to ~/.config/nix/nix.conf (or to NIX_CONFIG)"


# Flags of `nix build` that change what the flake evaluates to, and flags that change nix's
# settings (the store, the system...), with the number of arguments each takes. The
# plan's queries get them too: without them they would plan other derivations than the
# ones nix builds (`-- --impure`, `-- --override-input nixpkgs ...`).
_FLAKE_FLAGS = {
    "--impure": 0,
    "--override-input": 2,
    "--update-input": 1,
    "--inputs-from": 1,
    "--no-update-lock-file": 0,
    "--no-write-lock-file": 0,
    "--recreate-lock-file": 0,
    "--arg": 2,
    "--argstr": 2,
    "--include": 1,
    "-I": 1,
}
_SETTING_FLAGS = {"--option": 2, "--store": 1, "--eval-store": 1, "--system": 1}


@dataclass(frozen=True, slots=True)
class QueryArgs:
    """What of `nix build`'s extra arguments the plan's queries take too."""

    evaluation: tuple[str, ...] = ()  # for `nix eval`: flake and settings flags
    settings: tuple[str, ...] = ()  # for store queries: settings flags only

    @classmethod
    def of(cls, extra: Sequence[str]) -> QueryArgs:
        evaluation: list[str] = []
        settings: list[str] = []
        n = 0
        while n < len(extra):
            flag = extra[n]
            arity = _FLAKE_FLAGS.get(flag, _SETTING_FLAGS.get(flag))
            if arity is None:  # a build-only flag (--rebuild, --keep-going...) or its argument
                n += 1
                continue
            taken = list(extra[n : n + 1 + arity])
            evaluation += taken
            if flag in _SETTING_FLAGS:
                settings += taken
            n += 1 + arity
        return cls(tuple(evaluation), tuple(settings))


@dataclass(frozen=True, slots=True)
class Derivation:
    drv_path: str
    name: str
    outputs: tuple[tuple[str, str], ...]  # (output name, store path), by name; no path if floating CA
    inputs: tuple[str, ...]  # input .drv paths, sorted
    fixed_output: bool  # a source fetch: its output hash is known in advance
    compiles: bool = False  # a crane cargo build (closure, package, check): see `compiles_crates`
    deps_only: bool = False  # a crane deps closure (buildDepsOnly's CRANE_BUILD_DEPS_ONLY)

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
    settings: tuple[str, ...] = ()  # nix settings flags the build was given (QueryArgs.settings)

    @property
    def roots(self) -> tuple[str, ...]:
        return tuple(sorted({drv for _, drv in self.outputs}))

    def needed(self) -> tuple[str, ...]:
        """The .drvs nix has to realise: walk down from the roots, stopping at valid ones."""
        return self._walk()[0]

    def present_outputs(self) -> tuple[str, ...]:
        """The store paths of the valid .drvs that walk meets: what the report shows as present."""
        return self._walk()[1]

    def _walk(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        seen: set[str] = set()
        present: set[str] = set()
        stack = list(self.roots)
        while stack:
            drv = stack.pop()
            if drv in seen:
                continue
            seen.add(drv)
            known = self.derivations.get(drv)
            if drv in self.valid:
                present.update(known.out_paths if known else ())
            elif known is not None:
                stack.extend(known.inputs)
        return tuple(sorted(seen - self.valid)), tuple(sorted(present))

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

    def compiling(self) -> tuple[str, ...]:
        """The needed .drvs that run cargo (crane closures, packages, checks)."""
        return tuple(d for d in self.needed() if d in self.derivations and self.derivations[d].compiles)

    def compiling_at_once(self) -> int:
        """How many compiling builds start together: those with no needed compiling build
        below them (the deps closures, or the packages when their closures are present).

        The rest of the graph (Cargo.toml copies, dummy sources, crane's hooks, source
        filters) takes a second or less; counting it, as `max_parallel` does, would give a
        deps closure one core. The packages waiting on a closure get the same split: each
        compiles its own crates only, and they start once it is done."""
        compiling = set(self.compiling())
        if not compiling:
            return self.max_parallel()
        below: dict[str, bool] = {}

        def waits(drv: str) -> bool:
            """Whether a needed compiling build is among drv's inputs, however deep."""
            if drv not in below:
                below[drv] = False  # guards cycles
                known = self.derivations.get(drv)
                below[drv] = known is not None and any(i in compiling or (i not in self.valid and waits(i)) for i in known.inputs)
            return below[drv]

        return sum(1 for drv in compiling if not waits(drv))


@dataclass(frozen=True, slots=True)
class PathInfo:
    nar_size: int
    # When the path became valid, to the second: nix's registrationTime, or the inode change
    # time of a path read from disk (nix resets an output's metadata just before that).
    completed: float


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


def version_and_system(args: QueryArgs | None = None) -> tuple[tuple[int, ...], str]:
    """Nix's version and system in one `nix eval` (each nix start costs ~30 ms)."""
    extra = args.evaluation if args else ()
    try:
        found = _nix_json(["nix", "eval", "--json", "--impure", *extra, "--expr", "[ builtins.nixVersion builtins.currentSystem ]"])
    except (CommandFailed, ValueError):
        check_version()  # a Nix too old for `nix eval --expr` is named by its version
        raise
    assert isinstance(found, list)
    _require(parse_version(str(found[0])))
    return parse_version(str(found[0])), str(found[1])


def flake_outputs(flake: str, system: str, wanted: Sequence[str] = (), args: QueryArgs | None = None) -> dict[str, str | None]:
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
    # Without the evaluation cache: this query can run while `nix build` evaluates the same
    # flake (BackgroundPlan), and Nix before 2.11 can then read the other process's half-written
    # entries ("attribute 'packages.x86_64-linux.packages' is unexpectedly missing", seen here
    # on Nix 2.8 and in https://github.com/garnix-io/issues/issues/36). `--apply` results are
    # not cached anyway.
    found = _nix_json(
        ["nix", "eval", "--json", "--option", "eval-cache", "false", *(args.evaluation if args else ()), attr, "--apply", apply]
    )
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
            import difflib  # noqa: PLC0415 - only for this message; ~5 ms at start-up

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
            compiles=compiles_crates(env),
            deps_only=compiles_crates(env) and "CRANE_BUILD_DEPS_ONLY" in env,
        )
    return result


def compiles_crates(env: Mapping[str, object]) -> bool:
    """Whether a derivation's environment is a crane cargo build that compiles crates.

    crane's mkCargoDerivation sets `cargoVendorDir` on every cargo derivation; its
    buildDepsOnly sets `CRANE_BUILD_DEPS_ONLY`, and the builds on a closure have
    `cargoArtifacts`. cargoFmt (no vendor directory: it compiles nothing), writeText,
    runCommand, source filters and setup hooks have neither."""
    return "cargoVendorDir" in env and ("CRANE_BUILD_DEPS_ONLY" in env or "cargoArtifacts" in env)


def show_derivations(drv_paths: Sequence[str], settings: Sequence[str] = ()) -> dict[str, Derivation]:
    return parse_derivations(show_derivations_json(drv_paths, settings))


def show_derivations_json(drv_paths: Sequence[str], settings: Sequence[str] = ()) -> dict[str, dict[str, object]]:
    """`nix show-derivation -r`: every .drv of the closures of drv_paths, as nix prints it."""
    shown = _nix_json(["nix", "show-derivation", *settings, "-r", *drv_paths])
    assert isinstance(shown, dict)
    return shown


def invalid_paths(paths: Sequence[str], settings: Sequence[str] = ()) -> frozenset[str]:
    """The store paths among `paths` that are not valid (not in the store)."""
    if not paths:
        return frozenset()
    proc = runner.run(["nix-store", "--check-validity", "--print-invalid", *settings, *paths])
    return frozenset(proc.stdout.split())


def path_info(paths: Sequence[str], *, all_valid: bool = False, settings: Sequence[str] = ()) -> dict[str, PathInfo]:
    """Size and registration time of the valid store paths among `paths`."""
    if not all_valid:
        # path-info would query the substituters for an invalid path: leave those out first.
        invalid = invalid_paths(paths, settings)
        paths = [p for p in paths if p not in invalid]
    if not paths:
        return {}
    proc = runner.run(["nix", "path-info", "--json", *settings, *paths], check=False)
    try:
        entries = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        return {}
    return {
        e["path"]: PathInfo(int(e.get("narSize", 0)), float(e.get("registrationTime", 0))) for e in entries if e.get("valid", True) and "narSize" in e
    }


# Past this many files in one path, `nix path-info` sizes it faster than a walk does.
NAR_WALK_MAX_ENTRIES = 2000


def path_info_after_build(
    paths: Sequence[str], *, known: Mapping[str, PathInfo], succeeded: bool, settings: Sequence[str] = ()
) -> dict[str, PathInfo]:
    """`path_info(paths)` right after `nix build` exited, without starting nix when it can.

    `known`: what a query made during the build found (`PathInfoQuery`: the paths that were
    valid before it). After a build that succeeded, every other path here was just built or
    fetched and nix removed any stale copy first, so the paths on disk are the valid ones:
    small ones are sized from their files (`nar.nar_size`). Big ones, and after a failed
    build all of them, go to `nix path-info`.
    """
    from nixcrate import nar  # noqa: PLC0415 - only after the build

    infos = {p: known[p] for p in paths if p in known}
    rest = [p for p in paths if p not in known]
    if not succeeded:
        return infos | path_info(rest, settings=settings)
    slow = []
    for path in rest:
        try:
            size = nar.nar_size(path, max_entries=NAR_WALK_MAX_ENTRIES)
            infos[path] = PathInfo(size, os.lstat(path).st_ctime)
        except FileNotFoundError:  # an output no one asked for (a substituted path's other outputs)
            continue
        except (nar.TooManyFilesError, OSError, ValueError):
            slow.append(path)
    return infos | path_info(slow, all_valid=True, settings=settings)


class PathInfoQuery:
    """`path_info(paths)` in a thread, started now: the sizes of the paths already valid,
    asked while nix builds. `result()` is {} when the query failed (the caller asks again)."""

    def __init__(self, paths: Sequence[str], settings: Sequence[str] = ()) -> None:
        self._infos: dict[str, PathInfo] = {}
        self._thread = threading.Thread(target=self._run, args=(list(paths), settings), name="nixcrate-path-info", daemon=True)
        with runner.sigint_for_main_thread():
            self._thread.start()

    def _run(self, paths: list[str], settings: Sequence[str]) -> None:
        with contextlib.suppress(NixcrateError):  # Nix gone, or Ctrl-C reached it: the report asks again
            self._infos = path_info(paths, all_valid=True, settings=settings)

    def result(self) -> dict[str, PathInfo]:
        self._thread.join()
        return self._infos


def plan_build(flake: str, requested: Sequence[str], extra: Sequence[str] = ()) -> BuildPlan:
    """`extra`: the arguments `nix build` gets after `--` (the plan uses those it needs)."""
    args = QueryArgs.of(extra)
    _, system = version_and_system(args)
    available = flake_outputs(flake, system, requested, args)
    chosen = select_outputs(available, requested)
    outputs = tuple((name, str(available[name])) for name in chosen)
    derivations = show_derivations(sorted({drv for _, drv in outputs}), args.settings)
    all_outputs = sorted({p for d in derivations.values() for p in d.out_paths})
    invalid = invalid_paths(all_outputs, args.settings)
    valid = frozenset(d.drv_path for d in derivations.values() if d.outputs and not any(p in invalid for p in d.out_paths))
    return BuildPlan(flake=flake, system=system, outputs=outputs, derivations=derivations, valid=valid, settings=args.settings)


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


def build_argv(flake: str, outputs: Iterable[str], *, max_jobs: int, cores: int, low_priority: bool, extra: Sequence[str] = ()) -> list[str]:
    argv = ["nix", "build", "--log-format", "internal-json", "-v", "--no-link", "--json"]
    argv += ["--max-jobs", str(max_jobs), "--cores", str(cores)]
    argv += [installable(flake, name) for name in outputs]
    argv += list(extra)
    if low_priority:
        # Lowest CPU priority and idle I/O class: an interactive machine stays usable.
        argv = ["nice", "-n", "19", "ionice", "-c", "3", *argv]
    return argv


def starts_work(line: str) -> bool:
    """Whether an internal-json line starts a build or a substitution: nix is done evaluating
    and preparing (the .drv files are written), and its first builder or download starts."""
    if not line.startswith('@nix {"action":"start"'):
        return False
    try:
        return json.loads(line[5:]).get("type") in WORK
    except ValueError:
        return False


class RunningBuild:
    """A `nix build` started now (echoed by `echo()`); `follow` reads its log to the end."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.started = time.time()
        self.proc: Popen[str] = runner.popen(argv, echo_now=False)

    def echo(self) -> None:
        runner.echo(self.argv)

    def stop(self) -> None:
        """Ask nix to stop, as Ctrl-C would (from any thread)."""
        # Until `follow` reaps nix, its process group id cannot name another group.
        if self.proc.returncode is None:
            runner.signal_group(self.proc, signal.SIGINT)

    def follow(self, on_line: Callable[[str], None], on_interrupt: Callable[[], None] | None = None) -> BuildRun:
        """Pass each stderr line to on_line until nix exits. Ctrl-C is forwarded to nix as
        SIGINT (to its process group) and ends the run with interrupted=True; on_interrupt
        runs first, before nix's last lines (its stops are not finished builds)."""
        proc = self.proc
        assert proc.stderr is not None
        assert proc.stdout is not None
        interrupted = False
        try:
            for line in proc.stderr:
                on_line(line)
        except KeyboardInterrupt:
            interrupted = True
            if on_interrupt is not None:
                on_interrupt()
            self.stop()
            try:
                for line in proc.stderr:  # nix's last words: stops and "interrupted by the user"
                    on_line(line)
            except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
                runner.signal_group(proc, signal.SIGKILL)
        stdout = proc.stdout.read()
        returncode = proc.wait()
        return BuildRun(returncode, stdout, interrupted, self.started, time.time())


def run_build(argv: Sequence[str], on_line: Callable[[str], None]) -> BuildRun:
    """Run `nix build` to the end, passing each stderr line to on_line."""
    return RunningBuild(argv).follow(on_line)


class BackgroundPlan:
    """`plan_build` in a thread, from `start()` (or `result()`) on, while `nix build` runs.

    on_error runs in the thread when planning fails, to stop the build; `result()` re-raises
    the error in the caller's thread. `then(f)` calls f(plan) once the plan is made.
    """

    def __init__(self, flake: str, requested: Sequence[str], extra: Sequence[str] = (), *, on_error: Callable[[], None]) -> None:
        self._plan: BuildPlan | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._waiting: Callable[[BuildPlan], None] | None = None
        self._thread = threading.Thread(target=self._run, args=(flake, requested, extra, on_error), name="nixcrate-plan", daemon=True)

    def start(self) -> None:
        """Start planning (once)."""
        with self._lock:
            if self._thread.ident is None:
                with runner.sigint_for_main_thread():
                    self._thread.start()

    def _run(self, flake: str, requested: Sequence[str], extra: Sequence[str], on_error: Callable[[], None]) -> None:
        try:
            plan = plan_build(flake, requested, extra)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread by result()
            self._error = exc
            on_error()
            return
        with self._lock:
            self._plan, waiting = plan, self._waiting
        if waiting is not None:
            waiting(plan)

    def then(self, on_plan: Callable[[BuildPlan], None]) -> None:
        with self._lock:
            plan = self._plan
            if plan is None:
                self._waiting = on_plan
        if plan is not None:
            on_plan(plan)

    def result(self) -> BuildPlan:
        self.start()
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._plan is not None
        return self._plan
