"""`nix build --log-format internal-json` -> BuildReport -> table, JSON, Markdown.

Nix writes one event a line on stderr, `@nix {json}`: `start` and `stop` of activities
(typed by ActivityType), `result`s on them (typed by ResultType) and `msg`s. The numbers
are Nix's own, src/libutil/logging.hh (unchanged from 2.4 to 2.8 and later).

`BuildTracker` folds the events as they arrive (for the live display), then `report()`
walks the plan's .drv graph from the requested outputs, the way nix does, so every
derivation nix needed ends in exactly one state. Below a present or fetched derivation
nothing is needed, so nothing is listed. The plan may arrive after the first events
(`nix.BackgroundPlan`): folding the events does not need it.

rich is imported only to draw (~40 ms of start-up that `nix build` should not wait for).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from nixcrate.nix import BuildPlan, BuildRun, PathInfo

LOG_TAIL = 25
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_DRV_IN_MESSAGE = re.compile(r"'(/[^']+\.drv)'")
# crane's vendoring derivations and fixed-output source fetches: reported apart from compilation.
_SOURCE_NAMES = re.compile(r"(^|-)vendor-cargo-deps$|^cargo-package-|\.crate$|^source$|^vendor-registry$|^cargo-git")
# crane's buildDepsOnly names its output `<pname>-deps-<version>`.
_DEPS_NAME = re.compile(r"-deps(-\d[\w.+]*)?$")


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


class Group(StrEnum):
    SOURCE = "source"  # fixed-output fetches and crane's vendoring
    BUILD = "build"


def group_of(name: str, *, fixed_output: bool) -> Group:
    return Group.SOURCE if fixed_output or _SOURCE_NAMES.search(name) else Group.BUILD


def is_deps_closure(name: str, group: Group) -> bool:
    return group is Group.BUILD and _DEPS_NAME.search(name) is not None


@dataclass(frozen=True, slots=True)
class Item:
    name: str
    drv: str  # the .drv path, or the store path of a fetched path no .drv of the plan names
    state: State
    group: Group
    seconds: float | None  # build or fetch time
    size: int | None  # NAR size of the outputs, bytes
    cache: str | None  # the binary cache a fetched item came from
    deps_closure: bool
    log_tail: tuple[str, ...] = ()  # the last lines of a failed build's log

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "drv": self.drv,
            "state": str(self.state),
            "group": str(self.group),
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "size": self.size,
            "cache": self.cache,
            "deps_closure": self.deps_closure,
        }


@dataclass(frozen=True, slots=True)
class OutputPath:
    output: str  # the flake's output name
    path: str
    bootstrap_zip: str | None  # a Lambda handler's zip inside the output


@dataclass(frozen=True, slots=True)
class BuildReport:
    items: tuple[Item, ...]  # sorted by group, name, drv
    outputs: tuple[OutputPath, ...]
    returncode: int
    interrupted: bool
    errors: tuple[str, ...]  # nix's error messages

    def count(self, state: State) -> int:
        return sum(1 for i in self.items if i.state is state)

    @property
    def built_seconds(self) -> float:
        return sum(i.seconds or 0.0 for i in self.items if i.state is State.BUILT)

    @property
    def caches(self) -> tuple[tuple[str, int], ...]:
        counts = Counter(i.cache or "?" for i in self.items if i.state is State.FETCHED)
        return tuple(sorted(counts.items()))

    @property
    def cache_reuse(self) -> float:
        total = len(self.items)
        return (self.count(State.FETCHED) + self.count(State.PRESENT)) / total if total else 1.0

    @property
    def deps_closure_reused(self) -> bool | None:
        """Whether every deps closure came from the store or a cache; None without one."""
        deps = [i for i in self.items if i.deps_closure]
        if not deps:
            return None
        return all(i.state in (State.FETCHED, State.PRESENT) for i in deps)

    def summary(self) -> str:
        fetched = f"fetched {self.count(State.FETCHED)}"
        if self.caches:
            fetched += " from " + ", ".join(c if len(self.caches) == 1 else f"{c} ({n})" for c, n in self.caches)
        parts = [f"built {self.count(State.BUILT)} ({self.built_seconds:.1f} s)", fetched, f"present {self.count(State.PRESENT)}"]
        parts += [f"{s} {self.count(s)}" for s in (State.FAILED, State.INTERRUPTED, State.NOT_BUILT) if self.count(s)]
        reused = self.count(State.FETCHED) + self.count(State.PRESENT)
        line = ", ".join(parts) + f"; cache reuse {self.cache_reuse:.0%} ({reused}/{len(self.items)})"
        deps = self.deps_closure_reused
        if deps is not None:
            line += f"; deps closure {'reused' if deps else 'not reused'}"
        return line

    def to_json(self) -> dict[str, object]:
        return {
            "derivations": [i.to_json() for i in self.items],
            "summary": {
                "total": len(self.items),
                "built": self.count(State.BUILT),
                "built_seconds": round(self.built_seconds, 3),
                "fetched": self.count(State.FETCHED),
                "fetched_from": dict(self.caches),
                "present": self.count(State.PRESENT),
                "failed": self.count(State.FAILED),
                "not_built": self.count(State.NOT_BUILT),
                "interrupted": self.count(State.INTERRUPTED),
                "cache_reuse": round(self.cache_reuse, 4),
                "deps_closure_reused": self.deps_closure_reused,
            },
            "outputs": [
                {"output": o.output, "path": o.path, "bootstrap_zip": o.bootstrap_zip} for o in self.outputs
            ],
            "exit_status": self.returncode,
            "interrupted": self.interrupted,
        }

    def json_text(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, indent=2)

    def markdown(self) -> str:
        """A Markdown section for $GITHUB_STEP_SUMMARY."""
        lines = ["### nixcrate build", "", "| derivation | group | state | time | size |", "| --- | --- | --- | --- | --- |"]
        lines += [
            f"| `{i.name}` | {i.group} | {i.state}{_from(i)} | {_seconds(i.seconds)} | {_size(i.size)} |"
            for i in self.items
        ]
        lines += ["", f"**{self.summary()}**", ""]
        return "\n".join(lines) + "\n"

    def table(self) -> Table:
        from rich.table import Table  # noqa: PLC0415 - see the module docstring
        from rich.text import Text  # noqa: PLC0415

        table = Table(title=None, show_edge=False, pad_edge=False)
        for column, justify in (("derivation", "left"), ("group", "left"), ("state", "left"), ("time", "right"), ("size", "right")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        previous: Group | None = None
        for i in self.items:
            if previous is not None and i.group is not previous:
                table.add_section()
            previous = i.group
            table.add_row(i.name, str(i.group), Text(f"{i.state}{_from(i)}", style=_STYLE[i.state]), _seconds(i.seconds), _size(i.size))
        return table

    def print(self, out: Console, err: Console) -> None:
        """The table, failed logs (stderr), the output paths and the summary line."""
        if self.items:
            out.print(self.table())
        self.print_failures(err)
        for o in self.outputs:
            out.print(f"{o.output}: {o.path}", markup=False, soft_wrap=True)
            if o.bootstrap_zip:
                out.print(f"{o.output}: {o.bootstrap_zip}", markup=False, soft_wrap=True)
        out.print(self.summary(), markup=False, soft_wrap=True)

    def print_failures(self, err: Console) -> None:
        """Each failed derivation with the tail of its log; nix's own errors when none failed."""
        failed = [i for i in self.items if i.state is State.FAILED]
        if not failed and self.returncode != 0 and not self.interrupted:
            for message in self.errors:
                err.print(message, markup=False, highlight=False, soft_wrap=True)
        for i in failed:
            if i.state is State.FAILED:
                err.print(f"[bold red]failed:[/] {i.name} ({i.drv}), last {len(i.log_tail)} log lines:", soft_wrap=True)
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


