"""A fleet-shaped Cargo workspace built from Debian's vendored crates, offline.

    python benchmarks/fleet.py workspace DIR [--size fleet|xl] [--registry DIR]
    python benchmarks/fleet.py registry DIR [--bump hex=0.4.4 ...] [--from /usr/share/cargo/registry]

`workspace` writes the workspace (root Cargo.toml, members, nixcrate.toml) and its
Cargo.lock, resolved by real cargo `--offline` against a directory registry (Debian's
`/usr/share/cargo/registry` by default: `apt-get install` the `librust-*-dev` packages
named by `DEBIAN_PACKAGES`). The shape is the one nixcrate is for:

- `fleet`: 4 services and 3 Lambda handler crates (one with 2 bins), 2 shared libraries,
  about 115 third-party crates. tokio, hyper, serde, regex, ... are shared with a different
  feature set per service; one crate only one service uses and nothing depends on (hex,
  billing's), one many crates depend on (memchr: aho-corasick, regex, tokio's `io-util`,
  env_logger). Handlers declare `kind = "lambda"` in nixcrate.toml (lambda_runtime is not
  in Debian), as examples/monorepo does.
- `xl`: the same plus 3 services and 1 handler crate, about 150 third-party crates.

`registry` writes a directory registry of links to an existing one plus made-up versions
of some of its crates (`--bump hex=0.4.4`: a copy of hex-0.4.3 whose manifest says 0.4.4),
for a Renovate-style lock bump that Debian's registry cannot offer. Point `workspace
--registry` (and crane-build's `CRANE_BUILD_REGISTRY`) at it; `bump_lock()` moves one crate
of a written workspace's lock to its newest version there (`cargo update -p NAME`).

Imported by benchmarks/incremental.py and benchmarks/cold_build.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

DEBIAN_REGISTRY = Path("/usr/share/cargo/registry")
# What `apt-get install` needs for every crate of both sizes (their dependencies follow).
DEBIAN_PACKAGES = tuple(
    f"librust-{p}-dev"
    for p in (
        "tokio", "hyper", "tower", "http", "h2", "serde", "serde-json", "regex", "aho-corasick",
        "memchr", "hex", "tracing", "tracing-subscriber", "futures", "clap", "chrono", "uuid",
        "base64", "sha2", "url", "rand", "env-logger", "log", "toml", "thiserror", "anyhow",
        "bytes", "parking-lot", "dashmap", "rayon", "flate2", "csv", "humantime", "once-cell",
        "smallvec", "itoa", "ryu",
    )
)  # fmt: skip


@dataclass(frozen=True)
class Member:
    name: str
    path: str
    deps: dict[str, str]  # key -> TOML inline value
    code: str  # src/main.rs or src/lib.rs
    bins: tuple[str, ...] = ()  # extra bins (src/bin/<name>.rs); a service has src/main.rs
    lambda_: bool = False
    lib: bool = False


def tokio(*features: str) -> str:
    return "{ workspace = true, features = [" + ", ".join(f'"{f}"' for f in features) + "] }"


WS = "{ workspace = true }"
# Shared versions (Debian bookworm's), default features off where services pick their own.
WORKSPACE_DEPS = {
    "tokio": '{ version = "1", default-features = false }',
    "serde": '{ version = "1", features = ["derive"] }',
    "serde_json": '"1"',
    "anyhow": '"1"',
    "thiserror": '"1"',
    "tracing": '"0.1"',
    "regex": '"1"',
    "chrono": '{ version = "0.4", default-features = false }',
    "uuid": '{ version = "1", default-features = false }',
    "log": '"0.4"',
    "base64": '"0.13"',
    "url": '"2"',
    "csv": '"1"',
}

MAIN = """\
fn main() {{
    {body}
    println!("{{}}", common::banner("{name}"));
}}
"""
HANDLER = """\
use std::io::Read;

