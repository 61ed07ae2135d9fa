"""nixcrate.resolve: cargo's resolver 2 on the lock graph, checked against real cargo.

The differential tests generate workspaces on Debian's real crates (/usr/share/cargo/registry)
and compare, per cargo invocation, the packages and features `cargo tree -e normal,build
--target T` prints with what nixcrate.resolve computes: 0 differences.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from conftest import have
from resolve_diff import DEBIAN_REGISTRY, cargo_home, cargo_rows, lock, nixcrate_rows

from nixcrate.resolve import Platform, Request, req_matches

pytestmark = pytest.mark.skipif(
    not have("cargo") or not (DEBIAN_REGISTRY / "flate2-1.0.25").is_dir() or not (DEBIAN_REGISTRY / "libz-sys-1.1.8").is_dir(),
    reason="needs cargo and Debian's librust-flate2-dev, librust-libz-sys-dev (apt-get install)",
)

LINUX = Platform.of("x86_64-unknown-linux-gnu")
ARM = Platform.of("aarch64-unknown-linux-gnu")


@pytest.mark.parametrize(
    ("spec", "x86", "arm"),
    [
        ("cfg(unix)", True, True),
        ("cfg(windows)", False, False),
        ('cfg(target_os = "linux")', True, True),
        ('cfg(target_os = "macos")', False, False),
        ('cfg(all(unix, target_arch = "aarch64"))', False, True),
        ('cfg(any(windows, target_arch = "x86_64"))', True, False),
        ("cfg(not(windows))", True, True),
        ('cfg(all(target_arch = "wasm32", not(target_os = "emscripten")))', False, False),
        ('cfg(not(any(target_env = "msvc", target_os = "windows")))', True, True),
        ("x86_64-unknown-linux-gnu", True, False),
        ("x86_64-pc-windows-msvc", False, False),
        ('cfg(feature = "x")', False, False),
    ],
)
def test_cfg(spec: str, x86: bool, arm: bool) -> None:
    assert (LINUX.matches(spec), ARM.matches(spec)) == (x86, arm)


@pytest.mark.parametrize(
    ("req", "version", "ok"),
    [("1", "1.9.0", True), ("0.4", "0.4.23", True), ("0.4", "0.5.0", False), ("^0.2.1", "0.2.0", False),
     ("~1.2", "1.2.9", True), ("~1.2", "1.3.0", False), ("=1.0.2", "1.0.2", True), (">=1, <2", "2.0.0", False), ("*", "3.0.0", True)],
)  # fmt: skip
def test_req_matches(req: str, version: str, ok: bool) -> None:
    assert req_matches(req, version) is ok


# A workspace where every rule shows: a feature that decides whether libz-sys (a -sys crate)
# is compiled, target-specific dependencies (cfg and a triple), optional deps, `dep:`, weak
# features, default-features = false, a build-dependency with other features than the same
# crate as a normal dependency, a proc-macro (serde_derive) whose syn is not the normal syn.
FIXED = {
    "Cargo.toml": '[workspace]\nmembers = ["a", "b", "c"]\nresolver = "2"\n',
    "a/Cargo.toml": """[package]
name = "a"
version = "0.1.0"
edition = "2021"
[dependencies]
flate2 = "1"
chrono = { version = "0.4", optional = true }
serde = { version = "1", optional = true, default-features = false }
uuid = { version = "1", default-features = false, optional = true }
[features]
default = ["time"]
time = ["dep:chrono"]
zlib = ["flate2/zlib"]
ser = ["serde?/derive", "uuid?/serde"]
u = ["dep:uuid", "uuid/v4"]
[target.'cfg(windows)'.dependencies]
winapi = { version = "0.3", features = ["winuser"] }
[target.'cfg(all(unix, not(target_os = "macos")))'.dependencies]
libc = "0.2"
[target.x86_64-pc-windows-gnu.dependencies]
rand = "0.8"
[build-dependencies]
serde_json = { version = "1", features = ["raw_value"] }
""",
    "b/Cargo.toml": """[package]
name = "b"
version = "0.1.0"
edition = "2021"
[dependencies]
a = { path = "../a", default-features = false, features = ["ser", "u"] }
serde = { version = "1" }
serde_json = "1"
rand = { version = "0.8", optional = true }
syn = { version = "1", features = ["full"] }
num-traits = "0.2"
[features]
default = ["rand"]
""",
    "c/Cargo.toml": """[package]
