"""Workspace + CI settings -> CiContext -> .github/workflows/nixcrate.yml.

`build_context` makes every decision (which jobs exist, which members each matrix
holds, how the cache is pulled from and pushed to, which secrets and permissions a
job needs); templates/nixcrate.yml.j2 only lays the result out. The workflow follows
the shape a real team reached after 36 commits (shared/seeds/002): one deps-closure
warm job per closure, in parallel, then a matrix per artifact kind that needs only
its own warm job and reuses the closure through the binary cache.

Settings given on the command line are recorded in the workflow's second comment
line (`# Regenerate: nixcrate ci ...`, as pip-tools records its command), so a later
`nixcrate ci` or `nixcrate ci --check` without options reproduces the same file.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from nixcrate import __version__, flake_gen
from nixcrate.errors import UsageError

if TYPE_CHECKING:
    import jinja2

    from nixcrate.config import Config
    from nixcrate.flake_gen import FlakeContext

WORKFLOW = PurePosixPath(".github/workflows/nixcrate.yml")
DEFAULT_RUNNER = "ubuntu-latest"  # the labels actionlint knows; the Nix build does not depend on the image
DEFAULT_BRANCH = "main"
PYTHON_VERSION = "3.11"
REGENERATE_PREFIX = "# Regenerate: nixcrate ci"

CACHE_FORMS = (
    "gha (the GitHub Actions cache, the default), cachix:NAME, s3://BUCKET?region=REGION, "
    "or an https://, http:// or file:// binary cache URL"
)
# No account and no secret: what a first user's workflow can run on. docs/ci.md names its limits.
DEFAULT_CACHE = "gha"

# Secrets are referenced by name only; docs/ci.md says which to create.
CACHIX_SECRET = "CACHIX_AUTH_TOKEN"  # noqa: S105 - a name, not a value
SIGNING_SECRET = "NIX_SIGNING_KEY"  # noqa: S105 - the cache's secret key, as `nix key generate-secret` prints it
NETRC_SECRET = "NIX_CACHE_NETRC"  # noqa: S105 - optional: credentials an HTTP cache wants for uploads
AWS_KEY_SECRETS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@dataclass(frozen=True, slots=True)
class PinnedAction:
    repo: str
    sha: str  # full commit: a tag can be moved, a commit cannot
    version: str  # the tag that pointed at `sha`, for the reader and for Dependabot

    @property
    def uses(self) -> str:
        return f"{self.repo}@{self.sha}"


# Commits read from each repository's tags (git rev-parse <tag>^{commit}), 2026-11.
CHECKOUT = PinnedAction("actions/checkout", "3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1")
INSTALL_NIX = PinnedAction(
    "cachix/install-nix-action", "630ae543ea3a38a9a4166f03376c02c50f408342", "v31.11.0"
)
CACHIX = PinnedAction("cachix/cachix-action", "1eb2ef646ac0255473d23a5907ad7b04ce94065c", "v17")
SETUP_PYTHON = PinnedAction("actions/setup-python", "5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0")
UPLOAD_ARTIFACT = PinnedAction(
    "actions/upload-artifact", "bbbca2ddaa5d8feaa63e36b76fdaad77386f024f", "v7.0.0"
)
AWS_CREDENTIALS = PinnedAction(
    "aws-actions/configure-aws-credentials", "e6de054238d6b7531b4efff3b6587d9aade6a06c", "v6.2.3"
)
# v13 is the newest tag (2025-07; later commits on main are untagged), read 2026-12. Its inputs
# (action.yml): use-flakehub, use-gha-cache, diagnostic-endpoint, upstream-cache, listen, ...
MAGIC_NIX_CACHE = PinnedAction(
    "DeterminateSystems/magic-nix-cache-action", "565684385bcd71bad329742eefe8d12f2e765b39", "v13"
)


# --------------------------------------------------------------------------- settings


class CacheKind(enum.Enum):
    GHA = "gha"
    CACHIX = "cachix"
    S3 = "s3"
    URL = "url"


@dataclass(frozen=True, slots=True)
class Cache:
    kind: CacheKind
    spec: str  # as the user wrote it
    cachix_name: str = ""
    url: str = ""  # the Nix store URL (S3 and URL caches)
    region: str = ""  # S3 only


@dataclass(frozen=True, slots=True)
class Settings:
    cache: Cache
    public_key: str = ""  # NAME:BASE64, S3 and URL caches
    aws_role: str = ""  # S3: an IAM role ARN to assume with OIDC instead of static keys
    runner: str = DEFAULT_RUNNER
    branch: str = DEFAULT_BRANCH

    def argv(self) -> list[str]:
        """The options that reproduce these settings, in a fixed order."""
        args = ["--cache", self.cache.spec]
        if self.public_key:
            args += ["--public-key", self.public_key]
        if self.aws_role:
            args += ["--aws-role", self.aws_role]
        return [*args, "--runner", self.runner, "--branch", self.branch]


_CACHIX_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# Characters a substituter URL may hold in nix.conf and in YAML without quoting trouble.
_URL_SAFE = re.compile(r"^[A-Za-z0-9._~:/?#\[\]@!&'()*+,;=%-]+$")
_KEY = re.compile(r"^([A-Za-z0-9._-]+):([A-Za-z0-9+/=]+)$")
_RUNNER = re.compile(r"^[A-Za-z0-9._-]+$")
_BRANCH = re.compile(r"^[A-Za-z0-9._/-]+$")
_ROLE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]+$")


def _bad_cache(spec: str, why: str) -> UsageError:
    return UsageError(f"--cache {spec!r}: {why}; expected {CACHE_FORMS}")


def parse_cache(spec: str) -> Cache:
    """`gha`, `cachix:NAME`, `s3://BUCKET?region=R[&...]`, or an http(s)/file binary cache URL."""
    if spec == DEFAULT_CACHE:
        return Cache(CacheKind.GHA, spec)
    if spec.startswith("cachix:"):
        name = spec.removeprefix("cachix:")
        if not _CACHIX_NAME.match(name):
            raise _bad_cache(spec, "a Cachix name is lowercase letters, digits and dashes")
        return Cache(CacheKind.CACHIX, spec, cachix_name=name)
    return _parse_url(spec)


def _parse_url(spec: str) -> Cache:
    """An S3, http(s) or file binary cache URL."""
    if not _URL_SAFE.match(spec):
        raise _bad_cache(spec, "the URL holds spaces, quotes or other characters a nix.conf cannot carry")
    parts = urlsplit(spec)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    if "secret-key" in params:
        raise _bad_cache(spec, f"leave secret-key out: the workflow signs with the {SIGNING_SECRET} secret")
    if parts.scheme == "s3":
        if not parts.netloc:
            raise _bad_cache(spec, "no bucket")
        if not params.get("region"):
            raise _bad_cache(spec, "the S3 URL needs ?region=REGION (the AWS credentials step needs it too)")
        return Cache(CacheKind.S3, spec, url=spec, region=params["region"])
    if parts.scheme in ("https", "http") and parts.netloc:
        return Cache(CacheKind.URL, spec, url=spec)
    if parts.scheme == "file" and parts.path.startswith("/"):
        return Cache(CacheKind.URL, spec, url=spec)
    raise _bad_cache(spec, "not a form nixcrate knows")


def check_public_key(key: str) -> str:
    """A Nix public key: `NAME:BASE64` of a 32-byte ed25519 key."""
    match = _KEY.match(key)
    ok = False
    if match:
        try:
            ok = len(base64.b64decode(match.group(2), validate=True)) == 32
        except binascii.Error:
            ok = False
    if not ok:
        raise UsageError(
            f"--public-key {key!r}: expected NAME:BASE64 as 'nix key convert-secret-to-public' prints it, "
            "e.g. my-cache-1:AbC...="
        )
    return key


def make_settings(
    cache: str,
    *,
    public_key: str = "",
    aws_role: str = "",
    runner: str = DEFAULT_RUNNER,
    branch: str = DEFAULT_BRANCH,
) -> Settings:
    parsed = parse_cache(cache)
    if parsed.kind is CacheKind.GHA:
        if public_key:
            raise UsageError(
                "--public-key: the GitHub Actions cache (--cache gha) is not signed, magic-nix-cache serves it to the job: drop the option"
            )
    elif parsed.kind is CacheKind.CACHIX:
        if public_key:
            raise UsageError(
                "--public-key: a Cachix cache publishes its own key (cachix-action trusts it): drop the option"
            )
    elif not public_key:
        raise UsageError(
            f"--cache {cache!r} needs --public-key NAME:BASE64, the key its paths are signed with "
            "(see docs/ci.md: 'nix key convert-secret-to-public')"
        )
    else:
        check_public_key(public_key)
    if aws_role and parsed.kind is not CacheKind.S3:
        raise UsageError("--aws-role: only an s3:// cache uses AWS credentials: drop the option")
    if aws_role and not _ROLE.match(aws_role):
        raise UsageError(
            f"--aws-role {aws_role!r}: expected an IAM role ARN, arn:aws:iam::123456789012:role/NAME"
        )
    if not _RUNNER.match(runner):
        raise UsageError(f"--runner {runner!r}: expected one runner label, e.g. ubuntu-24.04")
    if not _BRANCH.match(branch):
        raise UsageError(f"--branch {branch!r}: expected a branch name, e.g. main")
    return Settings(parsed, public_key=public_key, aws_role=aws_role, runner=runner, branch=branch)


def recorded_argv(text: str) -> list[str] | None:
    """The options recorded in a workflow nixcrate wrote, or None when there are none."""
    for line in text.splitlines()[:5]:
        if line.startswith(REGENERATE_PREFIX):
            try:
                return shlex.split(line.removeprefix(REGENERATE_PREFIX))
            except ValueError:
                return None
    return None


# --------------------------------------------------------------------------- context


@dataclass(frozen=True, slots=True)
class CacheContext:
    kind: str  # gha | cachix | s3 | url
    description: str  # one comment line
    cachix_name: str
    install_options: str  # for cachix/install-nix-action
    nix_config: str  # extra nix.conf lines ("" for Cachix: its action configures Nix)
    push_url: str  # `nix copy --to` target, "" when the cache action pushes
    aws_region: str
    aws_role: str
    secrets: tuple[str, ...]  # names only
    notes: tuple[str, ...] = ()  # comment lines under the description (the cache's limits)


@dataclass(frozen=True, slots=True)
class WarmJob:
    id: str
    name: str
    attr: str


@dataclass(frozen=True, slots=True)
class MatrixEntry:
    output: str
    arch: str = ""  # handlers only, for `nixcrate lambda verify`
    glibc: str = ""
    includes: str = ""  # newline-separated, as the verify step reads them


@dataclass(frozen=True, slots=True)
class BuildJob:
    id: str
    name: str
    needs: str
    handler: bool  # collect bootstrap.zip and verify it, rather than bin/*
    entries: tuple[MatrixEntry, ...]
    library: bool = False  # collect lib/* (a cdylib's, a staticlib's files), if the package has any
    if_no_files: str = "error"  # upload-artifact's if-no-files-found: "ignore" for libraries (an rlib's package is empty)


@dataclass(frozen=True, slots=True)
class Install:
    """How each job gets nixcrate: the flake's pinned `nixcrate` input, or a pip/pipx requirement."""

    kind: str  # "flake" | "pip" | "pipx"
    command: str  # the shell command, its requirement quoted
    source: str  # where the choice came from, for the step's comment


