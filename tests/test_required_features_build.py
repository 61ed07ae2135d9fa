"""`required-features` on a bin, built for real (crane-build): as cargo does, a bin whose
required features its member's build does not enable is left out, with a warning naming the
setting that brings it back; with that setting the bin is built, in a service's package and
as a handler's zip.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLE
from crane_build import crane_build_missing
from crane_build import build as crane_build
from resolve_diff import cargo_home, lock

from nixcrate.cli import cli

pytestmark = [
    pytest.mark.skipif(crane_build_missing(EXAMPLE) is not None, reason=str(crane_build_missing(EXAMPLE))),
    pytest.mark.nix,
    pytest.mark.slow,
]

FILES = {
    "Cargo.toml": '[workspace]\nmembers = ["api", "jobs"]\nresolver = "2"\n',
    "api/Cargo.toml": """[package]
name = "api"
version = "0.1.0"
edition = "2021"

[features]
admin = []

[[bin]]
name = "api"
path = "src/main.rs"

[[bin]]
name = "admin"
path = "src/bin/admin.rs"
required-features = ["admin"]
""",
    "api/src/main.rs": 'fn main() {\n    println!("api");\n}\n',
    "api/src/bin/admin.rs": 'fn main() {\n    println!("admin");\n}\n',
    "jobs/Cargo.toml": """[package]
name = "jobs"
version = "0.1.0"
edition = "2021"

[features]
debug = []

[[bin]]
name = "jobs"
path = "src/main.rs"

[[bin]]
name = "jobs-debug"
path = "src/bin/debug.rs"
required-features = ["debug"]
""",
    "jobs/src/main.rs": 'fn main() {\n    println!("jobs");\n}\n',
    "jobs/src/bin/debug.rs": 'fn main() {\n    println!("jobs-debug");\n}\n',
    "nixcrate.toml": '[members.jobs]\nkind = "lambda"\n',
}


def _init(ws: Path) -> str:
    result = CliRunner().invoke(cli, ["init", "--refresh-base", str(ws)])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def _bins(ws: Path) -> dict[str, list[str]]:
    data = (ws / "nix" / "nixcrate" / "workspace.nix").read_text()
    return {m[0]: re.findall(r'"([^"]+)"', m[1]) for m in re.findall(r"\n    (\w+) = \{[^}]*?bins = \[([^\]]*)\]", data)}


def test_a_bin_needing_features_is_left_out_with_a_warning_and_built_once_they_are_set(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    for rel, text in FILES.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(text)
    lock(ws, cargo_home(tmp_path))

    output = _init(ws)
    assert "warning: api/Cargo.toml: bin 'admin' needs required-features \"admin\"" in output
    assert "warning: jobs/Cargo.toml: bin 'jobs-debug' needs required-features \"debug\"" in output
    assert _bins(ws) == {"api": ["api"], "jobs": ["jobs"]}  # no deploy-lambda-jobs-debug output
    off = crane_build(ws, ["api", "deploy-lambda-jobs"])
    assert all(r.ok for r in off.values()), {a: r.error_tail for a, r in off.items()}
    assert sorted(p.name for p in (Path(off["api"].out or "") / "bin").iterdir()) == ["api"]

    (ws / "nixcrate.toml").write_text('[members.api]\nfeatures = ["admin"]\n\n[members.jobs]\nkind = "lambda"\nfeatures = ["debug"]\n')
    output = _init(ws)
    assert "required-features" not in output
    assert _bins(ws) == {"api": ["admin", "api"], "jobs": ["jobs", "jobs-debug"]}
    on = crane_build(ws, ["api", "deploy-lambda-jobs-debug"])
    assert all(r.ok for r in on.values()), {a: r.error_tail for a, r in on.items()}
    assert sorted(p.name for p in (Path(on["api"].out or "") / "bin").iterdir()) == ["admin", "api"]
    zips = list(Path(on["deploy-lambda-jobs-debug"].out or "").rglob("bootstrap.zip"))
    assert zips, on["deploy-lambda-jobs-debug"].out
    with zipfile.ZipFile(zips[0]) as z:
        assert z.namelist() == ["bootstrap"]
