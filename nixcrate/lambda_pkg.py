"""AWS Lambda knowledge: the zigbuild target, the bootstrap.zip, and the rules it must pass.

The flake template only lays these strings out; every decision lives here.

- The glibc pin is a cargo-zigbuild-only suffix (`x86_64-unknown-linux-gnu.2.26`): rustc and
  `cargo check` reject it, so only `zigbuild_command` carries it. zigbuild strips it from the
  target directory (`binary_path`).
- Cargo fingerprints the linker path, and cargo-zigbuild's linker is a wrapper script it writes
  under `$CARGO_ZIGBUILD_CACHE_DIR` (else `dirs::cache_dir()`, i.e. `$XDG_CACHE_HOME` or
  `$HOME/.cache`), joined with `cargo-zigbuild/<version>/wrappers/<hash of its own exe path>`
  (rust-cross/cargo-zigbuild src/zig/locate.rs `cache_dir`, src/zig/wrapper.rs). If the deps
  closure and the handler build put it at different paths, every dependency is "Dirty: the
  config settings changed" and recompiles. `prebuild_shell` pins it under `$TMPDIR`, which is
  `/build` in every Nix sandbox.
- Shell snippets never contain `${` or `''`, so they drop into a Nix indented string unescaped.
"""

from __future__ import annotations

import io
import re
import shlex
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from nixcrate.errors import LambdaVerifyFailed, UsageError, from_os_error

if TYPE_CHECKING:
    from collections.abc import Iterable

    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerSymSection
    from elftools.elf.sections import SymbolTableSection


@dataclass(frozen=True, slots=True)
class Arch:
    name: str  # "x86_64" | "arm64", as Lambda's `Architectures` spells it
    triple: str  # Rust target triple, without the glibc suffix
    interpreter: str  # the dynamic loader every glibc distribution has at this path
    elf_machine: str  # pyelftools `e_machine`
    nix_system: str


ARCHES: dict[str, Arch] = {
    "x86_64": Arch(
        name="x86_64",
        triple="x86_64-unknown-linux-gnu",
        interpreter="/lib64/ld-linux-x86-64.so.2",
        elf_machine="EM_X86_64",
        nix_system="x86_64-linux",
    ),
    "arm64": Arch(
        name="arm64",
        triple="aarch64-unknown-linux-gnu",
        interpreter="/lib/ld-linux-aarch64.so.1",
        elf_machine="EM_AARCH64",
        nix_system="aarch64-linux",
    ),
}

# readelf -h's "Machine:" text for each e_machine (binutils has printed these since 2.2x).
_READELF_MACHINE = {"EM_X86_64": "Advanced Micro Devices X86-64", "EM_AARCH64": "AArch64"}

# Libraries a handler may load from the Lambda runtime (provided.al2: glibc 2.26,
# provided.al2023: glibc 2.34). Both images ship glibc's own libraries and libgcc_s (glibc
# dlopens it for pthread_cancel, Rust's std links it for unwinding). Left out on purpose:
# libcrypt (libxcrypt, not glibc, since al2023), libnsl (dropped from glibc's default build in
# 2.28), libstdc++ (absent from the provided.* images; zig links libc++ statically, so a NEEDED
# libstdc++ means the host toolchain linked the binary), libmvec/libBrokenLocale/libthread_db
# (nothing Rust emits links them), and anything from /nix/store.
_GLIBC_LIBS = (
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libutil.so.1",
    "libresolv.so.2",
    "libanl.so.1",
    "libgcc_s.so.1",
)

# Version names that are not GLIBC_<number> but still imply a glibc release.
# GLIBC_ABI_DT_RELR: binaries linked with `-z pack-relative-relocs` need glibc >= 2.36.
_GLIBC_ABI_VERSIONS = {"GLIBC_ABI_DT_RELR": "2.36"}

# Lambda rejects a deployment package whose unzipped size is above this
# (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
LAMBDA_UNZIPPED_LIMIT = 262_144_000

# 1980-01-01T00:00:00Z: the earliest time a zip (MS-DOS) timestamp can hold.
ZIP_EPOCH = 315532800

_GLIBC_PIN = re.compile(r"^[0-9]+\.[0-9]+$")
_GLIBC_NUMERIC = re.compile(r"^GLIBC_([0-9]+(?:\.[0-9]+)+)$")
_SYMBOLS_SHOWN = 3


