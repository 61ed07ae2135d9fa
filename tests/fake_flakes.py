"""Flakes of plain derivations (no nixpkgs), for the doubles of a generated flake."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path


def write_plain_flake(root: Path, system: str, *, salt: str, bindings: Sequence[str], outputs: Sequence[str], prelude: str = "") -> None:
    """root/flake.nix: `mk name inputs script` makes a /bin/sh derivation that runs prelude,
    then script (`mkWith name inputs script attrs`: with more attributes, e.g. the variables
    crane sets); bindings are let-bindings (the closures), outputs are packages.<system>."""
    lets = "".join(f"\n    {b}" for b in bindings)
    body = "\n        ".join(outputs)
    (root / "flake.nix").write_text(
        f"""{{
  outputs = {{ self }}: let
    mkWith = name: inputs: script: attrs: derivation ({{
      inherit name;
      system = "{system}";
      builder = "/bin/sh";
      args = [ "-c" "export PATH=/bin:/usr/bin; {prelude}: ${{toString inputs}}; ${{script}}" ];
      salt = "{salt}";
    }} // attrs);
    mk = name: inputs: script: mkWith name inputs script {{ }};{lets}
  in {{
    packages.{system} = {{
        {body}
    }};
  }};
}}
""",
        encoding="utf-8",
    )
