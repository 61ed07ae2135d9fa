"""Workspace -> the Nix nixcrate generates.

nixcrate's Nix is three things (see docs in README, "What `nixcrate init` generates"):

- `nix/nixcrate/workspace.nix`: *data* about this workspace (crates, their directories and
  in-tree dependencies, each member's kind, bins and settings, the closures' inputs and env).
  `build_context` makes every decision and `render_data` lays it out: it grows with members
  plus edges, never with members times closure size.
- `nix/nixcrate/default.nix` and its scripts: nixcrate's *logic*, a Nix library shipped
  verbatim (nixcrate/nix/), which computes each package's sources from that graph.
- `flake.nix`: the user's. A starter is written only where there is none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from nixcrate import closure as closure_mod
from nixcrate import git_deps, host, native, resolve, sources
from nixcrate.errors import ConfigError, WorkspaceError
from nixcrate.workspace import MemberKind

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from nixcrate.config import CheckConfig, Config
    from nixcrate.workspace import Crate, Workspace

# Where nixcrate's own files live, relative to the workspace root.
GENERATED_DIR = "nix/nixcrate"
DATA_FILE = "workspace.nix"
# Shipped verbatim from nixcrate/nix/ (the library, its scripts, the flake-parts module).
LIBRARY_FILES = ("default.nix", "flake-module.nix", "lambda-package.sh", "lambda-verify.sh", "stable-vendor.sh", "zig-caches.sh")

# Files that are not a crate's source even when they sit inside its directory.
GENERATED = ("flake.nix", "flake.lock", "nixcrate.toml", ".github", "nix/nixcrate", "target")

SERVICE_CLOSURE = "deployCargoArtifacts"
LAMBDA_CLOSURE = "lambdaDeployCargoArtifacts"
LAMBDA_PREFIX = "deploy-lambda-"

_NIX_KEYWORDS = frozenset({"if", "then", "else", "assert", "with", "let", "in", "rec", "inherit", "or"})
_NIX_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_'-]*$")


# --------------------------------------------------------------------------- Nix syntax


def nix_str(value: str) -> str:
    """A Nix double-quoted string literal: every string from the user's files goes through here."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


def nix_attr(name: str) -> str:
    """An attribute name: bare when Nix allows it, quoted otherwise (`"2fa"`, `"in"`)."""
    return name if _NIX_ID.match(name) and name not in _NIX_KEYWORDS else nix_str(name)


class Expr(str):
    """A Nix expression rendered as it is (`pkgs.openssl`), where a plain str is a string."""

    __slots__ = ()


WIDTH = 100  # the column hand-written Nix keeps to


def to_nix(value: object, indent: int = 0, *, inline: bool = True, lead: int | None = None) -> str:
    """A Nix value laid out as hand-written Nix data: an attribute set or list that fits on its
    line stays on it (`{ path = "ai"; kind = "library"; }`), a longer one takes a line per
    attribute, and a long list of short items is packed into lines of WIDTH columns.
    inline=False: a list of several items takes one line each, as nixfmt lays it out.
    lead: the columns its line already holds before it (`  name = `); default: indent."""
    used = indent if lead is None else lead
    if isinstance(value, (list, tuple)):
        return _nix_list([to_nix(v, indent + 2, inline=inline) for v in value], indent, used, inline=inline)
    if isinstance(value, dict):
        pairs = [
            (name, to_nix(v, indent + 2, inline=inline, lead=indent + 2 + len(name) + 3))
            for name, v in ((nix_attr(k), v) for k, v in value.items())
        ]
        return _nix_attrs(pairs, indent, used, inline=inline)
    return _nix_scalar(value)


def _nix_scalar(value: object) -> str:
    if isinstance(value, Expr):
        return str(value)
    if isinstance(value, str):
        return nix_str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    raise TypeError(f"no Nix form for {value!r}")


def _fits(text: str, used: int) -> bool:
    return used + len(text) + 1 <= WIDTH and "\n" not in text


