"""`nixcrate ci`: write .github/workflows/nixcrate.yml for the workspace. Logic: ci_gen."""

from __future__ import annotations

from pathlib import Path

import click

from nixcrate import ci_gen


@click.command("ci")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option(
    "--cache",
    metavar="CACHE",
    help=f"Binary cache: {ci_gen.CACHE_FORMS}. [default: the one recorded in the workflow, else {ci_gen.DEFAULT_CACHE}]",
)
@click.option(
    "--public-key",
    metavar="NAME:BASE64",
    help="Public key of an S3 or URL cache's signatures (trusted by every job).",
)
@click.option(
    "--aws-role",
    metavar="ARN",
    help="S3: assume this IAM role with OIDC instead of using static key secrets.",
)
@click.option(
    "--runner", metavar="LABEL", help=f"runs-on label of every job. [default: {ci_gen.DEFAULT_RUNNER}]"
)
@click.option(
    "--branch",
    metavar="NAME",
    help=f"Branch whose pushes run the workflow and fill the cache. [default: {ci_gen.DEFAULT_BRANCH}]",
)
@click.option(
    "--check", is_flag=True, help="Write nothing; exit 1 when the workflow is out of date (for CI)."
)
@click.option("--force", is_flag=True, help="Replace a workflow you edited (a .bak copy is kept).")
def ci_command(  # noqa: PLR0917 - click passes options by name, one parameter each
    directory: Path,
    cache: str | None,
    public_key: str | None,
    aws_role: str | None,
    runner: str | None,
    branch: str | None,
    check: bool,
    force: bool,
) -> None:
    """Generate the GitHub Actions workflow that builds the workspace in DIRECTORY through a binary cache.

    Options not given are read back from the workflow's '# Regenerate:' line.
    """
    from nixcrate.console import out  # noqa: PLC0415

    options = ci_gen.CiOptions(
        cache=cache, public_key=public_key, aws_role=aws_role, runner=runner, branch=branch
    )
    result = ci_gen.run_ci(directory, options, check=check, force=force)
    if check:
        out.print(f"{result.display} is up to date with the workspace", soft_wrap=True, markup=False)
        return
    out.print(f"{result.action:>9}  {result.display}", soft_wrap=True, markup=False)
    for job in result.context.build_jobs:
        names = ", ".join(e.output for e in job.entries)
        out.print(f"{job.id}: {names} (after {job.needs})", soft_wrap=True, markup=False)
    secrets = ", ".join(result.context.cache.secrets) or "none"
    out.print(f"secrets it reads: {secrets}", soft_wrap=True, markup=False)
