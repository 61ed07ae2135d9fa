"""Workspace -> FlakeContext -> flake.nix.

`build_context` makes every decision (which outputs, which files each source holds,
which cargo commands each closure runs); the template only lays the result out.
The cargo command lines are shared text: the same strings go into the flake and into
the tests that run them for real, so what is measured is what Nix will run.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nixcrate import closure as closure_mod
from nixcrate import git_deps
from nixcrate import native
from nixcrate.errors import WorkspaceError
from nixcrate.workspace import Crate, MemberKind

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import PurePosixPath

    from nixcrate.checks import ChecksContext
    from nixcrate.config import Config
    from nixcrate.workspace import Workspace

# Files nixcrate writes or that describe CI: never part of a package's source.
GENERATED = ("flake.nix", "flake.lock", "nixcrate.toml", ".github")

SERVICE_CLOSURE = "deployCargoArtifacts"
LAMBDA_CLOSURE = "lambdaDeployCargoArtifacts"
LAMBDA_PREFIX = "deploy-lambda-"

_NIX_KEYWORDS = frozenset({"if", "then", "else", "assert", "with", "let", "in", "rec", "inherit", "or"})
_NIX_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_'-]*$")
_NIX_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9._+-]+$")


# --------------------------------------------------------------------------- Nix syntax


def nix_str(value: str) -> str:
    """A Nix double-quoted string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


def nix_attr(name: str) -> str:
    """An attribute name: bare when Nix allows it, quoted otherwise (`"2fa"`, `"in"`)."""
    return name if _NIX_ID.match(name) and name not in _NIX_KEYWORDS else nix_str(name)


def nix_path(rel: PurePosixPath | str) -> str:
    """A path literal relative to the flake (`./crates/api`), or `(./. + "/odd dir")`."""
    text = str(rel)
    if text in ("", "."):
        return "./."
    if all(_NIX_PATH_SEGMENT.match(seg) for seg in text.split("/")):
        return f"./{text}"
    return f"(./. + {nix_str('/' + text)})"


def nix_list(items: Iterable[str], indent: int) -> str:
    """A Nix list of already-rendered items: `[ ]` when empty, one item a line otherwise."""
    items = list(items)
    if not items:
        return "[ ]"
    pad = " " * (indent + 2)
    return "[\n" + "".join(f"{pad}{item}\n" for item in items) + " " * indent + "]"


def nix_attrs(pairs: Iterable[tuple[str, str]], indent: int) -> str:
    """A Nix attribute set of (rendered name, rendered value): `{ }` when empty."""
    pairs = list(pairs)
    if not pairs:
        return "{ }"
    pad = " " * (indent + 2)
    return "{\n" + "".join(f"{pad}{k} = {v};\n" for k, v in pairs) + " " * indent + "}"


def nix_indented(text: str, indent: int) -> str:
    """Body of a Nix '' string: escaped, each line indented; ends with a newline."""
    escaped = text.replace("''", "'''").replace("${", "''${")
    pad = " " * indent
    lines = escaped.rstrip("\n").split("\n")
    return "".join((pad + line if line else "") + "\n" for line in lines)


# --------------------------------------------------------------------------- context


@dataclass(frozen=True, slots=True)
class Output:
    """One package of the flake: a service, a standalone library or a Lambda handler."""

    attr: str  # rendered attribute name
    name: str  # output name as the user types it
    pname: str
    version: str
    crates: tuple[str, ...]  # fileset expressions of the crate directories compiled
    member: str
    cargo_args: str = ""  # cargoExtraArgs, unrendered: what crane passes to cargo
    comment: str = ""
    has_bins: bool = True  # False for a standalone library's package (an empty $out)
    # Lambda handlers only
    build_command: str = ""
    binary: str = ""  # where the build command leaves the handler binary, from the source root
    package_shell: str = ""  # the packaging script's body: binary "$1", bootstrap.zip into "$2"
    package_script: str = ""  # the let-binding holding that script (shared by identical ones)
    check_shell: str = ""  # the verify script's body: its zip is "$1"
    check_script: str = ""  # the let-binding holding that script (shared by identical checks)

    @property
    def cargo_extra_args(self) -> str:
        """cargoExtraArgs, rendered for the flake."""
        return nix_str(self.cargo_args)