def _nix_list(items: list[str], indent: int, used: int, *, inline: bool) -> str:
    if not items:
        return "[ ]"
    pad = " " * indent
    one_line = f"[ {' '.join(items)} ]"
    if (inline or len(items) == 1) and _fits(one_line, used):
        return one_line
    if not inline or any("\n" in i for i in items):
        return "[\n" + "".join(f"{pad}  {i}\n" for i in items) + f"{pad}]"
    lines: list[str] = []
    for item in items:
        if lines and indent + 2 + len(lines[-1]) + 1 + len(item) <= WIDTH:
            lines[-1] += " " + item
        else:
            lines.append(item)
    return "[\n" + "".join(f"{pad}  {line}\n" for line in lines) + f"{pad}]"


def _nix_attrs(pairs: list[tuple[str, str]], indent: int, used: int, *, inline: bool) -> str:
    if not pairs:
        return "{ }"
    pad = " " * indent
    one_line = "{ " + " ".join(f"{k} = {v};" for k, v in pairs) + " }"
    if inline and _fits(one_line, used):
        return one_line
    return "{\n" + "".join(f"{pad}  {k} = {v};\n" for k, v in pairs) + f"{pad}}}"


# --------------------------------------------------------------------------- context


@dataclass(frozen=True, slots=True)
class Output:
    """One package nixcrate's library builds: a service, a standalone library or a handler's zip."""

    name: str  # the flake output's name
    member: str  # the member it builds
    has_bins: bool = True  # False for a standalone library's package (an empty $out)


@dataclass(frozen=True, slots=True)
class ClosureContext:
    """One deps-only derivation (a closure): its inputs and env, rendered as Nix."""

    attr: str
    native_build_inputs: tuple[str, ...]
    build_inputs: tuple[str, ...]
    env: tuple[tuple[str, str], ...]  # (name, Nix expression)
    native_applied: tuple[str, ...] = ()  # "crate: inputs (reason)", for init's report
    native_unknown: tuple[str, ...] = ()  # -sys crates the table does not know

    def data(self) -> dict[str, object]:
        return {
            "nativeBuildInputs": [Expr(x) for x in self.native_build_inputs],
            "buildInputs": [Expr(x) for x in self.build_inputs],
            "env": {k: Expr(v) for k, v in self.env},
        }


@dataclass(frozen=True, slots=True)
class FlakeContext:
    """What nixcrate generates for a workspace: the data file's content and what it means."""

    data: dict[str, object]  # workspace.nix, as Python values (see to_nix)
    services: tuple[Output, ...]  # services and standalone libraries, sorted
    lambdas: tuple[Output, ...]  # one per handler bin, sorted
    service_closure: ClosureContext | None
    lambda_closure: ClosureContext | None
    systems: tuple[str, ...]
    toolchain_file: str | None  # the pinned toolchain file, relative to the workspace root
    sources: Mapping[str, sources.CrateSource] = field(default_factory=dict)  # every crate's, by name
    # warnings: bins left out as cargo leaves them out (required-features the build does not enable)
    left_out_bins: tuple[str, ...] = ()
    unified: tuple[str, ...] = ()  # the services built by one command ([services] unify-features)
    report: closure_mod.ClosureReport | None = field(default=None, compare=False)  # what the closures compile


@dataclass(frozen=True, slots=True)
class Classified:
    """Members after nixcrate.toml: kind per member, the excluded ones dropped."""

    kinds: tuple[tuple[str, MemberKind], ...]
    excluded: tuple[str, ...]
    # Libraries no crate of the workspace depends on: nothing else compiles them, so they get
    # a package of their own on the services' closure (see packaged()).
    standalone: tuple[str, ...] = ()
    # Such libraries the build machine cannot build (a wasm cdylib, a Python extension module;
    # see host.py), left out unless nixcrate.toml says `package = true`.
    unpackaged: tuple[str, ...] = ()

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
        # `kind = "library"` set by hand on a crate with bins asks for no output: respected. A
        # crate of examples alone (no lib, no bin) has nothing a package would build: its
        # checks compile the examples.
        if kind is MemberKind.LIBRARY and override is None and crate.name not in depended_on and crate.lib is not None:
            standalone.append(crate.name)
    packaged = host.packaged(ws, config, standalone)
    return Classified(
        kinds=tuple(sorted(kinds)),
        excluded=tuple(sorted(config.exclude)),
        standalone=packaged,
        unpackaged=tuple(sorted(set(standalone) - set(packaged))),
    )


