# shellcheck shell=bash
# Sourced by nixcrate's library (postConfigure), after crane's configureCargoVendoredDepsHook
# has pointed cargo's source replacement at $cargoVendorDir.
#
# Cargo's fingerprint of a registry crate holds its source path, and $cargoVendorDir is a store
# path that changes with every Cargo.lock: after any lock bump every crate would look new.
# So cargo reads the vendored crates through links under $NIX_BUILD_TOP, which is the same
# directory in every sandboxed build, each named <crate>-<version>-<digest>. The digest is of
# the crate's store path, so a crate whose source changes at the same version (a patched or
# overridden source) gets a new path and is recompiled, never kept stale. A digest of the
# path, not its hash part: a store hash in a panic message would make the binary depend on the
# sources at run time.

nixcrateStableVendor() {
  local stable="$NIX_BUILD_TOP/cargo-vendor" registry crate target digest
  mkdir -p "$stable"
  # One directory per registry or git source, as crane vendors them.
  for registry in "$cargoVendorDir"/*/; do
    registry="${registry%/}"
    mkdir -p "$stable/${registry##*/}"
    for crate in "$registry"/*; do
      target="$(readlink -f "$crate")"
      digest="$(printf %s "$target" | sha256sum | cut -c1-16)"
      ln -sfn "$target" "$stable/${registry##*/}/${crate##*/}-$digest"
    done
  done
  sed -i "s|$cargoVendorDir|$stable|g" "$CARGO_HOME/config.toml"
}

if [ -n "${cargoVendorDir-}" ]; then
  nixcrateStableVendor
fi
