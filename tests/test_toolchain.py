"""rust-toolchain(.toml) -> what the flake pins: found like rustup, read, extended for the flake."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from nixcrate import toolchain
from nixcrate.errors import ConfigError


def test_found_at_the_root_or_above_up_to_the_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    ws = repo / "rust" / "ws"
    ws.mkdir(parents=True)
    (repo / ".git").mkdir()
    assert toolchain.find(ws) is None
    (repo / "rust-toolchain.toml").write_text('[toolchain]\nchannel = "1.85.0"\n')
    assert toolchain.find(ws) == PurePosixPath("../../rust-toolchain.toml")
    (tmp_path / "rust-toolchain.toml").write_text('[toolchain]\nchannel = "1.80.0"\n')  # above .git: not searched
    (ws / "rust-toolchain").write_text("1.84.0\n")
    assert toolchain.find(ws) == PurePosixPath("rust-toolchain")
    (ws / "rust-toolchain.toml").write_text('[toolchain]\nchannel = "1.85.0"\n')
    assert toolchain.find(ws) == PurePosixPath("rust-toolchain")  # rustup prefers the legacy name


def test_legacy_and_toml_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "rust-toolchain").write_text("nightly-2025-01-01\n")
    legacy = toolchain.read(tmp_path, PurePosixPath("rust-toolchain"))
    assert (legacy.channel, legacy.profile, legacy.targets) == ("nightly-2025-01-01", "default", ())
    (tmp_path / "rust-toolchain.toml").write_text(
        '[toolchain]\nchannel = "1.85.0"\nprofile = "minimal"\ncomponents = ["clippy"]\ntargets = ["wasm32-unknown-unknown"]\n'
    )
    pinned = toolchain.read(tmp_path, PurePosixPath("rust-toolchain.toml"))
    assert (pinned.channel, pinned.profile, pinned.components, pinned.targets) == (
        "1.85.0", "minimal", ("clippy",), ("wasm32-unknown-unknown",)
    )


def test_the_flake_adds_handler_targets_and_check_components(tmp_path: Path) -> None:
    (tmp_path / "rust-toolchain.toml").write_text(
        '[toolchain]\nchannel = "1.85.0"\nprofile = "minimal"\ncomponents = ["clippy-preview"]\ntargets = ["x86_64-unknown-linux-gnu"]\n'
    )
    found = PurePosixPath("rust-toolchain.toml")
    links = {"x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"}
    choice = toolchain.choose("auto", found, tmp_path, link_targets=links, with_checks=True)
    assert choice is not None
    assert choice.extra_targets == ("aarch64-unknown-linux-gnu",)
    assert choice.extra_components == ("rustfmt",)
    assert toolchain.choose("nixpkgs", found, tmp_path, link_targets=links, with_checks=True) is None
    assert toolchain.choose("auto", None, tmp_path, link_targets=links, with_checks=True) is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[toolchain]\npath = "/opt/rust"\n', "toolchain.path"),
        ('[toolchain]\nprofile = "default"\n', "toolchain.channel is missing"),
        ("[toolchain\n", "invalid TOML"),
        ('[toolchain]\nchannel = "1.85.0"\ntargets = "x"\n', "toolchain.targets must be a list"),
    ],
)
def test_bad_file_is_one_line_naming_it(tmp_path: Path, text: str, words: str) -> None:
    (tmp_path / "rust-toolchain.toml").write_text(text)
    with pytest.raises(ConfigError, match=words) as info:
        toolchain.choose("auto", PurePosixPath("rust-toolchain.toml"), tmp_path, link_targets=(), with_checks=True)
    assert str(info.value.message).startswith("rust-toolchain.toml: ")
    assert "\n" not in info.value.message


def test_file_setting_without_a_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='toolchain = "file" but there is no rust-toolchain'):
        toolchain.choose("file", None, tmp_path, link_targets=(), with_checks=True)


def test_no_toolchain_file_keeps_nixpkgs_rust(example: Path) -> None:
    from nixcrate import config, flake_gen, workspace  # noqa: PLC0415

    ws = workspace.load(example)
    context = flake_gen.build_context(ws, config.load(example))
    assert "toolchain = null;" in flake_gen.render_data(context)
    assert "rust-overlay" not in flake_gen.render_starter(context)
    (example / "rust-toolchain.toml").write_text('[toolchain]\nchannel = "1.85.0"\n')
    pinned = flake_gen.build_context(workspace.load(example), config.load(example))
    assert 'file = "rust-toolchain.toml";' in flake_gen.render_data(pinned)
    assert "inherit pkgs crane rust-overlay;" in flake_gen.render_starter(pinned)
    ignored = flake_gen.build_context(workspace.load(example), config.parse({"toolchain": "nixpkgs"}))
    assert "toolchain = null;" in flake_gen.render_data(ignored)