fn main() {{
    let mut event = String::new();
    std::io::stdin().read_to_string(&mut event).unwrap();
    let value: serde_json::Value = serde_json::from_str(if event.is_empty() {{ "{{}}" }} else {{ &event }}).unwrap();
    {body}
    println!("{{}}", serde_json::json!({{ "handler": "{name}", "event": value }}));
}}
"""

LIBS = (
    Member(
        "common", "crates/common",
        {"serde": WS, "serde_json": WS, "anyhow": WS, "thiserror": WS, "tracing": WS},
        'pub fn banner(name: &str) -> String {\n    serde_json::json!({ "service": name }).to_string()\n}\n',
        lib=True,
    ),
    Member(
        "model", "crates/model",
        {"serde": WS, "chrono": '{ workspace = true, features = ["serde", "std"] }', "uuid": '{ workspace = true, features = ["serde"] }'},
        "#[derive(serde::Serialize, serde::Deserialize)]\npub struct Order {\n    pub id: uuid::Uuid,\n    pub at: chrono::NaiveDate,\n}\n",
        lib=True,
    ),
)  # fmt: skip

FLEET = (
    Member(
        "gateway", "services/gateway",
        {
            "common": WS, "tokio": tokio("rt-multi-thread", "macros", "net", "time", "sync"),
            "hyper": '{ version = "0.14", features = ["server", "http1", "http2", "tcp", "runtime"] }',
            "tower": '{ version = "0.4", features = ["util", "timeout"] }', "http": '"0.2"',
            "serde": WS, "serde_json": WS, "tracing": WS,
            "tracing-subscriber": '{ version = "0.3", features = ["fmt", "env-filter"] }',
        },
        "let _ = http::StatusCode::OK;",
    ),
    Member(
        "billing", "services/billing",
        {
            "common": WS, "model": WS, "tokio": tokio("rt", "macros", "time"), "hex": '"0.4"',
            "sha2": '"0.10"', "serde": WS, "serde_json": WS, "thiserror": WS,
            "chrono": '{ workspace = true, features = ["clock"] }', "uuid": '{ workspace = true, features = ["v4"] }',
        },
        'println!("{}", hex::encode(b"billing"));',
    ),
    Member(
        "search", "services/search",
        {
            "common": WS, "tokio": tokio("rt", "io-util", "fs", "macros"), "regex": WS,
            "aho-corasick": '"0.7"', "memchr": '"2"', "rayon": '"1"', "env_logger": '"0.9"',
            "log": WS, "dashmap": '"5"', "parking_lot": '"0.12"',
        },
        'println!("{}", regex::Regex::new("a+").unwrap().is_match("aaa"));',
    ),
    Member(
        "ingestor", "services/ingestor",
        {
            "common": WS, "model": WS, "tokio": tokio("rt-multi-thread", "net", "sync", "time"),
            "futures": '"0.3"', "bytes": '"1"', "flate2": '"1"', "csv": WS, "url": WS,
            "base64": WS, "humantime": '"2"', "toml": '"0.5"', "serde": WS,
        },
        'println!("{}", url::Url::parse("https://example.com/a").unwrap().path());',
    ),
    Member(
        "orders", "lambdas/orders",
        {"common": WS, "model": WS, "tokio": tokio("rt", "macros"), "serde": WS, "serde_json": WS},
        "let _ = tokio::runtime::Builder::new_current_thread().build().unwrap();",
        lambda_=True,
    ),
    Member(
        "reports", "lambdas/reports",
        {"common": WS, "csv": WS, "chrono": '{ workspace = true, features = ["std"] }', "serde": WS, "serde_json": WS},
        "let _ = csv::WriterBuilder::new();",
        bins=("report-daily", "report-weekly"),
        lambda_=True,
    ),
    Member(
        "notify", "lambdas/notify",
        {"url": WS, "base64": WS, "log": WS, "serde_json": WS, "once_cell": '"1"'},
        'let _ = base64::encode(url::Url::parse("https://example.com").unwrap().as_str());',
        lambda_=True,
    ),
)  # fmt: skip

XL_EXTRA = (
    Member(
        "audit", "services/audit",
        {"common": WS, "sha2": '"0.10"', "rand": '"0.8"', "chrono": '{ workspace = true, features = ["clock", "serde"] }', "uuid": '{ workspace = true, features = ["v4", "serde"] }', "tokio": tokio("rt", "sync")},
        "let _ = rand::random::<u8>();",
    ),
    Member(
        "scheduler", "services/scheduler",
        {"common": WS, "tokio": tokio("full"), "humantime": '"2"', "parking_lot": '"0.12"', "crossbeam-channel": '"0.5"', "tracing": WS,
         "clap": '{ version = "4", features = ["derive"] }', "tracing-subscriber": '{ version = "0.3", features = ["fmt"] }'},
        'let _ = humantime::parse_duration("1s").unwrap();',
    ),
    Member(
        "exporter", "services/exporter",
        {"common": WS, "model": WS, "flate2": '"1"', "csv": WS, "rayon": '"1"', "serde_json": WS, "indexmap": '{ version = "1", features = ["serde"] }', "petgraph": '"0.6"',
         "num-bigint": '"0.4"', "seahash": '"4"', "sha1": '"0.10"', "tokio-stream": '"0.1"', "time": '{ version = "0.3", features = ["formatting"] }',
         "unicode-segmentation": '"1"', "tiny-keccak": '{ version = "2", features = ["sha3"] }', "subtle": '"2"', "unicase": '"2"'},
        "let _ = flate2::Compression::default();",
    ),
    Member(
        "thumbnail", "lambdas/thumbnail",
        {"common": WS, "rand": '"0.8"', "base64": WS, "serde_json": WS, "tokio": tokio("rt")},
        "let _ = rand::random::<u8>();",
        lambda_=True,
    ),
)  # fmt: skip

SIZES = {"fleet": LIBS + FLEET, "xl": LIBS + FLEET + XL_EXTRA}


@dataclass
class Written:
    root: Path
    members: tuple[Member, ...]
    third_party: tuple[str, ...] = field(default=())  # "name version" of the lock's registry packages

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.members if not m.lib and not m.lambda_)

    @property
    def handlers(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.members if m.lambda_)

    @property
    def handler_bins(self) -> tuple[str, ...]:
        return tuple(b for m in self.members if m.lambda_ for b in (m.bins or (m.name,)))


def cargo_home(root: Path, registry: Path) -> Path:
    """A CARGO_HOME beside the workspace whose crates-io is the directory registry."""
    home = root.parent / f"{root.name}-cargo-home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[source.crates-io]\nreplace-with = "local"\n[source.local]\ndirectory = "{registry}"\n'
    )
    return home


def cargo(root: Path, registry: Path, *args: str) -> None:
    env = {**os.environ, "CARGO_HOME": str(cargo_home(root, registry))}
    proc = subprocess.run(
        ["cargo", *args, "--offline"], cwd=root, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        sys.exit(f"fleet: cargo {' '.join(args)} failed in {root}:\n{proc.stderr[-3000:]}")


def write_workspace(root: Path, size: str = "fleet", registry: Path = DEBIAN_REGISTRY) -> Written:
    """The workspace and its Cargo.lock in root (which must not exist or be empty)."""
    members = SIZES[size]
    root.mkdir(parents=True, exist_ok=True)
    deps = "\n".join(f"{k} = {v}" for k, v in WORKSPACE_DEPS.items())
    libs = "\n".join(f'{m.name} = {{ path = "{m.path}" }}' for m in members if m.lib)
    (root / "Cargo.toml").write_text(
        f'[workspace]\nmembers = ["crates/*", "services/*", "lambdas/*"]\nresolver = "2"\n\n'
        f'[workspace.package]\nversion = "1.4.0"\nedition = "2021"\n\n'
        f"[workspace.dependencies]\n{deps}\n{libs}\n\n"
        "[profile.release]\ncodegen-units = 16\n"
    )
    toml = ["# nixcrate.toml: the fleet benchmark's settings (benchmarks/fleet.py)."]
    for m in members:
        crate = root / m.path
        (crate / "src").mkdir(parents=True, exist_ok=True)
        body = "\n".join(f"{k} = {v}" for k, v in m.deps.items())
        (crate / "Cargo.toml").write_text(
            f'[package]\nname = "{m.name}"\nversion.workspace = true\nedition.workspace = true\n\n[dependencies]\n{body}\n'
        )
        if m.lib:
            (crate / "src" / "lib.rs").write_text(m.code)
            continue
        template = HANDLER if m.lambda_ else MAIN
        if m.bins:
            (crate / "src" / "bin").mkdir(exist_ok=True)
            for b in m.bins:
                (crate / "src" / "bin" / f"{b}.rs").write_text(template.format(name=b, body=m.code))
        else:
            (crate / "src" / "main.rs").write_text(template.format(name=m.name, body=m.code))
        if m.lambda_:
            # lambda_runtime is not in Debian: the handlers say what they are.
            toml.append(f'\n[members.{m.name}]\nkind = "lambda"')
    (root / "nixcrate.toml").write_text("\n".join(toml) + "\n")
    cargo(root, registry, "generate-lockfile")
    # In rustfmt's layout, as a real repository's code is: the fmt check of `nix flake check`
    # builds (it failed on the long lines of the code above).
    proc = subprocess.run(["cargo", "fmt", "--all"], cwd=root, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"fleet: cargo fmt failed in {root}:\n{proc.stderr[-3000:]}")
    return Written(root, members, lock_third_party(root))


def lock_third_party(root: Path) -> tuple[str, ...]:
    lock = tomllib.loads((root / "Cargo.lock").read_text())
    return tuple(sorted(f"{p['name']} {p['version']}" for p in lock["package"] if "source" in p))


def write_registry(dest: Path, bumps: dict[str, str], source: Path = DEBIAN_REGISTRY) -> Path:
    """A directory registry: links to every crate of `source`, plus for each NAME=VERSION a
    copy of NAME's only version there whose manifest says VERSION (content otherwise equal)."""
    dest.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        link = dest / entry.name
        if not link.exists():
            link.symlink_to(entry.resolve())
    for name, version in bumps.items():
        found = sorted(e for e in source.iterdir() if re.fullmatch(rf"{re.escape(name)}-\d[^/]*", e.name))
        if not found:
            sys.exit(f"fleet: no {name} in {source}")
        made = dest / f"{name}-{version}"
        if made.exists():
            continue
        shutil.copytree(found[-1].resolve(), made, symlinks=False)
        old = found[-1].name.removeprefix(f"{name}-")
        manifest = made / "Cargo.toml"
        manifest.write_text(manifest.read_text().replace(f'version = "{old}"', f'version = "{version}"', 1))
        checksum = made / ".cargo-checksum.json"
        data = json.loads(checksum.read_text())
        # a made-up crate has no crates.io checksum; crane-build rewrites the lock's anyway
        data["package"] = "".join(reversed(data["package"]))
        checksum.write_text(json.dumps(data))
    return dest


