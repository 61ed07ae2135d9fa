"""lambda_pkg's strings, and what they do when run for real (cargo-zigbuild, zig, zip)."""

# ruff: noqa: F811, T201 - pytest fixtures imported by name; prints record the measured figures
from __future__ import annotations

import os
import stat
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
from lambda_fixtures import (  # noqa: F401 - session fixtures
    ARCH,
    GLIBC,
    PACKAGE,
    SandboxBuilds,
    compiled_crates,
    handler_workspace,
    host_binary,
    lambda_session,
    package,
    requires_registry,
    requires_zigbuild,
    sandbox_builds,
)

from nixcrate import lambda_pkg
from nixcrate.errors import UsageError

# --- the strings ------------------------------------------------------------------------------


def test_arches_describe_both_lambda_architectures():
    assert lambda_pkg.ARCHES["x86_64"] == lambda_pkg.Arch(
        "x86_64", "x86_64-unknown-linux-gnu", "/lib64/ld-linux-x86-64.so.2", "EM_X86_64", "x86_64-linux"
    )
    assert lambda_pkg.ARCHES["arm64"] == lambda_pkg.Arch(
        "arm64", "aarch64-unknown-linux-gnu", "/lib/ld-linux-aarch64.so.1", "EM_AARCH64", "aarch64-linux"
    )


def test_zig_target_appends_the_glibc_pin():
    assert lambda_pkg.zig_target("x86_64", "2.26") == "x86_64-unknown-linux-gnu.2.26"
    assert lambda_pkg.zig_target("arm64", "2.34") == "aarch64-unknown-linux-gnu.2.34"


@pytest.mark.parametrize(
    ("arch", "glibc"), [("i686", "2.26"), ("x86_64", "2"), ("x86_64", "2.26.1"), ("arm64", "")]
)
def test_bad_arch_or_glibc_is_a_usage_error(arch, glibc):
    with pytest.raises(UsageError):
        lambda_pkg.zig_target(arch, glibc)


def test_zigbuild_command_carries_the_suffix_and_crane_profile_function():
    assert (
        lambda_pkg.zigbuild_command("ingest", "x86_64", "2.26")
        == "cargoWithProfile zigbuild --locked --target x86_64-unknown-linux-gnu.2.26 -p ingest"
    )
    assert (
        lambda_pkg.zigbuild_command("ingest", "arm64", "2.26", "--features a,b", bin="ingest-cli")
        == "cargoWithProfile zigbuild --locked --target aarch64-unknown-linux-gnu.2.26 -p ingest --bin ingest-cli --features a,b"
    )


def test_binary_path_has_no_glibc_suffix():
    assert lambda_pkg.binary_path("x86_64", "ingest") == "target/x86_64-unknown-linux-gnu/release/ingest"
    assert lambda_pkg.binary_path("arm64", "x", "dev") == "target/aarch64-unknown-linux-gnu/dev/x"


def test_build_env_is_static_and_leaves_aws_lc_to_the_native_table():
    env = lambda_pkg.build_env("x86_64", "2")
    assert env["CARGO_PROFILE_RELEASE_OPT_LEVEL"] == "2"
    assert env["CARGO_PROFILE_RELEASE_STRIP"] == "symbols"
    assert not any("AWS_LC" in key for key in env)
    assert not any("$" in value for value in env.values())
    with pytest.raises(UsageError):
        lambda_pkg.build_env("x86_64", "fast")


def test_prebuild_shell_puts_every_cache_under_tmpdir(tmp_path):
    """Under $TMPDIR, the sandbox's /build (a build runs in /build/source); zig's global cache
    in cargo's target/, which the handlers' closure hands on to every handler build."""
    source = tmp_path / "source"
    source.mkdir()
    text = lambda_pkg.prebuild_shell()
    proc = subprocess.run(
        ["bash", "-c", text + 'env | grep -E "^(HOME|XDG_CACHE_HOME|ZIG_|CARGO_ZIGBUILD)" | sort'],
        env={"PATH": os.environ["PATH"], "TMPDIR": str(tmp_path), "HOME": "/homeless-shelter"},
        cwd=source,
        capture_output=True,
        text=True,
        check=True,
    )
    values = dict(line.split("=", 1) for line in proc.stdout.splitlines())
    assert len(values) == 5
    assert all(v.startswith(f"{tmp_path}/") for v in values.values()), values
    assert values["ZIG_GLOBAL_CACHE_DIR"] == f"{source}/target/.zig-global-cache"


def test_shipped_scripts_are_shellcheck_clean():
    """The library's scripts are what every handler build runs: shellcheck finds nothing."""
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (scripts/test installs it)")
    scripts = [str(lambda_pkg.script_path(n)) for n in ("lambda-package.sh", "lambda-verify.sh", "stable-vendor.sh", "zig-caches.sh")]
    proc = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("include", ["/etc/passwd", "../up", "bootstrap", ".", ""])
def test_bad_include_is_a_usage_error(include):
    with pytest.raises(UsageError):
        lambda_pkg.package_shell("bin", "out", (include,))


# --- packaging for real ---------------------------------------------------------------------


@pytest.fixture
def fake_binary(tmp_path: Path) -> Path:
    binary = tmp_path / "src" / "handler-bin"
    binary.parent.mkdir()
    binary.write_bytes(b"\x7fELF" + bytes(range(256)) * 64)
    binary.chmod(0o700)
    return binary


