"""Targets by cargo's rules, checked against real cargo: for every layout below (and for
random ones), nixcrate's lib, bins, examples, tests, benches and build script equal what
`cargo metadata --no-deps --offline` lists; where cargo refuses a manifest, nixcrate does
too. And a member whose sources are replaced by empty files at exactly its
`required_target_paths` still loads with the same lib, bins and build script, and the other
members build.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from conftest import mirror_repo
from hypothesis import given, settings
from hypothesis import strategies as st

from nixcrate import host, workspace
from nixcrate.errors import ManifestError

pytestmark = [
    pytest.mark.cargo,
    pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed"),
]

# name -> (the manifest after [package] name/version, files). Edition 2015 when none is set,
# as cargo does.
LAYOUTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "lib-only": ('edition = "2021"\n', ("src/lib.rs",)),
    "main-only": ('edition = "2021"\n', ("src/main.rs",)),
    "no-edition-main": ("", ("src/main.rs", "src/lib.rs")),
    # [lib] without path: the lib is src/lib.rs under its own name
    "lib-named": ('edition = "2021"\n[lib]\nname = "error_codes"\n', ("src/lib.rs",)),
    "proc-macro": ('edition = "2021"\n[lib]\nproc-macro = true\n', ("src/lib.rs",)),
    "proc-macro-underscore": ('edition = "2018"\n[lib]\nproc_macro = true\n', ("src/lib.rs",)),
    "cdylib": ('edition = "2021"\n[lib]\ncrate-type = ["cdylib", "rlib"]\n', ("src/lib.rs",)),
    "lib-path": ('edition = "2021"\n[lib]\npath = "lib/root.rs"\n', ("lib/root.rs", "src/lib.rs")),
    "lib-path-dotted": ('edition = "2021"\n[lib]\npath = "./src/../src/lib.rs"\n', ("src/lib.rs",)),
    # an explicit [[bin]] owns its file: no second bin `probe` inferred from it
    "bin-owns-file": (
        'edition = "2021"\n[[bin]]\nname = "probe-handler"\npath = "src/bin/probe.rs"\n',
        ("src/main.rs", "src/bin/probe.rs", "src/bin/other.rs"),
    ),
    "bin-owns-file-dotslash": (
        'edition = "2021"\n[[bin]]\nname = "probe-handler"\npath = "./src/bin/probe.rs"\n',
        ("src/bin/probe.rs", "src/bin/other.rs"),
    ),
    # edition 2015: a [[bin]] turns off inference of the other bins
    "bin-owns-file-2015": (
        '[[bin]]\nname = "probe-handler"\npath = "src/bin/probe.rs"\n',
        ("src/main.rs", "src/bin/probe.rs", "src/bin/other.rs"),
    ),
    "bin-dirs": (
        'edition = "2021"\n',
        (
            "src/bin/tool/main.rs",
            "src/bin/helper.rs",
            "src/bin/.hidden.rs",
            "src/bin/notes.txt",
            "src/bin/no-main/lib.rs",
        ),
    ),
    "bin-no-path-file": ('edition = "2021"\n[[bin]]\nname = "cli"\n', ("src/bin/cli.rs", "src/lib.rs")),
    "bin-no-path-dir": ('edition = "2021"\n[[bin]]\nname = "srv"\n', ("src/bin/srv/main.rs",)),
    "bin-package-name": ('edition = "2021"\n[[bin]]\nname = "bin-package-name"\n', ("src/main.rs",)),
    "bin-renames-main": (
        'edition = "2021"\n[[bin]]\nname = "renamed"\npath = "src/main.rs"\n',
        ("src/main.rs",),
    ),
    "autobins-false": (
        'edition = "2021"\nautobins = false\n[[bin]]\nname = "only"\npath = "src/only.rs"\n',
        ("src/main.rs", "src/bin/x.rs", "src/only.rs"),
    ),
    "autobins-false-inferred-path": (
        'edition = "2021"\nautobins = false\n[[bin]]\nname = "x"\n',
        ("src/main.rs", "src/bin/x.rs"),
    ),
    "autobins-false-nothing-declared": (
        'edition = "2021"\nautobins = false\n',
        ("src/lib.rs", "src/main.rs"),
    ),
    "autolib-false": ('edition = "2021"\nautolib = false\n', ("src/lib.rs", "src/main.rs")),
    "autolib-false-lib-named": (
        'edition = "2021"\nautolib = false\n[lib]\nname = "named"\n',
        ("src/lib.rs",),
    ),
    "required-features": (
        'edition = "2021"\n[features]\nx = []\n[[bin]]\nname = "feat"\npath = "src/feat.rs"\nrequired-features = ["x"]\n',
        ("src/feat.rs", "src/lib.rs"),
    ),
    "examples-tests-benches": (
        'edition = "2021"\n[[example]]\nname = "c"\npath = "ex/c.rs"\n[[test]]\nname = "declared"\n[[bench]]\nname = "b2"\nharness = false\n',
        (
            "src/lib.rs",
            "examples/a.rs",
            "examples/b/main.rs",
            "ex/c.rs",
            "tests/t.rs",
            "tests/declared.rs",
            "benches/bb.rs",
            "benches/b2.rs",
        ),
    ),
    "examples-2015": (
        '[[example]]\nname = "c"\npath = "ex/c.rs"\n',
        ("src/lib.rs", "examples/a.rs", "ex/c.rs", "tests/t.rs"),
    ),
    "auto-others-false": (
        'edition = "2021"\nautoexamples = false\nautotests = false\nautobenches = false\n',
        ("src/lib.rs", "examples/a.rs", "tests/t.rs", "benches/bb.rs"),
    ),
    "declared-example-missing": (
        'edition = "2021"\n[[example]]\nname = "gone"\n',
        ("src/lib.rs", "examples/a.rs"),
    ),
    # no lib, no bin: cargo 1.95 loads a crate of examples (or tests) alone, and only with them
    "examples-only": ('edition = "2021"\n', ("examples/b/main.rs", "examples/a.rs")),
    "tests-only": ('edition = "2021"\n', ("tests/t.rs",)),
    "build-default": ('edition = "2021"\n', ("src/lib.rs", "build.rs")),
    "build-false": ('edition = "2021"\nbuild = false\n', ("src/lib.rs", "build.rs")),
    "build-custom": ('edition = "2021"\nbuild = "tools/gen.rs"\n', ("src/lib.rs", "tools/gen.rs")),
    "build-true": ('edition = "2021"\nbuild = true\n', ("src/lib.rs", "build.rs")),
    # a package that links a native library must keep a build script (nickel-lang-core)
    "links-build": ('edition = "2021"\nlinks = "foo"\n', ("src/lib.rs", "build.rs")),
    "legacy-lib-2015": ('[lib]\nname = "legacy"\n', ("src/legacy.rs",)),
    "legacy-bin-2015": ('[[bin]]\nname = "x"\n', ("src/x.rs",)),
    "edition-inherited": (
        'edition.workspace = true\n[[bin]]\nname = "probe-handler"\npath = "src/bin/probe.rs"\n',
        ("src/bin/probe.rs", "src/bin/other.rs"),
    ),
}

# Manifests cargo refuses: nixcrate refuses them too (one line, naming the file).
REFUSED: dict[str, tuple[str, tuple[str, ...]]] = {
    "lib-named-no-file": ('edition = "2021"\n[lib]\nname = "x"\n', ("src/main.rs",)),
    "bin-no-file": ('edition = "2021"\n[[bin]]\nname = "missing"\n', ("src/lib.rs",)),
    "bin-no-name": ('edition = "2021"\n[[bin]]\npath = "src/main.rs"\n', ("src/main.rs",)),
    "bin-twice-inferred": ('edition = "2021"\n', ("src/bin/dup.rs", "src/bin/dup/main.rs")),
    "bin-ambiguous": ('edition = "2021"\n[[bin]]\nname = "dup"\n', ("src/bin/dup.rs", "src/bin/dup/main.rs")),
    "lib-name-dash": ('edition = "2021"\n[lib]\nname = "has-dash"\n', ("src/lib.rs",)),
    "autobins-not-bool": ('edition = "2021"\nautobins = "no"\n', ("src/main.rs",)),
}


def write_workspace(
    root: Path, layouts: dict[str, tuple[str, tuple[str, ...]]], extra_members: tuple[str, ...] = ()
) -> None:
    names = sorted(layouts)
    members = [*names, *extra_members]
    (root / "Cargo.toml").parent.mkdir(parents=True, exist_ok=True)
    (root / "Cargo.toml").write_text(
        f'[workspace]\nmembers = {json.dumps(members)}\nresolver = "2"\n[workspace.package]\nedition = "2021"\n'
    )
    lock = ["version = 4", ""]
    for name in sorted(members):
        lock += ["[[package]]", f'name = "{name}"', 'version = "0.1.0"', ""]
    (root / "Cargo.lock").write_text("\n".join(lock))
    for name in names:
        manifest, files = layouts[name]
        (root / name).mkdir()
        (root / name / "Cargo.toml").write_text(f'[package]\nname = "{name}"\nversion = "0.1.0"\n{manifest}')
        for rel in files:
            path = root / name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("fn main() {}\n" if "bin" in rel or "main" in rel else "")


def cargo(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CARGO_TARGET_DIR": str(root / "target"), "CARGO_NET_OFFLINE": "true"}
    return subprocess.run(
        ["cargo", *args, "--offline"], cwd=root, env=env, capture_output=True, text=True, check=check
    )


def cargo_targets(root: Path) -> dict[str, dict[str, Any]]:
    """Per package: what cargo metadata lists, in nixcrate's terms (paths relative to the crate)."""
    proc = cargo(root, "metadata", "--no-deps", "--format-version", "1")
    out: dict[str, dict[str, Any]] = {}
    for pkg in json.loads(proc.stdout)["packages"]:
        crate_dir = str(Path(pkg["manifest_path"]).parent)
        model: dict[str, Any] = {
            "lib": None,
            "bin": [],
            "example": [],
            "test": [],
            "bench": [],
            "custom-build": [],
        }
        for t in pkg["targets"]:
            rel = os.path.relpath(os.path.normpath(t["src_path"]), crate_dir)
            kind = t["kind"]
            if kind[0] in ("bin", "example", "test", "bench", "custom-build"):
                model[kind[0]].append((t["name"], rel, tuple(t.get("required-features", ()))))
            else:
                model["lib"] = (t["name"], rel, tuple(t["crate_types"]))
        for key in ("bin", "example", "test", "bench"):
            model[key] = sorted(model[key])
        model["custom-build"] = [rel for _, rel, _ in model["custom-build"]]
        out[pkg["name"]] = model
    return out


