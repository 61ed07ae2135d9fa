"""nixcrate as the benchmarks run it: the installed console script, its bytecode compiled."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def nixcrate_argv() -> list[str]:
    """The installed console script, as users run it (else the module)."""
    script = Path(sys.executable).parent / "nixcrate"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "nixcrate.cli"]


def compile_bytecode() -> None:
    """Compile nixcrate's modules once, as pip does when it installs a wheel.

    An editable install run with PYTHONDONTWRITEBYTECODE=1 (set on these machines) keeps no
    .pyc, so every run would compile nixcrate from source first (~50 ms) and the figures
    would time the compiler, not nixcrate.
    """
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "nixcrate")], check=True)