def get_arch(arch: str) -> Arch:
    try:
        return ARCHES[arch]
    except KeyError:
        raise UsageError(f"unknown Lambda architecture '{arch}': use one of {', '.join(ARCHES)}") from None


def _check_glibc(glibc: str) -> str:
    if not _GLIBC_PIN.match(glibc):
        raise UsageError(
            f"glibc pin '{glibc}' is not MAJOR.MINOR: use e.g. 2.26 (provided.al2) or 2.34 (al2023)"
        )
    return glibc


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def zig_target(arch: str, glibc: str) -> str:
    """The cargo-zigbuild target: `x86_64-unknown-linux-gnu.2.26`."""
    return f"{get_arch(arch).triple}.{_check_glibc(glibc)}"


def _dq(word: str) -> str:
    """Double-quote a shell word, leaving `$VAR` to expand (so callers may pass `$out`)."""
    if "${" in word:
        raise UsageError(f"'{word}': write $VAR, not ${{VAR}}: the snippet goes into a Nix string")
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")
    return f'"{escaped}"'


def _lit(text: str) -> str:
    """Quote a literal for bash in double quotes (never producing `''`, Nix's escape)."""
    if "${" in text:
        raise UsageError(f"'{text}' contains '${{': rename it, the snippet goes into a Nix string")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$")
    return f'"{escaped}"'


def _check_includes(includes: Iterable[str]) -> tuple[str, ...]:
    """Includes are paths relative to the source root; returned normalized, sorted, unique."""
    clean: set[str] = set()
    for raw in includes:
        path = PurePosixPath(raw)
        if not raw or path.is_absolute() or ".." in path.parts or str(path) in {".", "bootstrap"}:
            raise UsageError(
                f"include '{raw}' must be a relative path inside the workspace (not '..', '/', or 'bootstrap')"
            )
        clean.add(str(path))
    return tuple(sorted(clean))


def prebuild_shell() -> str:
    """Bash run before cargo in BOTH the deps closure and each handler build: sources the
    library's zig-caches.sh (zig's caches under $TMPDIR, at the same paths in both builds)."""
    return f"source {shlex.quote(str(script_path('zig-caches.sh')))}\n"


def build_env(arch: str, opt_level: str) -> dict[str, str]:
    """Static env for the deps closure AND the handler: any difference recompiles every crate."""
    get_arch(arch)
    if opt_level not in {"0", "1", "2", "3", "s", "z"}:
        raise UsageError(f"opt-level '{opt_level}' is not one of 0, 1, 2, 3, s, z: fix it in nixcrate.toml")
    return {
        "CARGO_PROFILE_RELEASE_OPT_LEVEL": opt_level,
        # A Lambda never needs symbols; stripping halves bootstrap.zip.
        "CARGO_PROFILE_RELEASE_STRIP": "symbols",
        "CARGO_PROFILE_RELEASE_DEBUG": "0",
        # The handler build must not touch the network; the closure already vendored everything.
        "CARGO_NET_OFFLINE": "true",
        "CARGO_TERM_COLOR": "never",
    }


def zigbuild_command(
    package: str,
    arch: str,
    glibc: str,
    extra_args: str = "",
    bin: str | None = None,  # noqa: A002 - cargo's own word, and the name the API fixes
) -> str:
    """`cargoWithProfile zigbuild --locked --target <triple>.<glibc> -p PKG [--bin NAME] [EXTRA]`.

    `cargoWithProfile` is crane's bash function that adds the profile flag (`--release`).
    `extra_args` is a raw shell fragment, like crane's `cargoExtraArgs`.
    """
    words = ["cargoWithProfile", "zigbuild", "--locked", "--target", zig_target(arch, glibc), "-p", package]
    if bin is not None:
        words += ["--bin", bin]
    command = shlex.join(words)
    return f"{command} {extra_args.strip()}" if extra_args.strip() else command


def binary_path(arch: str, bin: str, profile_dir: str = "release") -> str:  # noqa: A002
    """Where zigbuild puts the binary: the glibc suffix is not part of the directory."""
    return f"target/{get_arch(arch).triple}/{profile_dir}/{bin}"


def script_path(name: str) -> Path:
    """A script of nixcrate's Nix library (nixcrate/nix/), as shipped: what every handler build runs."""
    return Path(str(resources.files("nixcrate") / "nix" / name))


