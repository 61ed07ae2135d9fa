from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import tomllib
from pathlib import Path, PurePosixPath

import pytest

from nixcrate import native
from nixcrate.config import NativeOverride
from nixcrate.config import parse as parse_config
from nixcrate.errors import ConfigError
from nixcrate.native import (
    NativeRequirements,
    TableError,
    UnknownNativeCrate,
    links_signal,
    load_table,
    nix_attr,
    nix_env_value,
    parse_table,
    requirements_for,
    template_attrs,
)

FIXTURES = Path(__file__).parent / "fixtures"
TABLE_PATH = Path(native.__file__).parent / "data" / native.TABLE_FILE


def known_attrs() -> set[str]:
    out = set()
    for line in (FIXTURES / "nixpkgs-attrs.txt").read_text(encoding="utf-8").splitlines():
        attr = line.split("#", 1)[0].strip()
        if attr:
            out.add(attr)
    return out


# --------------------------------------------------------------------------- the table


def test_table_has_at_least_40_entries() -> None:
    assert len(load_table()) >= 40
    # and most of them ask for something: not padded with "needs nothing" rows
    assert sum(not e.needs_nothing for e in load_table().entries) >= 40


def test_table_has_no_spelling_duplicates() -> None:
    # TOML itself rejects exact duplicate keys; '-'/'_' and case variants are the same crate on crates.io.
    raw = tomllib.loads(TABLE_PATH.read_text(encoding="utf-8"))["native"]
    keys = [native.normalize(k) for k in raw]
    assert len(keys) == len(set(keys))


def test_table_names_only_known_nixpkgs_attributes() -> None:
    known = known_attrs()
    for entry in load_table().entries:
        unknown = entry.attrs() - known
        assert not unknown, f"{entry.crate}: {sorted(unknown)} not in tests/fixtures/nixpkgs-attrs.txt"


def test_every_known_attribute_has_evidence() -> None:
    for line in (FIXTURES / "nixpkgs-attrs.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            attr, _, evidence = line.partition("#")
            assert evidence.strip(), f"{attr.strip()}: say where in nixpkgs it was verified"


def test_every_entry_has_a_one_line_reason() -> None:
    for entry in load_table().entries:
        assert entry.reason.strip(), entry.crate
        assert "\n" not in entry.reason


def test_table_is_sorted_and_keys_are_crate_names() -> None:
    names = [e.crate for e in load_table().entries]
    assert names == sorted(names)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", n) for n in names)


def test_issue_examples_are_in_the_table() -> None:
    for crate in (
        "openssl-sys",
        "libz-sys",
        "zstd-sys",
        "bzip2-sys",
        "lzma-sys",
        "libsqlite3-sys",
        "pq-sys",
        "rdkafka-sys",
        "prost-build",
        "bindgen",
        "aws-lc-sys",
        "ring",
        "onig_sys",
        "librocksdb-sys",
    ):
        assert load_table().get(crate) is not None, crate


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        pytest.param('[native."a-sys"]\nbuild-inputs = ["x"]', "reason", id="missing_reason"),
        pytest.param('[native."a-sys"]\nreason = "  "', "reason", id="blank_reason"),
        pytest.param(
            '[native."a-sys"]\nreason = "r"\n[native."A_sys"]\nreason = "r"',
            "same crate",
            id="spelling_duplicate",
        ),
        pytest.param(
            '[native."a-sys"]\nreason = "r"\nbuild-input = ["x"]', "unknown keys", id="misspelled_key"
        ),
        pytest.param(
            '[native."a-sys"]\nreason = "r"\nbuild-inputs = ["pkgs.x y"]', "attribute path", id="bad_attr"
        ),
        pytest.param(
            '[native."a-sys"]\nreason = "r"\nenv = { X = "{not an attr}" }',
            "package reference",
            id="bad_template",
        ),
        pytest.param(
            '[native."a-sys"]\nreason = "r"\nenv = { "A-B" = "1" }', "environment variable", id="bad_env_name"
        ),
    ],
)
def test_parse_table_rejects(toml: str, message: str) -> None:
    with pytest.raises(TableError, match=message):
        parse_table(tomllib.loads(toml))


