"""`nixcrate lambda ...`: the Lambda subcommands. The rules live in lambda_pkg.

The main CLI registers `lambda_group`; `python -m nixcrate.cli_lambda verify ...` also works.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from nixcrate import lambda_pkg
from nixcrate.errors import NixcrateError


@click.group("lambda")
def lambda_group() -> None:
    """AWS Lambda handlers: check the bootstrap.zip nixcrate builds."""


@lambda_group.command("verify")
@click.argument("zip_path", metavar="ZIP", type=click.Path(path_type=Path, dir_okay=True))
@click.option(
    "--glibc",
    default="2.26",
    show_default=True,
    help="Highest glibc the runtime has (al2: 2.26, al2023: 2.34).",
)
@click.option("--arch", type=click.Choice(sorted(lambda_pkg.ARCHES)), default="x86_64", show_default=True)
@click.option(
    "--include",
    "includes",
    multiple=True,
    metavar="PATH",
    help="An entry the zip may carry besides bootstrap (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.pass_context
def verify_command(
    ctx: click.Context, zip_path: Path, glibc: str, arch: str, includes: tuple[str, ...], as_json: bool
) -> None:
    """Exit 0 only if ZIP is a bootstrap.zip Lambda can run; else list every problem."""
    try:
        result = lambda_pkg.verify(zip_path, glibc=glibc, arch=arch, includes=includes)
    except NixcrateError as exc:
        # Same shape as the main CLI's handler, so the subcommand also stands alone.
        click.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            click.echo(exc.hint, err=True)
        ctx.exit(exc.exit_code)
    for line in result.lines():
        click.echo(line, err=True)
    if as_json:
        click.echo(json.dumps(result.to_json(), sort_keys=True, indent=2))
    elif result.ok:
        found = f"max GLIBC_{result.max_glibc}" if result.max_glibc else "no GLIBC versions"
        click.echo(f"{result.zip_path}: ok ({arch}, {found}, pin {glibc})")
        if result.runtimes:
            click.echo(f"{result.zip_path}: runs on {', '.join(result.runtimes)}")
        if "provided.al2" in result.runtimes:
            click.echo(f"note: {lambda_pkg.AL2_NOTE}")
    ctx.exit(0 if result.ok else 1)


if __name__ == "__main__":
    lambda_group()