def package_shell(binary: str, out_dir: str, includes: tuple[str, ...] = ()) -> str:
    """Bash writing "$out_dir/bootstrap.zip" with the library's lambda-package.sh, as a handler
    build does: one `bootstrap` (0755) plus each include, bit-for-bit reproducible.
    `binary` and `out_dir` are shell words: `$out` expands."""
    words = [_dq(binary), _dq(out_dir), *(_lit(i) for i in _check_includes(includes))]
    return f"bash {shlex.quote(str(script_path('lambda-package.sh')))} {' '.join(words)}\n"


@dataclass(frozen=True, slots=True)
class Problem:
    code: str  # stable key, the same in `verify` and `check_shell`
    detail: str
    fix: str

    def line(self, zip_name: str) -> str:
        return f"{zip_name}: {self.detail}; fix: {self.fix} [{self.code}]"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    zip_path: str
    arch: str
    glibc: str
    entries: tuple[str, ...]
    interpreter: str | None = None
    needed: tuple[str, ...] = ()
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()
    glibc_versions: tuple[str, ...] = ()  # every GLIBC_* version the binary requires, sorted
    max_glibc: str | None = None  # the highest numeric GLIBC_x.y among them
    problems: tuple[Problem, ...] = field(default=())
    runtimes: tuple[str, ...] = ()  # the Lambda runtimes whose glibc has every version it needs

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        return [p.line(self.zip_path) for p in self.problems]

    def to_json(self) -> dict[str, Any]:
        return {
            "zip": self.zip_path,
            "ok": self.ok,
            "arch": self.arch,
            "glibc_pin": self.glibc,
            "max_glibc": self.max_glibc,
            "glibc_versions": list(self.glibc_versions),
            "entries": list(self.entries),
            "interpreter": self.interpreter,
            "needed": list(self.needed),
            "rpath": list(self.rpath),
            "runpath": list(self.runpath),
            "problems": [{"code": p.code, "detail": p.detail, "fix": p.fix} for p in self.problems],
            "runtimes": list(self.runtimes),
            "runtime_note": runtime_note(self.runtimes),
        }


# Each `provided.*` runtime and its glibc, newest first. provided.al2 is deprecated since
# 2026-07-31 and takes no new functions from 2027-02-01:
# https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html#runtimes-deprecated
RUNTIMES = (("provided.al2023", "2.34"), ("provided.al2", "2.26"))
AL2_NOTE = (
    "provided.al2 is deprecated since 2026-07-31 and blocks new functions from 2027-02-01: "
    "choose provided.al2023"
)


def runtimes_for(max_glibc: str | None) -> tuple[str, ...]:
    """The runtimes a bootstrap needing at most GLIBC_<max_glibc> runs on (None: no versioned glibc)."""
    need = _version_key(max_glibc) if max_glibc else ()
    return tuple(name for name, glibc in RUNTIMES if need <= _version_key(glibc))


def runtime_note(runtimes: tuple[str, ...]) -> str | None:
    if "provided.al2" in runtimes:
        return AL2_NOTE
    if not runtimes:
        return None
    return f"runs on {', '.join(runtimes)} only"


# --- the rules, shared wording for verify and check_shell -----------------------------------

_FIX_REBUILD = "build it with 'nix build .#<handler>' (cargo zigbuild --target {target})"


def _fix_link(arch: Arch, glibc: str) -> str:
    return f"link with 'cargo zigbuild --target {arch.triple}.{glibc}', not plain cargo or a Nix gcc"


def _zip_problems(names: list[str], includes: tuple[str, ...], total_size: int) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    for name in names:
        if name in seen:
            problems.append(
                Problem("duplicate-entry", f"entry {name} appears twice", "rebuild the zip from scratch")
            )
        seen.add(name)
    if "bootstrap" not in seen:
        problems.append(
            Problem(
                "missing-bootstrap",
                "no 'bootstrap' entry at the zip root",
                "package the handler binary as 'bootstrap'",
            )
        )
    for name in sorted(seen):
        if name == "bootstrap" or _included(name, includes):
            continue
        problems.append(
            Problem(
                "extra-entry",
                f"undeclared entry {name}",
                "remove it, or declare it with --include / lambda.include",
            )
        )
    for inc in includes:
        if not any(n == inc or n.startswith(inc + "/") for n in seen):
            problems.append(
                Problem("missing-include", f"declared include {inc} is not in the zip", "add it to the zip")
            )
    if total_size > LAMBDA_UNZIPPED_LIMIT:
        problems.append(
            Problem(
                "too-large",
                f"unzipped size {total_size} bytes is above Lambda's {LAMBDA_UNZIPPED_LIMIT}",
                "drop includes or use a container image",
            )
        )
    return problems


