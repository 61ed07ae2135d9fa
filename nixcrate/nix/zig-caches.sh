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
export ZIG_GLOBAL_CACHE_DIR="$XDG_CACHE_HOME/zig-global"
export ZIG_LOCAL_CACHE_DIR="$XDG_CACHE_HOME/zig-local"
export CARGO_ZIGBUILD_CACHE_DIR="$XDG_CACHE_HOME/cargo-zigbuild"
mkdir -p "$HOME" "$ZIG_GLOBAL_CACHE_DIR" "$ZIG_LOCAL_CACHE_DIR" "$CARGO_ZIGBUILD_CACHE_DIR"
