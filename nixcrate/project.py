"""nixcrate's own home: where its source is published, read from one place (pyproject's
[project.urls] Repository, which an installed nixcrate carries in its metadata)."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from nixcrate import __version__


def repository() -> str:
    """The repository URL, e.g. https://github.com/nixcrate/nixcrate."""
    try:
        for entry in metadata.metadata("nixcrate").get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip().lower() == "repository":
                return url.strip()
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        pass
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["urls"]["Repository"])


def flake_url() -> str:
    """The flake reference of this nixcrate's release, for a workspace's `nixcrate` input."""
    url = repository().removesuffix("/").removesuffix(".git")
    tag = f"v{__version__}"
    if url.startswith("https://github.com/"):
        return f"github:{url.removeprefix('https://github.com/')}/{tag}"
    return f"git+{url}?ref=refs/tags/{tag}"