def test_table_is_loaded_once() -> None:
    assert load_table() is load_table()


# --------------------------------------------------------------------------- requirements_for


def test_openssl_closure_gets_pkg_config_and_openssl() -> None:
    req = requirements_for(frozenset({"openssl-sys", "openssl", "serde"}), lambda_closure=False)
    assert req.native_build_inputs == ("pkg-config",)
    assert req.build_inputs == ("openssl",)
    assert req.env == ()
    assert req.triggered_by("openssl") == ("openssl-sys",)
    assert req.unknown == ()


def test_closure_without_native_crates_gets_nothing() -> None:
    req = requirements_for(
        frozenset({"serde", "tokio", "windows-sys", "linux-raw-sys"}), lambda_closure=False
    )
    assert req.is_empty
    assert req.applied == ()
    assert req.unknown == ()
    assert req.nix_native_build_inputs() == []
    assert req.nix_build_inputs() == []
    assert req.nix_env() == []


def test_aws_lc_sys_in_a_lambda_closure_uses_the_cmake_builder() -> None:
    req = requirements_for(frozenset({"aws-lc-sys", "aws-lc-rs"}), lambda_closure=True)
    assert req.native_build_inputs == ("cmake", "nasm")
    assert req.env == (("AWS_LC_SYS_CMAKE_BUILDER", "1"),)
    assert req.nix_env() == [("AWS_LC_SYS_CMAKE_BUILDER", '"1"')]


def test_aws_lc_sys_in_a_service_closure_gets_only_cmake() -> None:
    req = requirements_for(frozenset({"aws-lc-sys", "aws-lc-rs"}), lambda_closure=False)
    assert req.native_build_inputs == ("cmake",)
    assert req.build_inputs == ()
    assert req.env == ()


def test_prost_build_sets_protoc_from_nixpkgs() -> None:
    req = requirements_for(frozenset({"prost-build", "tonic-build"}), lambda_closure=False)
    assert req.nix_native_build_inputs() == ["pkgs.protobuf"]
    assert req.nix_env() == [("PROTOC", '"${pkgs.protobuf}/bin/protoc"')]


def test_bindgen_renders_as_an_attribute_path() -> None:
    req = requirements_for(frozenset({"bindgen", "clang-sys"}), lambda_closure=False)
    assert req.nix_native_build_inputs() == ["pkgs.rustPlatform.bindgenHook"]
    assert req.triggered_by("rustPlatform.bindgenHook") == ("bindgen", "clang-sys")


def test_inputs_are_sorted_and_deduplicated_across_crates() -> None:
    req = requirements_for(
        frozenset({"openssl-sys", "libz-sys", "zstd-sys", "rdkafka-sys", "libsqlite3-sys"}),
        lambda_closure=False,
    )
    assert req.native_build_inputs == ("cmake", "pkg-config")
    assert req.build_inputs == ("openssl", "sqlite", "zstd")
    assert req.triggered_by("openssl") == ("openssl-sys", "rdkafka-sys")
    # libz-sys builds its bundled static zlib: known, so not reported, and it adds nothing
    assert not req.triggered_by("zlib") and "libz-sys" not in [u.crate for u in req.unknown]
    assert req.triggered_by("ZSTD_SYS_USE_PKG_CONFIG") == ("zstd-sys",)
    assert [a.crate for a in req.applied] == sorted(a.crate for a in req.applied)


def test_unknown_sys_crate_is_reported_with_the_override_to_add() -> None:
    req = requirements_for(frozenset({"foo-sys", "serde", "sysinfo", "sys-info"}), lambda_closure=False)
    assert req.unknown == (UnknownNativeCrate("foo-sys"),)
    (unknown,) = req.unknown
    assert '[native."foo-sys"]' in unknown.message
    assert "nixcrate.toml" in unknown.message
    assert "\n" not in unknown.message
    snippet = tomllib.loads(unknown.override_text)
    assert snippet == {
        "native": {
            "foo-sys": {"reason": "links foo", "native-build-inputs": ["pkg-config"], "build-inputs": ["foo"]}
        }
    }
    # The snippet is accepted by nixcrate.toml's own parser, and then silences the report.
    config = parse_config(tomllib.loads(unknown.override_text))
    assert (
        requirements_for(frozenset({"foo-sys"}), lambda_closure=False, overrides=config.native).unknown == ()
    )


