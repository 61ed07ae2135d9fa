"""`nixcrate init` as a user meets it: files written, refused, checked; errors in one line."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLE, copy_in_reverse_order, copy_workspace, git_init, needs_nix

from nixcrate.cli import cli
from nixcrate.files import HEADER_PREFIX


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = copy_workspace(EXAMPLE, tmp_path / "monorepo")
    # a workspace before its first `nixcrate init`
    (root / "flake.nix").unlink()
    shutil.rmtree(root / "nix")
    return root


DATA = "nix/nixcrate/workspace.nix"
LIBRARY = "nix/nixcrate/default.nix"


def test_init_writes_its_files_a_starter_flake_and_keeps_nixcrate_toml(ws: Path) -> None:
    toml_before = (ws / "nixcrate.toml").read_bytes()
    code, out, err = run("init", str(ws))
    assert code == 0, err
    for rel in (DATA, LIBRARY, "nix/nixcrate/lambda-package.sh", "nix/nixcrate/lambda-verify.sh"):
        assert (ws / rel).read_text().startswith(HEADER_PREFIX), rel
        assert f"create  {rel}" in out
    assert "deployCargoArtifacts =" in (ws / LIBRARY).read_text()
    flake = (ws / "flake.nix").read_text()
    assert not flake.startswith(HEADER_PREFIX)  # the starter is the user's
    assert "import ./nix/nixcrate" in flake and "create  flake.nix" in out
    assert "services' closure:" in out
    assert (ws / "nixcrate.toml").read_bytes() == toml_before  # the user's file is never rewritten


def test_generated_data_holds_no_checkout_specific_bytes(tmp_path: Path) -> None:
    """The drift check must pass in a clone under another name: nothing depends on the directory."""
    a = copy_workspace(EXAMPLE, tmp_path / "one" / "monorepo")
    b = copy_workspace(EXAMPLE, tmp_path / "two" / "renamed-checkout")
    shutil.rmtree(b / "nix")
    assert run("init", str(a))[0] == 0
    assert run("init", "--check", str(b))[0] == 1  # b has no nix/nixcrate yet
    shutil.copytree(a / "nix", b / "nix")
    code, _, err = run("init", "--check", str(b))
    assert code == 0, err


def test_first_init_writes_a_commented_nixcrate_toml(ws: Path) -> None:
    (ws / "nixcrate.toml").unlink()
    code, out, _ = run("init", str(ws))
    assert code == 0
    text = (ws / "nixcrate.toml").read_text()
    assert '[members.api]\n# kind = "service"  (detected)' in text
    assert '[members.common]\n# kind = "library"  (detected)' in text
    assert "create  nixcrate.toml" in out
    # What init regenerates is nix/nixcrate; flake.nix is the user's, and its own systems decide.
    assert "regenerate flake.nix" not in text and "flake.nix is yours" in text
    assert "flake.nix's own `systems` list decides" in text


def test_second_init_changes_nothing(ws: Path) -> None:
    assert run("init", str(ws))[0] == 0
    before = snapshot(ws)
    code, out, _ = run("init", str(ws))
    assert code == 0 and f"identical  {DATA}" in out
    assert "flake.nix" not in out  # the user's: not even looked at again
    assert snapshot(ws) == before


def test_same_workspace_same_bytes_whatever_the_order_on_disk(tmp_path: Path) -> None:
    a = copy_workspace(EXAMPLE, tmp_path / "a" / "monorepo")
    b = copy_in_reverse_order(EXAMPLE, tmp_path / "b" / "monorepo")
    assert run("init", str(a))[0] == 0
    assert run("init", str(b))[0] == 0
    assert (a / DATA).read_bytes() == (b / DATA).read_bytes()


@needs_nix
def test_generated_nix_parses_with_real_nix(ws: Path) -> None:
    assert run("init", str(ws))[0] == 0
    for rel in ("flake.nix", DATA, LIBRARY, "nix/nixcrate/flake-module.nix"):
        proc = subprocess.run(["nix-instantiate", "--parse", str(ws / rel)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, (rel, proc.stderr)


def test_user_edited_generated_file_is_refused_then_replaced_with_force(ws: Path) -> None:
    assert run("init", str(ws))[0] == 0
    data = ws / DATA
    edited = data.read_text().replace('kind = "service";', 'kind = "lambda";', 1)
    data.write_text(edited)
    code, _, err = run("init", str(ws))
    assert code == 1
    assert DATA in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert data.read_text() == edited  # untouched
    code, out, _ = run("init", str(ws), "--force")
    assert code == 0 and "replace edited" in out
    assert (ws / (DATA + ".bak")).read_text() == edited
    assert 'kind = "service";' in data.read_text()


def test_hand_written_flake_is_never_touched_and_init_prints_the_wiring(ws: Path) -> None:
    (ws / "flake.nix").write_text("{ outputs = _: { }; }\n")
    code, out, err = run("init", str(ws))
    assert code == 0, err
    assert (ws / "flake.nix").read_text() == "{ outputs = _: { }; }\n"
    assert (ws / DATA).is_file()
    assert "does not call nixcrate yet" in out and "import ./nix/nixcrate" in out
    # A shape init does not know: one warning line naming the file, and the genAttrs lines.
    warning = [line for line in err.splitlines() if "none of the shapes nixcrate knows" in line]
    assert len(warning) == 1 and warning[0].startswith("warning: flake.nix:")


def test_wiring_reaches_the_inputs_by_the_names_the_flake_binds(ws: Path) -> None:
    from nixcrate import flake_shape  # noqa: PLC0415

    utils = (
        "{ outputs = inputs@{ self, nixpkgs, flake-utils, ... }:\n"
        "    flake-utils.lib.eachSystem [ \"x86_64-linux\" ] (sys: { packages.x = 1; }); }\n"
    )
    wiring = flake_shape.wiring(utils, "nix/nixcrate", toolchain=True)
    assert wiring.shape is flake_shape.Shape.FLAKE_UTILS
    lines = [line for step in wiring.steps for line in step.lines]
    # inputs@: crane and rust-overlay through `inputs`, no new arguments; no `pkgs` bound there.
    assert "workspace = import ./nix/nixcrate { pkgs = nixpkgs.legacyPackages.${sys}; inherit (inputs) crane rust-overlay; };" in lines
    assert not [s for s in wiring.steps if s.where == "outputs' arguments"]
    plain = "{ outputs = { self, nixpkgs }: { packages = nixpkgs.lib.genAttrs [ ] (s: { }); }; }\n"
    wiring = flake_shape.wiring(plain, "nix/nixcrate", toolchain=False)
    assert wiring.shape is flake_shape.Shape.GENATTRS
    assert [s.lines for s in wiring.steps if s.where == "outputs' arguments"] == [("{ self, nixpkgs, crane }:",)]
    assert flake_shape.shape_of("{ # flake-utils.lib.eachDefaultSystem\n outputs = _: { }; }") is flake_shape.Shape.UNKNOWN


def test_a_flake_from_an_earlier_nixcrate_is_migrated_keeping_a_backup(ws: Path) -> None:
    old = (EXAMPLE.parent.parent / "tests" / "fixtures" / "old-generated-flake.nix").read_text()
    (ws / "flake.nix").write_text(old)
    assert run("init", "--check", str(ws))[0] == 1  # CI says: migrate
    code, out, err = run("init", str(ws))
    assert code == 0, err
    assert (ws / "flake.nix.bak").read_text() == old
    assert "import ./nix/nixcrate" in (ws / "flake.nix").read_text()
    assert "flake.nix" in out and ".bak" in out


def test_check_reports_drift_and_writes_nothing(ws: Path) -> None:
    code, _, err = run("init", "--check", str(ws))
    assert code == 1 and f"{DATA}: missing" in err
    assert not (ws / DATA).exists()
    assert run("init", str(ws))[0] == 0
    assert run("init", "--check", str(ws))[0] == 0
    # a new service appears: the committed data is stale until regenerated
    svc = ws / "services" / "billing"
    (svc / "src").mkdir(parents=True)
    (svc / "Cargo.toml").write_text('[package]\nname = "billing"\nversion = "0.1.0"\nedition = "2021"\n')
    (svc / "src" / "main.rs").write_text("fn main() {}\n")
    cargo_toml = ws / "Cargo.toml"
    cargo_toml.write_text(cargo_toml.read_text().replace('"services/worker",', '"services/worker", "services/billing",'))
    lock = ws / "Cargo.lock"
    lock.write_text(lock.read_text() + '\n[[package]]\nname = "billing"\nversion = "0.1.0"\n')
    before = snapshot(ws)
    code, _, err = run("init", "--check", str(ws))
    assert code == 1 and "out of date" in err and "nixcrate init" in err
    assert snapshot(ws) == before


def test_git_untracked_files_are_named_with_the_git_add_to_run(ws: Path) -> None:
    git_init(ws)
    code, _, err = run("init", str(ws))
    assert code == 0
    assert "not tracked by git" in err and "git add flake.nix" in err
    subprocess.run(["git", "-C", str(ws), "add", "flake.nix", "nix"], check=True)
    assert "not tracked" not in run("init", str(ws))[2]


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ('[members.api]\nknd = "service"\n', ["members.api.knd", "unknown key"]),
        ('[members.api]\nkind = 3\n', ["members.api.kind", "expected a string"]),
        ('[members.api]\nkind = "daemon"\n', ["members.api.kind", "'daemon'"]),
        ('[members.nope]\nkind = "service"\n', ["members.nope", "not a workspace member"]),
        ('exclude = ["nope"]\n', ["exclude", "'nope'"]),
        ('[lambda]\nglibc = "two"\n', ["lambda.glibc"]),
        ("[members.api\n", ["nixcrate.toml", "invalid TOML"]),
        ('[members.common]\nkind = "service"\n', ["common", "no bin target"]),
        ('exclude = ["api", "worker", "ingest", "report-export"]\n', ["nothing to build: no member is a service"]),
    ],
)
def test_bad_nixcrate_toml_names_the_key_and_writes_nothing(ws: Path, toml: str, words: list[str]) -> None:
    (ws / "nixcrate.toml").write_text(toml)
    before = snapshot(ws)
    code, out, err = run("init", str(ws))
    assert code == 1
    assert len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err
    assert "Traceback" not in err + out
    assert snapshot(ws) == before


def test_broken_cargo_toml_exits_1_with_one_line_and_writes_nothing(ws: Path) -> None:
    (ws / "Cargo.toml").write_text("[workspace\n")
    before = snapshot(ws)
    code, _, err = run("init", str(ws))
    assert code == 1 and err.startswith("error: Cargo.toml: invalid TOML") and "line 1" in err
    assert snapshot(ws) == before


def test_usage_error_exits_2() -> None:
    assert run("init", "--no-such-flag")[0] == 2


def test_shipped_example_is_up_to_date() -> None:
    """The committed examples/monorepo/nix/nixcrate is what nixcrate generates today (drift check)."""
    code, _, err = run("init", "--check", str(EXAMPLE))
    assert code == 0, err


def test_closure_and_native_overrides_reach_closure_and_packages(ws: Path) -> None:
    cargo = ws / "Cargo.toml"  # a custom profile must be defined, or cargo (and nixcrate) refuse it
    cargo.write_text(cargo.read_text() + '\n[profile.production]\ninherits = "release"\n')
    toml = ws / "nixcrate.toml"
    toml.write_text(
        toml.read_text()
        .replace("[services]\n", '[services]\nnative-build-inputs = ["protobuf"]\nenv = { FOO = "bar" }\nprofile = "production"\n')
        .replace("[lambda]\n", '[lambda]\nbuild-inputs = ["llvmPackages.libclang"]\ncodegen-units = 1\nlto = true\n')
        + '\n[native."smallvec"]\nreason = "pretend it links something"\nbuild-inputs = ["sqlite"]\nlambda-env = { ONLY_IN_LAMBDA = "1" }\n'
    )
    code, out, err = run("init", str(ws))
    assert code == 0, err
    flake = (ws / DATA).read_text()
    service_args = flake.split("    services = {", 1)[1].split("\n    };", 1)[0]
    lambda_args = flake.split("    lambdas = {", 1)[1].split("\n    };", 1)[0]
    assert "pkgs.protobuf" in service_args and 'FOO = "bar";' in service_args and 'CARGO_PROFILE = "production";' in service_args
    assert "pkgs.sqlite" in service_args  # smallvec is in the services' closure only
    assert "pkgs.llvmPackages.libclang" in lambda_args and "pkgs.protobuf" not in lambda_args
    assert 'CARGO_PROFILE_RELEASE_CODEGEN_UNITS = "1";' in lambda_args and 'CARGO_PROFILE_RELEASE_LTO = "true";' in lambda_args
    assert "CODEGEN_UNITS" not in service_args  # unset: the workspace's [profile.release] decides
    assert "ONLY_IN_LAMBDA" not in flake  # smallvec is not in the handlers' closure
    assert "native (deployCargoArtifacts): smallvec: sqlite (pretend it links something)" in out


def _relayout_nix(text: str) -> str:
    """What `nix fmt` may do to a file, done by hand (no Nix formatter installs offline): every
    line re-indented, a line opening `[`/`{`/`(` joined with the next, `x = value;` split
    after `=`. Tokens are kept; Nix's own parser checks the meaning is too."""
    out: list[str] = []
    in_string = False  # inside a '' string, where indentation is meaning: kept as it is
    for line in text.splitlines():
        body = line.strip()
        was_in_string = in_string
        unescaped = re.sub(r"''['$\\]", "", line)  # escapes inside a '' string: ''' ''$ ''\
        in_string ^= unescaped.count("''") % 2 == 1
        if was_in_string or in_string:
            out.append(line)
            continue
        if out and out[-1].rstrip().endswith(("[", "{", "(")) and not out[-1].lstrip().startswith("#") and body and not body.startswith("#"):
            out[-1] = out[-1] + " " + body
            continue
        indent = " " * (2 * (len(line) - len(line.lstrip())))
        head, eq, tail = body.partition(" = ")
        if eq and tail.endswith(";") and '"' not in head and "#" not in body and "''" not in body:
            out.extend([f"{indent}{head} =", f"{indent}    {tail}"])
        else:
            out.append(indent + body)
    return "\n".join(out) + "\n"