# An input declaration `nixcrate = {` / `nixcrate.url =` (`inputs.nixcrate.url =` too).
_NIXCRATE_INPUT = re.compile(r"\bnixcrate\s*(?:=\s*\{|\.url\s*=)")


def install_of(config: Config, flake_text: str) -> Install:
    """nixcrate.toml's [ci] install when set; else the flake's `nixcrate` input when it has one
    (flake.lock pins it: CI runs the version the developers' shell has); else pipx from
    nixcrate's repository at the tag of the version writing this workflow."""
    from nixcrate import project  # noqa: PLC0415

    if config.ci_install is not None:
        tool, spec = config.ci_install
        run = "python -m pip install" if tool == "pip" else "pipx install"
        return Install(tool, f"{run} {shlex.quote(spec)}", "nixcrate.toml's [ci] install")
    code = "\n".join(line.split("#", 1)[0] for line in flake_text.splitlines())
    if _NIXCRATE_INPUT.search(code):
        return Install("flake", "nix profile install --inputs-from . nixcrate", "the nixcrate input of flake.nix, as flake.lock pins it")
    spec = f"git+{project.repository()}@v{__version__}"
    return Install("pipx", f"pipx install {shlex.quote(spec)}", "the release that wrote this file (or: [ci] install in nixcrate.toml, a nixcrate input in flake.nix)")