def nixcrate_targets(crate: workspace.Crate) -> dict[str, Any]:
    def listed(targets: tuple[workspace.Target, ...]) -> list[tuple[str, str, tuple[str, ...]]]:
        return sorted((t.name, os.path.normpath(str(t.path)), t.required_features) for t in targets)

    lib = crate.lib
    return {
        "lib": (lib.name, os.path.normpath(str(lib.path)), lib.crate_types) if lib else None,
        "bin": listed(crate.bins),
        "example": listed(crate.examples),
        "test": listed(crate.tests),
        "bench": listed(crate.benches),
        "custom-build": [str(crate.build_script)] if crate.build_script else [],
    }


@pytest.fixture(scope="module")
def layouts_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layouts")
    write_workspace(root, LAYOUTS)
    return root


@pytest.fixture(scope="module")
def cargo_view(layouts_root: Path) -> dict[str, dict[str, Any]]:
    return cargo_targets(layouts_root)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_targets_match_cargo_metadata(
    layouts_root: Path, cargo_view: dict[str, dict[str, Any]], layout: str
) -> None:
    ws = workspace.load(layouts_root)
    assert nixcrate_targets(ws.crate(layout)) == cargo_view[layout]


def test_the_reported_layouts(layouts_root: Path) -> None:
    ws = workspace.load(layouts_root)
    # a [[bin]] that owns src/bin/probe.rs: no phantom bin `probe` (nor deploy-lambda-probe)
    assert [b.name for b in ws.crate("bin-owns-file").bins] == ["bin-owns-file", "other", "probe-handler"]
    # a [lib] with a name and no path is src/lib.rs, and a stub must be there
    lib = ws.crate("lib-named").lib
    assert lib is not None
    assert (lib.name, lib.path) == ("error_codes", PurePosixPath("src/lib.rs"))
    assert ws.crate("lib-named").required_target_files() == ("lib-named/src/lib.rs",)
    assert ws.crate("proc-macro").required_target_paths == ("src/lib.rs",)
    cdylib = ws.crate("cdylib").lib
    assert cdylib is not None
    assert cdylib.crate_types == ("cdylib", "rlib")