def _nix_ast(path: Path) -> str:
    proc = subprocess.run(["nix-instantiate", "--parse", str(path)], capture_output=True, text=True, check=True)
    return proc.stdout


@needs_nix
def test_reformatted_generated_files_pass_the_drift_check_and_a_token_edit_does_not(ws: Path) -> None:
    assert run("init", str(ws))[0] == 0
    generated = sorted(p for p in (ws / "nix" / "nixcrate").iterdir() if p.is_file())  # (base/: the snapshot)
    for path in generated:
        before = path.read_text()
        if path.suffix == ".nix":
            ast = _nix_ast(path)
            path.write_text(_relayout_nix(before))
            assert _nix_ast(path) == ast, path.name  # the re-layout kept the meaning
        else:  # the shell scripts: the real shfmt, as treefmt runs it
            path.write_text(subprocess.run(["shfmt", str(path)], capture_output=True, text=True, check=True).stdout)
        assert path.read_text() != before or path.name == "zig-caches.sh", path.name
    formatted = snapshot(ws)
    code, _, err = run("init", "--check", str(ws))
    assert code == 0, err
    code, out, err = run("init", str(ws))
    assert code == 0, err
    assert snapshot(ws) == formatted  # the user's layout is kept
    # A workspace change: init rewrites the reformatted files without --force.
    config = ws / "nixcrate.toml"
    config.write_text(config.read_text().replace("[members.worker]\n", '[members.worker]\ncargo-extra-args = "--verbose"\n'))
    code, out, err = run("init", str(ws))
    assert code == 0, err
    assert f"update  {DATA}" in out
    # A token edit is still an edit, for init and for the drift check, and nothing is written.
    data = ws / DATA
    data.write_text(data.read_text().replace('kind = "service";', 'kind = "lambda";', 1))
    edited = snapshot(ws)
    code, _, err = run("init", str(ws))
    assert code == 1 and "edited by hand" in err
    code, _, err = run("init", "--check", str(ws))
    assert code == 1 and "edited by hand" in err and "init --force" in err and len(err.strip().splitlines()) == 1
    assert snapshot(ws) == edited