@dataclass(frozen=True, slots=True)
class CiContext:
    regenerate: str
    version: str
    python_version: str
    runner: str
    branch: str
    branch_ref: str  # refs/heads/<branch>, for expressions
    working_directory: str  # "" when the workspace is the repository root
    cache: CacheContext
    oidc: bool  # jobs that reach AWS ask for id-token: write
    warm_jobs: tuple[WarmJob, ...]
    build_jobs: tuple[BuildJob, ...]
    install: Install
    checkout: PinnedAction = CHECKOUT
    install_nix: PinnedAction = INSTALL_NIX
    cachix: PinnedAction = CACHIX
    setup_python: PinnedAction = SETUP_PYTHON
    upload_artifact: PinnedAction = UPLOAD_ARTIFACT
    aws_credentials: PinnedAction = AWS_CREDENTIALS
    magic_nix_cache: PinnedAction = MAGIC_NIX_CACHE


GHA_NOTES = (
    "It needs no account and no secret, and pull requests from forks use it too. Its limit:",
    "it holds only what fits the repository's Actions cache (10 GB, least recently used",
    "entries evicted first, unused ones after 7 days), shared by the warm jobs and every",
    "build job, and rate-limited; a workspace whose closures outgrow it rebuilds them.",
    "Step up to a cache of your own: nixcrate ci --cache cachix:NAME, or s3://BUCKET?region=R",
    "or an attic/https:// cache with --public-key (see docs/ci.md, 'Choosing a cache').",
)