@dataclass(frozen=True, slots=True)
class ClosureContext:
    """One deps-only derivation (a closure) as the template renders it."""

    attr: str
    pname: str
    commands: str  # cargo command lines, one per member
    members: tuple[str, ...]
    native_build_inputs: tuple[str, ...]
    build_inputs: tuple[str, ...]
    env: tuple[tuple[str, str], ...]  # (name, Nix expression)
    prebuild: str = ""
    native_applied: tuple[str, ...] = ()  # "crate: inputs (reason)", for init's report
    native_unknown: tuple[str, ...] = ()  # -sys crates the table does not know


@dataclass(frozen=True, slots=True)
class ToolchainContext:
    """The pinned toolchain: rust-overlay's fromRustupToolchainFile on the workspace's file."""

    input_name: str
    input_url: str  # rendered
    file: str  # Nix path of rust-toolchain(.toml)
    display: str  # the file's path and channel, for the comment
    extra_targets: tuple[str, ...]  # rendered; std the flake links for beyond the file's targets
    extra_components: tuple[str, ...]  # rendered; what the checks need beyond the file's profile


@dataclass(frozen=True, slots=True)
class FlakeContext:
    """Everything flake.nix.j2 renders: every decision made, values rendered."""

    description: str
    systems: tuple[str, ...]
    manifests: tuple[str, ...]  # fileset expressions every source includes
    git_hashes: tuple[tuple[str, str], ...]  # (rendered key, rendered value)
    services: tuple[Output, ...]
    lambdas: tuple[Output, ...]
    service_closure: ClosureContext | None
    lambda_closure: ClosureContext | None
    stubs: tuple[str, ...] = ()  # rendered; see workspace_stubs
    packagers: tuple[tuple[str, str], ...] = ()  # (let-binding, script body) zipping the handlers
    verifiers: tuple[tuple[str, str], ...] = ()  # (let-binding, script body) of the handlers' install checks
    dev_packages: tuple[str, ...] = ()
    toolchain: ToolchainContext | None = None  # None: nixpkgs' rustc and cargo
    checks: ChecksContext | None = None


@dataclass(frozen=True, slots=True)
class Classified:
    """Members after nixcrate.toml: kind per member, the excluded ones dropped."""

    kinds: tuple[tuple[str, MemberKind], ...]
    excluded: tuple[str, ...]
    # Libraries no crate of the workspace depends on: nothing else compiles them, so they get
    # a package of their own on the services' closure (see packaged()).
    standalone: tuple[str, ...] = ()

    def of(self, kind: MemberKind) -> tuple[str, ...]:
        return tuple(n for n, k in self.kinds if k is kind)

    def packaged(self) -> tuple[str, ...]:
        """Members built by one buildPackage each on the services' closure: the services and
        the standalone libraries (so CI compiles them, and an edit to one rebuilds it alone)."""
        return tuple(sorted((*self.of(MemberKind.SERVICE), *self.standalone)))

    def of_any(self) -> tuple[str, ...]:
        """Every member left in the flake, libraries included (sorted)."""
        return tuple(n for n, _ in self.kinds)


def classify(ws: Workspace, config: Config) -> Classified:
    kinds = []
    standalone = []
    depended_on = {d.name for c in ws.crates for d in c.deps if d.path is not None}
    for crate in ws.members:
        if crate.name in config.exclude:
            continue
        override = config.member(crate.name).kind
        kind = override or crate.natural_kind()
        if kind is not MemberKind.LIBRARY and not crate.bins:
            raise WorkspaceError(
                f"nixcrate.toml: members.{crate.name}.kind is '{kind.value}' but {crate.manifest} has no bin target: "
                "add src/main.rs or a [[bin]], or remove the override"
            )
        kinds.append((crate.name, kind))
        # `kind = "library"` set by hand on a crate with bins asks for no output: respected.
        if kind is MemberKind.LIBRARY and override is None and crate.name not in depended_on:
            standalone.append(crate.name)
    return Classified(kinds=tuple(sorted(kinds)), excluded=tuple(sorted(config.exclude)), standalone=tuple(sorted(standalone)))


# id(ws) -> (ws, {crate name: fileset expression}, crate paths); every output of a workspace asks
# for the same crates again, and a 100-member workspace has thousands of (output, crate) pairs.
_FILESETS: dict[int, tuple[Workspace, dict[str, str], list[str]]] = {}


