"""bootstrap.zip size of the example handler, nixcrate's way vs plain cargo, and verify's time.

    python benchmarks/lambda_size.py [--handler ingest] [--rounds 7]

Copies examples/monorepo to a temp dir (crates from Debian's vendored registry: no network)
and builds the handler twice:
- nixcrate: build_env (opt-level 2, strip=symbols) + prebuild_shell + zigbuild_command
  (x86_64-unknown-linux-gnu.2.26), packaged with package_shell;
- plain: `cargo build --release`, then `zip -j bootstrap.zip bootstrap`, the manual recipe.
Then times `verify` in-process, `nixcrate lambda verify` as a process (interpreter start
included), and check_shell (unzip + readelf), median of --rounds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nixcrate import lambda_pkg  # noqa: E402

EXAMPLE = REPO / "examples" / "monorepo"
REGISTRY = Path("/usr/share/cargo/registry")
CARGO_WITH_PROFILE = 'cargoWithProfile() { local sub="$1"; shift; cargo "$sub" --release "$@"; }\n'


def bash(script: str, *, cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        sys.exit(f"failed in {cwd}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def timed(fn: object, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handler", default="ingest")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="nixcrate-lambda-size-"))
    try:
        cargo_home = tmp / "cargo-home"
        cargo_home.mkdir()
        (cargo_home / "config.toml").write_text(
            f'[source.crates-io]\nreplace-with = "debian"\n[source.debian]\ndirectory = "{REGISTRY}"\n'
        )
        env = {
            "PATH": os.environ["PATH"],
            "CARGO_HOME": str(cargo_home),
            "RUSTUP_HOME": os.environ.get("RUSTUP_HOME", str(Path.home() / ".rustup")),
            "CARGO_TERM_COLOR": "never",
        }
        ws = tmp / "ws"
        shutil.copytree(EXAMPLE, ws, ignore=shutil.ignore_patterns("target", "result*"))

        # nixcrate's way, as the handler derivation runs it.
        exports = "".join(f"export {k}={v}\n" for k, v in sorted(lambda_pkg.build_env("x86_64", "2").items()))
        start = time.perf_counter()
        bash(
            f"set -euo pipefail\nexport TMPDIR={tmp / 'build'}\nmkdir -p $TMPDIR\n{exports}{CARGO_WITH_PROFILE}"
            f"{lambda_pkg.prebuild_shell()}"
            f"{lambda_pkg.zigbuild_command(args.handler, 'x86_64', '2.26')}\n"
            f"{lambda_pkg.package_shell(lambda_pkg.binary_path('x86_64', args.handler), str(tmp / 'nixcrate'))}",
            cwd=ws,
            env=env,
        )
        zig_seconds = time.perf_counter() - start
        zig_bin = ws / lambda_pkg.binary_path("x86_64", args.handler)
        zig_zip = tmp / "nixcrate" / "bootstrap.zip"

        # The plain recipe.
        start = time.perf_counter()
        bash(
            f"set -euo pipefail\ncargo build --release -p {args.handler} --target-dir {tmp / 'plain-target'}\n"
            f"mkdir -p {tmp / 'plain'} && cp {tmp / 'plain-target' / 'release' / args.handler} {tmp / 'plain' / 'bootstrap'}\n"
            f"cd {tmp / 'plain'} && zip -q -j bootstrap.zip bootstrap\n",
            cwd=ws,
            env=env,
        )
        plain_seconds = time.perf_counter() - start
        plain_bin = tmp / "plain" / "bootstrap"
        plain_zip = tmp / "plain" / "bootstrap.zip"

        good = lambda_pkg.verify(zig_zip)
        plain = lambda_pkg.verify(plain_zip)
        in_process = timed(lambda: lambda_pkg.verify(zig_zip), args.rounds)
        cli = timed(
            lambda: subprocess.run(
                [sys.executable, "-m", "nixcrate.cli_lambda", "verify", str(zig_zip)],
                cwd=REPO,
                capture_output=True,
                check=True,
            ),
            args.rounds,
        )
        shell = timed(
            lambda: subprocess.run(
                ["bash", "-c", lambda_pkg.check_shell(str(zig_zip), "x86_64", "2.26")],
                capture_output=True,
                check=True,
            ),
            args.rounds,
        )

        print(f"handler: examples/monorepo {args.handler}")
        print(f"{'':40}{'binary':>12}{'bootstrap.zip':>15}{'max GLIBC':>11}{'verify':>8}{'build':>9}")
        for label, binary, zip_path, result, seconds in (
            ("nixcrate (zigbuild .2.26, -O2, strip)", zig_bin, zig_zip, good, zig_seconds),
            ("plain cargo build --release + zip", plain_bin, plain_zip, plain, plain_seconds),
        ):
            print(
                f"{label:40}{binary.stat().st_size:>12,}{zip_path.stat().st_size:>15,}"
                f"{result.max_glibc or '-':>11}{'ok' if result.ok else 'FAIL':>8}{seconds:>8.1f}s"
            )
        ratio = zig_zip.stat().st_size / plain_zip.stat().st_size
        print(f"zip size, nixcrate / plain: {ratio:.2f}")
        print(
            f"verify wall time (median of {args.rounds}): in-process {in_process * 1000:.1f} ms, "
            f"'python -m nixcrate.cli_lambda verify' {cli * 1000:.0f} ms, check_shell {shell * 1000:.0f} ms"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
