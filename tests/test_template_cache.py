"""The compiled-template cache: same bytes as compiling, follows template edits, never in the way."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import jinja2
import pytest
from conftest import EXAMPLE

from nixcrate import ci_gen, flake_gen, template_cache, workspace
from nixcrate import config as config_mod

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(scope="module")
def context() -> flake_gen.FlakeContext:
    ws = workspace.load(EXAMPLE)
    return flake_gen.build_context(ws, config_mod.load(EXAMPLE))


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "nixcrate" / "templates"


def _uncached(context: flake_gen.FlakeContext, monkeypatch: pytest.MonkeyPatch) -> str:
    with monkeypatch.context() as m:
        m.setattr(template_cache, "for_module", lambda _path: None)
        return flake_gen.render(context)


def _workflow() -> str:
    from test_ci_gen import context_of  # noqa: PLC0415

    return ci_gen.render(context_of(EXAMPLE, "--cache", "cachix:example"))


@pytest.mark.parametrize("template", ["flake.nix.j2", "nixcrate.yml.j2"])
def test_second_render_loads_the_compiled_template(
    template: str, context: flake_gen.FlakeContext, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    render = (lambda: flake_gen.render(context)) if template == "flake.nix.j2" else _workflow
    with monkeypatch.context() as m:
        m.setattr(template_cache, "for_module", lambda _path: None)
        expected = render()
    assert render() == expected
    assert len(list(cache_home.glob("*.jinja"))) == 1

    def no_compiling(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("compiled although the cache holds the template")

    monkeypatch.setattr(jinja2.Environment, "compile", no_compiling)
    assert render() == expected


def test_an_edited_template_is_compiled_again(
    context: flake_gen.FlakeContext, cache_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(flake_gen.templates_dir(), templates)
    monkeypatch.setattr(flake_gen, "templates_dir", lambda: templates)
    before = flake_gen.render(context)
    with (templates / "flake.nix.j2").open("a") as f:
        f.write("# edited\n")
    assert flake_gen.render(context) == before + "# edited\n"
    assert len(list(cache_home.glob("*.jinja"))) == 1  # the entry was replaced, not added to


def test_a_changed_environment_has_its_own_entry(tmp_path: Path) -> None:
    one = template_cache.TemplateCache(tmp_path, "fingerprint-1")
    two = template_cache.TemplateCache(tmp_path, "fingerprint-2")
    assert one.get_cache_key("flake.nix.j2", "/t/flake.nix.j2") != two.get_cache_key("flake.nix.j2", "/t/flake.nix.j2")


def test_a_corrupt_entry_is_compiled_over(context: flake_gen.FlakeContext, cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = flake_gen.render(context)
    (entry,) = cache_home.glob("*.jinja")
    for garbage in (b"", entry.read_bytes()[:40], b"j2\x80\x02garbage"):
        entry.write_bytes(garbage)
        assert flake_gen.render(context) == expected
    assert _uncached(context, monkeypatch) == expected


def test_an_unwritable_cache_is_skipped(context: flake_gen.FlakeContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _uncached(context, monkeypatch)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # mkdir under a file fails
    assert flake_gen.render(context) == expected


def test_no_home_directory_means_no_cache(context: flake_gen.FlakeContext, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _uncached(context, monkeypatch)

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(template_cache.Path, "home", no_home)
    assert template_cache.for_module(flake_gen.__file__) is None
    assert flake_gen.render(context) == expected