def crate_filesets(crates: Iterable[Crate], ws: Workspace) -> tuple[str, ...]:
    """Each crate's directory, minus crates nested inside it (and generated files at the root)."""
    cached = _FILESETS.get(id(ws))
    if cached is None or cached[0] is not ws:
        _FILESETS.clear()
        cached = (ws, {}, sorted(c.path.as_posix() for c in ws.crates if c.path.as_posix() != "."))
        _FILESETS[id(ws)] = cached
    _, table, paths = cached
    out = []
    for crate in crates:
        expr = table.get(crate.name)
        if expr is None:
            expr = table[crate.name] = _compute_fileset(crate, ws, paths)
        out.append(expr)
    return tuple(out)


def _compute_fileset(crate: Crate, ws: Workspace, paths: list[str]) -> str:
    here = nix_path(crate.path)
    root = crate.path.as_posix()
    prefix = "" if root == "." else root + "/"
    # paths is sorted: the crates nested in this one are the run that starts with prefix
    start = bisect.bisect_left(paths, prefix)
    end = bisect.bisect_left(paths, prefix + "\U0010ffff") if prefix else len(paths)
    nested = [p for p in paths[start:end] if p != root]
    minus = [nix_path(p) for p in nested]
    if root == ".":
        minus += [f"(lib.fileset.maybeMissing {nix_path(g)})" for g in (*GENERATED, "target")]
    if not minus:
        return here
    return f"(lib.fileset.difference {here} (lib.fileset.unions [ {' '.join(minus)} ]))"


def _stub_for(crate: Crate) -> str | None:
    """A target file that makes cargo accept the manifest when the crate's sources are absent."""
    if crate.declares_target:
        return None
    # Joined as text: the same string as PurePosixPath's `/` gives, at a fraction of its cost.
    target = "src/lib.rs" if crate.autolib else "src/main.rs"
    root = crate.path.as_posix()
    return target if root == "." else f"{root}/{target}"


def _member_args(name: str, config: Config) -> str:
    """What nixcrate.toml adds to every cargo command of a member (features, extra args)."""
    member = config.member(name)
    args = []
    if member.features:
        args += ["--features", ",".join(member.features)]
    if member.cargo_extra_args:
        args.append(member.cargo_extra_args)
    return " ".join(args)


def _cargo_args(name: str, config: Config) -> str:
    return " ".join(filter(None, ["--locked", "-p", name, _member_args(name, config)]))


def _sources(crate: Crate, graph: closure_mod.LockGraph, ws: Workspace) -> tuple[str, ...]:
    """Fileset expressions of the crates a package compiles."""
    return crate_filesets(graph.path_closure(crate), ws)


def workspace_stubs(ws: Workspace) -> tuple[str, ...]:
    """Target files of the crates whose manifest declares none: created in a package's
    source when that crate's directory is left out (see stubTargets in the template)."""
    return tuple(sorted(s for c in ws.crates if (s := _stub_for(c)) is not None))


def _extra_src(name: str, config: Config) -> tuple[str, ...]:
    return tuple(nix_path(p.strip("/")) for p in config.member(name).extra_src)


def _env_pairs(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, nix_str(v)) for k, v in pairs))


def _service_outputs(ws: Workspace, names: tuple[str, ...], config: Config, graph: closure_mod.LockGraph) -> tuple[Output, ...]:
    outs = []
    for name in names:
        crate = ws.crate(name)
        filesets = _sources(crate, graph, ws)
        if not crate.bins:
            comment = f"{crate.manifest}: a library no crate of the workspace depends on, built on its own"
        elif len(crate.bins) > 1:
            comment = f"{crate.manifest}: bin {', '.join(b.name for b in crate.bins)}"
        else:
            comment = ""
        outs.append(
            Output(
                attr=nix_attr(name),
                name=name,
                pname=nix_str(name),
                version=nix_str(crate.version),
                crates=filesets + _extra_src(name, config),
                member=name,
                cargo_args=_cargo_args(name, config),
                comment=comment,
                has_bins=bool(crate.bins),
            )
        )
    return tuple(outs)


