"""The two rich consoles: `out` for results (stdout), `err` for progress, echoes and errors."""

from __future__ import annotations

from rich.console import Console

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