def _member_args(name: str, config: Config) -> list[str]:
    """What nixcrate.toml adds to every cargo command of a member (features, extra args)."""
    member = config.member(name)
    args = []
    if member.features:
        args += ["--features", ",".join(member.features)]
    return [*args, *member.cargo_extra_args]


# nixpkgs' lib.escapeShellArg leaves a word matching this as it is and single-quotes any other
_SHELL_SAFE = re.compile(r"[A-Za-z0-9,._+:@%/-]+")


def shell_args(words: list[str]) -> str:
    """lib.escapeShellArgs, byte for byte: the line the library builds from the same words."""
    return " ".join(w if _SHELL_SAFE.fullmatch(w) else "'" + w.replace("'", "'\\''") + "'" for w in words)


def cargo_args(name: str, config: Config) -> str:
    """The arguments every cargo command of a member gets (`--locked -p <name>` and its settings)."""
    return shell_args(["--locked", "-p", name, *_member_args(name, config)])


def unified_services(ws: Workspace, classified: Classified, config: Config, left: Mapping[str, tuple[LeftOutBin, ...]]) -> tuple[str, ...]:
    """The services built with one feature set ([services] unify-features), sorted: those with
    a bin to build (their builds are narrowed by `--bin`). Standalone libraries keep their own
    command (cargo's target filters cannot pick one selected package's library)."""
    if not config.unify_services:
        return ()
    return tuple(n for n in classified.of(MemberKind.SERVICE) if built_bins(ws.crate(n), left))


def unified_args(unified: Iterable[str], config: Config) -> str:
    """The library's `unifiedArgs`: every unified service selected, each one's features as
    `<service>/<feature>`, in one command (cargo unifies the features of what it selects)."""
    unified = tuple(unified)
    features = [f"{n}/{f}" for n in unified for f in config.member(n).features]
    return shell_args(["--locked", *(w for n in unified for w in ("-p", n)), *(["--features", ",".join(features)] if features else [])])


def service_lines(classified: Classified, config: Config, unified: tuple[str, ...]) -> list[str]:
    """The library's `lines.services`: the arguments of each command the services' closure runs."""
    lines = [unified_args(unified, config) if n in unified else cargo_args(n, config) for n in classified.packaged()]
    return list(dict.fromkeys(lines))


def _check_unified(ws: Workspace, unified: Iterable[str], config: Config, left: Mapping[str, tuple[LeftOutBin, ...]]) -> None:
    """What one command for every service cannot carry: a service's own cargo arguments, a
    feature of a dependency (`dep/feature` would need the service's name in front of it), and
    two services' binaries of one name (`--bin <name>` would build both)."""
    owners: dict[str, str] = {}
    for name in unified:
        for b in built_bins(ws.crate(name), left):
            if (other := owners.setdefault(b, name)) != name:
                raise WorkspaceError(
                    f"{ws.crate(name).manifest}: binary '{b}' is also a binary of {other}: with [services] unify-features "
                    f"each service's build picks its binaries by name (--bin {b}), so it would build both: rename one [[bin]], or remove unify-features"
                )
    for name in unified:
        member = config.member(name)
        if member.cargo_extra_args:
            raise ConfigError(
                f"nixcrate.toml: members.{name}.cargo-extra-args: a unified service cannot have cargo arguments of its own "
                "([services] unify-features builds every service with one command): remove them, or unify-features"
            )
        for feature in member.features:
            if "/" in feature:
                raise ConfigError(
                    f"nixcrate.toml: members.{name}.features: '{feature}' names a dependency's feature, which one command for "
                    "every service cannot carry ([services] unify-features): add it to a feature of the service, or remove unify-features"
                )


def _stubs_for(crate: Crate) -> tuple[str, ...]:
    """The target files, relative to the crate, cargo needs to load its manifest when a source
    leaves the crate's directory out: those it finds by convention (src/lib.rs, src/main.rs, a
    [[bin]] declared without a path) and its build script. See targets.py."""
    return tuple(crate.required_target_paths)


