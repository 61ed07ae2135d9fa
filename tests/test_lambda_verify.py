"""`nixcrate lambda verify` and check_shell on real binaries: the zigbuild .2.26 handler
passes, the host-linked one and each broken zip fail, both checkers agree line for line."""

# ruff: noqa: F811, T201 - pytest fixtures imported by name; prints record the measured figures
from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from lambda_fixtures import (  # noqa: F401 - session fixtures
    ARCH,
    GLIBC,
    PIN_PLUS_ONE,
    SandboxBuilds,
    check,
    handler_workspace,
    host_binary,
    lambda_session,
    package,
    pin_plus_one_binary,
    problem_lines,
    requires_registry,
    requires_zigbuild,
    sandbox_builds,
)

from nixcrate import lambda_pkg
from nixcrate.cli_lambda import lambda_group
from nixcrate.errors import LambdaVerifyFailed

pytestmark = [requires_zigbuild, requires_registry]


@pytest.fixture(scope="session")
def zips(lambda_session: Path, sandbox_builds: SandboxBuilds, host_binary: Path, pin_plus_one_binary: Path) -> dict[str, Path]:
    """One bootstrap.zip per case, each built with package_shell unless the case is the zip."""
    base = lambda_session / "zips"
    ws = sandbox_builds.workspace
    good = sandbox_builds.binary
    out: dict[str, Path] = {}
    out["good"] = package(good, base / "good", cwd=ws)
    out["good-with-includes"] = package(good, base / "incl", cwd=ws, includes=("static", "README.md"))
    out["host-glibc"] = package(host_binary, base / "host", cwd=ws)
    out["pin-plus-one"] = package(pin_plus_one_binary, base / "pin-plus-one", cwd=ws)

    patched = base / "nix-interp-bin"
    patched.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(good, patched)
    subprocess.run(
        ["patchelf", "--set-interpreter", "/nix/store/xxx-glibc/lib/ld-linux-x86-64.so.2", str(patched)],
        check=True,
    )
    out["nix-interpreter"] = package(patched, base / "nix-interp", cwd=ws)

    rpath = base / "nix-rpath-bin"
    shutil.copy2(good, rpath)
    subprocess.run(["patchelf", "--set-rpath", "/nix/store/yyy-openssl/lib", str(rpath)], check=True)
    subprocess.run(["patchelf", "--add-needed", "libssl.so.3", str(rpath)], check=True)
    out["nix-rpath-libssl"] = package(rpath, base / "nix-rpath", cwd=ws)

    # An undeclared extra file: packaged with README.md, verified without declaring it.
    out["extra-file"] = package(good, base / "extra", cwd=ws, includes=("README.md",))

    stage = base / "mode-stage"
    stage.mkdir()
    shutil.copy2(good, stage / "bootstrap")
    (stage / "bootstrap").chmod(0o644)
    out["mode-0644"] = base / "mode-0644.zip"
    subprocess.run(["zip", "-X", "-q", str(out["mode-0644"]), "bootstrap"], cwd=stage, check=True)

    script = base / "script-bin"
    script.write_text("#!/bin/sh\necho hello\n")
    script.chmod(0o755)
    out["not-elf"] = package(script, base / "script", cwd=ws)

    out["no-bootstrap"] = base / "no-bootstrap.zip"
    with zipfile.ZipFile(out["no-bootstrap"], "w") as archive:
        archive.writestr("handler", "x")
    return out