@pytest.mark.parametrize("name", ["bar_sys", "baz-sys-rs", "qux-sys-stable", "quux-sys-next", "corge-sys-2", "jni-sys"])
def test_sys_spellings_are_recognised(name: str) -> None:
    assert requirements_for(frozenset({name}), lambda_closure=False).unknown == (UnknownNativeCrate(name),)


@pytest.mark.parametrize("name", ["jni-sys-macros", "foo-sys-derive", "foo_sys_common", "sys-info", "sysinfo", "syslog"])
def test_names_that_merely_contain_sys_are_not_reported(name: str) -> None:
    # vector's closure holds jni-sys-macros, a proc-macro: no native library, no report
    assert requirements_for(frozenset({name, "serde"}), lambda_closure=False).unknown == ()


def test_a_forks_tag_is_left_out_of_the_library_guess() -> None:
    snippet = tomllib.loads(UnknownNativeCrate("baz-sys-rs").override_text)
    assert snippet["native"]["baz-sys-rs"]["build-inputs"] == ["baz"]


def test_links_signal_reports_crates_without_a_sys_name() -> None:
    req = requirements_for(
        frozenset({"quux", "serde"}), lambda_closure=False, links={"quux": "quux", "notinclosure": "x"}
    )
    assert req.unknown == (UnknownNativeCrate("quux", "quux"),)
    assert 'links = "quux"' in req.unknown[0].message


def test_table_lookup_ignores_dash_underscore_spelling() -> None:
    req = requirements_for(frozenset({"onig-sys"}), lambda_closure=False)
    assert req.build_inputs == ("oniguruma",)
    assert req.env == (("RUSTONIG_SYSTEM_LIBONIG", "1"),)


# --------------------------------------------------------------------------- overrides


def test_override_extends_an_entry() -> None:
    ov = NativeOverride(build_inputs=("libssh2",), env=(("OPENSSL_NO_VENDOR", "1"),))
    req = requirements_for(frozenset({"openssl-sys"}), lambda_closure=False, overrides=(("openssl-sys", ov),))
    assert req.native_build_inputs == ("pkg-config",)
    assert req.build_inputs == ("libssh2", "openssl")
    assert req.env == (("OPENSSL_NO_VENDOR", "1"),)
    assert req.applied[0].origin == "table+nixcrate.toml"


def test_override_replaces_an_entry() -> None:
    ov = NativeOverride(native_build_inputs=("perl",), replace=True, reason="we build vendored OpenSSL")
    req = requirements_for(frozenset({"openssl-sys"}), lambda_closure=False, overrides=(("openssl-sys", ov),))
    assert req.native_build_inputs == ("perl",)
    assert req.build_inputs == ()
    assert req.applied[0].reason == "we build vendored OpenSSL"


def test_replace_with_nothing_drops_the_lambda_fields_too() -> None:
    ov = NativeOverride(replace=True)
    req = requirements_for(frozenset({"aws-lc-sys"}), lambda_closure=True, overrides=(("aws-lc-sys", ov),))
    assert req.is_empty
    assert req.unknown == ()


def test_extend_keeps_the_lambda_fields() -> None:
    ov = NativeOverride(native_build_inputs=("perl",))
    req = requirements_for(frozenset({"aws-lc-sys"}), lambda_closure=True, overrides=(("aws_lc_sys", ov),))
    assert req.native_build_inputs == ("cmake", "nasm", "perl")
    assert req.env == (("AWS_LC_SYS_CMAKE_BUILDER", "1"),)