@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed (it writes the library workspace's Cargo.lock)")
def test_a_library_only_workspace_gets_a_package_per_library_nothing_depends_on(tmp_path: Path) -> None:
    """No service and no handler: each library no crate depends on (a plain lib, a proc-macro, a
    cdylib, a staticlib, a dylib, `autobins = false`, one with an example) is a package; the one
    its neighbour uses (names) is not. With every such library left out, nothing is left to
    build: one line saying what to do, and nothing written."""
    from library_workspace import PACKAGES, write_library_workspace  # noqa: PLC0415 - needs cargo

    ws = write_library_workspace(tmp_path / "libs")
    result = CliRunner().invoke(cli, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    assert "nix build .#base" in result.output
    data = (ws / "nix/nixcrate/workspace.nix").read_text()
    packaged = sorted(re.findall(r'^    "?([a-z]+)"? = \{[^}]*package = true;', data, re.MULTILINE))
    assert packaged == sorted(PACKAGES)

    fresh = write_library_workspace(tmp_path / "none")
    (fresh / "nixcrate.toml").write_text("".join(f"[members.{name}]\npackage = false\n" for name in PACKAGES))
    before = snapshot(fresh)
    result = CliRunner().invoke(cli, ["init", str(fresh)])
    assert result.exit_code == 1
    assert result.output.startswith("error: Cargo.toml: nothing to build: no member is a service, a Lambda handler or a library")
    assert len(result.output.strip().splitlines()) == 1
    assert snapshot(fresh) == before