# case -> (extra verify kwargs, expected problem codes)
CASES: dict[str, tuple[dict[str, object], set[str]]] = {
    "good": ({}, set()),
    "good-with-includes": ({"includes": ("static", "README.md")}, set()),
    "host-glibc": ({}, {"glibc-too-new"}),
    # needs GLIBC_2.27 and nothing newer: refused at the 2.26 pin, accepted at 2.27
    "pin-plus-one": ({}, {"glibc-too-new"}),
    "pin-plus-one-at-2.27": ({"glibc": "2.27"}, set()),
    "nix-interpreter": ({}, {"nix-store-interpreter"}),
    "nix-rpath-libssl": ({}, {"nix-store-rpath", "needed-library"}),
    "extra-file": ({}, {"extra-entry"}),
    "mode-0644": ({}, {"bootstrap-mode"}),
    "not-elf": ({}, {"not-elf"}),
    "no-bootstrap": ({}, {"missing-bootstrap", "extra-entry"}),
    # An x86_64 binary checked as arm64: the machine and interpreter are wrong; its x86_64 loader
    # in NEEDED is not a library to "link statically".
    "wrong-arch": ({"arch": "arm64"}, {"wrong-machine", "wrong-interpreter"}),
    "missing-include": ({"includes": ("static",)}, {"missing-include"}),
}


def _zip_for(case: str, zips: dict[str, Path]) -> Path:
    return zips.get(case.removesuffix("-at-2.27"), zips["good"])


def _cli_args(zip_path: Path, kwargs: dict[str, object]) -> list[str]:
    args = ["verify", str(zip_path)]
    if "arch" in kwargs:
        args += ["--arch", str(kwargs["arch"])]
    if "glibc" in kwargs:
        args += ["--glibc", str(kwargs["glibc"])]
    for inc in kwargs.get("includes", ()):  # type: ignore[attr-defined]
        args += ["--include", inc]
    return args


def test_zigbuild_handler_passes_and_records_its_max_glibc(zips):
    result = lambda_pkg.verify(zips["good"], glibc=GLIBC, arch=ARCH)
    assert result.ok, result.lines()
    assert result.interpreter == "/lib64/ld-linux-x86-64.so.2"
    assert result.max_glibc is not None
    assert tuple(int(p) for p in result.max_glibc.split(".")) <= (2, 26)
    assert not any("/nix/store" in p for p in (*result.rpath, *result.runpath))
    print(f"\nzigbuild .2.26 handler: max GLIBC_{result.max_glibc}, NEEDED {', '.join(result.needed)}")

    run = CliRunner().invoke(lambda_group, ["verify", str(zips["good"]), "--glibc", GLIBC])
    assert run.exit_code == 0, run.output
    assert run.stdout.splitlines() == [
        f"{zips['good']}: ok (x86_64, max GLIBC_{result.max_glibc}, pin 2.26)",
        f"{zips['good']}: runs on provided.al2023, provided.al2",
        f"note: {lambda_pkg.AL2_NOTE}",
    ]
    assert result.runtimes == ("provided.al2023", "provided.al2")
    assert run.stderr == ""


def test_host_linked_handler_fails_naming_glibc_2_34(zips):
    result = lambda_pkg.verify(zips["host-glibc"])
    assert not result.ok
    assert result.max_glibc is not None
    assert tuple(int(p) for p in result.max_glibc.split(".")) >= (2, 34)
    too_new = [p for p in result.problems if p.code == "glibc-too-new"]
    line_2_34 = next(p.line(str(zips["host-glibc"])) for p in too_new if "GLIBC_2.34 " in p.detail)
    assert "pthread_" in line_2_34 or "__libc_start_main" in line_2_34
    assert str(zips["host-glibc"]) in line_2_34
    assert "cargo zigbuild --target x86_64-unknown-linux-gnu.2.26" in line_2_34


@pytest.mark.parametrize("case", sorted(CASES))
def test_verify_cli_and_check_shell_agree(case, zips):
    kwargs, expected = CASES[case]
    zip_path = _zip_for(case, zips)
    result = lambda_pkg.verify(zip_path, **kwargs)  # type: ignore[arg-type]
    assert {p.code for p in result.problems} == expected, result.lines()

    # The CLI: exit status, problems one per line on stderr, each naming the zip and a fix.
    run = CliRunner().invoke(lambda_group, _cli_args(zip_path, kwargs))
    assert run.exit_code == (1 if expected else 0), run.output
    assert run.stderr.splitlines() == result.lines()
    for line in run.stderr.splitlines():
        assert line.startswith(f"{zip_path}: ")
        assert "; fix: " in line

    # check_shell, run for real with unzip and readelf: the same lines, the same verdict.
    proc = check(
        zip_path,
        arch=str(kwargs.get("arch", ARCH)),
        glibc=str(kwargs.get("glibc", GLIBC)),
        includes=tuple(kwargs.get("includes", ())),  # type: ignore[arg-type]
    )
    assert proc.returncode == (1 if expected else 0), proc.stderr
    assert problem_lines(proc.stderr) == result.lines()


