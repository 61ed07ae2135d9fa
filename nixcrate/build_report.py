"""`nix build --log-format internal-json` -> BuildReport -> table, JSON, Markdown.

Nix writes one event a line on stderr, `@nix {json}`: `start` and `stop` of activities
(typed by ActivityType), `result`s on them (typed by ResultType) and `msg`s. The numbers
are Nix's own, src/libutil/logging.hh (unchanged from 2.4 to 2.8 and later).

`BuildTracker` folds the events as they arrive (for the live display), then `report()`
walks the plan's .drv graph from the requested outputs, the way nix does, so every
derivation nix needed ends in exactly one state. Below a present or fetched derivation
nothing is needed, so nothing is listed. The plan may arrive after the first events
(`nix.BackgroundPlan`): folding the events does not need it.

Derivations fall in three groups: `compile` (crane's cargo builds: the deps closures,
packages, checks; told by their environment, `nix.compiles_crates`), `source` (fixed-output
fetches, crane's vendoring) and `other` (setup hooks, tool wrappers, Cargo.toml copies,
dummy sources, zips). The reuse figure counts the compiling ones: a run that rebuilt a
closure but found its hooks present did not reuse much.

rich is imported only to draw (~40 ms of start-up that `nix build` should not wait for).
The display while nix runs is `build_progress`.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from rich.console import Console
    from rich.table import Table

    from nixcrate.closure_reuse import ClosureNote
    from nixcrate.nix import BuildPlan, BuildRun, PathInfo

LOG_TAIL = 25
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_DRV_IN_MESSAGE = re.compile(r"'(/[^']+\.drv)'")
# crane's vendoring derivations and fixed-output source fetches: reported apart from compilation.
_SOURCE_NAMES = re.compile(r"(^|-)vendor-cargo-deps$|^cargo-package-|\.crate$|^source$|^vendor-registry$|^cargo-git")


class ActivityType(IntEnum):
    UNKNOWN = 0
    COPY_PATH = 100
    FILE_TRANSFER = 101
    REALISE = 102
    COPY_PATHS = 103
    BUILDS = 104
    BUILD = 105
    OPTIMISE_STORE = 106
    VERIFY_PATHS = 107
    SUBSTITUTE = 108
    QUERY_PATH_INFO = 109
    POST_BUILD_HOOK = 110
    BUILD_WAITING = 111


class ResultType(IntEnum):
    FILE_LINKED = 100
    BUILD_LOG_LINE = 101
    UNTRUSTED_PATH = 102
    CORRUPTED_PATH = 103
    SET_PHASE = 104
    PROGRESS = 105
    SET_EXPECTED = 106
    POST_BUILD_LOG_LINE = 107


Field = str | int


@dataclass(frozen=True, slots=True)
class Start:
    id: int
    type: int  # an ActivityType, or a newer one we do not know
    text: str
    fields: tuple[Field, ...]


@dataclass(frozen=True, slots=True)
class Stop:
    id: int


@dataclass(frozen=True, slots=True)
class Result:
    id: int
    type: int  # a ResultType
    fields: tuple[Field, ...]


@dataclass(frozen=True, slots=True)
class Message:
    level: int  # 0 error, 1 warning, 2 notice, 3 info, 4 talkative...
    text: str  # without ANSI colours


Event = Start | Stop | Result | Message


def parse_line(line: str) -> Event | None:  # noqa: PLR0911 - one return per action
    """One stderr line of `nix --log-format internal-json` -> an Event (None for a blank line).

    A line without the `@nix ` prefix (nix writes a few before its logger is set up) is an
    error-level Message.
    """
    line = line.rstrip("\n")
    if not line.startswith("@nix "):
        return Message(0, _ANSI.sub("", line)) if line.strip() else None
    try:
        raw = json.loads(line[5:])
    except json.JSONDecodeError:
        return Message(0, _ANSI.sub("", line))
    action = raw.get("action")
    if action == "start":
        return Start(raw["id"], raw.get("type", 0), raw.get("text", ""), tuple(raw.get("fields", ())))
    if action == "stop":
        return Stop(raw["id"])
    if action == "result":
        return Result(raw["id"], raw.get("type", 0), tuple(raw.get("fields", ())))
    if action == "msg":
        return Message(raw.get("level", 0), _ANSI.sub("", raw.get("msg", "")))
    return None


class State(StrEnum):
    BUILT = "built"
    FETCHED = "fetched"
    PRESENT = "present"
    FAILED = "failed"
    NOT_BUILT = "not built"  # a dependency failed, or Ctrl-C came first
    INTERRUPTED = "interrupted"  # building when Ctrl-C came: nix stopped it


REUSED = (State.FETCHED, State.PRESENT)
LOCAL = "local"  # where a derivation nix built on this machine was built


class Group(StrEnum):
    COMPILE = "compile"  # crane's cargo builds: closures, packages, checks
    OTHER = "other"  # setup hooks, tool wrappers, Cargo.toml copies, dummy sources, zips
    SOURCE = "source"  # fixed-output fetches and crane's vendoring


def group_of(name: str, *, fixed_output: bool, compiles: bool = False) -> Group:
    if compiles:
        return Group.COMPILE
    return Group.SOURCE if fixed_output or _SOURCE_NAMES.search(name) else Group.OTHER


@dataclass(frozen=True, slots=True)
class Item:
    name: str
    drv: str  # the .drv path, or the store path of a fetched path no .drv of the plan names
    state: State
    group: Group
    seconds: float | None  # build or fetch time
    size: int | None  # NAR size of the outputs, bytes
    cache: str | None  # the binary cache a fetched item came from
    closure: str | None = None  # a deps closure: its output name (deployCargoArtifacts...)
    machine: str | None = None  # where nix built it: LOCAL, or a remote builder's store URI
    log_tail: tuple[str, ...] = ()  # the last lines of a failed build's log

    @property
    def where(self) -> str:
        """Where it came from: the builder, the cache, or the store."""
        if self.machine is not None:
            return self.machine if self.machine == LOCAL else _machine(self.machine)
        if self.cache is not None:
            return self.cache
        return "store" if self.state is State.PRESENT else ""

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "drv": self.drv,
            "state": str(self.state),
            "group": str(self.group),
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "size": self.size,
            "cache": self.cache,
            "closure": self.closure,
            "built_on": self.machine,
        }


@dataclass(frozen=True, slots=True)
class OutputPath:
    output: str  # the flake's output name
    path: str
    bootstrap_zip: str | None  # a Lambda handler's zip inside the output


@dataclass(frozen=True, slots=True)
class Counts:
    """Of a set of items: how many in each state, and how many were reused."""

    total: int
    by_state: tuple[tuple[State, int], ...]
    built_seconds: float
    caches: tuple[tuple[str, int], ...]  # fetched items by binary cache
    machines: tuple[tuple[str, int], ...]  # built items by builder (LOCAL or a store URI)

    @classmethod
    def of(cls, items: tuple[Item, ...] | list[Item]) -> Counts:
        states = Counter(i.state for i in items)
        built = [i for i in items if i.state is State.BUILT]
        return cls(
            len(items),
            tuple((s, states[s]) for s in State if states[s]),
            sum(i.seconds or 0.0 for i in built),
            tuple(sorted(Counter(i.cache or "?" for i in items if i.state is State.FETCHED).items())),
            tuple(sorted(Counter(i.machine or LOCAL for i in built).items())),
        )

    def __getitem__(self, state: State) -> int:
        return dict(self.by_state).get(state, 0)

    @property
    def reused(self) -> int:
        return self[State.FETCHED] + self[State.PRESENT]

    @property
    def reuse(self) -> float | None:
        return self.reused / self.total if self.total else None

    def text(self) -> str:
        """`built 2 (23.4 s, 1 on ssh-ng://b), fetched 1 from https://c, present 56`."""
        built = f"built {self[State.BUILT]} ({self.built_seconds:.1f} s"
        remote = [(m, n) for m, n in self.machines if m != LOCAL]
        if remote:
            built += ", " + ", ".join(f"{n} on {_machine(m)}" for m, n in remote)
        fetched = f"fetched {self[State.FETCHED]}"
        if self.caches:
            fetched += " from " + ", ".join(c if len(self.caches) == 1 else f"{c} ({n})" for c, n in self.caches)
        parts = [built + ")", fetched, f"present {self[State.PRESENT]}"]
        parts += [f"{s} {self[s]}" for s in (State.FAILED, State.INTERRUPTED, State.NOT_BUILT) if self[s]]
        return ", ".join(parts)

    def to_json(self) -> dict[str, object]:
        return {
            "total": self.total,
            "built": self[State.BUILT],
            "built_seconds": round(self.built_seconds, 3),
            "fetched": self[State.FETCHED],
            "fetched_from": dict(self.caches),
            "present": self[State.PRESENT],
            "failed": self[State.FAILED],
            "not_built": self[State.NOT_BUILT],
            "interrupted": self[State.INTERRUPTED],
            "built_on": dict(self.machines),
            "reused": None if self.reuse is None else round(self.reuse, 4),
        }


@dataclass(frozen=True, slots=True)
class BuildReport:
    items: tuple[Item, ...]  # sorted by group, name, drv
    outputs: tuple[OutputPath, ...]
    returncode: int
    interrupted: bool
    errors: tuple[str, ...]  # nix's error messages
    roots: frozenset[str] = frozenset()  # the .drvs of the requested outputs
    closures: tuple[ClosureNote, ...] = ()  # why each deps closure met was (not) reused

    def with_closures(self, notes: tuple[ClosureNote, ...]) -> BuildReport:
        return replace(self, closures=notes)

    def count(self, state: State) -> int:
        return sum(1 for i in self.items if i.state is state)

    @property
    def compiling(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.group is Group.COMPILE)

    @property
    def built_seconds(self) -> float:
        return sum(i.seconds or 0.0 for i in self.items if i.state is State.BUILT)

    @property
    def caches(self) -> tuple[tuple[str, int], ...]:
        return Counts.of(self.items).caches

    @property
    def cache_reuse(self) -> float | None:
        """Of the cargo builds nix needed, the share fetched or present: None without any."""
        return Counts.of(self.compiling).reuse

    def closure_items(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.closure is not None)

    def summary(self) -> str:
        """`cargo builds: 1 of 3 reused (33%): built 2 (...), ...; all 59 derivations: ...`."""
        compiling, everything = Counts.of(self.compiling), Counts.of(self.items)
        if compiling.total:
            head = f"cargo builds: {compiling.reused} of {compiling.total} reused ({compiling.reuse:.0%}): {compiling.text()}"
        else:
            head = "no cargo builds needed"
        line = f"{head}; all {everything.total} derivations: {everything.text()}"
        closures = self.closure_items()
        if closures:
            line += "; closures: " + ", ".join(f"{i.closure} {'reused' if i.state in REUSED else i.state}" for i in closures)
        return line

    def notes(self) -> tuple[str, ...]:
        """A line per closure that was not reused: which one, why, what to do."""
        return tuple(m for n in self.closures if (m := n.message()) is not None)

    def to_json(self) -> dict[str, object]:
        everything = Counts.of(self.items).to_json()
        compiling = Counts.of(self.compiling).to_json()
        return {
            "derivations": [i.to_json() for i in self.items],
            "summary": {
                **everything,
                "compiling": compiling,
                # of the cargo builds: what "reused" means here (sources and hooks aside)
                "cache_reuse": compiling["reused"],
            },
            "closures": [n.to_json() for n in self.closures],
            "outputs": [{"output": o.output, "path": o.path, "bootstrap_zip": o.bootstrap_zip} for o in self.outputs],
            "exit_status": self.returncode,
            "interrupted": self.interrupted,
        }

    def json_text(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, indent=2)

    # ------------------------------------------------------------------ rows

    def _headline(self, item: Item) -> bool:
        """Shown without -v: the cargo builds, the requested outputs, what failed or stopped."""
        return item.group is Group.COMPILE or item.drv in self.roots or item.state in (State.FAILED, State.INTERRUPTED)

    def rows(self, *, verbose: bool) -> list[tuple[str, Item, int, float | None, int | None]]:
        """(derivation, item, how many, time, size) per row. Without -v the headline items;
        with -v every item, the same name in the same state and place folded into one row
        (`Cargo.toml x7`) outside the cargo builds."""
        rows: list[tuple[str, Item, int, float | None, int | None]] = []
        folded: dict[tuple[str, Group, State, str], int] = {}
        for item in self.items:
            if not verbose and not self._headline(item):
                continue
            label = item.closure or item.name  # a closure by the output users know it as
            key = (item.name, item.group, item.state, item.where)
            if verbose and item.group is not Group.COMPILE and key in folded:
                n = folded[key]
                name, first, count, seconds, size = rows[n]
                rows[n] = (name, first, count + 1, _add(seconds, item.seconds), None if size is None or item.size is None else size + item.size)
                continue
            folded[key] = len(rows)
            rows.append((label, item, 1, item.seconds, item.size))
        return rows

    def hidden(self) -> Counts:
        """What the table leaves out without -v."""
        return Counts.of([i for i in self.items if not self._headline(i)])

    def table(self, *, verbose: bool = False) -> Table:
        from rich.table import Table  # noqa: PLC0415 - see the module docstring
        from rich.text import Text  # noqa: PLC0415

        table = Table(title=None, show_edge=False, pad_edge=False)
        for column, justify in (("derivation", "left"), ("group", "left"), ("state", "left"), ("where", "left"), ("time", "right"), ("size", "right")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        previous: Group | None = None
        for label, item, count, seconds, size in self.rows(verbose=verbose):
            if previous is not None and item.group is not previous:
                table.add_section()
            previous = item.group
            name = f"{label} x{count}" if count > 1 else label
            table.add_row(name, str(item.group), Text(str(item.state), style=_STYLE[item.state]), item.where, _seconds(seconds), _size(size))
        return table

    def markdown(self) -> str:
        """A Markdown section for $GITHUB_STEP_SUMMARY: the headline table, the summary, the
        closures' notes, then every derivation under a fold."""
        header = ["| derivation | group | state | where | time | size |", "| --- | --- | --- | --- | --- | --- |"]

        def table(*, verbose: bool) -> list[str]:
            return header + [
                f"| `{label}`{f' x{count}' if count > 1 else ''} | {item.group} | {item.state} | {item.where} | {_seconds(seconds)} | {_size(size)} |"
                for label, item, count, seconds, size in self.rows(verbose=verbose)
            ]

        lines = ["### nixcrate build", "", *table(verbose=False), "", f"**{self.summary()}**", ""]
        lines += [f"- {note}" for note in self.notes()]
        if self.notes():
            lines.append("")
        lines += ["<details><summary>every derivation</summary>", "", *table(verbose=True), "", "</details>", ""]
        return "\n".join(lines) + "\n"

    def print(self, out: Console, err: Console, *, verbose: bool = False) -> None:
        """The table, failed logs (stderr), the output paths, the summary line, the notes (stderr)."""
        if self.items:
            out.print(self.table(verbose=verbose))
            hidden = self.hidden()
            if hidden.total and not verbose:
                out.print(f"and {hidden.total} other derivations (hooks, wrappers, manifests, sources): {hidden.text()}; -v lists them", markup=False, soft_wrap=True)
        self.print_failures(err)
        for o in self.outputs:
            out.print(f"{o.output}: {o.path}", markup=False, soft_wrap=True)
            if o.bootstrap_zip:
                out.print(f"{o.output}: {o.bootstrap_zip}", markup=False, soft_wrap=True)
        out.print(self.summary(), markup=False, soft_wrap=True)
        self.print_notes(err)

    def print_notes(self, err: Console) -> None:
        from rich.markup import escape  # noqa: PLC0415

        for note in self.notes():
            err.print(f"[cyan]note:[/] {escape(note)}", soft_wrap=True, highlight=False)

    def print_failures(self, err: Console) -> None:
        """Each failed derivation with the tail of its log; nix's own errors when none failed."""
        failed = [i for i in self.items if i.state is State.FAILED]
        if not failed and self.returncode != 0 and not self.interrupted:
            for message in self.errors:
                err.print(message, markup=False, highlight=False, soft_wrap=True)
        for i in failed:
            where = f" on {i.where}" if i.machine not in (None, LOCAL) else ""
            err.print(f"[bold red]failed:[/] {i.name} ({i.drv}){where}, last {len(i.log_tail)} log lines:", soft_wrap=True)
            for line in i.log_tail:
                err.print(f"  > {line}", markup=False, highlight=False, soft_wrap=True)


