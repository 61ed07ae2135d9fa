"""`lambda verify` on hostile zips: a damaged ELF is a `not-elf` problem, never a traceback;
a zip bomb is judged by its declared sizes and read in bounded memory; the verdict names
the runtimes the zip runs on.

The ELF is a real handler (tests/lambda_fixtures.py `host_binary`: plain cargo build).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lambda_fixtures import (  # noqa: F401 - session fixtures
    handler_workspace,
    host_binary,
    lambda_session,
    requires_registry,
)

from nixcrate import lambda_pkg
from nixcrate.cli_lambda import lambda_group

REPO = Path(__file__).resolve().parent.parent


def zip_of(path: Path, data: bytes, *, mode: int = 0o755) -> Path:
    info = zipfile.ZipInfo("bootstrap")
    info.create_system = 3
    info.external_attr = (0o100000 | mode) << 16
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(info, data)
    return path


def verify_cli(path: Path, *args: str) -> tuple[int, str, str]:
    run = CliRunner().invoke(lambda_group, ["verify", str(path), *args])
    assert run.exception is None or isinstance(run.exception, SystemExit), repr(run.exception)
    return run.exit_code, run.stdout, run.stderr


@pytest.fixture(scope="module")
def elf(host_binary: Path) -> bytes:  # noqa: F811 - a session fixture
    return host_binary.read_bytes()


def header_offset(field: str) -> int:
    return {"e_phoff": 0x20, "e_shoff": 0x28, "e_phentsize": 0x36, "e_shnum": 0x3C, "e_shstrndx": 0x3E}[field]


@requires_registry
@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("e_shoff", b"\xff" * 8),  # section headers "beyond" 2**64: OverflowError in pyelftools
        ("e_phoff", b"\xff" * 8),
        ("e_shstrndx", b"\xfe\xff"),
        ("e_phentsize", b"\x01\x00"),
        ("e_shnum", b"\xff\xff"),
    ],
)
def test_corrupt_header_is_not_elf(elf: bytes, tmp_path: Path, where: str, value: bytes) -> None:
    at = header_offset(where)
    data = elf[:at] + value + elf[at + len(value) :]
    code, _, stderr = verify_cli(zip_of(tmp_path / "b.zip", data))  # no traceback: a verdict
    assert code == 1 and stderr.endswith("]\n"), stderr


@requires_registry
def test_non_utf8_interpreter_is_not_elf(elf: bytes, tmp_path: Path) -> None:
    interp = lambda_pkg.get_arch("x86_64").interpreter.encode()
    assert interp in elf
    data = elf.replace(interp, b"\xff" * len(interp), 1)
    code, _, stderr = verify_cli(zip_of(tmp_path / "b.zip", data))
    assert code == 1 and "[not-elf]" in stderr, stderr


@requires_registry
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutations=st.lists(st.tuples(st.integers(min_value=0, max_value=4095), st.integers(min_value=0, max_value=255)), min_size=1, max_size=12))
def test_mutated_bootstrap_never_tracebacks(elf: bytes, tmp_path: Path, mutations: list[tuple[int, int]]) -> None:
    """Bytes of the header, program headers and the first section headers, and (scaled) of
    the whole file: any verdict is fine, a traceback is not."""
    data = bytearray(elf)
    for offset, byte in mutations:
        data[offset if offset < 2048 else offset * len(elf) // 4096] = byte
    code, _, stderr = verify_cli(zip_of(tmp_path / "m.zip", bytes(data)))
    assert code in (0, 1)
    assert "Traceback" not in stderr


@requires_registry
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=10_000), byte=st.integers(min_value=0, max_value=255))
def test_mutated_zip_never_tracebacks(elf: bytes, tmp_path: Path, cut: int, byte: int) -> None:
    raw = bytearray(zip_of(tmp_path / "z.zip", elf[:20_000]).read_bytes())
    raw[cut % len(raw)] = byte
    (tmp_path / "bad.zip").write_bytes(bytes(raw))
    code, _, stderr = verify_cli(tmp_path / "bad.zip")
    assert code in (0, 1) and "Traceback" not in stderr
    assert all(ln.startswith(("error: ", str(tmp_path))) for ln in stderr.splitlines()), stderr


# --------------------------------------------------------------------------- memory

MEASURE = """
import resource, sys
from pathlib import Path
from nixcrate import lambda_pkg
result = lambda_pkg.verify(Path(sys.argv[1]))
print(sorted(p.code for p in result.problems))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def zeros_zip(path: Path, size: int) -> Path:
    info = zipfile.ZipInfo("bootstrap")
    info.create_system = 3
    info.external_attr = 0o100755 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    chunk = b"\0" * (1 << 20)
    with zipfile.ZipFile(path, "w") as archive, archive.open(info, "w", force_zip64=True) as out:
        for _ in range(size // len(chunk)):
            out.write(chunk)
    return path


def peak_rss_mib(path: Path) -> tuple[list[str], float]:
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)], env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, check=True, timeout=300
    )
    codes, rss = proc.stdout.splitlines()
    return json.loads(codes.replace("'", '"')), int(rss) / 1024


def test_zip_bomb_fails_on_its_declared_size_in_bounded_memory(tmp_path: Path) -> None:
    bomb = zeros_zip(tmp_path / "bomb.zip", 1 << 30)  # 1 GiB of zeros, ~1 MB zipped
    assert bomb.stat().st_size < 2 << 20
    codes, rss = peak_rss_mib(bomb)
    assert "too-large" in codes
    assert rss < 150, f"peak RSS {rss:.0f} MiB"


def test_a_large_bootstrap_under_the_limit_streams(tmp_path: Path) -> None:
    big = zeros_zip(tmp_path / "big.zip", 200 << 20)  # inflated and parsed, not held in memory
    codes, rss = peak_rss_mib(big)
    assert codes == ["not-elf"]
    assert rss < 150, f"peak RSS {rss:.0f} MiB"


# --------------------------------------------------------------------------- runtimes


@pytest.mark.parametrize(
    ("max_glibc", "runtimes"),
    [
        (None, ("provided.al2023", "provided.al2")),
        ("2.17", ("provided.al2023", "provided.al2")),
        ("2.26", ("provided.al2023", "provided.al2")),
        ("2.27", ("provided.al2023",)),
        ("2.34", ("provided.al2023",)),
        ("2.35", ()),
    ],
)
def test_runtimes_follow_the_max_glibc(max_glibc: str | None, runtimes: tuple[str, ...]) -> None:
    assert lambda_pkg.runtimes_for(max_glibc) == runtimes
    note = lambda_pkg.runtime_note(runtimes)
    if "provided.al2" in runtimes:
        assert note is not None and "deprecated since 2026-07-31" in note and "2027-02-01" in note and "provided.al2023" in note


@requires_registry
def test_json_names_the_runtimes(host_binary: Path, tmp_path: Path) -> None:  # noqa: F811
    _, stdout, _ = verify_cli(zip_of(tmp_path / "h.zip", host_binary.read_bytes()), "--json")
    data = json.loads(stdout)
    assert data["runtimes"] == list(lambda_pkg.runtimes_for(data["max_glibc"]))
    assert "runtime_note" in data
