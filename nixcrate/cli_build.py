"""`nixcrate build`: build the flake's outputs with one `nix build` and report cache reuse.

`nix build` starts as soon as its command line is known: at once when the OUTPUTs and
--max-jobs are given (then the plan is made during the build, `nix.BackgroundPlan`), else
after the plan, which the default --max-jobs depends on. What is not needed to start nix
(rich, the report's types) is imported after it starts.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from nixcrate import nix, runner
from nixcrate.errors import BuildFailed, Interrupted, NixcrateError, error_summary

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.console import Console

    from nixcrate.build_progress import Progress
    from nixcrate.build_report import BuildReport, BuildTracker


@click.command("build", context_settings={"ignore_unknown_options": True})
@click.option("--flake", "flake_dir", default=".", show_default=True, help="The flake's directory (or a flake reference).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
@click.option("--summary-file", type=click.Path(dir_okay=False, path_type=Path), help="Append a Markdown table (e.g. $GITHUB_STEP_SUMMARY).")
@click.option("--max-jobs", type=click.IntRange(min=1), help="Builds at once [default: as many as can run, at most the cores].")
@click.option("--cores", type=click.IntRange(min=1), help="Threads per build [default: cores / max-jobs].")
@click.option("--low-priority", is_flag=True, help="Run nix under 'nice -n 19' and 'ionice -c 3'.")
@click.option(
    "--progress-interval",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Off a terminal (CI logs), a status line every SECONDS (0: none).",
    metavar="SECONDS",
)
@click.option("-v", "--verbose", is_flag=True, help="List every derivation; echo commands and the parallelism chosen.")
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[OUTPUT]... [-- NIX_ARGS]...")
def build_command(
    args: tuple[str, ...],
    flake_dir: str,
    as_json: bool,
    summary_file: Path | None,
    max_jobs: int | None,
    cores: int | None,
    low_priority: bool,
    progress_interval: float,
    verbose: bool,
) -> None:
    """Build [OUTPUT]... of the flake (default: every service and handler) and report what was
    built, fetched from a binary cache, or already present. Arguments after `--` go to nix."""
    if verbose:
        runner.VERBOSE = True
    # click drops the `--` itself: the OUTPUTs are the arguments before the first option.
    cut = next((n for n, a in enumerate(args) if a.startswith("-")), len(args))
    outputs, extra = args[:cut], [a for a in args[cut:] if a != "--"]
    flake = flake_dir if ":" in flake_dir else str(Path(flake_dir).resolve())

    if summary_file is not None and not summary_file.parent.is_dir():
        # before the build, not after it: the build's time is not lost on a typo
        raise NixcrateError(f"{summary_file}: its directory {summary_file.parent} does not exist: create it, or give another --summary-file")
    if low_priority:
        runner.which("ionice")
    build, plan, planner, note = _start(flake, outputs, extra, max_jobs=max_jobs, cores=cores, low_priority=low_priority)
    with contextlib.ExitStack() as stack:
        display = _Display(stack, build, plan, planner, live=not as_json, verbose=verbose, note=note, interval=progress_interval)
        run = build.follow(display.feed, display.interrupt)
        display.open()  # nix may exit before its first build: an evaluation error, or nothing to do

    from nixcrate import console  # noqa: PLC0415 - imported by _Display.open already

    if verbose:
        console.err.print(f"nix exited with status {run.returncode}", markup=False)
    tracker = display.planned(run)
    succeeded = run.returncode == 0 and not run.interrupted
    infos = nix.path_info_after_build(tracker.paths_to_query(), known=display.present_infos(), succeeded=succeeded, settings=tracker.plan.settings)
    report = _with_closures(tracker.report(run, infos), tracker.plan, console.err)

    if as_json:
        console.out.print(report.json_text(), markup=False, highlight=False, soft_wrap=True)
        report.print_failures(console.err)
        report.print_notes(console.err)
    else:
        report.print(console.out, console.err, verbose=verbose)
    if summary_file is not None:
        with summary_file.open("a", encoding="utf-8") as f:
            f.write(report.markdown())
    if verbose:
        console.err.print(f"report ready {time.time() - run.finished:.3f} s after nix exited", markup=False)

    if run.interrupted:
        raise Interrupted("interrupted: nix build stopped (partial report above)")
    if run.returncode != 0:
        failed = [i.name for i in report.items if i.state == "failed"]
        what = f": {', '.join(failed)} failed" if failed else (f": {error_summary(report.errors[-1])}" if report.errors else "")
        raise BuildFailed(f"nix build exited with status {run.returncode}{what}", run.returncode)


def _with_closures(report: BuildReport, plan: nix.BuildPlan, err: Console) -> BuildReport:
    """The report with a note per deps closure (why one was not reused); the closures met
    are remembered for the next build's notes (`closure_reuse`)."""
    closures = [(i.closure or i.name, i.name, i.drv, str(i.state)) for i in report.closure_items()]
    if not closures:
        return report
    from nixcrate import closure_reuse  # noqa: PLC0415 - after the build, and only for a closure

    path = closure_reuse.state_file()
    memory = closure_reuse.load(path)
    notes = closure_reuse.explain(closures, flake=plan.flake, system=plan.system, memory=memory, settings=plan.settings)
    try:
        closure_reuse.remember(path, plan.flake, plan.system, notes)
    except NixcrateError as exc:
        from rich.markup import escape  # noqa: PLC0415

        err.print(f"[yellow]warning:[/yellow] {escape(exc.message)}", soft_wrap=True)
    return report.with_closures(notes)


