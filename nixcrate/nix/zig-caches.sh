# shellcheck shell=bash
# Sourced before cargo in the handlers' closure and in every handler build.
#
# Zig and cargo-zigbuild write caches under $HOME, which is read-only in the sandbox
# (/homeless-shelter). They go under $TMPDIR instead (/build in every sandboxed build), at the
# same paths in the closure and in the handler builds: cargo fingerprints the path of
# cargo-zigbuild's linker wrapper, which lives in $CARGO_ZIGBUILD_CACHE_DIR, so another path
# would recompile every dependency.
if [ -z "${TMPDIR:-}" ]; then export TMPDIR=/tmp; fi
export HOME="$TMPDIR/.nixcrate-home"
export XDG_CACHE_HOME="$TMPDIR/.nixcrate-cache"
# Zig's global cache holds what it builds for the target before linking anything (glibc's
# stub libraries for the pinned version, compiler-rt): 15 s or so on 2 cores. It lives in
# cargo's target directory, so the handlers' closure hands it to every handler build with the
# rest of target/ and a relink after an edit does not build it again.
export ZIG_GLOBAL_CACHE_DIR="$PWD/${CARGO_TARGET_DIR:-target}/.zig-global-cache"
export ZIG_LOCAL_CACHE_DIR="$XDG_CACHE_HOME/zig-local"
export CARGO_ZIGBUILD_CACHE_DIR="$XDG_CACHE_HOME/cargo-zigbuild"
mkdir -p "$HOME" "$ZIG_GLOBAL_CACHE_DIR" "$ZIG_LOCAL_CACHE_DIR" "$CARGO_ZIGBUILD_CACHE_DIR"
