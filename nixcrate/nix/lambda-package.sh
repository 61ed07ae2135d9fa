# shellcheck shell=bash
# bootstrap.zip for a Lambda handler, bit-for-bit reproducible.
#
# Usage: bash lambda-package.sh BINARY OUT_DIR [INCLUDE...]
# One `bootstrap` entry (0755) plus each include (a path relative to the current directory)
# at that relative path, like `cargo lambda build --include`. Modes are normalised (0755 with
# any execute bit, else 0644), symlinks dereferenced, every mtime set to 1980-01-01 UTC (the
# earliest a zip timestamp holds), entries sorted in the C locale, no directory entries, and
# `zip -X` (no uid/gid or extended-timestamp fields).
set -euo pipefail
export TZ=UTC LC_ALL=C
nc_bin="$1"
nc_out="$2"
shift 2
nc_stage="$(mktemp -d)"
trap 'rm -rf "$nc_stage"' EXIT
cp -L -- "$nc_bin" "$nc_stage/bootstrap"
for nc_inc in "$@"; do
  if [ ! -e "$nc_inc" ]; then
    echo "include $nc_inc: not found under $(pwd): fix the include list" >&2
    exit 1
  fi
  cp -R -L --parents -- "$nc_inc" "$nc_stage/"
done
chmod -R u+w "$nc_stage"
find "$nc_stage" -type d -exec chmod 0755 {} +
find "$nc_stage" -type f -perm /111 -exec chmod 0755 {} +
find "$nc_stage" -type f ! -perm /111 -exec chmod 0644 {} +
chmod 0755 "$nc_stage/bootstrap"
find "$nc_stage" -exec touch -h -d @315532800 {} +
mkdir -p "$nc_out"
nc_zip="$(cd "$nc_out" && pwd)/bootstrap.zip"
rm -f "$nc_zip" "$nc_zip.tmp"
(cd "$nc_stage" && find . -type f | sed 's|^\./||' | sort | zip -X -D -q -9 "$nc_zip.tmp" -@)
mv "$nc_zip.tmp" "$nc_zip"