def workspace_stubs(ws: Workspace) -> tuple[str, ...]:
    """Every stub file relative to the workspace root, as the library's stubTargets creates them."""
    return tuple(sorted(s if c.path.as_posix() == "." else f"{c.path.as_posix()}/{s}" for c in ws.crates for s in _stubs_for(c)))


def _nested(crate: Crate, paths: list[str]) -> list[str]:
    """What a crate's directory holds that is not its source: the crates nested in it, and
    at the root, the files nixcrate and Nix write."""
    root = crate.path.as_posix()
    if root == ".":
        return sorted({*(p for p in paths if p != "."), *GENERATED})
    return [p for p in paths if p.startswith(root + "/")]


@dataclass(frozen=True, slots=True)
class LeftOutBin:
    """A bin whose `required-features` its member's build does not enable: cargo skips it."""

    manifest: str
    member: str
    bin: str
    missing: tuple[str, ...]

    @property
    def message(self) -> str:
        listed = ", ".join(f'"{f}"' for f in self.missing)
        return (
            f"{self.manifest}: bin '{self.bin}' needs required-features {listed}, which {self.member}'s build does not "
            f"enable: cargo leaves it out, and so does its package; add them to features under [members.{self.member}] "
            "in nixcrate.toml to build it"
        )


def left_out_bins(ws: Workspace, config: Config, names: Iterable[str], targets: Mapping[str, str] | None = None) -> dict[str, tuple[LeftOutBin, ...]]:
    """Per member, the bins `cargo build -p <member>` with its settings skips (nixcrate.resolve
    says which features are on; `dep/feature` entries need that feature of that dependency)."""
    graph = closure_mod.graph_for(ws)
    targets = targets or {}
    out: dict[str, tuple[LeftOutBin, ...]] = {}
    for name in names:
        crate = ws.crate(name)
        needing = [b for b in crate.bins if b.required_features]
        if not needing:
            continue
        request = build_requests(config, [name])[name]
        res = graph.resolver(targets.get(name, resolve.HOST)).resolve([request])
        key = f"{crate.name} {crate.version}"
        own = next((set(f) for k, host, f in res.features if k == key and not host), set())
        dep_features = {(k.split(" ", 1)[0], f) for k, _host, fs in res.features for f in fs}
        packages = {d.table_key: d.name for d in crate.deps if d.kind != "dev"}
        left = []
        for b in needing:
            missing = tuple(
                f
                for f in b.required_features
                if not (
                    (packages.get(f.split("/", 1)[0].rstrip("?"), ""), f.split("/", 1)[1]) in dep_features
                    if "/" in f
                    else f in own
                )
            )
            if missing:
                left.append(LeftOutBin(crate.manifest.as_posix(), name, b.name, missing))
        if left:
            out[name] = tuple(left)
    return out


def built_bins(crate: Crate, left: Mapping[str, tuple[LeftOutBin, ...]]) -> tuple[str, ...]:
    skipped = {x.bin for x in left.get(crate.name, ())}
    return tuple(b.name for b in crate.bins if b.name not in skipped)


def _member_entry(crate: Crate, kind: MemberKind, config: Config, classified: Classified, left: Mapping[str, tuple[LeftOutBin, ...]]) -> dict[str, object]:
    """What nixcrate.toml and the classification say of a member, for its crate entry."""
    member = config.member(crate.name)
    entry: dict[str, object] = {"kind": kind.value}
    if crate.name in classified.standalone:
        entry["package"] = True
    if crate.name in classified.unpackaged:
        entry["leftOut"] = True  # the build machine cannot build it: no package, no checks
    if kind is not MemberKind.LIBRARY:
        entry["bins"] = list(built_bins(crate, left))
    if member.features:
        entry["features"] = list(member.features)
    if member.cargo_extra_args:
        entry["cargoExtraArgs"] = list(member.cargo_extra_args)
    if kind is MemberKind.LAMBDA:
        entry["arch"] = member.arch
        if member.include:
            entry["include"] = [p.strip("/") for p in member.include]
    return entry


