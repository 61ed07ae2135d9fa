"""`nixcrate hashes`: compute the output hashes of git dependencies into nixcrate.toml."""

from __future__ import annotations

from pathlib import Path

import click

from nixcrate.errors import CommandFailed, NixcrateError, error_summary


@click.command("hashes")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
def hashes_command(directory: Path) -> None:
    """Prefetch every git dependency of Cargo.lock that has no hash and record it in nixcrate.toml."""
    from nixcrate import config as config_mod  # noqa: PLC0415
    from nixcrate import git_deps, runner, workspace  # noqa: PLC0415
    from nixcrate.console import err, out  # noqa: PLC0415

    root = directory.resolve()
    if not (root / config_mod.FILENAME).is_file():
        raise NixcrateError(f"{config_mod.FILENAME}: not found in {root}: run 'nixcrate init' first, then 'nixcrate hashes'")
    ws = workspace.load(root)
    cfg = config_mod.load(root)
    status = git_deps.status(ws.lock, cfg.git_hashes)
    if not status.missing:
        out.print(f"every git dependency of Cargo.lock has its hash ({len(status.hashes)})")
        return
    runner.which("nix-instantiate")
    found: dict[str, str] = {}
    for src in status.missing:
        err.print(f"prefetching {src.url} at {src.rev[:12]}", soft_wrap=True)
        try:
            proc = runner.run(src.prefetch_argv())
        except CommandFailed as exc:
            raise NixcrateError(
                f"Cargo.lock: cannot fetch {src.url} at {src.rev[:12]} ({error_summary(exc.stderr_tail)}): "
                "check the network and access to the repository, then rerun 'nixcrate hashes'"
            ) from None
        found[src.source] = git_deps.parse_prefetch(proc.stdout)
    config_mod.set_git_hashes(root, found)
    for source, value in sorted(found.items()):
        out.print(f"{value}  {source}", soft_wrap=True)
    out.print(f"wrote {len(found)} hash(es) to nixcrate.toml [git-hashes]: run 'nixcrate init' to put them in flake.nix")