def _lambda_outputs(ws: Workspace, names: tuple[str, ...], config: Config, graph: closure_mod.LockGraph) -> tuple[Output, ...]:
    from nixcrate import lambda_pkg  # noqa: PLC0415 - only workspaces with handlers need it

    outs = []
    seen: dict[str, str] = {}
    for name in names:
        crate = ws.crate(name)
        member = config.member(name)
        filesets = _sources(crate, graph, ws)
        for target in crate.bins:
            out_name = LAMBDA_PREFIX + target.name
            if out_name in seen:
                raise WorkspaceError(
                    f"{crate.manifest}: handler binary '{target.name}' is also a binary of {seen[out_name]}: "
                    f"both would be {out_name}, rename one [[bin]]"
                )
            seen[out_name] = name
            build = lambda_pkg.zigbuild_command(name, member.arch, config.lambda_glibc, _member_args(name, config), bin=target.name)
            outs.append(
                Output(
                    attr=nix_attr(out_name),
                    name=out_name,
                    pname=nix_str(out_name),
                    version=nix_str(crate.version),
                    crates=filesets + _extra_src(name, config) + tuple(nix_path(p.strip("/")) for p in member.include),
                    member=name,
                    cargo_args=_cargo_args(name, config),
                    comment=f"{crate.manifest}: bin {target.name}, {lambda_pkg.zig_target(member.arch, config.lambda_glibc)}",
                    build_command=build,
                    binary=lambda_pkg.binary_path(member.arch, target.name, config.lambdas.profile_dir),
                    package_shell=lambda_pkg.package_shell("$1", "$2", member.include),
                    check_shell=lambda_pkg.check_shell("$1", member.arch, config.lambda_glibc, member.include),
                )
            )
    return tuple(sorted(outs, key=lambda o: o.name))


def _share_scripts(outputs: tuple[Output, ...]) -> tuple[tuple[Output, ...], tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """One packaging script per distinct includes and one verify script per distinct (arch,
    glibc pin, includes): fifteen handlers of one kind share two scripts instead of holding
    thirty copies in the flake. Returns (outputs naming theirs, packagers, verifiers)."""
    import dataclasses  # noqa: PLC0415

    packagers = _script_names((o.package_shell for o in outputs), "lambdaPackage")
    verifiers = _script_names((o.check_shell for o in outputs), "lambdaVerify")
    shared = tuple(dataclasses.replace(o, package_script=packagers[o.package_shell], check_script=verifiers[o.check_shell]) for o in outputs)
    return shared, tuple((n, body) for body, n in packagers.items()), tuple((n, body) for body, n in verifiers.items())


def _script_names(bodies: Iterable[str], base: str) -> dict[str, str]:
    """The let-binding of each distinct script body: `base`, or base1, base2… when they differ."""
    distinct = list(dict.fromkeys(bodies))
    return {body: base if len(distinct) == 1 else f"{base}{i}" for i, body in enumerate(distinct, 1)}


def _native(closure: closure_mod.Closure, ws: Workspace, config: Config, *, lambda_closure: bool) -> native.NativeRequirements:
    """The native inputs of the crates in this closure only (a handler never gets a service's)."""
    return native.requirements_for(
        closure.crate_names,
        lambda_closure=lambda_closure,
        overrides=config.native,
        links=native.links_signal(ws),
    )


def _member_inputs(names: Iterable[str], config: Config) -> tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, str], ...]]:
    nbi: set[str] = set()
    bi: set[str] = set()
    env: dict[str, str] = {}
    for name in names:
        m = config.member(name)
        nbi.update(native.nix_attr(a) for a in m.native_build_inputs)
        bi.update(native.nix_attr(a) for a in m.build_inputs)
        env.update(m.env)
    return tuple(sorted(nbi)), tuple(sorted(bi)), _env_pairs(env.items())