def _from(item: Item) -> str:
    return f" from {item.cache}" if item.cache else ""


def _seconds(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.1f} s"


def _size(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # unreachable


def store_name(path: str) -> str:
    """/nix/store/<hash>-name(.drv) -> name."""
    base = path.rsplit("/", 1)[-1]
    base = base.removesuffix(".drv")
    return base.split("-", 1)[1] if "-" in base else base


@dataclass(slots=True)
class _Build:
    """A build while events arrive (mutable: the tracker's accumulator, never reported)."""

    start: float
    end: float | None = None
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_TAIL))


@dataclass(slots=True)
class _Fetch:
    cache: str
    start: float
    end: float | None = None


class BuildTracker:
    """Folds the event stream of one `nix build`; `report()` makes the BuildReport.

    The plan may be given later (`set_plan`), but before `report()`.
    """

    def __init__(self, plan: BuildPlan | None, clock: Callable[[], float] = time.time) -> None:
        self._plan = plan
        self.clock = clock
        self.started = clock()
        self.expected = 0 if plan is None else len(plan.needed())
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

    def set_plan(self, plan: BuildPlan) -> None:
        self.expected = len(plan.needed())  # first: the display reads it without a lock
        self._plan = plan

    @property
    def plan(self) -> BuildPlan:
        assert self._plan is not None, "the plan comes before the report"
        return self._plan

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

    @property
    def done(self) -> int:
        builds = sum(1 for d, b in self.builds.items() if b.end is not None and d not in self.cut_short)
        return builds + sum(1 for f in self.fetches.values() if f.end is not None)

    def feed(self, line: str, at: float | None = None) -> str | None:
        """Apply one stderr line (read at `at`, default now); return a one-line notice for the
        plain (non-terminal) display."""
        event = parse_line(line)
        return None if event is None else self.apply(event, at)

    def apply(self, event: Event, at: float | None = None) -> str | None:  # noqa: C901, PLR0911, PLR0912 - one branch per event kind
        now = self.clock() if at is None else at
        if isinstance(event, Start):
            self._activities[event.id] = event
            if event.type == ActivityType.BUILD and event.fields:
                drv = str(event.fields[0])
                self.builds[drv] = _Build(start=now)
                self.running.append(drv)
                return f"building {store_name(drv)}"
            if event.type == ActivityType.SUBSTITUTE and len(event.fields) >= 2:
                path, cache = str(event.fields[0]), str(event.fields[1])
                self.fetches[path] = _Fetch(cache=cache, start=now)
                return f"fetching {store_name(path)} from {cache}"
            return None
        if isinstance(event, Stop):
            start = self._activities.pop(event.id, None)
            if start is None or not start.fields:
                return None
            if start.type == ActivityType.BUILD:
                return self._end_build(str(start.fields[0]), now)
            if start.type == ActivityType.SUBSTITUTE:
                fetch = self.fetches.get(str(start.fields[0]))
                if fetch is not None and fetch.end is None:
                    fetch.end = now
                    return f"fetched {store_name(str(start.fields[0]))} from {fetch.cache} ({now - fetch.start:.1f} s)"
            return None
        if isinstance(event, Result):
            start = self._activities.get(event.id)
            if start is None:
                return None
            if event.type == ResultType.BUILD_LOG_LINE and start.type == ActivityType.BUILD and event.fields:
                build = self.builds.get(str(start.fields[0]))
                if build is not None:
                    build.log.append(_ANSI.sub("", str(event.fields[0])))
            elif event.type == ResultType.PROGRESS and start.type == ActivityType.BUILDS and len(event.fields) >= 4:
                return self._builds_progress(int(event.fields[0]), int(event.fields[3]), now)
            return None
        if event.level == 0:
            self.errors.append(event.text)
            match = _DRV_IN_MESSAGE.search(event.text)
            if match and match.group(1) in self.builds and "failed" in event.text and "dependenc" not in event.text:
                self.failed.add(match.group(1))
                self._end_build(match.group(1), now)
                return f"failed {store_name(match.group(1))}"
        return None

    def interrupt(self) -> None:
        """Ctrl-C: what is building now ends as interrupted, on the live line and in the report."""
        self.interrupted = True

    def _end_build(self, drv: str, now: float) -> str | None:
        build = self.builds.get(drv)
        if drv in self.running:
            self.running.remove(drv)
        if build is None or build.end is not None:
            return None
        build.end = now
        if drv in self.failed:
            return None
        if self.interrupted:  # nix stops every activity as it exits: not a finished build
            self.cut_short.add(drv)
            return f"interrupted {store_name(drv)} ({now - build.start:.1f} s)"
        return f"built {store_name(drv)} ({now - build.start:.1f} s)"

    def _builds_progress(self, done: int, failed: int, now: float) -> str | None:
        # Nix 2.8 stops the activity of a requested output's build only when it exits; its
        # Builds counter moves when a build ends. When as many builds ended as were running,
        # those builds are the ones that ended.
        delta = done + failed - self._finished_builds
        new_failure = failed > self._failed_builds
        self._finished_builds, self._failed_builds = done + failed, failed
        if delta <= 0 or delta != len(self.running):
            return None
        ended = list(self.running)
        notices = [n for drv in ended if (n := self._end_build(drv, now))]
        # A failure is named by nix's error message, which comes next.
        return None if new_failure or not notices else "\n".join(notices)

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
        items = [self._item(drv, run, infos) for drv in self._walk()]
        covered = {p for drv in self.plan.derivations.values() for p in drv.out_paths}
        for path, fetch in self.fetches.items():
            if path not in covered:  # a runtime dependency of something fetched
                info = infos.get(path)
                name = store_name(path)
                group = group_of(name, fixed_output=False)
                items.append(Item(name, path, State.FETCHED if info else State.NOT_BUILT, group, _elapsed(fetch.start, fetch.end), info.nar_size if info else None, fetch.cache, is_deps_closure(name, group)))
        items.sort(key=lambda i: (i.group is not Group.SOURCE, i.name, i.drv))
        outputs = []
        for output, drv in self.plan.outputs:
            main = self.plan.derivations[drv].main_output if drv in self.plan.derivations else None
            if main is not None and main in infos:
                zip_path = Path(main) / "bootstrap.zip"
                bootstrap = str(zip_path) if output.startswith("deploy-lambda-") and zip_path.is_file() else None
                outputs.append(OutputPath(output, main, bootstrap))
        return BuildReport(tuple(items), tuple(outputs), run.returncode, run.interrupted, tuple(self.errors))

    def _item(self, drv: str, run: BuildRun, infos: dict[str, PathInfo]) -> Item:
        derivation = self.plan.derivations.get(drv)
        name = derivation.name if derivation else store_name(drv)
        paths = derivation.out_paths if derivation else ()
        group = group_of(name, fixed_output=bool(derivation and derivation.fixed_output))
        valid_now = bool(paths) and all(p in infos for p in paths)
        size = sum(infos[p].nar_size for p in paths) if valid_now else None
        seconds: float | None = None
        cache: str | None = None
        log_tail: tuple[str, ...] = ()
        fetched = [self.fetches[p] for p in paths if p in self.fetches]
        if self.was_present(drv):
            state = State.PRESENT
        elif drv in self.builds:
            build = self.builds[drv]
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
        return Item(name, drv, state, group, seconds, size, cache, is_deps_closure(name, group), log_tail)