name = "c"
version = "0.1.0"
edition = "2021"
[dependencies]
a = { path = "../a", features = ["zlib", "ser"] }
serde = { version = "1", features = ["derive"] }
rayon = "1"
[dev-dependencies]
anyhow = "1"
libc = { version = "0.2", features = ["extra_traits"] }
""",
}

# Real crates and features of theirs whose dependencies Debian's registry holds.
POOL = {
    "flate2": ("1", ("zlib", "rust_backend")),
    "chrono": ("0.4", ("clock", "serde", "std", "alloc")),
    "serde": ("1", ("derive", "std", "rc", "alloc")),
    "serde_json": ("1", ("raw_value", "preserve_order", "std")),
    "uuid": ("1", ("v4", "serde", "std", "fast-rng")),
    "rand": ("0.8", ("std", "small_rng", "std_rng", "log", "serde1")),
    "num-traits": ("0.2", ("std", "libm", "i128")),
    "smallvec": ("1", ("union", "write", "serde")),
    "log": ("0.4", ("std", "serde")),
    "indexmap": ("1", ("serde-1", "rayon", "std")),
    "hashbrown": ("0.12", ("serde", "raw", "rayon")),
    "anyhow": ("1", ("std", "backtrace")),
    "once_cell": ("1", ("parking_lot", "std")),
    "num-bigint": ("0.4", ("rand", "serde")),
    "petgraph": ("0.6", ("serde-1", "graphmap")),
}
TARGETS = (
    "cfg(unix)", "cfg(windows)", 'cfg(target_os = "linux")', 'cfg(all(unix, target_arch = "aarch64"))',
    'cfg(any(windows, target_os = "macos"))', "cfg(not(windows))", "x86_64-pc-windows-msvc", "aarch64-unknown-linux-gnu",
)  # fmt: skip


def generated(seed: int) -> dict[str, str]:
    """Three members on random crates of POOL: optional or not, default-features or not, some
    features of theirs, in [dependencies], [build-dependencies] or a [target.X] table; features
    of their own made of `dep:x`, `x/f`, `x?/f`; later members on earlier ones by path."""
    rng = random.Random(seed)
    files = {"Cargo.toml": '[workspace]\nmembers = ["m0", "m1", "m2"]\nresolver = "2"\n'}
    own_features: dict[str, list[str]] = {}
    for i in range(3):
        name = f"m{i}"
        tables: dict[str, list[str]] = {}
        feats: dict[str, list[str]] = {}
        values: list[str] = []
        for dep in rng.sample(sorted(POOL), rng.randint(2, 4)):
            version, dep_feats = POOL[dep]
            optional = rng.random() < 0.45
            parts = [f'version = "{version}"']
            if optional:
                parts.append("optional = true")
            if rng.random() < 0.3:
                parts.append("default-features = false")
            chosen = rng.sample(dep_feats, rng.randint(0, 2))
            if chosen:
                parts.append("features = [" + ", ".join(f'"{f}"' for f in chosen) + "]")
            roll = rng.random()
            table = "dependencies" if roll < 0.55 else "build-dependencies" if roll < 0.7 else f"target.'{rng.choice(TARGETS)}'.dependencies"
            tables.setdefault(table, []).append(f"{dep} = {{ {', '.join(parts)} }}")
            f = rng.choice(dep_feats)
            values += [f"dep:{dep}", f"{dep}?/{f}", f"{dep}/{f}"] if optional else [f"{dep}/{f}"]
        for j in range(i):
            if rng.random() < 0.7:
                up = f"m{j}"
                picked = rng.sample(own_features[up], rng.randint(0, min(2, len(own_features[up]))))
                spec = [f'path = "../{up}"']
                if rng.random() < 0.4:
                    spec.append("default-features = false")
                if picked:
                    spec.append("features = [" + ", ".join(f'"{p}"' for p in picked) + "]")
                tables.setdefault("dependencies", []).append(f"{up} = {{ {', '.join(spec)} }}")
                values += [f"{up}/{p}" for p in own_features[up]]
        for k in range(rng.randint(1, 3)):
            feats[f"f{k}"] = rng.sample(values, min(len(values), rng.randint(1, 3)))
        feats["default"] = rng.sample(sorted(feats), rng.randint(0, len(feats)))
        own_features[name] = [f for f in feats if f != "default"]
        # a value naming `dep:x` hides x's implicit feature: keep only values cargo accepts
        lines = [f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"']
        for table, entries in sorted(tables.items()):
            lines.append(f"[{table}]\n" + "\n".join(entries))
        lines.append("[features]\n" + "\n".join(f"{k} = [{', '.join(repr(v).replace(chr(39), chr(34)) for v in vs)}]" for k, vs in feats.items()))
        files[f"{name}/Cargo.toml"] = "\n".join(lines) + "\n"
    return files


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
        if rel != "Cargo.toml":
            (root / rel).parent.joinpath("src").mkdir(exist_ok=True)
            (root / rel).parent.joinpath("src", "lib.rs").write_text("")


def differences(root: Path, home: Path, requests: list[Request], target: str) -> tuple[int, list[str]]:
    cargo = cargo_rows(root, home, requests, target)
    ours = nixcrate_rows(root, home, requests, target)
    return len(cargo), [f"cargo only: {x}" for x in sorted(cargo - ours)] + [f"nixcrate only: {x}" for x in sorted(ours - cargo)]


def invocations(members: list[str], own: dict[str, list[str]]) -> list[tuple[list[Request], str]]:
    out: list[tuple[list[Request], str]] = []
    for m in members:
        out.append(([Request(m)], "x86_64-unknown-linux-gnu"))
        for f in own.get(m, []):
            out.append(([Request(m, (f,), default_features=False)], "x86_64-unknown-linux-gnu"))
    out.append(([Request(m) for m in members], "x86_64-unknown-linux-gnu"))
    out.append(([Request(m) for m in members], "aarch64-unknown-linux-gnu"))
    return out


def _own_features(files: dict[str, str]) -> dict[str, list[str]]:
    import tomllib  # noqa: PLC0415

    return {rel.split("/")[0]: [f for f in tomllib.loads(t).get("features", {}) if f != "default"] for rel, t in files.items() if "/" in rel}


def test_fixed_workspace_matches_cargo_tree(tmp_path: Path) -> None:
    home = cargo_home(tmp_path)
    root = tmp_path / "ws"
    write(root, FIXED)
    lock(root, home)
    compared, diffs = 0, []
    for requests, target in invocations(["a", "b", "c"], _own_features(FIXED)):
        n, d = differences(root, home, requests, target)
        compared += n
        diffs += [f"{[r.crate for r in requests]} {r_feats(requests)} {target}: {x}" for x in d]
    assert diffs == []
    assert compared > 150
    # what the rules decide, as a user would see it: libz-sys only where `zlib` is on, no winapi
    a_alone = nixcrate_rows(root, home, [Request("a")], "x86_64-unknown-linux-gnu")
    assert not any(r.startswith(("libz-sys ", "winapi ", "rand ")) for r in a_alone)
    assert any(r.startswith("libz-sys ") for r in nixcrate_rows(root, home, [Request("c")], "x86_64-unknown-linux-gnu"))


def r_feats(requests: list[Request]) -> str:
    return ",".join(f for r in requests for f in r.features)


@pytest.mark.parametrize("seed", range(8))
def test_generated_workspaces_match_cargo_tree(tmp_path: Path, seed: int) -> None:
    files = generated(seed)
    home = cargo_home(tmp_path)
    root = tmp_path / "ws"
    write(root, files)
    lock(root, home)
    diffs = []
    for requests, target in invocations(["m0", "m1", "m2"], _own_features(files)):
        _, d = differences(root, home, requests, target)
        diffs += [f"{[r.crate for r in requests]} {r_feats(requests)} {target}: {x}" for x in d]
    assert diffs == [], "\n".join([*diffs, "", *(f"--- {k}\n{v}" for k, v in files.items())])


TWO_VERSIONS = {
    "Cargo.toml": '[workspace]\nmembers = ["m"]\nresolver = "2"\n',
    "m/Cargo.toml": """[package]
