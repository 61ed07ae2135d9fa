"""nar.nar_size against the real thing: the length of `nix-store --dump` of the same tree."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nixcrate.nar import TooManyFilesError, nar_size


def dumped(path: Path) -> int:
    return len(subprocess.run(["nix-store", "--dump", str(path)], capture_output=True, check=True).stdout)


def test_a_tree_with_every_kind_of_entry(tmp_path: Path) -> None:
    root = tmp_path / "out"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "api").write_bytes(b"\x7fELF" + bytes(1001))
    (root / "bin" / "api").chmod(0o755)
    (root / "empty").write_bytes(b"")
    (root / "eight").write_bytes(b"12345678")  # exactly one pad unit: no padding
    (root / "share" / "a-rather-long-directory-name-past-eight").mkdir(parents=True)
    (root / "main").symlink_to("bin/api")
    (root / "dangling").symlink_to("/nowhere/at/all")
    assert nar_size(root) == dumped(root)
    for single in (root / "bin" / "api", root / "empty", root / "main"):  # an output can be one file or a link
        assert nar_size(single) == dumped(single)


names = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters="/"), min_size=1, max_size=20).filter(
    lambda name: name not in {".", ".."}
)
trees = st.recursive(
    st.one_of(
        st.tuples(st.just("file"), st.binary(max_size=40), st.booleans()),
        st.tuples(st.just("link"), names),
    ),
    lambda children: st.tuples(st.just("dir"), st.dictionaries(names, children, max_size=5)),
    max_leaves=20,
)


def materialise(path: Path, tree: tuple) -> None:
    kind = tree[0]
    if kind == "file":
        path.write_bytes(tree[1])
        path.chmod(0o555 if tree[2] else 0o444)
    elif kind == "link":
        path.symlink_to(tree[1])
    else:
        path.mkdir()
        for name, child in tree[1].items():
            materialise(path / name, child)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees)
def test_random_trees_size_like_nix_store_dump(tmp_path_factory: pytest.TempPathFactory, tree: tuple) -> None:
    root = tmp_path_factory.mktemp("nar") / "t"
    materialise(root, tree)
    assert nar_size(root) == dumped(root)


def test_a_walk_stops_past_its_entry_limit(tmp_path: Path) -> None:
    for n in range(5):
        (tmp_path / f"f{n}").write_text("x")
    assert nar_size(tmp_path, max_entries=6) == dumped(tmp_path)  # the directory and 5 files
    with pytest.raises(TooManyFilesError):
        nar_size(tmp_path, max_entries=5)


def test_missing_path_and_special_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        nar_size(tmp_path / "absent")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ValueError, match="not a file, directory or symlink"):
        nar_size(tmp_path)