def _included(name: str, includes: tuple[str, ...]) -> bool:
    for inc in includes:
        if name in {inc, inc + "/"} or name.startswith(inc + "/"):
            return True
        if name.endswith("/") and inc.startswith(name):  # a directory entry above an include
            return True
    return False


def _mode_problem(mode_string: str) -> Problem:
    return Problem(
        "bootstrap-mode",
        f"bootstrap has mode {mode_string}, not -rwxr-xr-x",
        "zip a regular file with mode 0755 (package_shell does)",
    )


def _glibc_problems(
    versions: list[str], symbols: dict[str, list[str]], glibc: str, arch: Arch
) -> list[Problem]:
    problems: list[Problem] = []
    pin = _version_key(glibc)
    for name in sorted(set(versions), key=_glibc_sort_key):
        numeric = _GLIBC_NUMERIC.match(name)
        implied = numeric.group(1) if numeric else _GLIBC_ABI_VERSIONS.get(name)
        if implied is None:
            problems.append(
                Problem(
                    "glibc-private",
                    f"bootstrap needs {name}, which no Lambda glibc promises",
                    _fix_link(arch, glibc),
                )
            )
            continue
        if _version_key(implied) <= pin:
            continue
        syms = sorted(set(symbols.get(name, [])))
        shown = ", ".join(syms[:_SYMBOLS_SHOWN]) if syms else "no symbol"
        if len(syms) > _SYMBOLS_SHOWN:
            shown += f", +{len(syms) - _SYMBOLS_SHOWN} more"
        problems.append(
            Problem(
                "glibc-too-new",
                f"bootstrap needs {name} (glibc {implied}, above the {glibc} pin) for {shown}",
                _fix_link(arch, glibc),
            )
        )
    return problems


def _glibc_sort_key(name: str) -> tuple[int, tuple[int, ...], str]:
    numeric = _GLIBC_NUMERIC.match(name)
    return (0, _version_key(numeric.group(1)), name) if numeric else (1, (), name)


def _max_glibc(versions: Iterable[str]) -> str | None:
    numeric = [m.group(1) for v in versions if (m := _GLIBC_NUMERIC.match(v))]
    return max(numeric, key=_version_key) if numeric else None


# --- verify (pyelftools) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ElfFacts:
    elf_class: int
    machine: str
    interpreter: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]
    versions: tuple[str, ...]
    symbols: dict[str, list[str]]


def _read_dynamic(elf: ELFFile) -> tuple[str | None, list[str], list[str], list[str]]:
    from elftools.elf.dynamic import DynamicSegment  # noqa: PLC0415 - pyelftools only for verify: init stays fast
    from elftools.elf.segments import InterpSegment  # noqa: PLC0415
    """Interpreter, NEEDED, RPATH, RUNPATH, from the segments (as the loader sees them)."""
    interpreter = None
    found: dict[str, list[str]] = {"DT_NEEDED": [], "DT_RPATH": [], "DT_RUNPATH": []}
    attribute = {"DT_NEEDED": "needed", "DT_RPATH": "rpath", "DT_RUNPATH": "runpath"}
    for segment in elf.iter_segments():
        if isinstance(segment, InterpSegment):
            interpreter = segment.get_interp_name()
        elif isinstance(segment, DynamicSegment):
            for tag in segment.iter_tags():
                kind = tag.entry.d_tag
                if kind in found:
                    found[kind].append(getattr(tag, attribute[kind]))
    return interpreter, found["DT_NEEDED"], found["DT_RPATH"], found["DT_RUNPATH"]


def _read_versions(elf: ELFFile) -> tuple[list[str], dict[str, list[str]]]:
    from elftools.elf.gnuversions import GNUVerNeedSection, GNUVerSymSection  # noqa: PLC0415
    from elftools.elf.sections import SymbolTableSection  # noqa: PLC0415
    """GLIBC_* names from readelf -V's "Version needs", and the dynamic symbols using each."""
    index_to_name: dict[int, str] = {}
    versym: GNUVerSymSection | None = None
    dynsym: SymbolTableSection | None = None
    for section in elf.iter_sections():
        if isinstance(section, GNUVerNeedSection):
            for _verneed, aux_iter in section.iter_versions():
                index_to_name.update({aux.entry["vna_other"]: aux.name for aux in aux_iter})
        elif isinstance(section, GNUVerSymSection):
            versym = section
        elif isinstance(section, SymbolTableSection) and section.name == ".dynsym":
            dynsym = section
    versions = [name for name in index_to_name.values() if name.startswith("GLIBC_")]
    symbols: dict[str, list[str]] = {}
    if versym is None or dynsym is None:
        return versions, symbols
    for i, sym in enumerate(dynsym.iter_symbols()):
        ndx = versym.get_symbol(i).entry["ndx"]
        if isinstance(ndx, int) and (name := index_to_name.get(ndx & 0x7FFF)) is not None:
            symbols.setdefault(name, []).append(sym.name)
    return versions, symbols