def _checks_data(checks: CheckConfig, *, nextest: bool) -> dict[str, object]:
    """A member's clippy and test checks (null: none): the arguments of each, and `deps`, those
    of the line checkCargoArtifacts compiles its dependencies with: the cargo side of them
    (before `--`), as the check's cargo needs the same artifacts."""

    def cargo_side(words: tuple[str, ...], dropped: frozenset[str]) -> list[str]:
        cut = words.index("--") if "--" in words else len(words)
        return [w for w in words[:cut] if w not in dropped]

    return {
        "clippy": {"args": list(checks.clippy_words()), "deps": cargo_side(checks.clippy_args, _CLIPPY_ONLY)} if checks.clippy else None,
        # nextest's own options are not cargo test's: its build line keeps cargo's defaults
        "test": {"args": list(checks.test_args), "deps": [] if nextest else cargo_side(checks.test_args, _TEST_RUN_ONLY)} if checks.test else None,
    }


# Arguments of `cargo clippy` that `cargo check` refuses, and of `cargo test` that `--no-run` refuses.
_CLIPPY_ONLY = frozenset({"--no-deps", "--fix", "--allow-dirty", "--allow-staged", "--allow-no-vcs", "--broken-code"})
_TEST_RUN_ONLY = frozenset({"--doc"})


def _crates_data(
    ws: Workspace,
    config: Config,
    classified: Classified,
    crate_sources: Mapping[str, sources.CrateSource],
    left: Mapping[str, tuple[LeftOutBin, ...]],
) -> dict[str, object]:
    graph = closure_mod.graph_for(ws)
    default_checks = config.checks
    paths = sorted(c.path.as_posix() for c in ws.crates)
    kinds = dict(classified.kinds)
    data: dict[str, object] = {}
    for crate in sorted(ws.crates, key=lambda c: c.name):
        normal, dev = graph.direct_in_tree(crate)
        entry: dict[str, object] = {"path": crate.path.as_posix()}
        kind = kinds.get(crate.name)
        if kind is not None:
            entry |= _member_entry(crate, kind, config, classified, left)
        if normal:
            entry["deps"] = list(normal)
        if dev:
            entry["devDeps"] = list(dev)
        source = crate_sources[crate.name]
        entry["src"] = list(source.src)
        if source.check_src:
            entry["checkSrc"] = list(source.check_src)
        if nested := _nested(crate, paths):
            entry["exclude"] = nested
        if kind is not None and (checks := config.checks_for(crate.name)) != default_checks:
            entry["checks"] = _checks_data(checks, nextest=ws.nextest_config is not None)
        if stubs := _stubs_for(crate):
            entry["stubs"] = list(stubs)
        data[crate.name] = entry
    return data


def build_requests(config: Config, names: Iterable[str], *, checks: bool = False) -> dict[str, resolve.Request]:
    """How each member's cargo command asks for it (`--features`, cargo-extra-args), for
    nixcrate.resolve; checks: as its checks do (their arguments, its dev-dependencies)."""
    out = {}
    for name in names:
        m = config.member(name)
        words = m.cargo_extra_args
        if checks:
            c = config.checks_for(name)
            # each check's cargo side (what follows `--` is clippy's or the test binary's)
            words = (*words, *_cargo_words(c.clippy_args if c.clippy else ()), *_cargo_words(c.test_args if c.test else ()))
        out[name] = resolve.Request.from_args(name, m.features, words, dev=checks)
    return out


def _cargo_words(words: tuple[str, ...]) -> tuple[str, ...]:
    return words[: words.index("--")] if "--" in words else words


def lambda_targets(config: Config, handlers: Iterable[str]) -> dict[str, str]:
    """Each handler's target triple (cargo-zigbuild's, without the glibc suffix)."""
    from nixcrate import lambda_pkg  # noqa: PLC0415

    return {n: lambda_pkg.get_arch(config.member(n).arch).triple for n in handlers}