def _cache_context(settings: Settings) -> CacheContext:
    cache = settings.cache
    if cache.kind is CacheKind.GHA:
        return CacheContext(
            kind="gha",
            description="GitHub Actions cache through magic-nix-cache: each job pulls from it and pushes what it builds.",
            cachix_name="",
            install_options="",
            nix_config="",
            push_url="",
            aws_region="",
            aws_role="",
            secrets=(),
            notes=GHA_NOTES,
        )
    if cache.kind is CacheKind.CACHIX:
        return CacheContext(
            kind="cachix",
            description=f"Cachix cache {cache.cachix_name}: cachix-action adds it as a substituter, trusts its key and pushes what each job builds.",
            cachix_name=cache.cachix_name,
            install_options="",
            nix_config="",
            push_url="",
            aws_region="",
            aws_role="",
            secrets=(CACHIX_SECRET,),
        )
    nix_config = f"extra-substituters = {cache.url}\nextra-trusted-public-keys = {settings.public_key}"
    if cache.kind is CacheKind.S3:
        secrets = (SIGNING_SECRET,) if settings.aws_role else (*AWS_KEY_SECRETS, SIGNING_SECRET)
        return CacheContext(
            kind="s3",
            description=f"S3 binary cache {cache.url}: pulled as a substituter, pushed with 'nix copy', signed with {SIGNING_SECRET}.",
            cachix_name="",
            # The nix-daemon would not see the job's AWS credentials; single-user Nix does.
            # https://github.com/cachix/install-nix-action#how-do-i-pass-aws-credentials-to-the-nix-daemon
            install_options="--no-daemon",
            nix_config=nix_config,
            push_url=cache.url,
            aws_region=cache.region,
            aws_role=settings.aws_role,
            secrets=secrets,
        )
    return CacheContext(
        kind="url",
        description=f"Binary cache {cache.url}: pulled as a substituter, pushed with 'nix copy', signed with {SIGNING_SECRET}.",
        cachix_name="",
        install_options="",
        nix_config=nix_config,
        push_url=cache.url,
        aws_region="",
        aws_role="",
        secrets=(SIGNING_SECRET, NETRC_SECRET),
    )


def _handler_entry(output: str, member: str, config: Config) -> MatrixEntry:
    m = config.member(member)
    return MatrixEntry(
        output=output, arch=m.arch, glibc=config.lambda_glibc, includes="\n".join(sorted(m.include))
    )


