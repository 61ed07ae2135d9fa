# shellcheck shell=bash
# stable-vendor.sh VENDOR_DIR OUT: the vendored crates of VENDOR_DIR (crane's vendorCargoDeps)
# as links named <crate>-<version>-<digest>, one directory per registry or git source, in OUT.
# Built once per Cargo.lock; every build of nixcrate's library links it at
# $NIX_BUILD_TOP/cargo-vendor and points cargo's source replacement there (see default.nix).
#
# Cargo's fingerprint of a registry crate holds its source path, and the vendor directory is
# a store path that changes with every Cargo.lock: read straight from it, every crate would
# look new after any lock bump. $NIX_BUILD_TOP/cargo-vendor is the same path in every
# sandboxed build, and a crate's name there changes only with its own source: the digest is
# of the crate's store path, so a crate whose source changes at the same version (a patched
# or overridden source) is recompiled, never kept stale. A digest of the path, not its hash
# part: a store hash in a panic message would make the binary depend on the sources at run
# time.
set -euo pipefail
vendor="$1" out="$2"
mkdir -p "$out"
# A few processes per source, not a few per crate: on a lock of a hundred crates or more the
# per-crate readlink | sha256sum took a second of every bump's critical path.
digests="$(mktemp -d)"
for source in "$vendor"/*/; do
  source="${source%/}"
  dest="$out/${source##*/}"
  mkdir -p "$dest"
  crates=("$source"/*)
  [ -e "${crates[0]}" ] || continue
  mapfile -t targets < <(readlink -f -- "${crates[@]}")
  for i in "${!targets[@]}"; do
    printf %s "${targets[i]}" >"$digests/$i"
  done
  # sha256sum prints its files' digests in the order it is given them.
  mapfile -t sums < <(cd "$digests" && sha256sum -- $(seq 0 $((${#targets[@]} - 1))) | cut -c1-16)
  for i in "${!targets[@]}"; do
    ln -s "${targets[i]}" "$dest/${crates[i]##*/}-${sums[i]}"
  done
  rm -f "$digests"/*
done
rm -rf "$digests"