name = "m"
version = "0.1.0"
edition = "2021"
[dependencies]
old_log = { package = "env_logger", version = "0.7", default-features = false }
env_logger = "0.9"
[features]
color = ["old_log/termcolor"]
""",
}


@pytest.mark.skipif(
    not (DEBIAN_REGISTRY / "env_logger-0.7.1").is_dir() or not (DEBIAN_REGISTRY / "env_logger-0.9.3").is_dir(),
    reason="needs Debian's librust-env-logger-0.7-dev and librust-env-logger-dev",
)
def test_two_versions_of_one_crate_under_two_names_match_cargo_tree(tmp_path: Path) -> None:
    """A renamed dependency on an older major: each entry's features go to its own version."""
    home = cargo_home(tmp_path)
    root = tmp_path / "ws"
    write(root, TWO_VERSIONS)
    lock(root, home)
    diffs = []
    for requests in ([Request("m")], [Request("m", ("color",))], [Request("m", (), default_features=False)]):
        _, d = differences(root, home, requests, "x86_64-unknown-linux-gnu")
        diffs += [f"{r_feats(requests)}: {x}" for x in d]
    assert diffs == []


@pytest.mark.parametrize(
    ("features", "words", "expected"),
    [
        (("x,y",), ("--all-targets", "--features", "z", "--no-default-features"), (("x", "y", "z"), False, False)),
        ((), ("-F", "a/b c", "--", "--features", "q"), (("a/b", "c"), True, False)),  # after `--`: not cargo's
        ((), ("--features=p", "--all-features"), (("p",), True, True)),
    ],
)
def test_a_members_settings_make_its_request(features: tuple[str, ...], words: tuple[str, ...], expected: tuple[object, ...]) -> None:
    r = Request.from_args("m", features, words)
    assert (r.features, r.default_features, r.all_features) == expected