def build_context(
    flake: FlakeContext, config: Config, settings: Settings, *, working_directory: str = "", flake_text: str = ""
) -> CiContext:
    """Every choice the workflow makes, from the flake's outputs and the CI settings."""
    warm: list[WarmJob] = []
    jobs: list[BuildJob] = []
    if flake.services and flake.service_closure is not None:
        closure = flake.service_closure.attr
        warm.append(WarmJob("warm-services", f"warm {closure}", closure))
        entries = tuple(MatrixEntry(o.name) for o in sorted(flake.services, key=lambda o: o.name) if o.has_bins)
        if entries:
            jobs.append(BuildJob("services", "service", "warm-services", handler=False, entries=entries))
        # A library no crate depends on: its package compiles it (CI proves it builds) and holds
        # its cdylib, dylib or staticlib files under lib/ (an rlib's package holds nothing).
        libraries = tuple(MatrixEntry(o.name) for o in sorted(flake.services, key=lambda o: o.name) if not o.has_bins)
        if libraries:
            jobs.append(BuildJob("libraries", "library", "warm-services", handler=False, entries=libraries, library=True, if_no_files="ignore"))
    if flake.lambdas and flake.lambda_closure is not None:
        closure = flake.lambda_closure.attr
        warm.append(WarmJob("warm-handlers", f"warm {closure}", closure))
        entries = tuple(
            _handler_entry(o.name, o.member, config) for o in sorted(flake.lambdas, key=lambda o: o.name)
        )
        jobs.append(BuildJob("handlers", "handler", "warm-handlers", handler=True, entries=entries))
    names = [e.output for j in jobs for e in j.entries]
    if len(names) != len(set(names)):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise UsageError(
            f"outputs {', '.join(dup)} are both a service and a handler: artifact names would clash, rename one"
        )
    return CiContext(
        regenerate=f"{REGENERATE_PREFIX} {shlex.join(settings.argv())}",
        version=__version__,
        python_version=PYTHON_VERSION,
        runner=settings.runner,
        branch=settings.branch,
        branch_ref=f"refs/heads/{settings.branch}",
        working_directory="" if working_directory in ("", ".") else working_directory,
        cache=_cache_context(settings),
        oidc=bool(settings.aws_role),
        warm_jobs=tuple(warm),
        build_jobs=tuple(jobs),
        install=install_of(config, flake_text),
    )


# --------------------------------------------------------------------------- rendering