@pytest.mark.parametrize("layout", sorted(REFUSED))
def test_manifests_cargo_refuses_are_refused(tmp_path: Path, layout: str) -> None:
    write_workspace(tmp_path, {layout: REFUSED[layout]})
    assert cargo(tmp_path, "metadata", "--no-deps", "--format-version", "1", check=False).returncode != 0
    with pytest.raises(ManifestError) as info:
        workspace.load(tmp_path)
    assert info.value.message.startswith(f"{layout}/Cargo.toml: ")
    assert "\n" not in info.value.message


def strip_to_stubs(root: Path, keep: str) -> workspace.Workspace:
    """Every member but `keep` loses its sources; empty files go where required_target_files says."""
    ws = workspace.load(root)
    for crate in ws.members:
        if crate.name == keep:
            continue
        for entry in (root / crate.path).iterdir():
            if entry.name != "Cargo.toml":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        for rel in crate.required_target_files():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).touch()
    return ws


def test_members_stubbed_at_their_required_paths_load_and_the_rest_builds(tmp_path: Path) -> None:
    # declared-example-missing fails every `cargo build` in the workspace, sources or not
    buildable = {name: layout for name, layout in LAYOUTS.items() if name != "declared-example-missing"}
    write_workspace(tmp_path, buildable, extra_members=("consumer",))
    (tmp_path / "consumer" / "src").mkdir(parents=True)
    (tmp_path / "consumer" / "Cargo.toml").write_text(
        '[package]\nname = "consumer"\nversion = "0.1.0"\nedition = "2021"\n'
    )
    (tmp_path / "consumer" / "src" / "main.rs").write_text("fn main() {}\n")
    before = cargo_targets(tmp_path)
    ws = strip_to_stubs(tmp_path, keep="consumer")
    after = cargo_targets(tmp_path)
    for crate in ws.members:
        # the same lib, bins and build script: what cargo loads does not depend on the sources
        kept = ("lib", "bin", "custom-build")
        assert [after[crate.name][k] for k in kept] == [before[crate.name][k] for k in kept], crate.name
    build = cargo(tmp_path, "build", "-p", "consumer", check=False)
    assert build.returncode == 0, build.stderr[-2000:]


