"""nixcrate: turn a Rust Cargo workspace into a fast, cache-friendly crane flake."""

from __future__ import annotations

__version__ = "0.1.0"
