"""`nixcrate init`: read the workspace, decide, render everything, then write it.

Nothing is written until every file has been rendered and every check has passed;
`--check` renders and compares without writing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nixcrate import closure as closure_mod
from nixcrate import config as config_mod
from nixcrate import files, flake_gen, git_deps, workspace
from nixcrate.errors import NixcrateError, OutOfDate
from nixcrate.workspace import MemberKind

if TYPE_CHECKING:
    from pathlib import Path

    from nixcrate.closure import ClosureReport
    from nixcrate.flake_gen import Classified, FlakeContext

FLAKE = "flake.nix"


@dataclass(frozen=True, slots=True)
class InitResult:
    """What `nixcrate init` did, for the CLI to report."""

    root: Path
    ws: workspace.Workspace
    classified: Classified
    context: FlakeContext
    report: ClosureReport
    actions: tuple[tuple[str, str], ...]  # (path, action)
    warnings: tuple[str, ...]
    native_applied: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (closure, descriptions)


def flake_text(ws: workspace.Workspace, config: config_mod.Config) -> tuple[str, Classified, FlakeContext, ClosureReport]:
    classified = flake_gen.classify(ws, config)
    report = closure_mod.analyse(
        ws,
        [ws.crate(n) for n in classified.packaged()],
        [ws.crate(n) for n in classified.of(MemberKind.LAMBDA)],
    )
    context = flake_gen.build_context(ws, config, classified, report)
    return files.with_header(flake_gen.render(context)), classified, context, report


def run_init(root: Path, *, check: bool = False, force: bool = False) -> InitResult:
    root = root.resolve()
    ws = workspace.load(root)
    config = config_mod.load(root)
    config_mod.check_against(config, ws)
    text, classified, context, report = flake_text(ws, config)
    kinds = dict(classified.kinds)

    flake_path = root / FLAKE
    if check:
        # bytes decoded leniently: a flake.nix that is not UTF-8 is out of date, not a crash
        current = flake_path.read_bytes().decode("utf-8", "replace") if flake_path.is_file() else None
        if current != text:
            raise OutOfDate(_drift_message(current, text))
        return InitResult(root, ws, classified, context, report, ((FLAKE, "up to date"),), ws.warnings)

    plans = [files.plan_generated(flake_path, text, force=force, display=FLAKE)]
    if not config.exists:
        all_kinds = {c.name: kinds.get(c.name, c.natural_kind()) for c in ws.members}
        plans.append(
            files.PlannedWrite(
                root / config_mod.FILENAME,
                config_mod.render_initial(ws, all_kinds),
                files.Action.CREATE,
                config_mod.FILENAME,
            )
        )
    if any(p.action is not files.Action.IDENTICAL for p in plans):
        files.check_writable(root, str(root))
    files.apply(plans)
    closures = [c for c in (context.service_closure, context.lambda_closure) if c is not None]
    hashes = git_deps.status(ws.lock, config.git_hashes)
    warnings = [
        *ws.warnings,
        *(m for c in closures for m in c.native_unknown),
        *(git_deps.missing_warning(src) for src in hashes.missing),
        *(f"nixcrate.toml: [git-hashes] \"{key}\" names no git source of Cargo.lock: remove it" for key in hashes.stale),
        *git_warnings(root, ws),
    ]
    return InitResult(
        root,
        ws,
        classified,
        context,
        report,
        tuple((p.display, p.action.value) for p in plans),
        tuple(dict.fromkeys(warnings)),
        tuple((c.attr, c.native_applied) for c in closures if c.native_applied),
    )


def _drift_message(current: str | None, wanted: str) -> str:
    if current is None:
        return f"{FLAKE}: missing: run 'nixcrate init' and commit it"
    old = current.splitlines()
    new = wanted.splitlines()
    import difflib  # noqa: PLC0415

    changed = [ln for ln in difflib.unified_diff(old, new, lineterm="", n=0) if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
    added = sum(1 for ln in changed if ln.startswith("+"))
    removed = len(changed) - added
    return f"{FLAKE}: out of date with the workspace ({added} line(s) to add, {removed} to remove): run 'nixcrate init' and commit the result"


def git_warnings(root: Path, ws: workspace.Workspace) -> list[str]:
    """Flakes in a git repository see only tracked files: name what is not tracked."""
    if not any((d / ".git").exists() for d in (root, *root.parents)):
        return []
    from nixcrate import runner  # noqa: PLC0415 - only repositories need a process

    try:
        # One `git ls-files` (paths relative to root; -z: names unquoted), not gitpython,
        # whose import alone added ~60 ms to every init in a repository.
        listed = runner.run(["git", "ls-files", "-z", "--", "."], cwd=root).stdout
    except (NixcrateError, OSError, ValueError):  # no git, not a work tree git trusts, undecodable names
        return []
    tracked = set(listed.split("\0"))
    wanted = [FLAKE, config_mod.FILENAME, "Cargo.toml", "Cargo.lock", *(c.manifest.as_posix() for c in ws.crates)]
    missing = [rel for rel in wanted if (root / rel).exists() and rel not in tracked]
    if not missing:
        return []
    shown = " ".join(missing[:6]) + (" …" if len(missing) > 6 else "")
    return [f"{len(missing)} file(s) the flake needs are not tracked by git, and a flake sees only tracked files: run 'git add {shown}'"]