def _read_elf(data: bytes | IO[bytes]) -> _ElfFacts:
    from elftools.elf.elffile import ELFFile  # noqa: PLC0415

    elf = ELFFile(io.BytesIO(data) if isinstance(data, bytes) else data)
    interpreter, needed, rpath, runpath = _read_dynamic(elf)
    versions, symbols = _read_versions(elf)
    return _ElfFacts(
        elf_class=elf.elfclass,
        machine=elf["e_machine"],
        interpreter=interpreter,
        needed=tuple(needed),
        rpath=tuple(rpath),
        runpath=tuple(runpath),
        versions=tuple(versions),
        symbols=symbols,
    )


def _elf_problems(facts: _ElfFacts, arch: Arch, glibc: str) -> list[Problem]:
    problems: list[Problem] = []
    fix_link = _fix_link(arch, glibc)
    if facts.elf_class != 64:
        problems.append(Problem("wrong-class", f"bootstrap is ELF{facts.elf_class}, not ELF64", fix_link))
    if facts.machine != arch.elf_machine:
        want = _READELF_MACHINE[arch.elf_machine]
        got = _READELF_MACHINE.get(facts.machine, facts.machine)
        problems.append(
            Problem(
                "wrong-machine",
                f"bootstrap is built for {got}, not {want} ({arch.name})",
                f"build for {arch.triple}, or deploy with --arch matching the binary",
            )
        )
    problems += _interpreter_problems(facts.interpreter, arch, fix_link)
    problems += _library_problems(facts, arch, fix_link)
    problems += _glibc_problems(list(facts.versions), facts.symbols, glibc, arch)
    return problems


def _interpreter_problems(interpreter: str | None, arch: Arch, fix_link: str) -> list[Problem]:
    problems: list[Problem] = []
    if interpreter is None:
        problems.append(
            Problem(
                "no-interpreter",
                "bootstrap has no program interpreter (static?)",
                f"link dynamically against glibc: {fix_link}",
            )
        )
    elif "/nix/store" in interpreter:
        problems.append(
            Problem(
                "nix-store-interpreter",
                f"bootstrap's interpreter is {interpreter}, which Lambda does not have",
                f"{fix_link} (its interpreter is {arch.interpreter})",
            )
        )
    elif interpreter != arch.interpreter:
        problems.append(
            Problem(
                "wrong-interpreter",
                f"bootstrap's interpreter is {interpreter}, not {arch.interpreter}",
                fix_link,
            )
        )
    return problems


def _library_problems(facts: _ElfFacts, arch: Arch, fix_link: str) -> list[Problem]:
    problems = [
        Problem(
            "nix-store-rpath",
            f"bootstrap's {kind} is {value}, a Nix store path Lambda does not have",
            f"{fix_link}, or 'patchelf --remove-rpath'",
        )
        for kind, paths in (("RPATH", facts.rpath), ("RUNPATH", facts.runpath))
        for value in paths
        if "/nix/store" in value
    ]
    # Every architecture's loader: another one's (an x86_64 binary checked with --arch arm64)
    # is the wrong-machine problem already reported, not a library to link statically.
    allowed = {*_GLIBC_LIBS, *(PurePosixPath(a.interpreter).name for a in ARCHES.values())}
    problems += [
        Problem(
            "needed-library",
            f"bootstrap needs {lib}, which the Lambda runtime does not provide",
            "link it statically (e.g. a -sys crate's 'vendored'/'static' feature)",
        )
        for lib in facts.needed
        if lib not in allowed
    ]
    return problems


# A zip is untrusted input (downloaded, or built by anyone): zipfile and zlib raise these on
# a damaged or hostile one; pyelftools on a damaged ELF raises anything (OverflowError on a
# corrupt header, UnicodeDecodeError on a non-UTF-8 interpreter, AssertionError on a fuzzed
# section), so every error of its parse is "not a valid ELF".
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, RuntimeError, ValueError, NotImplementedError, zlib.error, struct.error)
_SPOOL_IN_MEMORY = 16 * 1024 * 1024
_CHUNK = 1024 * 1024