def _start(
    flake: str,
    outputs: Sequence[str],
    extra: Sequence[str],
    *,
    max_jobs: int | None,
    cores: int | None,
    low_priority: bool,
) -> tuple[nix.RunningBuild, nix.BuildPlan | None, nix.BackgroundPlan | None, str]:
    """Start nix build: (the build, the plan or the planner, the verbose line on parallelism)."""
    machine = nix.available_cores()
    if outputs and max_jobs is not None:
        threads = cores or max(1, machine // max_jobs)
        argv = nix.build_argv(flake, sorted(set(outputs)), max_jobs=max_jobs, cores=threads, low_priority=low_priority, extra=extra)
        build = nix.RunningBuild(argv)
        planner = nix.BackgroundPlan(flake, outputs, extra, on_error=build.stop)
        return build, None, planner, f"--max-jobs {max_jobs} --cores {threads} on {machine} cores; planning during the build"
    plan = nix.plan_build(flake, outputs, extra)
    # Sized by the builds that compile: a deps closure (hundreds of crates) must get the
    # cores, not share them with the Cargo.toml copies and hooks built beside it.
    auto_jobs, _ = nix.parallelism(machine, plan.compiling_at_once())
    jobs = max_jobs or auto_jobs
    threads = cores or max(1, machine // jobs)
    names = [name for name, _ in plan.outputs]
    build = nix.RunningBuild(nix.build_argv(flake, names, max_jobs=jobs, cores=threads, low_priority=low_priority, extra=extra))
    note = (
        f"{len(plan.needed())} to realise, {len(plan.compiling())} compiling, {plan.compiling_at_once()} of them at once"
        f" on {machine} cores: --max-jobs {jobs} --cores {threads}"
    )
    return build, plan, None, note


class _Display:
    """nix's log, held back until its first build or download starts; then the tracker and
    the display.

    Until then nix evaluates and prepares (on one core), and nothing is built: rich (~0.1 s
    of imports), the echo and the plan's queries wait for the end of it and run beside the
    builds. On a busy 2-core machine, running them while nix evaluated delayed its first
    build by ~0.1 s (measured with strace timestamps). Held-back lines keep the time they
    were read, and the display is opened in a thread of its own while lines are still read
    and held: opened on the reading thread, the imports (0.1-0.4 s on a loaded machine) left
    nix's next lines in the pipe, and a build starting then was timed short by as much.
    """

    def __init__(
        self,
        stack: contextlib.ExitStack,
        build: nix.RunningBuild,
        plan: nix.BuildPlan | None,
        planner: nix.BackgroundPlan | None,
        *,
        live: bool,
        verbose: bool,
        note: str,
        interval: float,
    ) -> None:
        self._stack = stack
        self._build = build
        self._plan = plan
        self._planner = planner
        self._live = live
        self._verbose = verbose
        self._note = note
        self._interval = interval
        self._held: list[tuple[str, float]] = []
        self._progress: Progress | None = None
        self._lock = threading.Lock()  # between the reading thread and the opening one
        self._opener: threading.Thread | None = None
        self._present: nix.PathInfoQuery | None = None
        self._interrupted = False

    def interrupt(self) -> None:
        """Ctrl-C: builds that end from now on were stopped, not built."""
        self._interrupted = True
        opener = self._opener
        if opener is not None:  # the lines it replays came before the Ctrl-C
            opener.join()
        if self._progress is not None:
            self._progress.tracker.interrupt()

    def feed(self, line: str) -> None:
        at = time.time()
        with self._lock:
            progress = self._progress
            if progress is None:
                self._held.append((line, at))
                if self._opener is None and nix.starts_work(line):
                    self._opener = threading.Thread(target=self._open, name="nixcrate-display", daemon=True)
                    with runner.sigint_for_main_thread():
                        self._opener.start()
                return
        progress.feed(line, at)

    def open(self) -> BuildTracker:
        """The tracker, once the display and the plan are started (here, if no line started
        work: nix exited first, an evaluation error or nothing to do)."""
        opener = self._opener
        if opener is not None and opener is not threading.current_thread():
            opener.join()
        self._open()
        assert self._progress is not None
        return self._progress.tracker

    def _open(self) -> None:
        """Start the display and the plan, once; replay the lines held back."""
        if self._progress is None:
            from nixcrate import console  # noqa: PLC0415 - see the class docstring
            from nixcrate.build_progress import Progress  # noqa: PLC0415
            from nixcrate.build_report import BuildTracker  # noqa: PLC0415

            if self._verbose:
                self._build.echo()
                console.err.print(self._note, markup=False)
            tracker = BuildTracker(None)
            if self._interrupted:
                tracker.interrupt()
            if self._planner is not None:
                self._planner.then(lambda plan: self._set_plan(tracker, plan))
                self._planner.start()
            else:
                assert self._plan is not None
                self._set_plan(tracker, self._plan)
            live = self._live and console.out.is_terminal and console.err.is_terminal
            progress = self._stack.enter_context(Progress(tracker, console.err, live=live, interval=self._interval))
            with self._lock:  # the lines read meanwhile, then the display takes them
                for line, at in self._held:
                    progress.feed(line, at)
                self._held = []
                self._progress = progress

    def _set_plan(self, tracker: BuildTracker, plan: nix.BuildPlan) -> None:
        """Give the tracker its plan, and ask the size of what was present while nix builds."""
        tracker.set_plan(plan)
        self._present = nix.PathInfoQuery(plan.present_outputs(), plan.settings)

    def present_infos(self) -> dict[str, nix.PathInfo]:
        """What `nix path-info` said, during the build, of the paths present before it."""
        return self._present.result() if self._present is not None else {}

    def planned(self, run: nix.BuildRun) -> BuildTracker:
        """The tracker, with its plan (waiting for the planner if it is still at work: its
        `then` callback, registered by open(), hands the plan over before result() returns)."""
        tracker = self.open()
        if self._planner is not None:
            try:
                self._planner.result()
            except NixcrateError:
                if run.interrupted:  # Ctrl-C also reached the plan's queries
                    raise Interrupted("interrupted: nix build stopped before its plan was read") from None
                raise
        return tracker


if __name__ == "__main__":
    import sys

    try:
        build_command.main(standalone_mode=False)
    except NixcrateError as exc:
        from nixcrate import console

        console.err.print(f"[red]error:[/] {exc.message}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
