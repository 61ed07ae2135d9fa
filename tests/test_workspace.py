"""The workspace model: cargo's rules for members, inheritance, targets and the lock."""

from __future__ import annotations

import textwrap
from pathlib import Path, PurePosixPath

import pytest

from nixcrate import workspace
from nixcrate.closure import LockGraph, analyse
from nixcrate.errors import LockfileError, ManifestError, WorkspaceError
from nixcrate.workspace import MemberKind

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "monorepo"


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return root


def lock(*packages: tuple[str, str, list[str]], registry: tuple[str, ...] = ()) -> str:
    out = ["version = 4", ""]
    for name, version, deps in packages:
        out += ["[[package]]", f'name = "{name}"', f'version = "{version}"']
        if name in registry:
            out += ['source = "registry+https://github.com/rust-lang/crates.io-index"', f'checksum = "{"0" * 64}"']
        if deps:
            out.append("dependencies = [" + ", ".join(f'"{d}"' for d in deps) + "]")
        out.append("")
    return "\n".join(out)


def test_example_members_kinds_and_path_crates() -> None:
    ws = workspace.load(EXAMPLE)
    # the vendored path crate is under the root and not excluded: a member, as cargo makes it
    # (`cargo metadata`'s workspace_members lists it)
    assert ws.member_names == ("api", "common", "ingest", "report-export", "textwrap-lite", "worker")
    # excluded by `exclude`
    assert "experimental" not in [c.name for c in ws.crates]
    textwrap_lite = ws.crate("textwrap-lite")
    assert textwrap_lite.is_member and textwrap_lite.path == PurePosixPath("vendor/textwrap-lite")
    assert textwrap_lite.natural_kind() is MemberKind.LIBRARY
    worker = ws.crate("worker")
    assert [b.name for b in worker.bins] == ["worker", "worker-admin"]
    assert worker.build_script == PurePosixPath("build.rs")
    assert worker.version == "0.3.1"  # version.workspace = true
    assert ws.crate("common").natural_kind() is MemberKind.LIBRARY
    assert ws.crate("api").natural_kind() is MemberKind.SERVICE
    assert ws.crate("report-export").declares_target


def test_workspace_dependency_inheritance_resolves_paths_from_the_root() -> None:
    ws = workspace.load(EXAMPLE)
    common_dep = next(d for d in ws.crate("api").deps if d.name == "common")
    assert common_dep.path == PurePosixPath("crates/common")


def test_lambda_runtime_dependency_makes_a_handler(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "Cargo.toml": '[workspace]\nmembers = ["h"]\n',
            "h/Cargo.toml": '[package]\nname = "h"\nversion = "0.1.0"\n[dependencies]\nrt = { package = "lambda_runtime", version = "0.13" }\n',
            "h/src/main.rs": "fn main() {}",
            "Cargo.lock": lock(("h", "0.1.0", ["lambda_runtime"]), ("lambda_runtime", "0.13.0", []), registry=("lambda_runtime",)),
        },
    )
    ws = workspace.load(tmp_path)
    assert ws.crate("h").natural_kind() is MemberKind.LAMBDA


def test_single_package_repository(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "Cargo.toml": '[package]\nname = "solo"\nversion = "1.2.3"\n[[bin]]\nname = "solo-cli"\npath = "src/cli.rs"\n',
            "src/lib.rs": "",
            "Cargo.lock": lock(("solo", "1.2.3", [])),
        },
    )
    ws = workspace.load(tmp_path)
    assert ws.member_names == ("solo",)
    solo = ws.crate("solo")
    assert solo.path == PurePosixPath(".")
    assert [b.name for b in solo.bins] == ["solo-cli"] and solo.lib is not None


def test_autobins_false_and_bin_directories(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "Cargo.toml": '[workspace]\nmembers = ["a", "b"]\n',
            "a/Cargo.toml": '[package]\nname = "a"\nversion = "0.1.0"\nautobins = false\n',
            "a/src/main.rs": "fn main() {}",
            "a/src/lib.rs": "",
            "b/Cargo.toml": '[package]\nname = "b"\nversion = "0.1.0"\n',
            "b/src/bin/one.rs": "fn main() {}",
            "b/src/bin/two/main.rs": "fn main() {}",
            "Cargo.lock": lock(("a", "0.1.0", []), ("b", "0.1.0", [])),
        },
    )
    ws = workspace.load(tmp_path)
    assert ws.crate("a").bins == ()
    assert [b.name for b in ws.crate("b").bins] == ["one", "two"]


