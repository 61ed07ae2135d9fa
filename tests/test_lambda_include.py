"""A handler with `include` in nixcrate.toml, packaged by the flake's own install and check text.

mkLambda's installPhaseCommand is taken from the rendered flake.nix, its two Nix
interpolations put in as Nix would (the handler's binary path; its packaging script, the
body FlakeContext holds, written to a file), and run with bash in a copy of the handler's
source, with the real zigbuild `.2.26` binary (lambda_fixtures) where the zigbuild line
leaves it. The check script is the verify body the flake holds. crane's reference removers
are no-ops here: they rewrite store paths, which this binary has none of.
"""

# ruff: noqa: F811 - pytest fixtures imported by name
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import textwrap
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLE, copy_workspace
from lambda_fixtures import (  # noqa: F401 - session fixtures
    SandboxBuilds,
    handler_workspace,
    lambda_session,
    requires_registry,
    requires_zigbuild,
    sandbox_builds,
)

from nixcrate import config as config_mod
from nixcrate import flake_gen, workspace
from nixcrate.cli_lambda import lambda_group

pytestmark = [requires_zigbuild, requires_registry]

INCLUDES = ("pdfium-lib/linux", "config/app.toml")
FILES = {
    "pdfium-lib/linux/libpdfium.so": b"\x7fELF not really\n",
    "pdfium-lib/linux/include/fpdfview.h": b"/* header */\n",
    "config/app.toml": b"level = 1\n",
}
CRANE_HOOKS = "removeReferencesToRustToolchain() { :; }\nremoveReferencesToVendoredSources() { :; }\n"


@pytest.fixture
def context(tmp_path: Path) -> flake_gen.FlakeContext:
    ws_dir = copy_workspace(EXAMPLE, tmp_path / "ws")
    cfg = ws_dir / "nixcrate.toml"
    text = cfg.read_text()
    assert "[members.ingest]\n" in text
    cfg.write_text(text.replace("[members.ingest]\n", f"[members.ingest]\ninclude = {list(INCLUDES)!r}\n".replace("'", '"')))
    return flake_gen.build_context(workspace.load(ws_dir), config_mod.load(ws_dir))


@pytest.fixture
def handler(context: flake_gen.FlakeContext) -> flake_gen.Output:
    return next(o for o in context.lambdas if o.member == "ingest")


@pytest.fixture
def install(context: flake_gen.FlakeContext, handler: flake_gen.Output, tmp_path: Path) -> str:
    """mkLambda's installPhaseCommand for this handler, as bash."""
    found = re.search(r"installPhaseCommand = ''\n(.*?)\n *'';", flake_gen.render(context), re.DOTALL)
    assert found is not None, "no installPhaseCommand in the rendered flake"
    script = tmp_path / "nixcrate-lambda-package"
    script.write_text("#!/usr/bin/env bash\n" + dict(context.packagers)[handler.package_script])
    script.chmod(0o755)
    text = textwrap.dedent(found.group(1))
    assert "${lib.escapeShellArg binary}" in text, text
    assert "${packageScript}" in text, text
    return text.replace("${lib.escapeShellArg binary}", shlex.quote(handler.binary)).replace("${packageScript}", str(script))


def _run(script: str, cwd: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env_script = f'set -e\nexport TMPDIR={cwd.parent}/tmp out={out}\nmkdir -p "$TMPDIR"\n{CRANE_HOOKS}{script}'
    return subprocess.run(["bash", "-c", env_script, "bash", *args], cwd=cwd, capture_output=True, text=True, check=False)


def _source(tmp_path: Path, handler: flake_gen.Output, binary: Path) -> Path:
    src = tmp_path / "build" / "source"
    for rel, data in FILES.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    (src / "pdfium-lib" / "mac").mkdir()
    (src / "pdfium-lib" / "mac" / "libpdfium.dylib").write_bytes(b"not included\n")
    built = src / handler.binary
    built.parent.mkdir(parents=True)
    shutil.copy2(binary, built)
    return src


def test_flake_packages_bootstrap_plus_exactly_the_includes(
    tmp_path: Path, handler: flake_gen.Output, install: str, sandbox_builds: SandboxBuilds
) -> None:
    # the handler's source holds the included paths
    assert {"./pdfium-lib/linux", "./config/app.toml"} <= set(handler.crates)
    src = _source(tmp_path, handler, sandbox_builds.binary)
    out = tmp_path / "out"
    proc = _run(install, src, out)
    assert proc.returncode == 0, proc.stderr
    zip_path = out / "bootstrap.zip"
    with zipfile.ZipFile(zip_path) as archive:
        assert sorted(archive.namelist()) == sorted(["bootstrap", *FILES])
        for rel, data in FILES.items():
            assert archive.read(rel) == data
    # the derivation's install check (check_shell) and `nixcrate lambda verify` both accept it
    check = _run(handler.check_shell, src, out, str(out / "bootstrap.zip"))
    assert check.returncode == 0, check.stderr
    assert "ok (bootstrap for x86_64" in check.stdout
    args = ["verify", str(zip_path), *(a for inc in INCLUDES for a in ("--include", inc))]
    verify = CliRunner().invoke(lambda_group, args)
    assert verify.exit_code == 0, verify.output
    # without the declaration, the same zip is refused
    undeclared = CliRunner().invoke(lambda_group, ["verify", str(zip_path)])
    assert undeclared.exit_code == 1
    assert "undeclared entry config/app.toml" in undeclared.output


def test_an_undeclared_extra_file_fails_the_install_check(
    tmp_path: Path, handler: flake_gen.Output, install: str, sandbox_builds: SandboxBuilds
) -> None:
    src = _source(tmp_path, handler, sandbox_builds.binary)
    out = tmp_path / "out"
    assert _run(install, src, out).returncode == 0
    subprocess.run(["zip", "-q", "-X", str(out / "bootstrap.zip"), "pdfium-lib/mac/libpdfium.dylib"], cwd=src, check=True)
    check = _run(handler.check_shell, src, out, str(out / "bootstrap.zip"))
    assert check.returncode == 1
    assert "undeclared entry pdfium-lib/mac/libpdfium.dylib" in check.stderr
    args = ["verify", str(out / "bootstrap.zip"), *(a for inc in INCLUDES for a in ("--include", inc))]
    verify = CliRunner().invoke(lambda_group, args)
    assert verify.exit_code == 1
    assert "[extra-entry]" in verify.output