def analyse(
    ws: Workspace, config: Config, services: Iterable[str], handlers: Iterable[str], unified: Iterable[str] = ()
) -> closure_mod.ClosureReport:
    """The services' and the handlers' closures as their builds compile them (unified: the
    services that share one command)."""
    services, handlers = tuple(services), tuple(handlers)
    return closure_mod.analyse(
        ws,
        [ws.crate(n) for n in services],
        [ws.crate(n) for n in handlers],
        build_requests(config, (*services, *handlers)),
        lambda_targets(config, handlers),
        unified=tuple(unified),
    )


def _renamed_in_tree(ws: Workspace) -> list[str]:
    """Dependency keys that name an in-tree crate under another name (`codes = { package =
    "errs", path = ... }`): the closures drop their version requirements too."""
    names = {c.name for c in ws.crates}
    return sorted({d.key for c in ws.crates for d in c.deps if d.key and (d.path is not None or d.name in names) and d.key not in names})


def _native(closure: closure_mod.Closure, ws: Workspace, config: Config, *, lambda_closure: bool) -> native.NativeRequirements:
    """The native inputs of the crates in this closure only (a handler never gets a service's)."""
    return native.requirements_for(
        closure.crate_names,
        lambda_closure=lambda_closure,
        overrides=config.native,
        links=native.links_signal(ws),
    )


def _env_pairs(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, nix_str(v)) for k, v in pairs))


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


def closure_context(
    attr: str,
    members: tuple[str, ...],
    closure: closure_mod.Closure,
    ws: Workspace,
    config: Config,
    *,
    lambda_closure: bool,
    extra_env: Mapping[str, str] | None = None,
) -> ClosureContext:
    """A closure's inputs and env: the native table's for its crates, nixcrate.toml's for the
    closure ([services] / [lambda]) and for its members. Packages reusing it get the same."""
    req = _native(closure, ws, config, lambda_closure=lambda_closure)
    # Table inputs read `(pkgs.x or null)`: a package set lacking one (an older or trimmed
    # nixpkgs) skips it instead of failing evaluation; mkDerivation drops nulls. Inputs the
    # user names in nixcrate.toml stay strict, so a typo is an error.
    n_nbi = tuple(f"({x} or null)" for x in req.nix_native_build_inputs())
    n_bi = tuple(f"({x} or null)" for x in req.nix_build_inputs())
    m_nbi, m_bi, m_env = _member_inputs(members, config)
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
    extra = {k: nix_str(v) for k, v in (extra_env or {}).items()}
    env = dict(req.nix_env()) | extra | c_env | dict(m_env)
    return ClosureContext(
        attr=attr,
        native_build_inputs=tuple(dict.fromkeys((*n_nbi, *c_nbi, *m_nbi))),
        build_inputs=tuple(dict.fromkeys((*n_bi, *c_bi, *m_bi))),
        env=tuple(sorted(env.items())),
        native_applied=tuple(
            f"{a.crate}: {', '.join((*a.native_build_inputs, *a.build_inputs, *(k for k, _ in a.env)))} ({a.reason})" for a in req.applied
        ),
        native_unknown=tuple(u.message for u in req.unknown),
    )


def _check_output_names(
    ws: Workspace, services: tuple[str, ...], handlers: tuple[str, ...], left: Mapping[str, tuple[LeftOutBin, ...]]
) -> tuple[Output, ...]:
    """The handlers' outputs, one per bin. A service named like another output would be
    silently shadowed (`servicePackages // lambdaPackages`): an error instead."""
    taken = {SERVICE_CLOSURE: "the services' deps closure", LAMBDA_CLOSURE: "the handlers' deps closure"}
    owner: dict[str, str] = {}
    outputs = []
    for name in handlers:
        crate = ws.crate(name)
        for bin_name in built_bins(crate, left):
            out_name = LAMBDA_PREFIX + bin_name
            if out_name in owner:
                raise WorkspaceError(
                    f"{crate.manifest}: handler binary '{bin_name}' is also a binary of {owner[out_name]}: "
                    f"both would be {out_name}, rename one [[bin]]"
                )
            owner[out_name] = name
            taken[out_name] = f"handler {name}'s bin {bin_name}"
            outputs.append(Output(out_name, name))
    for name in services:
        if name in taken:
            raise WorkspaceError(
                f"{ws.crate(name).manifest}: package name '{name}' is also the flake output of {taken[name]}: rename the package"
            )
    return tuple(sorted(outputs, key=lambda o: o.name))