def _source_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "static" / "img").mkdir(parents=True)
    (root / "static" / "index.html").write_text("<html></html>\n")
    (root / "static" / "img" / "run.sh").write_text("#!/bin/sh\n")
    (root / "static" / "img" / "run.sh").chmod(0o700)
    (root / "config.toml").write_text("a = 1\n")
    return root


def test_package_twice_is_byte_identical(tmp_path, fake_binary):
    root = _source_root(tmp_path)
    includes = ("static", "config.toml")
    first = package(fake_binary, tmp_path / "one", cwd=root, includes=includes, umask="022")
    # Different mtimes on everything and a different umask.
    later = time.time() + 3600
    for path in [fake_binary, *root.rglob("*")]:
        os.utime(path, (later, later))
    second = package(fake_binary, tmp_path / "two", cwd=root, includes=includes, umask="077")
    assert first.read_bytes() == second.read_bytes()
    # Packaging over an existing zip replaces it, not appends to it.
    third = package(fake_binary, tmp_path / "one", cwd=root, includes=includes)
    assert third.read_bytes() == second.read_bytes()


def test_package_lays_out_bootstrap_and_includes(tmp_path, fake_binary):
    root = _source_root(tmp_path)
    zip_path = package(fake_binary, tmp_path / "out", cwd=root, includes=("static", "config.toml"))
    with zipfile.ZipFile(zip_path) as archive:
        infos = {i.filename: i for i in archive.infolist()}
        assert list(infos) == ["bootstrap", "config.toml", "static/img/run.sh", "static/index.html"]
        assert archive.read("bootstrap") == fake_binary.read_bytes()
        assert archive.read("static/index.html") == b"<html></html>\n"
        modes = {name: stat.filemode(i.external_attr >> 16) for name, i in infos.items()}
        assert modes == {
            "bootstrap": "-rwxr-xr-x",
            "config.toml": "-rw-r--r--",
            "static/img/run.sh": "-rwxr-xr-x",
            "static/index.html": "-rw-r--r--",
        }
        assert {i.date_time for i in infos.values()} == {(1980, 1, 1, 0, 0, 0)}
        assert all(not i.extra for i in infos.values())  # zip -X: no uid/gid, no extended time


def test_package_names_a_missing_include(tmp_path, fake_binary):
    root = _source_root(tmp_path)
    script = lambda_pkg.package_shell(str(fake_binary), str(tmp_path / "out"), ("nope",))
    proc = subprocess.run(["bash", "-c", script], cwd=root, capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "include nope: not found" in proc.stderr
    assert not (tmp_path / "out" / "bootstrap.zip").exists()


def test_package_expands_out_like_a_derivation(tmp_path, fake_binary):
    script = lambda_pkg.package_shell("$bin", "$out")
    env = {"PATH": os.environ["PATH"], "bin": str(fake_binary), "out": str(tmp_path / "store-out")}
    subprocess.run(["bash", "-c", script], env=env, cwd=tmp_path, check=True)
    assert (tmp_path / "store-out" / "bootstrap.zip").is_file()


# --- the two sandboxed builds ---------------------------------------------------------------


@requires_zigbuild
@requires_registry
def test_handler_build_reuses_the_deps_closure(sandbox_builds: SandboxBuilds):
    step1 = sandbox_builds.step1_log
    for crate in ("serde", "serde_json", "itoa", "ryu", "memchr"):
        assert f"Compiling {crate} v" in step1, step1
    # Step 2 compiles the handler itself and no third-party crate.
    assert f"Compiling {PACKAGE} v0.1.0" in sandbox_builds.step2_log, sandbox_builds.step2_log
    assert sandbox_builds.step2_recompiled == [], sandbox_builds.step2_log
    print(f"\nrecompiled third-party crates in step 2: {len(sandbox_builds.step2_recompiled)}")


@requires_zigbuild
@requires_registry
def test_negative_control_a_different_zig_cache_dir_recompiles_the_deps(sandbox_builds: SandboxBuilds):
    # The measurement can fail: cargo fingerprints cargo-zigbuild's linker wrapper path.
    # Another zig cache directory recompiles every third-party crate the closure compiled
    # (the README's "5"), not merely some of them.
    closure_crates = compiled_crates(sandbox_builds.step1_log, {PACKAGE})
    assert len(closure_crates) == 5, sandbox_builds.step1_log
    assert sorted(sandbox_builds.control_recompiled) == sorted(closure_crates), sandbox_builds.control_log
    print(f"\nrecompiled third-party crates with another zig cache: {len(sandbox_builds.control_recompiled)}")


@requires_zigbuild
@requires_registry
def test_zigbuild_handler_runs(sandbox_builds: SandboxBuilds):
    proc = subprocess.run(
        [str(sandbox_builds.binary)], input='{"a": [1, 2]}', capture_output=True, text=True, check=True
    )
    assert proc.stdout.startswith('{"a":[1,2]} 11 0.5 Some(0)')


def test_fixture_constants_match_the_api():
    assert lambda_pkg.zig_target(ARCH, GLIBC) == "x86_64-unknown-linux-gnu.2.26"