_STYLE = {
    State.BUILT: "yellow",
    State.FETCHED: "cyan",
    State.PRESENT: "green",
    State.FAILED: "bold red",
    State.NOT_BUILT: "dim",
    State.INTERRUPTED: "magenta",
}


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None and b is None else (a or 0) + (b or 0)


def _machine(uri: str) -> str:
    """A builder's store URI as the report shows it: without its query (ssh-key=...)."""
    return uri.split("?", 1)[0]


def _seconds(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.1f} s"


def _size(size: float | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # unreachable


def duration(seconds: float) -> str:
    """45s, 2m05s, 1h02m: elapsed times on the progress lines."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def store_name(path: str) -> str:
    """/nix/store/<hash>-name(.drv) -> name."""
    base = path.rsplit("/", 1)[-1]
    base = base.removesuffix(".drv")
    return base.split("-", 1)[1] if "-" in base else base


@dataclass(slots=True)
class _Build:
    """A build while events arrive (mutable: the tracker's accumulator, never reported)."""

    start: float
    activity: int  # the id of the activity that started it: only its stop ends the build
    machine: str = LOCAL
    end: float | None = None
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_TAIL))


@dataclass(slots=True)
class _Fetch:
    cache: str
    start: float
    end: float | None = None


class NoticeKind(StrEnum):
    BUILDING = "building"
    BUILT = "built"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    FETCHING = "fetching"
    FETCHED = "fetched"


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing that happened, for the plain (non-terminal) display."""

    kind: NoticeKind
    path: str  # the .drv built, or the store path fetched
    text: str


class BuildTracker:
    """Folds the event stream of one `nix build`; `report()` makes the BuildReport.

    The plan may be given later (`set_plan`), but before `report()`.
    """

    def __init__(self, plan: BuildPlan | None, clock: Callable[[], float] = time.time) -> None:
        self._plan: BuildPlan | None = None
        self._compiling_outputs: dict[str, str] = {}  # out path -> .drv, of compiling .drvs
        self.clock = clock
        self.started = clock()
        self.expected = 0
        self.compiling_expected = 0
        self._activities: dict[int, Start] = {}
        self.builds: dict[str, _Build] = {}
        self.fetches: dict[str, _Fetch] = {}
        self.running: list[str] = []  # .drv paths building now, in start order
        self.failed: set[str] = set()
        self.errors: list[str] = []
        self._finished_builds = 0  # done + failed, as nix's Builds activity counts them
        self.interrupted = False  # Ctrl-C came: builds nix stops from now on were cut short
        self.cut_short: set[str] = set()
        self._failed_builds = 0
        self._builds_activity: int | None = None  # nix's own Builds activity (the first)
        if plan is not None:
            self.set_plan(plan)

    def set_plan(self, plan: BuildPlan) -> None:
        self._compiling_outputs = {p: d.drv_path for d in plan.derivations.values() if d.compiles for p in d.out_paths}
        self.compiling_expected = len(plan.compiling())
        self.expected = len(plan.needed())  # before the plan: the display reads these without a lock
        self._plan = plan

    @property
    def plan(self) -> BuildPlan:
        assert self._plan is not None, "the plan comes before the report"
        return self._plan

    @property
    def has_plan(self) -> bool:
        return self._plan is not None

    def compiles(self, path: str) -> bool:
        """Whether a .drv (or the output path of one) is a cargo build; False before the plan."""
        plan = self._plan
        if plan is None:
            return False
        derivation = plan.derivations.get(path)
        return derivation.compiles if derivation is not None else path in self._compiling_outputs

    def was_present(self, drv: str) -> bool:
        """Whether drv's outputs were all in the store before this build.

        The plan says so when its validity query saw them, but that query may run while nix
        builds (`nix.BackgroundPlan`): what this nix built or fetched was not there before,
        whatever the query saw. Nix starts a build or a substitution activity for every
        path it makes valid, so together they are exact.
        """
        if drv not in self.plan.valid or drv in self.builds:
            return False
        derivation = self.plan.derivations.get(drv)
        return derivation is None or not any(p in self.fetches for p in derivation.out_paths)

    def _finished(self, drv: str) -> bool:
        build = self.builds[drv]
        return build.end is not None and drv not in self.cut_short and drv not in self.failed

    @property
    def done(self) -> int:
        builds = sum(1 for d, b in self.builds.items() if b.end is not None and d not in self.cut_short)
        return builds + sum(1 for f in self.fetches.values() if f.end is not None)

    @property
    def compiling_done(self) -> int:
        """Cargo builds built or fetched so far (a fetch of any output of one counts it)."""
        built = {d for d in self.builds if self._finished(d) and self.compiles(d)}
        fetched = {self._compiling_outputs[p] for p, f in self.fetches.items() if f.end is not None and p in self._compiling_outputs}
        return len(built | fetched)

    def fetching(self) -> list[str]:
        return [p for p, f in self.fetches.items() if f.end is None]

    def last_line(self, drv: str) -> str:
        """The last line of a running build's log (`Compiling serde v1.0.152`)."""
        build = self.builds.get(drv)
        return build.log[-1].strip() if build is not None and build.log else ""

    def feed(self, line: str, at: float | None = None) -> str | None:
        """Apply one stderr line (read at `at`, default now); the notices' text, one a line."""
        notices = self.events(line, at)
        return "\n".join(n.text for n in notices) if notices else None

    def events(self, line: str, at: float | None = None) -> tuple[Notice, ...]:
        """Apply one stderr line; what it made happen."""
        event = parse_line(line)
        return () if event is None else self.apply(event, at)

    def apply(self, event: Event, at: float | None = None) -> tuple[Notice, ...]:  # noqa: C901, PLR0911, PLR0912 - one branch per event kind
        now = self.clock() if at is None else at
        if isinstance(event, Start):
            self._activities[event.id] = event
            if event.type == ActivityType.BUILDS and self._builds_activity is None:
                self._builds_activity = event.id  # a remote builder forwards Builds of its own
            if event.type == ActivityType.BUILD and event.fields:
                drv = str(event.fields[0])
                machine = str(event.fields[1]) if len(event.fields) > 1 and event.fields[1] else LOCAL
                running = self.builds.get(drv)
                if running is not None and running.end is None:
                    # A remote builder's own build of it, forwarded inside the one that
                    # names the machine: same build, its log lines come on this activity.
                    return ()
                self.builds[drv] = _Build(start=now, activity=event.id, machine=machine)
                self.running.append(drv)
                on = "" if machine == LOCAL else f" on {_machine(machine)}"
                return (Notice(NoticeKind.BUILDING, drv, f"building {store_name(drv)}{on}"),)
            if event.type == ActivityType.SUBSTITUTE and len(event.fields) >= 2:
                path, cache = str(event.fields[0]), str(event.fields[1])
                self.fetches[path] = _Fetch(cache=cache, start=now)
                return (Notice(NoticeKind.FETCHING, path, f"fetching {store_name(path)} from {cache}"),)
            return ()
        if isinstance(event, Stop):
            start = self._activities.pop(event.id, None)
            if start is None or not start.fields:
                return ()
            if start.type == ActivityType.BUILD:
                drv = str(start.fields[0])
                build = self.builds.get(drv)
                if build is None or build.activity != event.id:
                    return ()  # a remote builder's inner activity: the outer one ends the build
                return self._end_build(drv, now)
            if start.type == ActivityType.SUBSTITUTE:
                path = str(start.fields[0])
                fetch = self.fetches.get(path)
                if fetch is not None and fetch.end is None:
                    fetch.end = now
                    return (Notice(NoticeKind.FETCHED, path, f"fetched {store_name(path)} from {fetch.cache} ({now - fetch.start:.1f} s)"),)
            return ()
        if isinstance(event, Result):
            start = self._activities.get(event.id)
            if start is None:
                return ()
            if event.type == ResultType.BUILD_LOG_LINE and start.type == ActivityType.BUILD and event.fields:
                build = self.builds.get(str(start.fields[0]))
                if build is not None:
                    build.log.append(_ANSI.sub("", str(event.fields[0])))
            elif event.type == ResultType.PROGRESS and event.id == self._builds_activity and len(event.fields) >= 4:
                return self._builds_progress(int(event.fields[0]), int(event.fields[3]), now)
            return ()
        if event.level == 0:
            self.errors.append(event.text)
            match = _DRV_IN_MESSAGE.search(event.text)
            if match and match.group(1) in self.builds and "failed" in event.text and "dependenc" not in event.text:
                drv = match.group(1)
                self.failed.add(drv)
                self._end_build(drv, now)
                return (Notice(NoticeKind.FAILED, drv, f"failed {store_name(drv)}"),)
        return ()

    def interrupt(self) -> None:
        """Ctrl-C: what is building now ends as interrupted, on the live line and in the report."""
        self.interrupted = True

    def _end_build(self, drv: str, now: float) -> tuple[Notice, ...]:
        build = self.builds.get(drv)
        if drv in self.running:
            self.running.remove(drv)
        if build is None or build.end is not None:
            return ()
        build.end = now
        if drv in self.failed:
            return ()
        if self.interrupted:  # nix stops every activity as it exits: not a finished build
            self.cut_short.add(drv)
            return (Notice(NoticeKind.INTERRUPTED, drv, f"interrupted {store_name(drv)} ({now - build.start:.1f} s)"),)
        on = "" if build.machine == LOCAL else f" on {_machine(build.machine)}"
        return (Notice(NoticeKind.BUILT, drv, f"built {store_name(drv)}{on} ({now - build.start:.1f} s)"),)

    def _builds_progress(self, done: int, failed: int, now: float) -> tuple[Notice, ...]:
        # Nix 2.8 stops the activity of a requested output's build only when it exits; its
        # Builds counter moves when a build ends. When as many builds ended as were running,
        # those builds are the ones that ended.
        delta = done + failed - self._finished_builds
        new_failure = failed > self._failed_builds
        self._finished_builds, self._failed_builds = done + failed, failed
        if delta <= 0 or delta != len(self.running):
            return ()
        ended = list(self.running)
        notices = tuple(n for drv in ended for n in self._end_build(drv, now))
        # A failure is named by nix's error message, which comes next.
        return () if new_failure else notices

    def _walk(self) -> Iterator[str]:
        seen: set[str] = set()
        stack = list(self.plan.roots)
        while stack:
            drv = stack.pop()
            if drv in seen:
                continue
            seen.add(drv)
            yield drv
            derivation = self.plan.derivations.get(drv)
            if derivation is None or self.was_present(drv):
                continue
            if drv not in self.builds and any(p in self.fetches for p in derivation.out_paths):
                continue
            stack.extend(derivation.inputs)

    def paths_to_query(self) -> tuple[str, ...]:
        """The store paths whose size (and registration time) the report shows."""
        paths = {p for drv in self._walk() if drv in self.plan.derivations for p in self.plan.derivations[drv].out_paths}
        return tuple(sorted(paths | set(self.fetches)))

    def report(self, run: BuildRun, infos: dict[str, PathInfo]) -> BuildReport:
        requested = {store_name(drv): name for name, drv in self.plan.outputs}
        items = [self._item(drv, run, infos, requested) for drv in self._walk()]
        covered = {p for drv in self.plan.derivations.values() for p in drv.out_paths}
        for path, fetch in self.fetches.items():
            if path not in covered:  # a runtime dependency of something fetched
                info = infos.get(path)
                name = store_name(path)
                group = group_of(name, fixed_output=False)
                items.append(Item(name, path, State.FETCHED if info else State.NOT_BUILT, group, _elapsed(fetch.start, fetch.end), info.nar_size if info else None, fetch.cache))
        order = list(Group)
        items.sort(key=lambda i: (order.index(i.group), i.name, i.drv))
        outputs = []
        for output, drv in self.plan.outputs:
            main = self.plan.derivations[drv].main_output if drv in self.plan.derivations else None
            if main is not None and main in infos:
                zip_path = Path(main) / "bootstrap.zip"
                bootstrap = str(zip_path) if output.startswith("deploy-lambda-") and zip_path.is_file() else None
                outputs.append(OutputPath(output, main, bootstrap))
        return BuildReport(tuple(items), tuple(outputs), run.returncode, run.interrupted, tuple(self.errors), frozenset(self.plan.roots))

    def _item(self, drv: str, run: BuildRun, infos: dict[str, PathInfo], requested: dict[str, str]) -> Item:
        derivation = self.plan.derivations.get(drv)
        name = derivation.name if derivation else store_name(drv)
        paths = derivation.out_paths if derivation else ()
        group = group_of(name, fixed_output=bool(derivation and derivation.fixed_output), compiles=bool(derivation and derivation.compiles))
        closure = _closure_output(name, requested) if derivation is not None and derivation.deps_only else None
        valid_now = bool(paths) and all(p in infos for p in paths)
        size = sum(infos[p].nar_size for p in paths) if valid_now else None
        seconds: float | None = None
        cache: str | None = None
        machine: str | None = None
        log_tail: tuple[str, ...] = ()
        fetched = [self.fetches[p] for p in paths if p in self.fetches]
        if self.was_present(drv):
            state = State.PRESENT
        elif drv in self.builds:
            build = self.builds[drv]
            machine = build.machine
            state = State.BUILT if valid_now and drv not in self.failed else State.FAILED if drv in self.failed else State.NOT_BUILT
            if state is State.NOT_BUILT and (drv in self.cut_short or (run.interrupted and build.end is None)):
                state = State.INTERRUPTED
            end = build.end if build.end is not None else run.finished
            if valid_now:
                # When the outputs became valid (to the second) bounds the end of a build
                # whose activity nix only stopped on exit.
                completed = max(infos[p].completed for p in paths) + 1.0
                end = min(end, max(completed, build.start))
            seconds = max(0.0, end - build.start)
            log_tail = tuple(build.log) if state is State.FAILED else ()
        elif fetched:
            state = State.FETCHED if valid_now else State.NOT_BUILT
            cache = fetched[0].cache
            seconds = _elapsed(fetched[0].start, max((f.end or run.finished) for f in fetched))
        else:
            state = State.PRESENT if valid_now else State.NOT_BUILT
        return Item(name, drv, state, group, seconds, size, cache, closure, machine, log_tail)


def _closure_output(name: str, requested: dict[str, str]) -> str:
    # Imported only when the report has a deps closure: closure_reuse's imports (hashlib,
    # drv_diff) took 11-27 ms between nix's exit and the report, on builds without one too.
    from nixcrate.closure_reuse import output_name  # noqa: PLC0415

    return output_name(name, requested)


def _elapsed(start: float, end: float | None) -> float | None:
    return None if end is None else max(0.0, end - start)