def _read_elf_or_none(stream: IO[bytes]) -> _ElfFacts | None:
    try:
        return _read_elf(stream)
    except Exception:  # noqa: BLE001 - see _ZIP_ERRORS: a parser of untrusted bytes, any failure is "not ELF"
        return None


def verify(
    zip_path: Path, *, glibc: str = "2.26", arch: str = "x86_64", includes: tuple[str, ...] = ()
) -> VerifyResult:
    """Check a bootstrap.zip against the Lambda rules; problems are listed, not raised.

    Raises LambdaVerifyFailed only when there is nothing to check: no such file, not a zip.
    """
    target = get_arch(arch)
    _check_glibc(glibc)
    incs = _check_includes(includes)
    name = str(zip_path)
    if not zip_path.is_file():
        raise LambdaVerifyFailed(
            f"{name}: no such file: pass the bootstrap.zip path (nix build puts it under result/)"
        )
    try:
        archive = zipfile.ZipFile(zip_path)
    except (PermissionError, IsADirectoryError) as exc:  # the file system's, not the zip's
        raise from_os_error(exc, display=name) from None
    except _ZIP_ERRORS as exc:
        raise LambdaVerifyFailed(
            f"{name}: not a zip file ({exc}): {_FIX_REBUILD.format(target=zig_target(arch, glibc))}"
        ) from None
    with archive:
        infos = archive.infolist()
        names = [i.filename for i in infos]
        problems = _zip_problems(names, incs, sum(i.file_size for i in infos))
        boot = next((i for i in infos if i.filename == "bootstrap"), None)
        facts: _ElfFacts | None = None
        if boot is not None:
            mode = boot.external_attr >> 16 if boot.create_system == 3 else 0
            mode_string = stat.filemode(mode) if mode else "unrecorded"
            if mode_string != "-rwxr-xr-x":
                problems.append(_mode_problem(mode_string))
            # Sizes the zip declares come first: a bootstrap above Lambda's limit fails without
            # being inflated (a 1 MB zip may expand to GBs); what is read streams to a spool file.
            if not (stat.S_ISLNK(mode) or stat.S_ISDIR(mode)) and boot.file_size <= LAMBDA_UNZIPPED_LIMIT:
                with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
                    try:
                        with archive.open(boot) as member:
                            shutil.copyfileobj(member, spool, _CHUNK)
                    except _ZIP_ERRORS as exc:
                        raise LambdaVerifyFailed(
                            f"{name}: cannot read bootstrap ({exc}): rebuild the zip"
                        ) from None
                    spool.seek(0)
                    facts = _read_elf_or_none(spool)
                if facts is None:
                    problems.append(
                        Problem(
                            "not-elf",
                            "bootstrap is not an ELF executable",
                            _FIX_REBUILD.format(target=zig_target(arch, glibc)),
                        )
                    )
                else:
                    problems += _elf_problems(facts, target, glibc)
    versions = tuple(sorted(set(facts.versions), key=_glibc_sort_key)) if facts else ()
    return VerifyResult(
        zip_path=name,
        arch=arch,
        glibc=glibc,
        entries=tuple(names),
        interpreter=facts.interpreter if facts else None,
        needed=facts.needed if facts else (),
        rpath=facts.rpath if facts else (),
        runpath=facts.runpath if facts else (),
        glibc_versions=versions,
        max_glibc=_max_glibc(versions),
        problems=tuple(problems),
        runtimes=runtimes_for(_max_glibc(versions)) if facts else (),
    )


# --- check_shell (unzip + readelf, as the handler builds run it) -----------------------------


def check_shell(zip_path: str, arch: str, glibc: str, includes: tuple[str, ...] = ()) -> str:
    """Bash applying `verify`'s rules with unzip and readelf (the library's lambda-verify.sh, as
    each handler's zip derivation runs it): the same problem lines on stderr, exit 1.
    `zip_path` is a shell word: `$out/bootstrap.zip` expands."""
    get_arch(arch)
    words = [_dq(zip_path), arch, _check_glibc(glibc), *(_lit(i) for i in _check_includes(includes))]
    return f"bash {shlex.quote(str(script_path('lambda-verify.sh')))} {' '.join(words)}\n"