def _elapsed(start: float, end: float | None) -> float | None:
    return None if end is None else max(0.0, end - start)


class Progress:
    """The display while nix runs: a live line on a terminal, else one plain line an event."""

    def __init__(self, tracker: BuildTracker, err: Console, *, live: bool) -> None:
        self.tracker = tracker
        self.err = err
        self.live = None
        if live:
            from rich.live import Live  # noqa: PLC0415 - only on a terminal

            self.live = Live(console=err, get_renderable=self._render, refresh_per_second=4, transient=True)

    def __enter__(self) -> Self:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def feed(self, line: str, at: float | None = None) -> None:
        notice = self.tracker.feed(line, at)
        if notice is not None and self.live is None:
            self.err.print(notice, markup=False, highlight=False, soft_wrap=True)

    def _render(self) -> Text:
        from rich.text import Text  # noqa: PLC0415 - see the module docstring

        t = self.tracker
        now = t.clock()
        building = ", ".join(f"{store_name(d)} ({now - t.builds[d].start:.0f} s)" for d in t.running[:4])
        if len(t.running) > 4:
            building += f" +{len(t.running) - 4}"
        text = Text()
        text.append(f"[{t.done}/{t.expected}] ", style="bold")
        text.append(f"{now - t.started:.1f} s ", style="dim")
        text.append(f"building {building}" if building else "waiting for nix", style="yellow" if building else "dim")
        return text
