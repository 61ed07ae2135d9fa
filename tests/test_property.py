"""Property-based tests: workspaces of random shape, and the same workspaces with mangled bytes.

For every generated workspace `nixcrate init` either succeeds, with a flake that real Nix
parses and that has exactly one output per service and per handler bin, or fails with an
error from docs/errors.md; never with a traceback. Mangled bytes (truncated files, invalid
UTF-8, huge or deeply nested files) never give a traceback either.

Profiles: `ci` (the default, ~1 minute with -n 2; derandomised when CI=true) and `dev` (a few
examples, for editing);
`HYPOTHESIS_PROFILE=long` runs thousands. Flakes are parsed in batches: one
`nix-instantiate --parse` for many files.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from test_errors_catalogue import catalogue

from nixcrate import generate
from nixcrate.cli import cli
from nixcrate.errors import NixcrateError

# ci: no shrinking (a slow shrink would eat the CI budget); the failure is printed whole, and
# `--hypothesis-seed` from the report replays it under the dev profile, which shrinks.
# In CI (CI=true) the draw is derandomised: the same examples on every run, so main is never
# red by luck and a red run reproduces with the same command anywhere. Elsewhere each run draws
# new examples and keeps what failed in .hypothesis/ (replayed first on the next run); a
# failure found that way becomes an explicit case below (FOUND), so CI keeps checking it.
settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
    derandomize=os.environ.get("CI", "").lower() in ("true", "1"),
)
settings.register_profile("dev", max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REGISTRY = "registry+https://github.com/rust-lang/crates.io-index"
THIRD_PARTY = {"serde": "1.0.190", "anyhow": "1.0.75", "lambda_runtime": "0.8.3", "lambda_http": "0.8.3", "lambda_extension": "0.8.2", "tokio": "1.33.0"}
# A handler is a bin crate depending directly on one of these (README: "Lambda handler").
RUNTIME_CRATES = ("lambda_runtime", "lambda_http", "lambda_extension")
# Names that collide with what the flake itself defines, or that Nix must quote.
SPECIAL_NAMES = ("deployCargoArtifacts", "lambdaDeployCargoArtifacts", "deploy-lambda-x", "default", "in", "2fa", "lib", "pkgs", "self", "A_b-9")

# --------------------------------------------------------------------------- the generator


@dataclass
class CrateSpec:
    name: str
    dir: str  # relative to the root; "." for a root package
    kind: str  # lib | service | lambda
    bins: list[str]
    bin_style: str  # main | srcbin | declared
    build_rs: bool
    inherit_version: bool
    path_deps: list[int]  # indices of earlier crates
    inherit_path_dep: bool  # `x = { workspace = true }` instead of `x = { path = ... }`
    third_party: list[str]
    member: str  # explicit | glob | excluded | nested
    version: str = "0.1.0"


@dataclass
class WorkspaceSpec:
    crates: list[CrateSpec]
    groups: list[str]
    lock_version: int
    extras: dict[str, str] = field(default_factory=dict)  # further files to write

    def members(self) -> list[CrateSpec]:
        return [c for c in self.crates if c.member != "excluded" or c.dir == "."]

    def tree(self) -> list[CrateSpec]:
        """Members plus excluded crates reachable through path dependencies (cargo reads those too)."""
        wanted = {i for i, c in enumerate(self.crates) if c.member != "excluded"}
        stack = list(wanted)
        while stack:
            for d in self.crates[stack.pop()].path_deps:
                if d not in wanted:
                    wanted.add(d)
                    stack.append(d)
        return [c for i, c in enumerate(self.crates) if i in wanted]


# Cargo names: letters, digits, '-' and '_', capitals too; a leading digit (old crates) now and then.
name_st = st.one_of(
    st.builds(str.__add__, st.sampled_from("abcxyzABQZ"), st.text("abcxyzAZ019_-", max_size=10)),
    st.builds(str.__add__, st.sampled_from("0129"), st.text("ab0", max_size=3)),
    st.sampled_from(SPECIAL_NAMES),
)


@st.composite
def workspaces(draw: st.DrawFn) -> WorkspaceSpec:
    n = draw(st.integers(1, 7))
    names = draw(st.lists(name_st, min_size=n, max_size=n, unique=True))
    groups = draw(st.lists(st.sampled_from(["crates", "services", "lambdas", "libs/core", "apps"]), min_size=1, max_size=3, unique=True))
    root_package = draw(st.booleans()) and draw(st.booleans())
    crates: list[CrateSpec] = []
    for i, name in enumerate(names):
        kind = draw(st.sampled_from(["lib", "lib", "service", "lambda"]))
        if i == 0 and root_package:
            directory, member = ".", "explicit"
        elif i > 0 and draw(st.integers(0, 5)) == 0 and crates[-1].dir != ".":
            directory, member = f"{crates[-1].dir}/nested{i}", "nested"
        else:
            group = draw(st.sampled_from(groups))
            directory = f"{group}/m{i}-{draw(st.sampled_from(['x', 'Y', '2', 'a_b']))}"
            member = draw(st.sampled_from(["explicit", "glob", "glob", "excluded"]))
        bins: list[str] = []
        if kind != "lib":
            count = draw(st.integers(1, 3))
            bins = [name] + [f"{name}-bin{k}" for k in range(1, count)]
        crates.append(
            CrateSpec(
                name=name,
                dir=directory,
                kind=kind,
                bins=bins,
                bin_style=draw(st.sampled_from(["main", "srcbin", "declared"])),
                build_rs=draw(st.booleans()),
                inherit_version=draw(st.booleans()),
                path_deps=sorted(draw(st.sets(st.integers(0, i - 1), max_size=min(i, 3)))) if i else [],
                inherit_path_dep=draw(st.booleans()),
                third_party=sorted(draw(st.sets(st.sampled_from(["serde", "anyhow", "tokio"]), max_size=2)))
                + ([draw(st.sampled_from(RUNTIME_CRATES))] if kind == "lambda" else []),
                member=member,
            )
        )
    return WorkspaceSpec(crates=crates, groups=groups, lock_version=draw(st.sampled_from([3, 4])))


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _rel(frm: str, to: str) -> str:
    return os.path.relpath(to, frm)


def render_workspace(spec: WorkspaceSpec) -> dict[str, str]:
    """Every file of the workspace: manifests, sources, and a Cargo.lock consistent with them."""
    files: dict[str, str] = {}
    explicit = [c.dir for c in spec.crates if c.member in ("explicit", "nested") and c.dir != "."]
    globbed_groups = sorted({c.dir.rsplit("/", 1)[0] for c in spec.crates if c.member in ("glob", "excluded") and c.dir != "."})
    members = [*explicit, *(f"{g}/*" for g in globbed_groups)]
    excluded = [c.dir for c in spec.crates if c.member == "excluded" and c.dir != "."]
    ws_deps = [f"{c.name} = {{ path = {_toml_str(c.dir)} }}" for c in spec.crates if c.dir != "."]
    root_lines = [
        "[workspace]",
        f"members = [{', '.join(_toml_str(m) for m in members)}]",
        f"exclude = [{', '.join(_toml_str(e) for e in excluded)}]",
        'resolver = "2"',
        "",
        "[workspace.package]",
        'version = "0.1.0"',
        'edition = "2021"',
        "",
        "[workspace.dependencies]",
        *(f'{n} = "{v.split(".")[0]}"' for n, v in sorted(THIRD_PARTY.items())),
        *ws_deps,
        "",
    ]
    root_crate = next((c for c in spec.crates if c.dir == "."), None)
    manifests: dict[str, list[str]] = {}
    for c in spec.crates:
        lines = ["[package]", f"name = {_toml_str(c.name)}"]
        lines.append("version.workspace = true" if c.inherit_version else f'version = "{c.version}"')
        lines.append('edition = "2021"')
        if c.kind != "lib" and c.bin_style == "declared":
            for b in c.bins:
                lines += ["", "[[bin]]", f"name = {_toml_str(b)}", f'path = "src/bins/{b}.rs"']
        lines += ["", "[dependencies]"]
        for d in c.path_deps:
            dep = spec.crates[d]
            if c.inherit_path_dep and dep.dir != ".":
                lines.append(f"{dep.name} = {{ workspace = true }}")
            else:
                lines.append(f"{dep.name} = {{ path = {_toml_str(_rel(c.dir, dep.dir))} }}")
        lines += [f"{t} = {{ workspace = true }}" for t in c.third_party]
        if c.build_rs:
            lines += ["", "[build-dependencies]", "anyhow = { workspace = true }"]
        manifests[c.dir] = lines
        prefix = "" if c.dir == "." else c.dir + "/"
        if c.kind == "lib":
            files[f"{prefix}src/lib.rs"] = "pub fn f() {}\n"
        else:
            for k, b in enumerate(c.bins):
                if c.bin_style == "declared":
                    files[f"{prefix}src/bins/{b}.rs"] = "fn main() {}\n"
                elif c.bin_style == "main" and k == 0:
                    files[f"{prefix}src/main.rs"] = "fn main() {}\n"
                else:
                    files[f"{prefix}src/bin/{b}.rs"] = "fn main() {}\n"
        if c.build_rs:
            files[f"{prefix}build.rs"] = "fn main() {}\n"
    if root_crate is not None:
        root_lines = manifests.pop(".") + [""] + root_lines
    files["Cargo.toml"] = "\n".join(root_lines) + "\n"
    for d, lines in manifests.items():
        files[f"{d}/Cargo.toml"] = "\n".join(lines) + "\n"
    files["Cargo.lock"] = render_lock(spec)
    files.update(spec.extras)
    return files


def render_lock(spec: WorkspaceSpec) -> str:
    entries = []
    for c in spec.tree():
        deps = sorted({spec.crates[d].name for d in c.path_deps} | set(c.third_party) | ({"anyhow"} if c.build_rs else set()))
        entries.append((c.name, c.version, None, deps))
    entries += [(n, v, REGISTRY, []) for n, v in THIRD_PARTY.items()]
    out = ["# This file is automatically @generated by Cargo.", f"version = {spec.lock_version}", ""]
    for name, version, source, deps in sorted(entries, key=lambda e: (e[0], e[1])):
        out += ["[[package]]", f"name = {_toml_str(name)}", f'version = "{version}"']
        if source:
            out += [f'source = "{source}"', f'checksum = "{"0" * 64}"']
        if deps:
            out.append("dependencies = [")
            out += [f" {_toml_str(d)}," for d in deps]
            out.append("]")
        out.append("")
    return "\n".join(out)


def write_files(root: Path, files: dict[str, str | bytes]) -> None:
    if root.exists():
        shutil.rmtree(root)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


# --------------------------------------------------------------------------- checks


def expected_outputs(spec: WorkspaceSpec) -> tuple[list[str], list[str]]:
    members = [c for c in spec.members()]
    depended_on = {spec.crates[d].name for c in spec.tree() for d in c.path_deps}
    # services, and the libraries no crate depends on (a package each, like a service)
    services = sorted(c.name for c in members if c.kind == "service" or (c.kind == "lib" and c.name not in depended_on))
    handlers = sorted(f"deploy-lambda-{b}" for c in members if c.kind == "lambda" for b in c.bins)
    return services, handlers


def catalogued_as(message: str, exit_code: int = 1) -> list[str]:
    """The ids of docs/errors.md whose message matches, among the errors with that exit code.

    Entries whose template is placeholders only (`usage`: `error: <what>`) match any line, so
    they are left out: a message matched by nothing else is not catalogued."""
    return [
        e.id
        for e in catalogue().values()
        if e.severity == "error" and e.exit_code == exit_code and re.sub(r"<[^<>]+>", "", e.message).strip() and e.pattern.fullmatch(message)
    ]


def assert_catalogued(message: str, exit_code: int = 1) -> None:
    assert catalogued_as(message, exit_code), f"not in docs/errors.md (exit code {exit_code}): {message}"


@pytest.mark.parametrize(
    ("message", "exit_code"),
    [
        ("the flake caught fire", 1),  # no entry says this (only `usage`'s bare `<what>` would match it)
        ("'svc' is not an output of the flake: outputs: api", 1),  # catalogued, but with exit code 2
    ],
)
def test_assert_catalogued_refuses_what_the_catalogue_does_not_say(message: str, exit_code: int) -> None:
    with pytest.raises(AssertionError, match="not in docs/errors.md"):
        assert_catalogued(message, exit_code)
    # and accepts what it does say
    assert catalogued_as("Cargo.lock: not found: run 'cargo generate-lockfile' and commit Cargo.lock (a flake needs it to vendor crates)") == ["no-lockfile"]


class FlakeBatch:
    """Flakes to parse with one `nix-instantiate --parse` call: a failure re-parses one by one."""

    def __init__(self, limit: int = 40) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="nixcrate-flakes-"))
        self.pending: list[Path] = []
        self.parsed = 0
        self.limit = limit

    def add(self, text: str) -> None:
        path = self.dir / f"flake{self.parsed + len(self.pending)}.nix"
        path.write_text(text, encoding="utf-8")
        self.pending.append(path)
        if len(self.pending) >= self.limit:
            self.flush()

    def flush(self) -> None:
        if not self.pending or shutil.which("nix-instantiate") is None:
            self.pending.clear()
            return
        batch, self.pending = self.pending, []
        proc = subprocess.run(["nix-instantiate", "--parse", *map(str, batch)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            for path in batch:
                one = subprocess.run(["nix-instantiate", "--parse", str(path)], capture_output=True, text=True, check=False)
                assert one.returncode == 0, f"{path}: {one.stderr}\n{path.read_text()}"
        self.parsed += len(batch)


DATA = Path("nix/nixcrate/workspace.nix")
# A member's entry in the generated data: its attribute, then path and kind.
MEMBER_ENTRY = re.compile(r'^ {4}(\S+|"[^"]+") = \{(?:\n {6}| )path = "[^"]*";(?:\n {6}| )kind = "(\w+)";', re.MULTILINE)


def check_init(root: Path, spec: WorkspaceSpec, batch: FlakeBatch) -> str:
    """Run init; return 'ok' or the error's message. Anything but NixcrateError propagates."""
    try:
        result = generate.run_init(root)
    except NixcrateError as exc:
        assert "\n" not in exc.message
        assert_catalogued(exc.message, exc.exit_code)
        assert not (root / "flake.nix").exists()  # nothing written
        assert not (root / DATA).exists()
        return exc.message
    services, handlers = expected_outputs(spec)
    ctx = result.context
    assert sorted(o.name for o in ctx.services) == services
    assert sorted(o.name for o in ctx.lambdas) == handlers
    text = (root / DATA).read_text(encoding="utf-8")
    kinds = {m.group(1).strip('"'): m.group(2) for m in MEMBER_ENTRY.finditer(text)}
    assert all(kinds.get(name) in ("service", "library") for name in services), kinds
    assert {o.member for o in ctx.lambdas} <= {n for n, k in kinds.items() if k == "lambda"}, kinds
    for warning in result.warnings:
        assert "\n" not in warning
    batch.add(text)
    return "ok"


