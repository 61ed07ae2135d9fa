"""What `nixcrate build` shows while nix runs, on stderr.

On a terminal: a live block (rich), redrawn four times a second: elapsed time, cargo builds
done of those to do, derivations done of the total, and each build running now with its
time, its builder when remote, and the last line of its log (`Compiling serde v1.0.152`).
The cargo builds that end are printed above it as they end, so they stay on screen.

Elsewhere (CI logs, `--json`): plain lines. One when a cargo build starts, ends or fails
(the hooks, wrappers and sources around them are not worth a line each), and a status
line every `interval` seconds, so that a closure compiling for twenty minutes still shows
it is alive and what it is at.

The tracker is fed by the thread reading nix's stderr and read by the drawing thread (the
live refresh, or the status ticker): a lock keeps each read whole. Nothing is printed
while holding it (rich's Live takes its own lock to print above the block).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Self

from nixcrate import runner
from nixcrate.build_report import LOCAL, NoticeKind, duration, store_name

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from nixcrate.build_report import BuildTracker, Notice

SHOWN_RUNNING = 4  # builds listed on the live block; the rest are counted
DEFAULT_INTERVAL = 30.0


class Progress:
    """The display while nix runs: live on a terminal, else plain lines."""

    def __init__(self, tracker: BuildTracker, err: Console, *, live: bool, interval: float = DEFAULT_INTERVAL) -> None:
        self.tracker = tracker
        self.err = err
        self.interval = interval
        self._lock = threading.Lock()
        self._announced: set[str] = set()  # cargo builds whose start was printed
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.live = None
        if live:
            from rich.live import Live  # noqa: PLC0415 - only on a terminal

            self.live = Live(console=err, get_renderable=self._render, refresh_per_second=4, transient=True)

    def __enter__(self) -> Self:
        with runner.sigint_for_main_thread():  # rich's Live refreshes from a thread of its own
            if self.live is not None:
                self.live.__enter__()
            elif self.interval > 0:
                self._ticker = threading.Thread(target=self._tick, name="nixcrate-status", daemon=True)
                self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.live is not None:
            self.live.__exit__(None, None, None)
        if self._ticker is not None:
            self._ticker.join()

    # ------------------------------------------------------------------ events

    def feed(self, line: str, at: float | None = None) -> None:
        with self._lock:
            notices = self.tracker.events(line, at)
            shown = [n.text for n in notices if self._worth_a_line(n)]
            shown += self._unannounced()
        for text in shown:
            self.err.print(text, markup=False, highlight=False, soft_wrap=True)

    def _worth_a_line(self, notice: Notice) -> bool:
        """Failures and Ctrl-C always; the cargo builds' starts and ends (ends only, on a
        terminal: the live block shows what runs); nothing else."""
        if notice.kind in (NoticeKind.FAILED, NoticeKind.INTERRUPTED):
            return True
        if not self.tracker.compiles(notice.path):
            return False
        if notice.kind in (NoticeKind.BUILDING, NoticeKind.FETCHING):
            if self.live is not None:
                return False
            self._announced.add(notice.path)
        return True

    def _unannounced(self) -> list[str]:
        """Cargo builds that started before the plan said they were cargo builds."""
        if self.live is not None or not self.tracker.has_plan:
            return []
        late = [d for d in self.tracker.running if d not in self._announced and self.tracker.compiles(d)]
        self._announced.update(late)
        return [f"building {store_name(d)}{_on(self.tracker.builds[d].machine)}" for d in late]

    # ------------------------------------------------------------------ status

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                line = self.status_line()
            self.err.print(line, markup=False, highlight=False, soft_wrap=True)

    def counts(self) -> str:
        """`cargo builds 1/3, derivations 14/59` (`?` until the plan is read)."""
        t = self.tracker
        known = t.has_plan
        compiling = f"{t.compiling_done}/{t.compiling_expected}" if known else "?"
        everything = f"{t.done}/{t.expected}" if known else f"{t.done}/?"
        fetching = len(t.fetching())
        return f"cargo builds {compiling}, derivations {everything}" + (f", fetching {fetching}" if fetching else "")

    def status_line(self) -> str:
        """The plain status line: `[2m05s] cargo builds 1/3, ...; building a (1m58s: Compiling x)`."""
        t = self.tracker
        now = t.clock()
        running = []
        for drv in list(t.running):
            build = t.builds[drv]
            last = t.last_line(drv)
            running.append(f"{store_name(drv)} ({duration(now - build.start)}{_on(build.machine)}{': ' + last if last else ''})")
        doing = f"building {', '.join(running)}" if running else "waiting for nix"
        return f"[{duration(now - t.started)}] {self.counts()}; {doing}"

    def _render(self) -> RenderableType:
        from rich.console import Group  # noqa: PLC0415 - see the module docstring
        from rich.table import Table  # noqa: PLC0415
        from rich.text import Text  # noqa: PLC0415

        with self._lock:
            t = self.tracker
            now = t.clock()
            header = Text()
            header.append(f"{duration(now - t.started)} ", style="bold")
            header.append(self.counts().replace(", ", " · "))
            rows = []
            for drv in list(t.running)[:SHOWN_RUNNING]:
                build = t.builds[drv]
                where = "" if build.machine == LOCAL else build.machine.split("?", 1)[0]
                rows.append((store_name(drv), duration(now - build.start), where, t.last_line(drv)))
            more = len(t.running) - SHOWN_RUNNING
        if not rows:
            return Group(header, Text("  waiting for nix", style="dim"))
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True, style="yellow")
        table.add_column(justify="right", no_wrap=True)
        table.add_column(no_wrap=True, style="cyan")
        table.add_column(no_wrap=True, overflow="ellipsis", style="dim")
        for name, elapsed, where, last in rows:
            table.add_row(f"  {name}", elapsed, where, last)
        parts: list[RenderableType] = [header, table]
        if more > 0:
            parts.append(Text(f"  and {more} more", style="dim"))
        return Group(*parts)


def _on(machine: str) -> str:
    return "" if machine == LOCAL else f" on {machine.split('?', 1)[0]}"