def build_context(ws: Workspace, config: Config, classified: Classified | None = None) -> FlakeContext:
    """Every decision about the workspace (its `report`: what the closures compile)."""
    from nixcrate import lambda_pkg  # noqa: PLC0415 - it imports pyelftools lazily, but is large

    classified = classified or classify(ws, config)
    services = classified.packaged()
    handlers = classified.of(MemberKind.LAMBDA)
    if not services and not handlers:
        raise WorkspaceError(
            "Cargo.toml: nothing to build: no member is a service, a Lambda handler or a library no other crate depends on "
            "(after exclude and package = false): add a bin target or a library nothing depends on, or un-exclude a member in nixcrate.toml"
        )
    left = left_out_bins(ws, config, (*classified.of(MemberKind.SERVICE), *handlers), lambda_targets(config, handlers))
    unified = unified_services(ws, classified, config, left)
    _check_unified(ws, unified, config, left)
    lambda_outputs = _check_output_names(ws, services, handlers, left)
    for name in handlers:
        lambda_pkg.zig_target(config.member(name).arch, config.lambda_glibc)  # a bad arch or pin: one-line error
    report = analyse(ws, config, services, handlers, unified)

    service_closure = None
    if services:
        opt = {"CARGO_PROFILE_RELEASE_OPT_LEVEL": config.service_opt_level} if config.service_opt_level else {}
        service_closure = closure_context(SERVICE_CLOSURE, services, report.services, ws, config, lambda_closure=False, extra_env=opt)
    lambda_closure = None
    if handlers:
        env: dict[str, str] = {}
        for arch in sorted({config.member(n).arch for n in handlers}):
            env.update(lambda_pkg.build_env(arch, config.lambda_opt_level))
        lambda_closure = closure_context(LAMBDA_CLOSURE, handlers, report.lambdas, ws, config, lambda_closure=True, extra_env=env)

    checks_closure = _checks_closure(ws, config, classified, service_closure)
    toolchain = _toolchain(ws, config, handlers)
    closures: dict[str, object] = {}
    if service_closure is not None:
        closures["services"] = service_closure.data() | ({"unify": True} if unified else {})
    if lambda_closure is not None:
        closures["lambdas"] = lambda_closure.data() | {
            "glibc": config.lambda_glibc,
            "profileDir": config.lambdas.profile_dir,
        }
    closures["checks"] = checks_closure.data() | {"chained": service_closure is not None and not config.checks_closure}
    crate_sources = sources.compute(ws, config, GENERATED)
    clippy_configs, rustfmt_configs = sources.lint_configs(ws)
    data: dict[str, object] = {
        "crates": _crates_data(ws, config, classified, crate_sources, left),
        "closures": closures,
        "cargoConfigs": [p.as_posix() for p in ws.cargo_configs],
        "patchPaths": [p.as_posix() for p in ws.patch_paths],
        "patchManifests": [p.as_posix() for p in ws.patch_manifests],
        "renamedDependencies": _renamed_in_tree(ws),
        "nextestConfig": ws.nextest_config.as_posix() if ws.nextest_config else None,
        "checks": {
            "fmt": config.fmt_check,
            "lambdaVerify": config.lambda_verify_check,
            "members": _checks_data(config.checks, nextest=ws.nextest_config is not None),
            "clippyConfigs": list(clippy_configs),
            "rustfmtConfigs": list(rustfmt_configs),
        },
        "gitHashes": dict(git_deps.status(ws.lock, config.git_hashes).hashes),
        "toolchain": toolchain,
        "registries": _registries_data(config),
    }
    return FlakeContext(
        data=data,
        services=tuple(Output(n, n, has_bins=n not in classified.standalone) for n in services),
        lambdas=lambda_outputs,
        service_closure=service_closure,
        lambda_closure=lambda_closure,
        systems=config.systems,
        toolchain_file=toolchain["file"] if toolchain else None,  # type: ignore[index]
        sources=crate_sources,
        left_out_bins=tuple(x.message for name in sorted(left) for x in left[name]),
        unified=unified,
        report=report,
    )