@pytest.mark.parametrize(
    ("files", "error", "words"),
    [
        ({}, ManifestError, ["Cargo.toml", "not found"]),
        ({"Cargo.toml": "[workspace\nmembers = 1"}, ManifestError, ["Cargo.toml", "invalid TOML", "line 1"]),
        ({"Cargo.toml": "[dependencies]\nx = '1'\n"}, ManifestError, ["neither [workspace] nor [package]"]),
        ({"Cargo.toml": '[workspace]\nmembers = ["missing"]\n'}, ManifestError, ["missing/Cargo.toml", "not found"]),
        ({"Cargo.toml": '[workspace]\nmembers = ["../outside"]\n'}, WorkspaceError, ["outside the workspace root"]),
        (
            {"Cargo.toml": '[workspace]\nmembers = ["a"]\n', "a/Cargo.toml": '[package]\nname = "a"\nversion = "0.1.0"\n', "a/src/main.rs": ""},
            LockfileError,
            ["Cargo.lock", "cargo generate-lockfile"],
        ),
        (
            {
                "Cargo.toml": '[workspace]\nmembers = ["a"]\n',
                "a/Cargo.toml": '[package]\nname = "a"\nversion = "0.1.0"\n',
                "a/src/main.rs": "",
                "Cargo.lock": '[[package]]\nname = "a"\nversion = "0.1.0"\n',
            },
            LockfileError,
            ["version 1 or 2", "cargo update"],
        ),
        (
            {
                "Cargo.toml": '[workspace]\nmembers = ["a"]\n',
                "a/Cargo.toml": '[package]\nname = "a"\nversion = "0.1.0"\n[dependencies]\nserde = "1"\n',
                "a/src/main.rs": "",
                "Cargo.lock": lock(("a", "0.1.0", [])),
            },
            LockfileError,
            ["'serde'", "older than the manifests", "cargo update -w"],
        ),
        (
            {
                "Cargo.toml": '[workspace]\nmembers = ["a"]\n',
                "a/Cargo.toml": '[package]\nname = "a"\nversion = "0.1.0"\n[dependencies]\nb = { path = "../../b" }\n',
                "a/src/main.rs": "",
            },
            WorkspaceError,
            ["outside the workspace root"],
        ),
        (
            {
                "Cargo.toml": '[workspace]\nmembers = ["a", "b"]\n',
                "a/Cargo.toml": '[package]\nname = "dup"\nversion = "0.1.0"\n',
                "b/Cargo.toml": '[package]\nname = "dup"\nversion = "0.1.0"\n',
            },
            WorkspaceError,
            ["'dup'", "unique"],
        ),
        (
            {"Cargo.toml": '[workspace]\nmembers = ["a"]\n', "a/Cargo.toml": '[package]\nname = "a.b"\nversion = "0.1.0"\n'},
            ManifestError,
            ["'a.b'", "rename"],
        ),
    ],
    ids=["no-manifest", "toml-syntax", "not-a-workspace", "member-without-manifest", "member-outside", "no-lock", "lock-v1", "stale-lock", "path-dep-outside", "duplicate-names", "odd-name"],
)
def test_bad_workspaces_give_one_line_errors(tmp_path: Path, files: dict[str, str], error: type, words: list[str]) -> None:
    root = write(tmp_path / "ws", files) if files else (tmp_path / "ws")
    root.mkdir(exist_ok=True)
    with pytest.raises(error) as exc:
        workspace.load(root)
    message = exc.value.message
    assert "\n" not in message
    for w in words:
        assert w in message


def test_glob_matching_nothing_is_a_warning_as_cargo_accepts_it(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "Cargo.toml": '[workspace]\nmembers = ["a", "tools/*"]\n',
            "a/Cargo.toml": '[package]\nname = "a"\nversion = "0.1.0"\n',
            "a/src/main.rs": "",
            "Cargo.lock": lock(("a", "0.1.0", [])),
        },
    )
    ws = workspace.load(tmp_path)
    assert ws.warnings and "tools/*" in ws.warnings[0]