def bump_lock(root: Path, name: str, version: str, registry: Path) -> None:
    """`cargo update -p NAME`, offline against a registry in which VERSION is NAME's newest
    (cargo's `--precise` does not move a crate of a directory source)."""
    cargo(root, registry, "update", "-p", name)
    lock = tomllib.loads((root / "Cargo.lock").read_text())
    if not any(p["name"] == name and p["version"] == version for p in lock["package"]):
        sys.exit(
            f"fleet: cargo update -p {name} did not move it to {version}: is {version} the newest in {registry}?"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    w = sub.add_parser("workspace", help="write the workspace and its Cargo.lock")
    w.add_argument("dir", type=Path)
    w.add_argument("--size", choices=sorted(SIZES), default="fleet")
    w.add_argument("--registry", type=Path, default=DEBIAN_REGISTRY)
    r = sub.add_parser("registry", help="a directory registry with made-up extra versions")
    r.add_argument("dir", type=Path)
    r.add_argument("--bump", action="append", default=[], metavar="NAME=VERSION")
    r.add_argument("--from", dest="source", type=Path, default=DEBIAN_REGISTRY)
    a = ap.parse_args()
    if a.command == "workspace":
        if a.dir.exists() and any(a.dir.iterdir()):
            sys.exit(f"fleet: {a.dir} is not empty")
        written = write_workspace(a.dir, a.size, a.registry)
        print(
            f"{a.dir}: {len(written.services)} services, {len(written.handlers)} handler crates "
            f"({len(written.handler_bins)} handlers), {len(written.third_party)} third-party crates in Cargo.lock"
        )
    else:
        bumps = dict(b.split("=", 1) for b in a.bump)
        print(write_registry(a.dir, bumps, a.source))


if __name__ == "__main__":
    main()
