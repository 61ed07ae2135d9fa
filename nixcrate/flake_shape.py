"""What a hand-written flake.nix needs to call nix/nixcrate, in the shape it already has.

init never edits the user's flake.nix: it recognises the flake's shape from its text and
prints the lines to add, each with where it goes, using only names bound there, and merging
with the user's own outputs (`workspace.packages // <yours>`, the dev shell's `inputsFrom`)
instead of replacing them. Recognised shapes: flake-utils (`eachDefaultSystem`,
`eachSystem`), flake-parts (`mkFlake`), and per-system attribute sets built with `genAttrs`
(directly or through a let-bound `forAllSystems`). Anything else gets the genAttrs lines and
a warning that the shape is unknown.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Shape(enum.Enum):
    FLAKE_UTILS = "flake-utils"
    FLAKE_PARTS = "flake-parts"
    GENATTRS = "genAttrs"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Step:
    """Lines to add, and where they go ("inputs", "outputs' arguments", ...)."""

    where: str
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Wiring:
    shape: Shape
    steps: tuple[Step, ...]


_ARGS = re.compile(r"\boutputs\s*=\s*(\w+\s*@\s*)?\{([^}]*)\}(\s*@\s*\w+)?\s*:")
_EACH = re.compile(r"\beach(?:Default)?System(?:\s+\[[^\]]*\]|\s+[\w.]+)?\s*\(\s*(\w+)\s*:")


def _code(text: str) -> str:
    """The text without its `#` comments (a commented-out example is not the flake's shape)."""
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def shape_of(text: str) -> Shape:
    code = _code(text)
    if re.search(r"\bmkFlake\b", code):
        return Shape.FLAKE_PARTS
    if re.search(r"\beach(?:Default)?System\b", code):
        return Shape.FLAKE_UTILS
    if re.search(r"\bgenAttrs\b", code):
        return Shape.GENATTRS
    return Shape.UNKNOWN


def wiring(text: str, generated_dir: str, *, toolchain: bool) -> Wiring:
    """The lines to add to a hand-written flake.nix (its text) to use ./<generated_dir>."""
    code = _code(text)
    shape = shape_of(text)
    inputs = ['crane.url = "github:ipetkov/crane";']
    if toolchain:
        inputs.append('rust-overlay = { url = "github:oxalica/rust-overlay"; inputs.nixpkgs.follows = "nixpkgs"; };')
    steps = [Step("inputs", tuple(inputs))]
    if shape is Shape.FLAKE_PARTS:
        steps += [
            Step("mkFlake's module", (f"imports = [ ./{generated_dir}/flake-module.nix ];",)),
            Step("perSystem, your dev shell (perSystem's arguments: add config)", ("inputsFrom = [ config.devShells.nixcrate ];",)),
        ]
        return Wiring(shape, tuple(steps))

    # How the outputs function reaches the inputs: by name, or through `inputs@{ ... }`.
    match = _ARGS.search(code)
    names = [n.strip().split("?")[0].strip() for n in match.group(2).split(",")] if match else []
    whole = next((m.group(1) or m.group(3) for m in [match] if m and (m.group(1) or m.group(3))), None)
    alias = re.sub(r"[@\s]", "", whole) if whole else None
    wanted = ["crane", *(["rust-overlay"] if toolchain else [])]
    if alias:
        ref = {n: (n if n in names else f"{alias}.{n}") for n in [*wanted, "nixpkgs"]}
    else:
        ref = {n: n for n in [*wanted, "nixpkgs"]}
        missing = [n for n in wanted if n not in names]
        if match and missing:
            kept = [n for n in names if n and n != "..."]
            args = ", ".join([*kept, *missing, *(["..."] if "..." in names else [])])
            steps.append(Step("outputs' arguments", (f"{{ {args} }}:",)))
    direct = [n for n in wanted if ref[n] == n]
    through = [n for n in wanted if ref[n] != n]
    passed = " ".join(
        [*([f"inherit {' '.join(direct)};"] if direct else []), *([f"inherit ({alias}) {' '.join(through)};"] if through else [])]
    )
    nixpkgs = ref["nixpkgs"]

    if shape is Shape.FLAKE_UTILS:
        each = _EACH.search(code)
        system = each.group(1) if each else "system"
        pkgs = "pkgs" if re.search(r"\bpkgs\s*=", code) else f"{nixpkgs}.legacyPackages.${{{system}}}"
        call = f"import ./{generated_dir} {{ pkgs = {pkgs}; {passed} }};" if pkgs != "pkgs" else f"import ./{generated_dir} {{ inherit pkgs; {passed} }};"
        steps += [
            Step(f"the let of the function given to {'eachSystem' if 'eachSystem' in code and 'eachDefaultSystem' not in code else 'eachDefaultSystem'}", (f"workspace = {call}",)),
            Step(
                "its outputs (<yours>: what you have there now, if anything)",
                (
                    "packages = workspace.packages // <yours>;",
                    "apps = workspace.apps // <yours>;",
                    "checks = workspace.checks // <yours>;",
                ),
            ),
            Step("your dev shell (mkShell)", ("inputsFrom = [ workspace.devShell ];",)),
        ]
        return Wiring(shape, tuple(steps))

    # genAttrs (or a let-bound forAllSystems over it): per-system attribute sets. The library
    # is called lazily for every system Nix knows, so whichever systems the flake has work.
    steps += [
        Step(
            "the let of outputs",
            (
                f"workspace = {nixpkgs}.lib.genAttrs {nixpkgs}.lib.systems.flakeExposed (",
                f"  system: import ./{generated_dir} {{ pkgs = {nixpkgs}.legacyPackages.${{system}}; {passed} }}",
                ");",
            ),
        ),
        Step(
            "the outputs (<yours>: your per-system packages / apps / checks, if any)",
            (
                f"packages = {nixpkgs}.lib.mapAttrs (system: yours: workspace.${{system}}.packages // yours) (<yours>);",
                f"apps = {nixpkgs}.lib.mapAttrs (system: yours: workspace.${{system}}.apps // yours) (<yours>);",
                f"checks = {nixpkgs}.lib.mapAttrs (system: yours: workspace.${{system}}.checks // yours) (<yours>);",
            ),
        ),
        Step("your dev shell (mkShell), where `pkgs` is that system's", ("inputsFrom = [ workspace.${pkgs.stdenv.hostPlatform.system}.devShell ];",)),
    ]
    return Wiring(shape, tuple(steps))