def test_override_adds_an_unknown_crate() -> None:
    ov = NativeOverride(
        native_build_inputs=("pkg-config",), build_inputs=("foo",), env=(("FOO_DIR", "{foo}/lib"),)
    )
    req = requirements_for(frozenset({"foo-sys"}), lambda_closure=False, overrides=(("foo-sys", ov),))
    assert req.nix_build_inputs() == ["pkgs.foo"]
    assert req.nix_env() == [("FOO_DIR", '"${pkgs.foo}/lib"')]
    assert req.applied[0].origin == "nixcrate.toml"
    assert req.unknown == ()


def test_overrides_may_be_a_mapping() -> None:
    ov = NativeOverride(build_inputs=("foo",))
    req = requirements_for(frozenset({"foo-sys"}), lambda_closure=False, overrides={"foo-sys": ov})
    assert req.build_inputs == ("foo",)


def test_override_applies_only_to_closures_containing_the_crate() -> None:
    ov = NativeOverride(build_inputs=("foo",))
    req = requirements_for(frozenset({"serde"}), lambda_closure=False, overrides=(("foo-sys", ov),))
    assert req.is_empty


def test_override_from_nixcrate_toml() -> None:
    config = parse_config(
        tomllib.loads(
            '[native."openssl-sys"]\nbuild-inputs = ["openssl_3"]\nreplace = true\nreason = "pin OpenSSL 3"\n'
        )
    )
    req = requirements_for(frozenset({"openssl-sys"}), lambda_closure=False, overrides=config.native)
    assert req.build_inputs == ("openssl_3",)
    assert req.native_build_inputs == ()


