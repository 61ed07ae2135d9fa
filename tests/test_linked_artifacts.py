"""Why every build unpacks (copies) its closure's artifacts instead of linking them.

crane can install a closure's target/ as a directory and have the next build link its
`deps/*.rlib` and `*.rmeta` into the store instead of unpacking them (its symlink mode),
which would save each package the unpacking of its closure (2-3 s on the fleet). nixcrate does
not, because of what the real rustc does when it must recompile a crate whose outputs are such
links (its source changed at the same version, or a build script reran): it refuses, as the
store's files are read-only (`output file ... is not writeable`), even as root. A linked
closure would turn every recompile the closure did not foresee from a slower build into a
failed one (crane#249, crane#385). This test fails the day rustc replaces such links instead;
linking would then be worth measuring again.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from conftest import needs_cargo

pytestmark = [needs_cargo, pytest.mark.cargo]


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def _cargo_build(ws: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["cargo", "build", "--release", "--offline", "-p", "app"],
        cwd=ws,
        env={**os.environ, "CARGO_TARGET_DIR": str(ws / "target"), "CARGO_TERM_COLOR": "never"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 or not check, done.stderr
    return done


def test_rustc_refuses_to_recompile_a_crate_over_outputs_linked_into_the_store(
    tmp_path: Path,
) -> None:
    ws = tmp_path / "ws"
    _write(
        ws,
        {
            "Cargo.toml": '[workspace]\nmembers = ["app", "dep"]\nresolver = "2"\n',
            "app/Cargo.toml": '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n'
            '[dependencies]\ndep = { path = "../dep" }\n',
            "app/src/main.rs": "fn main() {\n    println!(\"{}\", dep::WORD);\n}\n",
            "dep/Cargo.toml": '[package]\nname = "dep"\nversion = "0.1.0"\nedition = "2021"\n',
            "dep/src/lib.rs": 'pub const WORD: &str = "first";\n',
        },
    )
    _cargo_build(ws)
    deps = ws / "target" / "release" / "deps"
    outputs = sorted(p for p in deps.iterdir() if p.name.startswith("libdep-") and p.suffix in (".rlib", ".rmeta"))
    assert [p.suffix for p in outputs] == [".rlib", ".rmeta"], outputs

    # The closure in the store: read-only files, linked from the next build's target/.
    store = tmp_path / "store"
    store.mkdir()
    digests = {}
    for out in outputs:
        kept = store / out.name
        out.rename(kept)
        kept.chmod(0o444)
        digests[kept] = hashlib.sha256(kept.read_bytes()).hexdigest()
        out.symlink_to(kept)
    store.chmod(0o555)

    # The same crate, the same version, other content: recompiled under the same file names.
    (ws / "dep" / "src" / "lib.rs").write_text('pub const WORD: &str = "second";\n')
    refused = _cargo_build(ws, check=False)

    store.chmod(0o755)
    assert refused.returncode != 0 and "is not writeable" in refused.stderr, refused.stderr
    assert {k: hashlib.sha256(k.read_bytes()).hexdigest() for k in digests} == digests, (
        "rustc wrote through a linked output into the older closure"
    )