# --------------------------------------------------------------------------- random layouts

FILES = (
    "src/lib.rs",
    "src/main.rs",
    "src/bin/a.rs",
    "src/bin/b/main.rs",
    "src/bin/a/main.rs",
    "src/x.rs",
    "build.rs",
    "examples/e.rs",
    "tests/t.rs",
)


@st.composite
def layouts(draw: st.DrawFn) -> tuple[str, tuple[str, ...]]:
    lines = []
    edition = draw(st.sampled_from(["", "2015", "2018", "2021", "2024"]))
    if edition:
        lines.append(f'edition = "{edition}"')
    for flag in ("autobins", "autolib", "autoexamples", "autotests"):
        value = draw(st.sampled_from([None, True, False]))
        if value is not None:
            lines.append(f"{flag} = {str(value).lower()}")
    build = draw(st.sampled_from([None, "false", "true", '"build.rs"']))
    if build:
        lines.append(f"build = {build}")
    lib = draw(
        st.sampled_from(
            [None, "", 'name = "named"', 'path = "src/x.rs"', "proc-macro = true", 'crate-type = ["cdylib"]']
        )
    )
    if lib is not None:
        lines += ["[lib]", lib]
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(["a", "b", "c", "pkg"]))
        path = draw(st.sampled_from([None, "src/bin/a.rs", "src/main.rs", "src/x.rs"]))
        lines += ["[[bin]]", f'name = "{name}"'] + ([f'path = "{path}"'] if path else [])
    files = tuple(sorted(draw(st.sets(st.sampled_from(FILES), max_size=6))))
    return "\n".join(lines) + "\n", files