def _closure_context(
    attr: str,
    pname: str,
    members: tuple[str, ...],
    commands: list[str],
    closure: closure_mod.Closure,
    ws: Workspace,
    config: Config,
    *,
    lambda_closure: bool,
    extra_native: tuple[str, ...] = (),
    extra_env: tuple[tuple[str, str], ...] = (),
    prebuild: str = "",
) -> ClosureContext:
    req = _native(closure, ws, config, lambda_closure=lambda_closure)
    # Table inputs read `(pkgs.x or null)`: a package set lacking one (an older or trimmed
    # nixpkgs) skips it instead of failing evaluation; mkDerivation drops nulls. Inputs the
    # user names in nixcrate.toml stay strict, so a typo is an error.
    n_nbi = tuple(f"({x} or null)" for x in req.nix_native_build_inputs())
    n_bi = tuple(f"({x} or null)" for x in req.nix_build_inputs())
    n_env = tuple(req.nix_env())
    m_nbi, m_bi, m_env = _member_inputs(members, config)
    # [services] / [lambda] of nixcrate.toml: the whole closure and every package reusing it
    cfg = config.lambdas if lambda_closure else config.services
    c_nbi = tuple(native.nix_attr(a) for a in cfg.native_build_inputs)
    c_bi = tuple(native.nix_attr(a) for a in cfg.build_inputs)
    c_env = dict(_env_pairs(cfg.env))
    if cfg.profile != "release":
        c_env["CARGO_PROFILE"] = nix_str(cfg.profile)  # crane's cargoWithProfile reads it
    # Set only when nixcrate.toml asks: otherwise the workspace's own [profile] decides.
    profile_env = "CARGO_PROFILE_" + cfg.profile.upper().replace("-", "_")
    if cfg.codegen_units is not None:
        c_env[f"{profile_env}_CODEGEN_UNITS"] = nix_str(str(cfg.codegen_units))
    if cfg.lto is not None:
        c_env[f"{profile_env}_LTO"] = nix_str(cfg.lto)
    env = dict(n_env) | dict(extra_env) | c_env | dict(m_env)
    return ClosureContext(
        attr=attr,
        pname=nix_str(pname),
        commands="\n".join(commands),
        members=members,
        native_build_inputs=tuple(dict.fromkeys((*extra_native, *n_nbi, *c_nbi, *m_nbi))),
        build_inputs=tuple(dict.fromkeys((*n_bi, *c_bi, *m_bi))),
        env=tuple(sorted(env.items())),
        prebuild=prebuild,
        native_applied=tuple(
            f"{a.crate}: {', '.join((*a.native_build_inputs, *a.build_inputs, *(k for k, _ in a.env)))} ({a.reason})" for a in req.applied
        ),
        native_unknown=tuple(u.message for u in req.unknown),
    )


def _check_output_names(ws: Workspace, services: tuple[str, ...], handlers: tuple[str, ...]) -> None:
    """A service named like another output would be a duplicate attribute (a Nix parse error) or
    silently shadowed by `servicePackages // lambdaPackages`."""
    taken = {SERVICE_CLOSURE: "the services' deps closure", LAMBDA_CLOSURE: "the handlers' deps closure"}
    for name in handlers:
        for target in ws.crate(name).bins:
            taken.setdefault(LAMBDA_PREFIX + target.name, f"handler {name}'s bin {target.name}")
    for name in services:
        if name in taken:
            raise WorkspaceError(
                f"{ws.crate(name).manifest}: package name '{name}' is also the flake output of {taken[name]}: rename the package"
            )