@pytest.fixture(scope="module")
def batch() -> FlakeBatch:
    b = FlakeBatch()
    yield b
    b.flush()  # the last flakes; an assertion here fails the module's teardown
    shutil.rmtree(b.dir, ignore_errors=True)


@given(spec=workspaces())
def test_random_workspaces_init_or_fail_with_a_catalogued_error(spec: WorkspaceSpec, batch: FlakeBatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("ws")
    write_files(root, render_workspace(spec))
    outcome = check_init(root, spec, batch)
    event("init: ok" if outcome == "ok" else f"init: error {outcome.split(':')[0]}")
    if outcome == "ok":
        # idempotent: a second run changes nothing
        before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
        generate.run_init(root)
        assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- mangled bytes


@st.composite
def mangled(draw: st.DrawFn) -> tuple[WorkspaceSpec, str, bytes]:
    spec = draw(workspaces())
    files = render_workspace(spec)
    target = draw(st.sampled_from(sorted(files.keys() | {"nixcrate.toml", "flake.nix", str(DATA)})))
    original = files.get(target, "").encode()
    how = draw(st.sampled_from(["truncate", "invalid-utf8", "flip", "huge", "nested", "delete-line", "binary"]))
    if how == "truncate":
        data = original[: draw(st.integers(0, max(0, len(original) - 1)))]
    elif how == "invalid-utf8":
        at = draw(st.integers(0, len(original)))
        data = original[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"])) + original[at:]
    elif how == "flip":
        data = bytearray(original or b"x")
        for _ in range(draw(st.integers(1, 5))):
            at = draw(st.integers(0, len(data) - 1))
            data[at] = draw(st.sampled_from(list(b"[]{}=\"'#\n,.x\\")))
        data = bytes(data)
    elif how == "huge":
        data = original + b"\n# " + b"x" * (8 << 20) + b"\n"  # 8 MiB
    elif how == "nested":
        depth = draw(st.sampled_from([100, 5000]))
        data = original + b"\nzz = " + b"[" * depth + b"]" * depth + b"\n"
    elif how == "delete-line":
        lines = original.split(b"\n")
        if lines:
            del lines[draw(st.integers(0, len(lines) - 1))]
        data = b"\n".join(lines)
    else:
        data = draw(st.binary(max_size=200))
    return spec, target, data


@settings(max_examples=int(settings().max_examples * 2 / 3))
@given(case=mangled())
def test_mangled_bytes_never_give_a_traceback(case: tuple[WorkspaceSpec, str, bytes], tmp_path_factory: pytest.TempPathFactory) -> None:
    spec, target, data = case
    root = tmp_path_factory.mktemp("mangled")
    files: dict[str, str | bytes] = dict(render_workspace(spec))
    files[target] = data
    write_files(root, files)
    result = CliRunner().invoke(cli, ["init", str(root)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback: the bug hypothesis shrinks and reports
    assert result.exit_code in (0, 1), result.output
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    if result.exit_code == 1:
        assert len(errors) == 1, result.stderr
        assert_catalogued(errors[0].removeprefix("error: "))
    shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- what the fuzzing found


FOUND = {
    # (file, bytes) -> words of the one-line error; each was a traceback before its fix
    "lock-package-not-a-list": ("Cargo.lock", b"version = 3\npackage = 3\n", "'package' is not a list"),
    "lock-dependencies-not-a-list": ("Cargo.lock", b'version = 3\n[[package]]\nname = "svc"\nversion = "0.1.0"\ndependencies = 5\n', "wrong type"),
    "exclude-not-a-list": ("Cargo.toml", b'[workspace]\nmembers = ["svc"]\nexclude = 5\n', "workspace.exclude must be a list"),
    "default-members-not-a-list": ("Cargo.toml", b'[workspace]\nmembers = ["svc"]\ndefault-members = 5\n', "workspace.default-members must be a list"),
    "absolute-glob": ("Cargo.toml", b'[workspace]\nmembers = ["/tmp/*"]\n', "outside the workspace root"),
    "parent-glob": ("Cargo.toml", b'[workspace]\nmembers = ["../*"]\n', "outside the workspace root"),
    "nested-10000-deep": ("Cargo.toml", b"a = " + b"[" * 10000 + b"]" * 10000 + b"\n", "nested thousands deep"),
    "lock-nested-10000-deep": ("Cargo.lock", b"a = " + b"[" * 10000 + b"]" * 10000 + b"\n", "nested thousands deep"),
    "config-nested-10000-deep": ("nixcrate.toml", b"a = " + b"{b=" * 10000 + b"1" + b"}" * 10000 + b"\n", "nested thousands deep"),
    "lib-path-not-a-string": ("svc/Cargo.toml", b'[package]\nname = "svc"\nversion = "0.1.0"\n[lib]\npath = 5\n', "path is not a string"),
    "generated-not-utf8": ("nix/nixcrate/workspace.nix", b"\xff\xfe", "edited by hand"),
    "generated-a-directory": ("nix/nixcrate/workspace.nix/x", b"", "is a directory"),
    "nixcrate-toml-a-directory": ("nixcrate.toml/x", b"", "is a directory"),
    "root-package-bin-without-file": (  # its message named `Cargo.toml`, the catalogue only `<member>/Cargo.toml`
        "Cargo.toml",
        b'[package]\nname = "root"\nversion = "0.1.0"\n[[bin]]\nname = "x"\n[workspace]\nmembers = ["svc"]\n',
        "bin 'x' has no src/bin/x.rs",
    ),
    "nixcrate-toml-not-utf8": ("nixcrate.toml", b'kind = "\xff"\n', "not valid UTF-8"),  # uncatalogued until issue 24
    "bin-name-with-a-space": (
        "svc/Cargo.toml",
        b'[package]\nname = "svc"\nversion = "0.1.0"\n[[bin]]\nname = "a b"\npath = "src/main.rs"\n',
        "bin name 'a b' cannot be a Nix attribute",
    ),
    "markup-eaten": ("svc/Cargo.toml", b"[lib]\n", "has no [package] section"),
}


@pytest.mark.parametrize("case", sorted(FOUND))
def test_found_by_fuzzing_is_one_catalogued_line(case: str, tmp_path: Path) -> None:
    target, data, words = FOUND[case]
    files: dict[str, str | bytes] = {
        "Cargo.toml": '[workspace]\nmembers = ["svc"]\n',
        "svc/Cargo.toml": '[package]\nname = "svc"\nversion = "0.1.0"\n',
        "svc/src/main.rs": "fn main() {}\n",
        "Cargo.lock": 'version = 3\n\n[[package]]\nname = "svc"\nversion = "0.1.0"\n',
    }
    files[target] = data
    write_files(tmp_path / "ws", files)
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "ws")])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert_catalogued(lines[0].removeprefix("error: "))


def test_force_keeps_a_byte_exact_backup_of_a_non_utf8_generated_file(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    spec = WorkspaceSpec([CrateSpec("svc", "services/svc", "service", ["svc"], "main", False, False, [], False, [], "explicit")], ["services"], 3)
    files: dict[str, str | bytes] = dict(render_workspace(spec))
    files[str(DATA)] = b"\xff\xfe{ }"
    write_files(root, files)
    assert CliRunner().invoke(cli, ["init", "--force", str(root)]).exit_code == 0
    assert (root / f"{DATA}.bak").read_bytes() == b"\xff\xfe{ }"


# --------------------------------------------------------------------------- hostile file systems and zips


@st.composite
def hostile_fs(draw: st.DrawFn) -> tuple[WorkspaceSpec, str, str]:
    """A workspace, one of its paths (a file or a directory above one) and what happens to it."""
    spec = draw(workspaces())
    files = render_workspace(spec)
    paths = set(files) | {"nixcrate.toml", "flake.nix"}
    paths |= {str(Path(p).parent) for p in files if str(Path(p).parent) != "."}
    target = draw(st.sampled_from(sorted(paths)))
    how = draw(st.sampled_from(["unreadable", "symlink-loop", "dangling-symlink", "symlink-out", "file-for-dir"]))
    return spec, target, how


@settings(max_examples=max(10, settings().max_examples // 5))
@given(case=hostile_fs())
def test_hostile_file_systems_never_give_a_traceback(case: tuple[WorkspaceSpec, str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    """Unreadable files and directories (as a non-root user: see test_hostile_fs.as_user),
    symlink loops, dangling symlinks, symlinks out of the tree, a file where a directory was:
    `init` succeeds or prints one catalogued line, exit 1."""
    import sys  # noqa: PLC0415

    from test_hostile_fs import REPO, as_user  # noqa: PLC0415

    spec, target, how = case
    base = tmp_path_factory.mktemp("hostile-fs")
    root = base / "ws"
    write_files(root, dict(render_workspace(spec)))
    (base / "outside").write_text("outside\n")
    path = root / target
    path.parent.mkdir(parents=True, exist_ok=True)
    if how == "unreadable":
        if not path.exists():
            path.write_text("")
        path.chmod(0)
    else:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        if how == "symlink-loop":
            path.symlink_to(path.name)
        elif how == "dangling-symlink":
            path.symlink_to(base / "nowhere")
        elif how == "symlink-out":
            path.symlink_to(base / "outside")
        else:
            path.write_text("a file where a directory was\n")
    try:
        proc = subprocess.run(
            as_user([sys.executable, "-m", "nixcrate.cli", "init", str(root)]),
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    finally:
        if how == "unreadable":
            path.chmod(0o755)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1), proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    if proc.returncode == 1:
        assert len(errors) == 1, proc.stderr
        assert_catalogued(errors[0].removeprefix("error: "))
    shutil.rmtree(base, ignore_errors=True)


@st.composite
def mangled_zips(draw: st.DrawFn) -> tuple[str, list[tuple[int, int]]]:
    """What to mutate (the ELF inside the zip, or the zip's own bytes) and (offset, byte) pairs."""
    layer = draw(st.sampled_from(["elf-header", "elf-anywhere", "zip"]))
    top = 4096 if layer == "elf-header" else 1 << 30
    return layer, draw(st.lists(st.tuples(st.integers(0, top), st.integers(0, 255)), min_size=1, max_size=8))


@pytest.fixture(scope="module")
def real_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real ELF executable to mangle: the interpreter running the tests (dynamically linked
    against glibc, like a handler; test_hostile_elf mangles a real cargo-built handler)."""
    import sys  # noqa: PLC0415

    return Path(os.path.realpath(sys.executable)).read_bytes()[: 4 << 20]


@settings(max_examples=max(20, settings().max_examples // 3), suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=mangled_zips())
def test_mangled_bootstrap_zips_never_give_a_traceback(case: tuple[str, list[tuple[int, int]]], real_bootstrap: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    import zipfile  # noqa: PLC0415

    layer, mutations = case
    base = tmp_path_factory.mktemp("zips")
    elf = bytearray(real_bootstrap)
    if layer != "zip":
        for offset, byte in mutations:
            elf[offset % len(elf)] = byte
    info = zipfile.ZipInfo("bootstrap")
    info.create_system = 3
    info.external_attr = 0o100755 << 16
    zip_path = base / "bootstrap.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(info, bytes(elf))
    if layer == "zip":
        raw = bytearray(zip_path.read_bytes())
        for offset, byte in mutations:
            raw[offset % len(raw)] = byte
        zip_path.write_bytes(bytes(raw))
    result = CliRunner().invoke(cli, ["lambda", "verify", str(zip_path)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code in (0, 1), result.output
    for line in result.stderr.splitlines():
        assert line.startswith((f"error: {zip_path}", f"{zip_path}: ")), result.stderr
    shutil.rmtree(base, ignore_errors=True)