@settings(max_examples=60, deadline=None)
@given(layout=layouts())
def test_random_layouts_match_cargo_metadata(
    tmp_path_factory: pytest.TempPathFactory, layout: tuple[str, tuple[str, ...]]
) -> None:
    root = tmp_path_factory.mktemp("random")
    write_workspace(root, {"pkg": layout})
    proc = cargo(root, "metadata", "--no-deps", "--format-version", "1", check=False)
    if proc.returncode == 0:
        assert nixcrate_targets(workspace.load(root).crate("pkg")) == cargo_targets(root)["pkg"], layout
    elif "no targets specified" in proc.stderr:
        # nixcrate leaves a manifest without any target to cargo: it finds none either
        try:
            crate = workspace.load(root).crate("pkg")
        except ManifestError:
            return
        assert (crate.lib, crate.bins, crate.examples, crate.tests) == (None, (), (), ())
    else:
        with pytest.raises(ManifestError):
            workspace.load(root)


# --------------------------------------------------------------------------- real workspaces

# The workspaces the bug reports came from, where fetched into .mirror/ (skipped otherwise),
# and the crates among their members the build machine cannot build on their own.
REAL = {
    "tweag+nickel": {"py-nickel": host.PYTHON_REASON, "nickel-wasm-repl": host.WASM_REASON},
    "lldap+lldap": {"lldap_app": host.WASM_REASON},
    "vectordotdev+vector": {"vector-vrl-web-playground": host.WASM_REASON},
}


def materialize(repo: Path, dest: Path) -> None:
    """The repository's tree at HEAD: manifests and locks with their content, every other
    file empty (targets depend on which files exist, not on what they hold). No
    rust-toolchain file, so cargo runs as installed."""
    names = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "-r", "--name-only", "-z", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    keep = [n for n in names if n.rsplit("/", 1)[-1] in ("Cargo.toml", "Cargo.lock")]
    for name in names:
        if name and name not in keep and not name.rsplit("/", 1)[-1].startswith("rust-toolchain"):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).touch()
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "HEAD", "--", *keep], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_workspaces_match_cargo_metadata_and_their_unbuildable_crates(tmp_path: Path, name: str) -> None:
    repo = mirror_repo(name) or Path("/work/.mirror") / name / "repo"
    if not repo.exists():
        pytest.skip(f"{name.replace('+', '/')} is not fetched into .mirror/")
    materialize(repo, tmp_path)
    ws = workspace.load(tmp_path)
    theirs = cargo_targets(tmp_path)
    for crate in ws.members:
        assert nixcrate_targets(crate) == theirs[crate.name], crate.name
    unbuildable = {c.name: c.host_unbuildable_reason for c in ws.members if c.host_unbuildable_reason}
    assert unbuildable == REAL[name]
    # every member but one reduced to its required files: cargo loads the same targets
    keep = ws.members[0].name
    strip_to_stubs(tmp_path, keep=keep)
    after = cargo_targets(tmp_path)
    for crate in ws.members:
        kept = ("lib", "bin", "custom-build")
        assert [after[crate.name][k] for k in kept] == [theirs[crate.name][k] for k in kept], crate.name