def _registries_data(config: Config) -> dict[str, object]:
    """[registries] for the library: the lock source crane looks a crate's `dl` up by, the index
    cargo's configuration names (crane's source replacement), and the variable that gives
    cargo in the build the index of a `registry = "<name>"` dependency."""
    return {
        name: {
            "source": r.index,
            "index": r.cargo_index,
            "dl": r.dl,
            "indexVariable": "CARGO_REGISTRIES_" + re.sub(r"[^A-Z0-9_]", "_", name.upper()) + "_INDEX",
        }
        for name, r in config.registries
    }


def _checks_closure(ws: Workspace, config: Config, classified: Classified, service_closure: ClosureContext | None) -> ClosureContext:
    """The closure the checks reuse. Chained on the deploy closure by default: the deploy
    closure's inputs and env first and unchanged, so its rlibs stay fresh; with `[checks]
    closure = true`, standalone in the dev profile."""
    members = tuple(n for n in classified.of_any() if n not in classified.unpackaged)
    graph = closure_mod.graph_for(ws)
    everything = closure_mod.resolved_closure(graph, build_requests(config, members, checks=True).values())
    extra = {"CARGO_PROFILE": "dev"} if config.checks_closure else None
    base = closure_context("checkCargoArtifacts", members, everything, ws, config, lambda_closure=False, extra_env=extra)
    if service_closure is None or config.checks_closure:
        return base
    return replace(
        base,
        native_build_inputs=tuple(dict.fromkeys((*service_closure.native_build_inputs, *base.native_build_inputs))),
        build_inputs=tuple(dict.fromkeys((*service_closure.build_inputs, *base.build_inputs))),
        env=tuple(sorted((dict(base.env) | dict(service_closure.env)).items())),
    )


def _toolchain(ws: Workspace, config: Config, handlers: tuple[str, ...]) -> dict[str, object] | None:
    from nixcrate import toolchain as toolchain_mod  # noqa: PLC0415

    # Every std a handler links for; services build for the host, whose std rust-overlay adds.
    link_targets: set[str] = set()
    if handlers:
        from nixcrate import lambda_pkg  # noqa: PLC0415

        link_targets = {lambda_pkg.get_arch(config.member(n).arch).triple for n in handlers}
    choice = toolchain_mod.choose(config.toolchain, ws.toolchain_file, ws.root, link_targets=link_targets, with_checks=True)
    if choice is None:
        return None
    return {
        "file": choice.file.path.as_posix(),
        "channel": choice.file.channel,
        "extraTargets": list(choice.extra_targets),
        "extraComponents": list(choice.extra_components),
    }


# --------------------------------------------------------------------------- rendering


def templates_dir() -> Path:
    """The shipped templates: inside the wheel (nixcrate.templates) or templates/ of a checkout."""
    checkout = Path(__file__).resolve().parent.parent / "templates"
    if (checkout / "workspace.nix.j2").is_file():
        return checkout
    return Path(str(resources.files("nixcrate.templates")))


def _environment():  # type: ignore[no-untyped-def]  # jinja2 is imported lazily: `lambda verify` never needs it
    import jinja2  # noqa: PLC0415

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - Nix, not HTML; values are escaped by nix_str
    )
    env.filters["nix"] = to_nix
    env.filters["nix_str"] = nix_str
    return env


def render_data(context: FlakeContext) -> str:
    """nix/nixcrate/workspace.nix (without the header)."""
    return str(_environment().get_template("workspace.nix.j2").render(d=context.data))


def render_starter(context: FlakeContext) -> str:
    """The starter flake.nix, written only where the workspace has none: the user's from then on."""
    from nixcrate import project  # noqa: PLC0415

    template = _environment().get_template("flake.nix.j2")
    return str(template.render(ctx=context, dir=GENERATED_DIR, nixcrate_url=project.flake_url()))


def library_files() -> dict[str, str]:
    """nixcrate's Nix library and scripts, as shipped: file name -> text."""
    base = resources.files("nixcrate") / "nix"
    return {name: (base / name).read_text(encoding="utf-8") for name in LIBRARY_FILES}