def build_context(
    ws: Workspace, config: Config, classified: Classified | None = None, report: closure_mod.ClosureReport | None = None
) -> FlakeContext:
    """report: closure_mod.analyse of the classified services and handlers, when the caller has it."""
    classified = classified or classify(ws, config)
    graph = closure_mod.graph_for(ws)
    services = classified.packaged()
    handlers = classified.of(MemberKind.LAMBDA)
    if not classified.of(MemberKind.SERVICE) and not handlers:
        raise WorkspaceError(
            "Cargo.toml: no member builds a service or a Lambda handler (none has a bin target): "
            "add one, or set members.<name>.kind in nixcrate.toml"
        )
    _check_output_names(ws, services, handlers)
    if report is None:
        report = closure_mod.analyse(ws, [ws.crate(n) for n in services], [ws.crate(n) for n in handlers])

    service_closure = None
    if services:
        commands = [f"cargoWithProfile build {_cargo_args(n, config)}" for n in services]
        env = (("CARGO_PROFILE_RELEASE_OPT_LEVEL", nix_str(config.service_opt_level)),) if config.service_opt_level else ()
        service_closure = _closure_context(
            SERVICE_CLOSURE, "deploy", services, commands, report.services, ws, config, lambda_closure=False, extra_env=env
        )
    lambda_closure = None
    if handlers:
        from nixcrate import lambda_pkg  # noqa: PLC0415

        commands = [
            lambda_pkg.zigbuild_command(
                n, config.member(n).arch, config.lambda_glibc, _member_args(n, config)
            )
            for n in handlers
        ]
        arches = sorted({config.member(n).arch for n in handlers})
        env: dict[str, str] = {}
        for arch in arches:
            env.update(lambda_pkg.build_env(arch, config.lambda_opt_level))
        lambda_closure = _closure_context(
            LAMBDA_CLOSURE,
            "lambda-deploy",
            handlers,
            commands,
            report.lambdas,
            ws,
            config,
            lambda_closure=True,
            extra_native=("pkgs.cargo-zigbuild", "pkgs.zig", "pkgs.zip"),
            extra_env=_env_pairs(env.items()),
            prebuild=lambda_pkg.prebuild_shell(),
        )

    lambda_outputs, packagers, verifiers = _share_scripts(_lambda_outputs(ws, handlers, config, graph) if handlers else ())
    from nixcrate import checks as checks_mod  # noqa: PLC0415 - it builds on this module

    checks = checks_mod.build(ws, config, classified.of_any(), service_closure, lambda_outputs)
    toolchain = _toolchain(ws, config, handlers)

    manifests = ["./Cargo.toml", "./Cargo.lock"]
    # c.manifest as text (c.path / "Cargo.toml" builds a PurePosixPath per crate, ~3 ms at 500)
    manifests += [nix_path(f"{root}/Cargo.toml") for c in ws.crates if (root := c.path.as_posix()) != "."]
    manifests += [nix_path(p) for p in ws.cargo_configs]
    name = ws.root.name or "workspace"
    return FlakeContext(
        description=nix_str(f"{name}: services and Lambda handlers built with crane (generated by nixcrate)"),
        systems=tuple(nix_str(s) for s in config.systems),
        manifests=tuple(manifests),
        git_hashes=tuple((nix_str(k), nix_str(v)) for k, v in git_deps.status(ws.lock, config.git_hashes).hashes),
        services=_service_outputs(ws, services, config, graph),
        lambdas=lambda_outputs,
        service_closure=service_closure,
        lambda_closure=lambda_closure,
        stubs=tuple(nix_str(st) for st in workspace_stubs(ws)),
        packagers=packagers,
        verifiers=verifiers,
        dev_packages=("pkgs.cargo-zigbuild", "pkgs.zig") if handlers else (),
        toolchain=toolchain,
        checks=checks,
    )


def _toolchain(ws: Workspace, config: Config, handlers: tuple[str, ...]) -> ToolchainContext | None:
    from nixcrate import toolchain as toolchain_mod  # noqa: PLC0415

    # Every std a handler links for; services build for the host, whose std rust-overlay adds.
    link_targets: set[str] = set()
    if handlers:
        from nixcrate import lambda_pkg  # noqa: PLC0415 - only workspaces with handlers need it

        link_targets = {lambda_pkg.get_arch(config.member(n).arch).triple for n in handlers}
    choice = toolchain_mod.choose(config.toolchain, ws.toolchain_file, ws.root, link_targets=link_targets, with_checks=True)
    if choice is None:
        return None
    return ToolchainContext(
        input_name=toolchain_mod.INPUT,
        input_url=nix_str(toolchain_mod.INPUT_URL),
        file=nix_path(choice.file.path),
        display=f"{choice.file.path} (channel {choice.file.channel})",
        extra_targets=tuple(nix_str(t) for t in choice.extra_targets),
        extra_components=tuple(nix_str(c) for c in choice.extra_components),
    )


# --------------------------------------------------------------------------- rendering


def templates_dir() -> Path:
    """The shipped templates: inside the wheel (nixcrate.templates) or templates/ of a checkout."""
    checkout = Path(__file__).resolve().parent.parent / "templates"
    if (checkout / "flake.nix.j2").is_file():
        return checkout
    import importlib.resources  # noqa: PLC0415

    return Path(str(importlib.resources.files("nixcrate.templates")))


def _environment():  # type: ignore[no-untyped-def]  # jinja2 is imported lazily: init's speed matters
    import jinja2  # noqa: PLC0415

    from nixcrate import template_cache  # noqa: PLC0415 - it imports jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        # compiled flake.nix.j2 from an earlier run; this module's source fingerprints the options and filters below
        bytecode_cache=template_cache.for_module(__file__),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - Nix, not HTML; values are escaped by nix_str
    )
    env.filters["nix_indented"] = nix_indented
    env.filters["nix_str"] = nix_str
    env.filters["nix_list"] = nix_list
    env.filters["nix_attrs"] = nix_attrs
    env.filters["tojson"] = json.dumps
    return env


def render(context: FlakeContext) -> str:
    return str(_environment().get_template("flake.nix.j2").render(ctx=context))
