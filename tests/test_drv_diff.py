"""Why a closure was not reused, read from real crane derivations.

The example's `deployCargoArtifacts` is evaluated with the real crane and nixpkgs lib
(`../shared/crane-eval`, stub packages: evaluation only, 0.3 s a flake), once as it is and
once after each change a team makes: a lock bump, a native input, an `env` value, a
dependency's features, the pinned toolchain. The two `.drv` files are then explained as
`nixcrate build` explains a closure it built (`closure_reuse.explain`, which reads both
with `nix show-derivation -r` and walks them with `drv_diff`). That a changed closure is
rebuilt and its note printed is `tests/test_nix_build_crane.py`'s (a real build); here,
that the note names the right cause for each kind of change.
"""

from __future__ import annotations

import json
import subprocess
from typing import TYPE_CHECKING

import pytest
from conftest import CRANE_EVAL, EXAMPLE, copy_workspace, needs_crane_eval
from test_toolchain_eval import needs_rust_overlay, overrides, pinned_workspace  # noqa: F401 - overrides is a fixture

from nixcrate import closure_reuse, drv_diff, generate
from nixcrate.drv_diff import Change, Kind

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

pytestmark = [needs_crane_eval, pytest.mark.nix]


def closure_drv(ws: Path, inputs: Sequence[tuple[str, str]] = ()) -> str:
    """The .drv of ws's deployCargoArtifacts (`--override-input` NAME REF for each of inputs)."""
    flags = [a for name, ref in inputs for a in ("--override-input", name, ref)]
    proc = subprocess.run([str(CRANE_EVAL / "eval-flake"), *flags, str(ws), "deployCargoArtifacts"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    drv: str = json.loads(proc.stdout)["deployCargoArtifacts"]
    return drv


def note_for(old: str, new: str) -> closure_reuse.ClosureNote:
    """The note `nixcrate build` prints after building `new` when `old` was its last build here."""
    memory = {"flake#x86_64-linux": {"deploy-deps-0.0.0": old}}
    (note,) = closure_reuse.explain(
        [("deployCargoArtifacts", "deploy-deps-0.0.0", new, "built")], flake="flake", system="x86_64-linux", memory=memory
    )
    return note


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, path
    path.write_text(text.replace(old, new, 1))


def bump_serde(ws: Path) -> None:
    # `cargo update -p serde --precise 1.0.153`, as the lock records it (evaluation reads no crate)
    edit(ws / "Cargo.lock", 'name = "serde"\nversion = "1.0.152"', 'name = "serde"\nversion = "1.0.153"')
    edit(ws / "Cargo.lock", "bb7d1f0d3021d347a83e556fc4683dea2ea09d87bccdf88ff5c12545d89d5efb", "0" * 64)


def add_native_input(ws: Path) -> None:
    edit(ws / "nixcrate.toml", "[members.api]\n", '[members.api]\nnative-build-inputs = ["protobuf"]\n')
    generate.run_init(ws)


def set_env(ws: Path) -> None:
    edit(ws / "nixcrate.toml", "[services]\n", '[services]\nenv = { RUSTFLAGS_EXTRA = "--cfg tokio_unstable" }\n')
    generate.run_init(ws)


def add_feature(ws: Path) -> None:
    edit(ws / "services/api/Cargo.toml", 'features = ["union"]', 'features = ["union", "const_generics"]')


@pytest.mark.parametrize(
    ("change", "expected", "summary"),
    [
        pytest.param(bump_serde, [Change(Kind.LOCK, "serde 1.0.152 -> 1.0.153")], "Cargo.lock: serde 1.0.152 -> 1.0.153", id="lock"),
        pytest.param(add_native_input, [Change(Kind.NATIVE_INPUTS, "+ protobuf-31.1")], "native inputs: + protobuf-31.1", id="native-inputs"),
        pytest.param(
            set_env,
            [Change(Kind.SETTINGS, 'env RUSTFLAGS_EXTRA added ("--cfg tokio_unstable")')],
            'settings: env RUSTFLAGS_EXTRA added ("--cfg tokio_unstable")',
            id="nixcrate-toml-env",
        ),
        pytest.param(
            add_feature,
            [Change(Kind.MANIFESTS, "services/api/Cargo.toml (dependencies.smallvec.features)")],
            "manifests: services/api/Cargo.toml (dependencies.smallvec.features)",
            id="manifest",
        ),
    ],
)
def test_a_changed_closure_is_named_with_its_cause(
    tmp_path: Path, change: Callable[[Path], None], expected: list[Change], summary: str
) -> None:
    before = closure_drv(copy_workspace(EXAMPLE, tmp_path / "before"))
    ws = copy_workspace(EXAMPLE, tmp_path / "after")
    change(ws)
    after = closure_drv(ws)
    assert after != before
    note = note_for(before, after)
    assert (note.reason, note.previous) == (closure_reuse.Reason.CHANGED, before)
    assert list(note.changes) == expected
    assert note.message() == (
        f"deployCargoArtifacts was built, not reused: changed since its last build here: {summary}: "
        "expected after such a change; later builds reuse it until they change again"
    )


@needs_rust_overlay
def test_a_toolchain_bump_is_named(tmp_path: Path, overrides: list[tuple[str, str]]) -> None:  # noqa: F811
    """rust-toolchain.toml's channel 1.85.0 -> 1.86.0, through the real rust-overlay."""
    before = closure_drv(pinned_workspace(tmp_path / "before"), overrides)
    ws = pinned_workspace(tmp_path / "after")
    edit(ws / "rust-toolchain.toml", 'channel = "1.85.0"', 'channel = "1.86.0"')
    after = closure_drv(ws, overrides)
    note = note_for(before, after)
    assert list(note.changes) == [Change(Kind.TOOLCHAIN, "rust-default 1.85.0 -> 1.86.0")]
    assert "changed since its last build here: toolchain: rust-default 1.85.0 -> 1.86.0: " in (note.message() or "")


def test_an_unchanged_closure_has_the_same_derivation(tmp_path: Path) -> None:
    """The control: two copies evaluate to one .drv, so the notes above are about the edits."""
    assert closure_drv(copy_workspace(EXAMPLE, tmp_path / "a")) == closure_drv(copy_workspace(EXAMPLE, tmp_path / "b"))


def test_summary_keeps_one_clause_a_kind() -> None:
    found = (Change(Kind.LOCK, "serde 1.0.152 -> 1.0.153"), Change(Kind.LOCK, "+ itoa 1.0.1"), Change(Kind.TOOLCHAIN, "rustc 1.79.0 -> 1.80.0"))
    assert drv_diff.summary(found) == "Cargo.lock: serde 1.0.152 -> 1.0.153, + itoa 1.0.1; toolchain: rustc 1.79.0 -> 1.80.0"