def test_a_binary_needing_one_glibc_minor_above_the_pin_is_refused_naming_that_version(zips):
    """A real ELF needing GLIBC_2.27 (and nothing newer): at the 2.26 pin, one problem, naming
    the version and the symbol; at 2.27 it passes and runs on provided.al2023 only."""
    version, symbol = PIN_PLUS_ONE
    zip_path = zips["pin-plus-one"]
    refused = lambda_pkg.verify(zip_path, glibc="2.26")
    assert refused.max_glibc == version
    (problem,) = refused.problems
    assert problem.code == "glibc-too-new"
    assert f"GLIBC_{version} " in problem.detail and symbol in problem.detail
    run = CliRunner().invoke(lambda_group, ["verify", str(zip_path), "--glibc", "2.26"])
    assert run.exit_code == 1
    assert run.stderr.splitlines() == [problem.line(str(zip_path))]
    accepted = CliRunner().invoke(lambda_group, ["verify", str(zip_path), "--glibc", version, "--json"])
    assert accepted.exit_code == 0, accepted.output
    assert json.loads(accepted.stdout)["runtimes"] == ["provided.al2023"]


def test_json_output_for_scripts(zips):
    run = CliRunner().invoke(lambda_group, ["verify", str(zips["host-glibc"]), "--json"])
    assert run.exit_code == 1
    data = json.loads(run.stdout)
    assert data["ok"] is False
    assert data["max_glibc"] == "2.34" or data["max_glibc"] > "2.34"
    assert "GLIBC_2.34" in data["glibc_versions"]
    assert {p["code"] for p in data["problems"]} == {"glibc-too-new"}

    good = json.loads(CliRunner().invoke(lambda_group, ["verify", str(zips["good"]), "--json"]).stdout)
    assert good["ok"] is True
    assert good["entries"] == ["bootstrap"]
    assert good["problems"] == []


def test_newer_pin_accepts_what_al2023_would_run(zips):
    # glibc 2.36 here: a host-linked binary is fine for a runtime with glibc >= 2.36 only.
    assert lambda_pkg.verify(zips["host-glibc"], glibc="2.36").ok


@pytest.mark.parametrize("content", [None, b"just text, not a zip\n", b""])
def test_not_a_zip_or_missing_is_one_line_exit_1(tmp_path, content):
    path = tmp_path / "bootstrap.zip"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(LambdaVerifyFailed):
        lambda_pkg.verify(path)
    run = CliRunner().invoke(lambda_group, ["verify", str(path)])
    assert run.exit_code == 1
    assert run.exception is None or isinstance(run.exception, SystemExit)
    assert run.stdout == ""
    assert len(run.stderr.splitlines()) == 1
    assert run.stderr.startswith(f"error: {path}: ")
    proc = check(path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: {path}: ")


def test_empty_zip_is_missing_bootstrap(tmp_path):
    path = tmp_path / "empty.zip"
    zipfile.ZipFile(path, "w").close()
    result = lambda_pkg.verify(path)
    assert [p.code for p in result.problems] == ["missing-bootstrap"]
    proc = check(path)
    assert proc.returncode == 1
    assert problem_lines(proc.stderr) == result.lines()


def test_bad_arch_is_a_usage_error_with_exit_2(zips):
    run = CliRunner().invoke(lambda_group, ["verify", str(zips["good"]), "--arch", "mips"])
    assert run.exit_code == 2
    run = CliRunner().invoke(lambda_group, ["verify", str(zips["good"]), "--glibc", "two"])
    assert run.exit_code == 2
    assert run.stderr.startswith("error: glibc pin 'two'")
