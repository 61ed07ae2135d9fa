"""`nixcrate build`: build the flake's outputs with one `nix build` and report cache reuse."""

from __future__ import annotations

import time
from pathlib import Path

import click

from nixcrate import console, nix, runner
from nixcrate.build_report import BuildTracker, Progress
from nixcrate.errors import BuildFailed, Interrupted


@click.command("build", context_settings={"ignore_unknown_options": True})
@click.option("--flake", "flake_dir", default=".", show_default=True, help="The flake's directory (or a flake reference).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
@click.option("--summary-file", type=click.Path(dir_okay=False, path_type=Path), help="Append a Markdown table (e.g. $GITHUB_STEP_SUMMARY).")
@click.option("--max-jobs", type=click.IntRange(min=1), help="Builds at once [default: as many as can run, at most the cores].")
@click.option("--cores", type=click.IntRange(min=1), help="Threads per build [default: cores / max-jobs].")
@click.option("--low-priority", is_flag=True, help="Run nix under 'nice -n 19' and 'ionice -c 3'.")
@click.option("-v", "--verbose", is_flag=True, help="Echo commands and the parallelism chosen.")
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[OUTPUT]... [-- NIX_ARGS]...")
def build_command(
    args: tuple[str, ...],
    flake_dir: str,
    as_json: bool,
    summary_file: Path | None,
    max_jobs: int | None,
    cores: int | None,
    low_priority: bool,
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

    plan = nix.plan_build(flake, outputs)
    machine = nix.available_cores()
    auto_jobs, _ = nix.parallelism(machine, plan.max_parallel())
    jobs = max_jobs or auto_jobs
    threads = cores or max(1, machine // jobs)
    if verbose:
        console.err.print(
            f"{len(plan.needed())} to realise, up to {plan.max_parallel()} at once on {machine} cores: "
            f"--max-jobs {jobs} --cores {threads}",
            markup=False,
        )
    if low_priority:
        runner.which("ionice")
    argv = nix.build_argv(plan, max_jobs=jobs, cores=threads, low_priority=low_priority, extra=extra)

    tracker = BuildTracker(plan)
    live = console.out.is_terminal and console.err.is_terminal and not as_json
    with Progress(tracker, console.err, live=live) as progress:
        run = nix.run_build(argv, progress.feed)
    if verbose:
        console.err.print(f"nix exited with status {run.returncode}", markup=False)
    paths = tracker.paths_to_query()
    infos = nix.path_info(paths, all_valid=run.returncode == 0 and not run.interrupted)
    report = tracker.report(run, infos)

    if as_json:
        console.out.print(report.json_text(), markup=False, highlight=False, soft_wrap=True)
        report.print_failures(console.err)
    else:
        report.print(console.out, console.err)
    if summary_file is not None:
        with summary_file.open("a", encoding="utf-8") as f:
            f.write(report.markdown())
    if verbose:
        console.err.print(f"report ready {time.time() - run.finished:.3f} s after nix exited", markup=False)

    if run.interrupted:
        raise Interrupted("interrupted: nix build stopped (partial report above)")
    if run.returncode != 0:
        failed = [i.name for i in report.items if i.state == "failed"]
        what = f": {', '.join(failed)} failed" if failed else (f": {report.errors[-1]}" if report.errors else "")
        raise BuildFailed(f"nix build exited with status {run.returncode}{what}", run.returncode)


if __name__ == "__main__":
    import sys

    from nixcrate.errors import NixcrateError

    try:
        build_command.main(standalone_mode=False)
    except NixcrateError as exc:
        console.err.print(f"[red]error:[/] {exc.message}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
