"""Command line: parse, call one function, print, exit.

User errors (NixcrateError) print one red line (plus an optional hint) and exit with
their code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from nixcrate import __version__
from nixcrate.errors import Interrupted, NixcrateError, from_os_error

if TYPE_CHECKING:

    from nixcrate.generate import InitResult


# Commands in their own modules, imported only when used: `init` must start fast.
LAZY_COMMANDS = {
    "build": ("nixcrate.cli_build", "build_command"),
    "lambda": ("nixcrate.cli_lambda", "lambda_group"),
    "ci": ("nixcrate.cli_ci", "ci_command"),
    "hashes": ("nixcrate.cli_hashes", "hashes_command"),
}


class NixcrateGroup(click.Group):
    """A click group that turns NixcrateError into one line and an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        import importlib.util  # noqa: PLC0415

        lazy = [name for name, (module, _) in LAZY_COMMANDS.items() if importlib.util.find_spec(module) is not None]
        return sorted({*super().list_commands(ctx), *lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            import importlib  # noqa: PLC0415

            module, attr = LAZY_COMMANDS[cmd_name]
            try:
                mod = importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise
                return None
            self.add_command(getattr(mod, attr), cmd_name)
        return super().get_command(ctx, cmd_name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            _print_usage_error(exc)
            ctx.exit(exc.exit_code)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NixcrateError as exc:
            _print_error(exc)
            ctx.exit(exc.exit_code)
        except OSError as exc:
            # Every file the user can make unreadable, a loop, a file where a directory must be:
            # one line naming the path (the exception's own filename) and the fix, exit 1.
            error = from_os_error(exc)
            _print_error(error)
            ctx.exit(error.exit_code)
        except click.UsageError as exc:
            _print_usage_error(exc)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            _print_error(Interrupted("interrupted: nothing was left half-written"))
            ctx.exit(130)


def _print_error(exc: NixcrateError) -> None:
    from rich.markup import escape  # noqa: PLC0415

    from nixcrate.console import err  # noqa: PLC0415

    # Messages quote TOML ("[package]", "[[bin]]"): escape them, or rich drops them as markup.
    err.print(f"[bold red]error:[/bold red] {escape(exc.message)}", soft_wrap=True)
    if exc.hint:
        err.print(f"[dim]hint:[/dim] {escape(exc.hint)}", soft_wrap=True)


def _print_usage_error(exc: click.UsageError) -> None:
    """click's usage errors in our shape: one `error:` line and a hint, exit 2 (click prints 4 lines)."""
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        raise exc  # a bare group: click prints its help, which is what the user asked for
    command = exc.ctx.command_path if exc.ctx is not None else "nixcrate"
    _print_error(NixcrateError(exc.format_message(), hint=f"run '{command} --help' for the arguments it takes"))


@click.group(cls=NixcrateGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nixcrate")
@click.option("-v", "--verbose", is_flag=True, help="Echo every command nixcrate runs.")
def cli(verbose: bool) -> None:
    """Turn a Rust Cargo workspace into a fast, cache-friendly crane flake."""
    # runner imports subprocess, which `init` does not need: import it only to turn echoing on,
    # or to reset it after an earlier in-process call (a test's CliRunner) turned it on.
    if verbose or "nixcrate.runner" in sys.modules:
        from nixcrate import runner  # noqa: PLC0415

        runner.VERBOSE = verbose


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when nix/nixcrate is out of date (for CI).")
@click.option("--force", is_flag=True, help="Replace a generated file you edited (a .bak copy is kept).")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too (e.g. a git dependency without a hash).")
@click.option(
    "--refresh-base", is_flag=True, help="Retake the base snapshot (nix/nixcrate/base) the closures start from, from the workspace as it is."
)
def init(directory: Path, check: bool, force: bool, strict: bool, refresh_base: bool) -> None:
    """Generate nix/nixcrate (and, where they are missing, flake.nix and nixcrate.toml) for the workspace in DIRECTORY."""
    from nixcrate.generate import run_init  # noqa: PLC0415

    if check and refresh_base:
        raise click.UsageError("--check writes nothing and --refresh-base writes the base snapshot: give one of them")
    result = run_init(directory, check=check, force=force, refresh_base=refresh_base)
    _print_init(result, check=check)
    if strict and result.warnings:
        raise NixcrateError(f"{len(result.warnings)} warning(s) and --strict was given: fix them, or drop --strict")


def _print_init(result: InitResult, *, check: bool) -> None:
    from rich.markup import escape  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from nixcrate.console import err, out  # noqa: PLC0415
    from nixcrate.workspace import MemberKind  # noqa: PLC0415

    for warning in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}", soft_wrap=True)
    if check:
        out.print("nix/nixcrate is up to date with the workspace")
        return
    for path, action in result.actions:
        out.print(f"{action:>9}  {path}", soft_wrap=True)
    if any(action == "migrate" for _, action in result.actions):
        out.print(
            "flake.nix was generated by an earlier nixcrate: it is kept as flake.nix.bak, and flake.nix is now a "
            "starter of your own that calls ./nix/nixcrate (the same packages and checks); move anything you had "
            "added to the old file into it, and commit both",
            soft_wrap=True,
        )
    table = Table(title=None, box=None, show_header=True, pad_edge=False)
    table.add_column("kind")
    table.add_column("members", justify="right")
    table.add_column("outputs")
    outputs = {
        MemberKind.SERVICE: [o.name for o in result.context.services if o.has_bins],
        MemberKind.LAMBDA: [o.name for o in result.context.lambdas],
        MemberKind.LIBRARY: [o.name for o in result.context.services if not o.has_bins],  # standalone ones
    }
    for kind in (MemberKind.SERVICE, MemberKind.LAMBDA, MemberKind.LIBRARY):
        names = result.classified.of(kind)
        shown = ", ".join(outputs[kind][:6]) + (" …" if len(outputs[kind]) > 6 else "")
        table.add_row(kind.value, str(len(names)), shown or "-")
    if result.classified.excluded:
        table.add_row("excluded", str(len(result.classified.excluded)), ", ".join(result.classified.excluded))
    out.print(table)
    _print_left_out(result)
    from nixcrate import sources  # noqa: PLC0415

    for line in sources.summary_lines(result.ws, dict(result.context.sources)):
        out.print(line, soft_wrap=True, markup=False, highlight=False)
    services = result.report.services
    if services.members:
        builds = ""
        if services.builds > len(services.crates):
            hint = "" if result.context.unified else "; [services] unify-features = true would build each once"
            builds = f" (about {services.builds} builds: once per feature set the services ask for{hint})"
        out.print(
            f"services' closure: {len(services.crates)} third-party crates{builds}, "
            f"{len(result.report.shared_by_services)} shared by two or more of its packages "
            f"({result.report.shared_share:.0%}), compiled in deployCargoArtifacts",
            soft_wrap=True,
            markup=False,
        )
    if result.report.lambdas.members:
        out.print(f"handlers' closure: {len(result.report.lambdas.crates)} third-party crates, compiled once in lambdaDeployCargoArtifacts", soft_wrap=True)
    unresolved = sorted({*services.unresolved, *result.report.lambdas.unresolved})
    if unresolved:
        shown = ", ".join(unresolved[:4]) + (" …" if len(unresolved) > 4 else "")
        out.print(
            f"below {len(unresolved)} "
            + ("crate whose manifest is" if len(unresolved) == 1 else "crates whose manifests are")
            + f" not on disk ({shown}), the closures count, and take native inputs for, everything Cargo.lock lists "
            "on any platform and feature: run 'cargo fetch', then init again, for what the build compiles",
            soft_wrap=True,
        )
    if result.base_moved is not None:
        moved, total = result.base_moved
        out.print(
            f"base snapshot: {moved} of {total} third-party crates moved since nix/nixcrate/base was taken "
            "(each build recompiles those and their dependents; 'nixcrate init --refresh-base' resets that)",
            soft_wrap=True,
        )
    for closure_name, applied in result.native_applied:
        for line in applied:
            out.print(f"native ({closure_name}): {line}", soft_wrap=True)
    if result.wiring:
        out.print(
            f"flake.nix is yours and does not call nixcrate yet ({result.wiring.shape.value} flake): add these lines to it",
            soft_wrap=True,
        )
        for step in result.wiring.steps:
            out.print(f"  in {step.where}:", soft_wrap=True, markup=False, highlight=False)
            for line in step.lines:
                out.print(f"    {line}", soft_wrap=True, markup=False, highlight=False)
    if result.next_steps:
        out.print("next:", soft_wrap=True)
        for step in result.next_steps:
            out.print(f"  {step}", soft_wrap=True, markup=False, highlight=False)


def _print_left_out(result: InitResult) -> None:
    """Standalone libraries the build machine cannot build (nixcrate.host): why, and the
    nixcrate.toml line that brings each back."""
    from rich.markup import escape  # noqa: PLC0415

    from nixcrate import config as config_mod  # noqa: PLC0415
    from nixcrate import host  # noqa: PLC0415
    from nixcrate.console import err, out  # noqa: PLC0415

    left = host.left_out(result.ws, config_mod.load(result.root), (*result.classified.standalone, *result.classified.unpackaged))
    for warning, line in host.summary_lines(left, (o.name for o in result.context.services)):
        if warning:
            err.print(f"[yellow]warning:[/yellow] {escape(line)}", soft_wrap=True)
        else:
            out.print(line, soft_wrap=True, markup=False)


def main() -> None:
    try:
        cli.main(prog_name="nixcrate", standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - outside click's invoke
        sys.exit(130)


if __name__ == "__main__":
    main()