def test_closure_analysis_counts_shared_crates() -> None:
    ws = workspace.load(EXAMPLE)
    report = analyse(ws, [ws.crate("api"), ws.crate("worker")], [ws.crate("ingest")])
    per = dict(report.per_member)
    assert any(k.startswith("smallvec ") for k in per["api"])
    assert not any(k.startswith("smallvec ") for k in per["ingest"])
    # api and worker both use serde_json (and what it pulls in) and smallvec
    shared = {k.split()[0] for k in report.shared_by_services}
    assert {"serde_json", "smallvec", "serde", "itoa", "ryu"} <= shared
    assert "memchr" in report.services.crate_names  # through the vendored path crate
    assert LockGraph(ws).path_closure(ws.crate("api"))[-1].name == "textwrap-lite"


# Each runtime crate, and the ways a manifest names a dependency: by name, renamed, inherited.
HANDLER_SHAPES = {
    "on-runtime": 'rt = { package = "lambda_runtime", version = "0.13" }\n',
    "on-http": "lambda_http.workspace = true\n",
    "on-extension": 'lambda_extension = "0.11"\n',
    # not handlers: the runtime only through a library, or only in tests
    "via-library": 'events = { path = "../events" }\n',
    "tests-only": '[dev-dependencies]\nlambda_http = "0.13"\n',
}


def test_a_bin_depending_directly_on_any_lambda_runtime_crate_is_a_handler_as_cargo_reads_it(tmp_path: Path) -> None:
    """README: a Lambda handler is a member with a bin target and a direct dependency on
    lambda_runtime, lambda_http or lambda_extension. Which members those are comes from
    `cargo metadata` (targets, and dependencies by package name, renames and inheritance
    resolved); what nixcrate made of each, from the generated data as Nix reads it."""
    import json  # noqa: PLC0415
    import shutil  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    from click.testing import CliRunner  # noqa: PLC0415

    from nixcrate.cli import cli  # noqa: PLC0415

    if shutil.which("cargo") is None or shutil.which("nix-instantiate") is None:
        pytest.skip("needs cargo (the oracle) and nix (to read the generated data)")
    runtimes = ("lambda_runtime", "lambda_http", "lambda_extension")
    files = {
        "Cargo.toml": '[workspace]\nmembers = ["*"]\nexclude = ["nix"]\nresolver = "2"\n\n[workspace.dependencies]\nlambda_http = "0.13"\n',
        "events/Cargo.toml": '[package]\nname = "events"\nversion = "0.1.0"\n\n[dependencies]\nlambda_runtime = "0.13"\n',
        "events/src/lib.rs": "",
    }
    for name, deps in HANDLER_SHAPES.items():
        table = "" if deps.startswith("[") else "[dependencies]\n"
        files[f"{name}/Cargo.toml"] = f'[package]\nname = "{name}"\nversion = "0.1.0"\n\n{table}{deps}'
        files[f"{name}/src/main.rs"] = "fn main() {}\n"
    write(tmp_path, files)
    in_tree = [(n, "0.1.0", ["lambda_runtime"] if n == "events" else []) for n in ("events", *HANDLER_SHAPES)]
    (tmp_path / "Cargo.lock").write_text(lock(*in_tree, *((r, "0.13.0", []) for r in runtimes), registry=runtimes))

    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--no-deps", "--offline", "--format-version", "1"], cwd=tmp_path, capture_output=True, text=True, check=True
        ).stdout
    )
    cargo_handlers = sorted(
        p["name"]
        for p in meta["packages"]
        if any("bin" in t["kind"] for t in p["targets"]) and any(d["name"] in runtimes and d["kind"] is None for d in p["dependencies"])
    )
    assert cargo_handlers == ["on-extension", "on-http", "on-runtime"]  # the fixture is what it says

    result = CliRunner().invoke(cli, ["init", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = tmp_path / "nix" / "nixcrate" / "workspace.nix"
    kinds = json.loads(
        subprocess.run(
            ["nix-instantiate", "--eval", "--strict", "--json", "-E", f"builtins.mapAttrs (_: c: c.kind or null) (import {data} {{ pkgs = {{ }}; }}).crates"],
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    assert sorted(n for n, k in kinds.items() if k == "lambda") == cargo_handlers
    assert kinds["via-library"] == kinds["tests-only"] == "service"
