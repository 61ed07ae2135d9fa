"""`checks.<system>`: clippy, tests, rustfmt and the handlers' verify, reusing a closure.

Which closure the checks reuse, and why:

- Clippy runs `cargo clippy` (check mode: metadata only, a separate cargo unit from the
  rlib `cargo build` leaves) with `--all-targets` (tests and examples too, so
  dev-dependencies); tests run `cargo test` (dev-dependencies, whose features can unify with
  the normal ones). The deploy closure (`cargo build --release -p <service>`) has none of
  that, so a check run on it alone would compile dependencies again.
- Default: `checkCargoArtifacts`, a deps-only derivation chained on `deployCargoArtifacts`
  (it starts from that target/ directory) running, per member, the very commands its checks
  run: `check --all-targets` and `test --no-run`. Release profile and the services' inputs
  and env, as the deploy closure: every rlib the deploy closure built is reused, only check
  metadata, dev-dependencies and dev-unified feature variants are compiled. Deploy builds do
  not wait for it.
- `[checks] closure = true`: the same commands in a standalone closure in the dev profile
  (a second full dependency build; checks then need no release build, and tests keep
  debug assertions).

One cargo invocation per member, as in the deploy closure: `--workspace` would unify
features across members and leave each member's own check recompiling (crane#396).
Handlers' checks run natively (host target): a glibc-pinned zigbuild cannot run tests.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from nixcrate import closure as closure_mod
from nixcrate import flake_gen as fg

if TYPE_CHECKING:
    from nixcrate.config import Config
    from nixcrate.workspace import Crate, Workspace

CLOSURE_ATTR = "checkCargoArtifacts"
CLIPPY_EXTRA_ARGS = "--all-targets -- --deny warnings"
CLOSURE_CHECK_ARGS = "--all-targets"
CLOSURE_TEST_ARGS = "--no-run"


@dataclass(frozen=True, slots=True)
class CheckOutput:
    """One check: clippy or the tests of one member."""

    attr: str  # rendered check name: clippy-<member>, test-<member>
    name: str
    function: str  # crane function: cargoClippy | cargoTest | cargoNextest
    member: str
    pname: str
    version: str
    cargo_extra_args: str  # rendered
    extra: tuple[tuple[str, str], ...]  # (attribute, rendered value) for the crane function
    crates: tuple[str, ...]
    command: str  # what crane runs, unrendered (cargoWithProfile ...): for the tests that run it


@dataclass(frozen=True, slots=True)
class ChecksContext:
    """`checks.<system>`: the closure the checks reuse and the checks themselves."""

    closure: fg.ClosureContext
    chained_on: str  # "deployCargoArtifacts" or "null"
    outputs: tuple[CheckOutput, ...]
    lambda_checks: tuple[tuple[str, str], ...]  # (rendered check attr, rendered package attr)


def _sources(ws: Workspace, crate: Crate, graph: closure_mod.LockGraph) -> tuple[str, ...]:
    """A member's check source: what its tests compile (its dev-dependencies' crates too)."""
    compiled = graph.path_closure(crate, dev=True)
    return fg.crate_filesets(compiled, ws)  # one rule for every source


def closure_commands(cargo_args: dict[str, str]) -> list[str]:
    """The checks closure's cargo commands: each member's check and test, with its cargo args."""
    lines = []
    for args in cargo_args.values():
        lines.append(f"cargoWithProfile check {args} {CLOSURE_CHECK_ARGS}")
        lines.append(f"cargoWithProfile test {args} {CLOSURE_TEST_ARGS}")
    return lines


def build(
    ws: Workspace,
    config: Config,
    members: tuple[str, ...],
    service_closure: fg.ClosureContext | None,
    lambda_outputs: tuple[fg.Output, ...],
) -> ChecksContext:
    graph = closure_mod.graph_for(ws)
    crates = [ws.crate(n) for n in members]
    everything = closure_mod.closure_of(graph, crates)
    cargo_args = {name: fg._cargo_args(name, config) for name in members}  # noqa: SLF001 - twice per member below
    chained = service_closure is not None and not config.checks_closure
    extra_env: tuple[tuple[str, str], ...] = ()
    if config.checks_closure:
        extra_env = (("CARGO_PROFILE", fg.nix_str("dev")),)
    base = fg._closure_context(  # noqa: SLF001
        CLOSURE_ATTR, "checks", members, closure_commands(cargo_args), everything, ws, config,
        lambda_closure=False, extra_env=extra_env,
    )
    if chained:
        assert service_closure is not None
        # The deploy closure's inputs and env first and unchanged: its rlibs stay fresh.
        base = fg.ClosureContext(
            attr=base.attr,
            pname=base.pname,
            commands=base.commands,
            members=base.members,
            native_build_inputs=tuple(dict.fromkeys((*service_closure.native_build_inputs, *base.native_build_inputs))),
            build_inputs=tuple(dict.fromkeys((*service_closure.build_inputs, *base.build_inputs))),
            env=tuple(sorted((dict(base.env) | dict(service_closure.env)).items())),
            native_applied=base.native_applied,
            native_unknown=base.native_unknown,
        )
    nextest = ws.nextest_config is not None  # the workspace runs its tests with cargo-nextest
    outputs: list[CheckOutput] = []
    for name, crate in zip(members, crates, strict=True):
        filesets = _sources(ws, crate, graph)
        args = cargo_args[name]
        common = {
            "member": name,
            "pname": fg.nix_str(name),
            "version": fg.nix_str(crate.version),
            "cargo_extra_args": fg.nix_str(args),
            "crates": filesets,
        }
        outputs.append(
            CheckOutput(
                attr=fg.nix_attr(f"clippy-{name}"),
                name=f"clippy-{name}",
                function="cargoClippy",
                extra=(("cargoClippyExtraArgs", fg.nix_str(CLIPPY_EXTRA_ARGS)),),
                command=f"cargoWithProfile clippy {args} {CLIPPY_EXTRA_ARGS}",
                **common,  # type: ignore[arg-type]
            )
        )
        if nextest:
            test = CheckOutput(
                attr=fg.nix_attr(f"nextest-{name}"),
                name=f"nextest-{name}",
                function="cargoNextest",
                extra=(),
                # crane: cargo nextest run ${CARGO_PROFILE:+--cargo-profile $CARGO_PROFILE} <cargoExtraArgs>
                command=f"cargo nextest run ${{CARGO_PROFILE:+--cargo-profile $CARGO_PROFILE}} {args}",
                **common,  # type: ignore[arg-type]
            )
        else:
            test = CheckOutput(
                attr=fg.nix_attr(f"test-{name}"),
                name=f"test-{name}",
                function="cargoTest",
                extra=(),
                command=f"cargoWithProfile test {args}",
                **common,  # type: ignore[arg-type]
            )
        if ws.nextest_config is not None:
            test = replace(test, crates=(*test.crates, fg.nix_path(ws.nextest_config)))
        outputs.append(test)
    lambda_checks = tuple(
        (fg.nix_attr("lambda-verify-" + o.name.removeprefix(fg.LAMBDA_PREFIX)), o.attr) for o in lambda_outputs
    )
    return ChecksContext(
        closure=base,
        chained_on=service_closure.attr if chained and service_closure is not None else "null",
        outputs=tuple(sorted(outputs, key=lambda o: o.name)),
        lambda_checks=lambda_checks,
    )