@pytest.mark.parametrize(
    ("ov", "message"),
    [
        pytest.param(NativeOverride(build_inputs=("not an attr",)), "attribute path", id="bad_attr"),
        pytest.param(NativeOverride(env=(("X", "{oops"),)), "package reference", id="bad_template"),
        pytest.param(NativeOverride(env=(("1X", "a"),)), "environment variable", id="bad_env_name"),
    ],
)
def test_bad_override_is_a_config_error(ov: NativeOverride, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as exc:
        requirements_for(frozenset({"foo-sys"}), lambda_closure=False, overrides=(("foo-sys", ov),))
    assert exc.value.message.startswith('nixcrate.toml: native."foo-sys"')


def test_conflicting_env_values_are_a_config_error() -> None:
    ov = NativeOverride(env=(("PROTOC", "/usr/bin/protoc"),))
    with pytest.raises(ConfigError, match="PROTOC"):
        requirements_for(
            frozenset({"prost-build", "protoc"}), lambda_closure=False, overrides=(("protoc", ov),)
        )


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize(
    ("path", "expr"),
    [
        ("pkg-config", "pkgs.pkg-config"),
        ("rustPlatform.bindgenHook", "pkgs.rustPlatform.bindgenHook"),
        ("llvmPackages.libclang", "pkgs.llvmPackages.libclang"),
        ("cyrus_sasl", "pkgs.cyrus_sasl"),
        ("7zz", 'pkgs."7zz"'),
        ("with", 'pkgs."with"'),
    ],
)
def test_nix_attr(path: str, expr: str) -> None:
    assert nix_attr(path) == expr


@pytest.mark.parametrize(
    ("template", "expr"),
    [
        ("1", '"1"'),
        ("{protobuf}/bin/protoc", '"${pkgs.protobuf}/bin/protoc"'),
        ("{llvmPackages.libclang}/lib", '"${pkgs.llvmPackages.libclang}/lib"'),
        ('say "hi" \\ ${{HOME}}', '"say \\"hi\\" \\\\ \\${HOME}"'),
        ("${a}", '"\\$${pkgs.a}"'),
        ("$${a}", '"$\\$${pkgs.a}"'),
        ("a$", '"a$"'),
        ("{{literal}}", '"{literal}"'),
        ("$x {a}{b}", '"$x ${pkgs.a}${pkgs.b}"'),
    ],
)
def test_nix_env_value(template: str, expr: str) -> None:
    assert nix_env_value(template) == expr


@pytest.mark.nix
def test_rendered_env_values_evaluate_to_the_template_text() -> None:
    if shutil.which("nix-instantiate") is None:
        pytest.skip("nix-instantiate not on PATH")
    cases = {
        'say "hi" \\ ${{HOME}}': 'say "hi" \\ ${HOME}',
        "${a}": "$A",
        "$${a}": "$$A",
        "x${{y}}z{a}/bin": "x${y}zA/bin",
        "{7zz}:{b.with}": "S:W",
        "a$": "a$",
    }
    for template, want in cases.items():
        expr = 'let pkgs = { a = "A"; "7zz" = "S"; b = { "with" = "W"; }; }; in ' + nix_env_value(template)
        out = subprocess.run(
            ["nix-instantiate", "--eval", "--json", "-E", expr], capture_output=True, text=True, check=True
        )
        assert json.loads(out.stdout) == want, template


def test_template_attrs() -> None:
    assert template_attrs("{a}/x:{b.c}/{{d}}") == ("a", "b.c")


# --------------------------------------------------------------------------- determinism


def test_same_input_same_output_whatever_the_order() -> None:
    names = [
        "openssl-sys",
        "aws-lc-sys",
        "prost-build",
        "libz-sys",
        "foo-sys",
        "zstd-sys",
        "bindgen",
        "rdkafka-sys",
        "b-sys",
    ]
    overrides = [
        ("foo-sys", NativeOverride(build_inputs=("foo",))),
        ("zstd-sys", NativeOverride(env=(("Z", "1"),))),
    ]
    first = requirements_for(names, lambda_closure=True, overrides=overrides)
    rng = random.Random(4)
    for _ in range(5):
        rng.shuffle(names)
        again = requirements_for(set(names), lambda_closure=True, overrides=list(overrides))
        assert again == first
        assert repr(again) == repr(first)
    assert isinstance(first, NativeRequirements)
    assert list(first.build_inputs) == sorted(first.build_inputs)
    assert [name for name, _ in first.env] == sorted(name for name, _ in first.env)


# --------------------------------------------------------------------------- links signal


class FakeCrate:
    def __init__(self, name: str, links: str | None) -> None:
        self.name = name
        self.links = links
        self.path = PurePosixPath(name)


class FakeWorkspace:
    def __init__(self, crates: list[FakeCrate]) -> None:
        self.crates = tuple(crates)


def test_fake_links_signal_reads_in_tree_and_vendored_manifests(tmp_path: Path) -> None:
    vendor = tmp_path / "vendor"
    for name, extra in (("zlib-thing", 'links = "z"'), ("serde", ""), ("broken", None)):
        (vendor / name).mkdir(parents=True)
        body = (
            f'[package]\nname = "{name}"\nversion = "1.0.0"\n{extra}\n' if extra is not None else "not [toml"
        )
        (vendor / name / "Cargo.toml").write_text(body, encoding="utf-8")
    (vendor / "stray-file").write_text("", encoding="utf-8")
    ws = FakeWorkspace([FakeCrate("my-native", "mylib"), FakeCrate("app", None)])
    found = links_signal(ws, [vendor, tmp_path / "missing"])  # type: ignore[arg-type]
    assert found == {"my-native": "mylib", "zlib-thing": "z"}


def test_handlers_build_bundled_copies_where_the_crate_can() -> None:
    """A nixpkgs .so linked into a handler is missing on Lambda: bzip2/lzma/zstd build bundled there."""
    crates = frozenset({"zstd-sys", "bzip2-sys", "lzma-sys", "openssl-sys"})
    services = requirements_for(crates, lambda_closure=False)
    handlers = requirements_for(crates, lambda_closure=True)
    assert {"zstd", "bzip2", "xz", "openssl"} <= set(services.build_inputs)
    assert handlers.build_inputs == ("openssl",)  # openssl-sys needs its `vendored` feature to be static
    assert "ZSTD_SYS_USE_PKG_CONFIG" not in dict(handlers.env)
    assert {a.crate for a in handlers.applied} == crates  # still reported as applied (bundled)
