"""benchmarks/init_scale.py runs standalone (--quick) and prints its ratios."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed (the ratio is against cargo metadata)")
def test_init_scale_quick_prints_ratios() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "init_scale.py"), "--quick"],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"^ratio init/cargo-metadata at 50 members: \d+\.\d\dx", proc.stdout, re.MULTILINE), proc.stdout
    # The eval part either quotes its ratio or says why it was skipped.
    assert re.search(r"^(ratio eval generated/hand-written at 50 members: \d+\.\d\dx|eval: skipped: .+)", proc.stdout, re.MULTILINE), proc.stdout