def yaml_str(value: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is a subset of it)."""
    return json.dumps(value, ensure_ascii=True)


def yaml_block(text: str, indent: int) -> str:
    """The lines of a `|` block scalar, each indented; no trailing newline."""
    pad = " " * indent
    return "\n".join(pad + line if line else "" for line in text.split("\n"))


def _environment() -> jinja2.Environment:
    import jinja2  # noqa: PLC0415 - imported when rendering only, as in flake_gen

    # `${{ ... }}` is GitHub's expression syntax: Jinja's own delimiters are moved out of its way.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(flake_gen.templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - YAML, not HTML; values are quoted by yaml_str
        block_start_string="[%",
        block_end_string="%]",
        variable_start_string="[[",
        variable_end_string="]]",
        comment_start_string="[#",
        comment_end_string="#]",
    )
    env.filters["yaml_str"] = yaml_str
    env.filters["yaml_block"] = yaml_block
    env.filters["chomp"] = lambda text: str(text).rstrip("\n")  # a macro's lines, minus the last newline
    return env


def render(context: CiContext) -> str:
    return str(_environment().get_template("nixcrate.yml.j2").render(ctx=context))


def workflow_location(directory: Path) -> tuple[Path, str]:
    """(repository root, the workspace's path inside it): .github/ lives at the root of the
    git repository holding the workspace, or beside the workspace when there is none."""
    directory = directory.resolve()
    for candidate in (directory, *directory.parents):
        if (candidate / ".git").exists():
            return candidate, directory.relative_to(candidate).as_posix()
    return directory, "."


# --------------------------------------------------------------------------- nixcrate ci


@dataclass(frozen=True, slots=True)
class CiResult:
    path: Path
    display: str
    action: str  # create | identical | update | replace edited (backup kept) | up to date
    context: CiContext


@dataclass(frozen=True, slots=True)
class CiOptions:
    """What the command line gave; None: take it from the recorded line, or the default."""

    cache: str | None = None
    public_key: str | None = None
    aws_role: str | None = None
    runner: str | None = None
    branch: str | None = None


def _recorded_options(text: str | None) -> CiOptions:
    argv = recorded_argv(text) if text is not None else None
    if not argv:
        return CiOptions()
    names = {
        "--cache": "cache",
        "--public-key": "public_key",
        "--aws-role": "aws_role",
        "--runner": "runner",
        "--branch": "branch",
    }
    found: dict[str, str] = {}
    for flag, value in zip(argv[::2], argv[1::2], strict=False):
        if flag in names:
            found[names[flag]] = value
    return CiOptions(**found)


def resolve_settings(given: CiOptions, existing_text: str | None) -> Settings:
    """Options from the command line, else from the workflow's `# Regenerate:` line, else defaults.

    A new --cache starts from a clean slate: the old cache's key or role does not carry over.
    """
    recorded = _recorded_options(existing_text)
    fresh_cache = given.cache is not None and given.cache != recorded.cache
    # Nothing given, nothing recorded: a first workflow, on the cache that needs no account.
    cache = given.cache or recorded.cache or DEFAULT_CACHE
    public_key = (
        given.public_key
        if given.public_key is not None
        else ("" if fresh_cache else recorded.public_key or "")
    )
    aws_role = (
        given.aws_role if given.aws_role is not None else ("" if fresh_cache else recorded.aws_role or "")
    )
    return make_settings(
        cache,
        public_key=public_key,
        aws_role=aws_role,
        runner=given.runner or recorded.runner or DEFAULT_RUNNER,
        branch=given.branch or recorded.branch or DEFAULT_BRANCH,
    )


def workflow_text(directory: Path, settings: Settings, working_directory: str) -> tuple[str, CiContext]:
    from nixcrate import config as config_mod  # noqa: PLC0415
    from nixcrate import files, workspace  # noqa: PLC0415

    ws = workspace.load(directory)
    config = config_mod.load(directory)
    config_mod.check_against(config, ws)
    classified = flake_gen.classify(ws, config)
    flake = flake_gen.build_context(ws, config, classified)
    try:
        flake_text = (directory / "flake.nix").read_text(encoding="utf-8", errors="replace")
    except OSError:  # no flake.nix yet: `nixcrate init` writes the starter
        flake_text = ""
    context = build_context(flake, config, settings, working_directory=working_directory, flake_text=flake_text)
    return files.with_header(render(context), "nixcrate ci"), context


def run_ci(directory: Path, options: CiOptions, *, check: bool = False, force: bool = False) -> CiResult:
    """`nixcrate ci`: render the workflow, then compare (--check) or write it."""
    from nixcrate import files  # noqa: PLC0415
    from nixcrate.errors import OutOfDate  # noqa: PLC0415

    directory = directory.resolve()
    repo_root, rel = workflow_location(directory)
    path = repo_root / WORKFLOW
    display = WORKFLOW.as_posix()
    try:
        current: str | None = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
        current = None
    settings = resolve_settings(options, current)
    text, context = workflow_text(directory, settings, rel)
    if check:
        if current != text:
            raise OutOfDate(_drift_message(display, current, text, settings))
        return CiResult(path, display, "up to date", context)
    plan = files.plan_generated(path, text, force=force, display=display)
    if plan.action is not files.Action.IDENTICAL:
        files.check_writable(repo_root, str(repo_root))
    files.apply([plan])
    return CiResult(path, display, plan.action.value, context)


def _drift_message(display: str, current: str | None, wanted: str, settings: Settings) -> str:
    command = f"nixcrate ci {shlex.join(settings.argv())}"
    if current is None:
        return f"{display}: missing: run '{command}' and commit it"
    import difflib  # noqa: PLC0415

    changed = [
        ln
        for ln in difflib.unified_diff(current.splitlines(), wanted.splitlines(), lineterm="", n=0)
        if ln[:1] in "+-" and ln[:3] not in ("+++", "---")
    ]
    added = sum(1 for ln in changed if ln.startswith("+"))
    return (
        f"{display}: out of date with the workspace ({added} line(s) to add, {len(changed) - added} to remove): "
        "run 'nixcrate ci' and commit the result"
    )
