# shellcheck shell=bash
# The rules of `nixcrate lambda verify`, with unzip and readelf: each handler's zip derivation
# runs this, so a binary Lambda cannot run fails the build, not the deploy. It prints the same
# problem lines as `nixcrate lambda verify` (tests/test_lambda_include.py compares the two).
#
# Usage: bash lambda-verify.sh ZIP ARCH GLIBC [INCLUDE...]
#   ARCH: x86_64 | arm64; GLIBC: the pin the handler links against (2.26: Amazon Linux 2 and
#   2023); INCLUDE: the files declared besides `bootstrap`, relative paths.
set -u
export LC_ALL=C
nc_zip="$1"
nc_arch="$2"
nc_pin="$3"
shift 3
nc_includes="$(printf '%s\n' "$@")"
case "$nc_arch" in
  x86_64)
    nc_triple=x86_64-unknown-linux-gnu
    nc_machine_want="Advanced Micro Devices X86-64"
    nc_interp_want=/lib64/ld-linux-x86-64.so.2
    ;;
  arm64)
    nc_triple=aarch64-unknown-linux-gnu
    nc_machine_want=AArch64
    nc_interp_want=/lib/ld-linux-aarch64.so.1
    ;;
  *)
    echo "error: unknown Lambda architecture '$nc_arch': use x86_64 or arm64" >&2
    exit 2
    ;;
esac
nc_fix_link="link with 'cargo zigbuild --target $nc_triple.$nc_pin', not plain cargo or a Nix gcc"
nc_fix_rebuild="build it with 'nix build .#<handler>' (cargo zigbuild --target $nc_triple.$nc_pin)"
nc_failed=0
nc_problem() {
  printf '%s: %s; fix: %s [%s]\n' "$nc_zip" "$2" "$3" "$1" >&2
  nc_failed=1
}
if [ ! -f "$nc_zip" ]; then
  echo "error: $nc_zip: no such file: pass the bootstrap.zip path (nix build puts it under result/)" >&2
  exit 1
fi
nc_entries="$(unzip -Z1 "$nc_zip" 2>/dev/null)"
nc_rc=$?
if [ "$nc_rc" -eq 1 ] && [ "$nc_entries" = "Empty zipfile." ]; then
  nc_entries=
elif [ "$nc_rc" -ne 0 ]; then
  echo "error: $nc_zip: not a zip file (unzip exit status $nc_rc): ""$nc_fix_rebuild" >&2
  exit 1
fi
nc_is_included() {
  while IFS= read -r nc_inc; do
    [ -n "$nc_inc" ] || continue
    case "$1" in
      "$nc_inc" | "$nc_inc/" | "$nc_inc/"*) return 0 ;;
      */) case "$nc_inc" in "$1"*) return 0 ;; esac ;;
    esac
  done <<< "$nc_includes"
  return 1
}
while IFS= read -r nc_dup; do
  [ -n "$nc_dup" ] || continue
  nc_problem duplicate-entry "entry $nc_dup appears twice" "rebuild the zip from scratch"
done <<< "$(printf '%s\n' "$nc_entries" | uniq -d)"
if ! printf '%s\n' "$nc_entries" | grep -qx bootstrap; then
  nc_problem missing-bootstrap "no 'bootstrap' entry at the zip root" "package the handler binary as 'bootstrap'"
fi
while IFS= read -r nc_entry; do
  [ -n "$nc_entry" ] || continue
  [ "$nc_entry" != bootstrap ] || continue
  nc_is_included "$nc_entry" && continue
  nc_problem extra-entry "undeclared entry $nc_entry" "remove it, or declare it with --include / lambda.include"
done <<< "$(printf '%s\n' "$nc_entries" | sort -u)"
while IFS= read -r nc_inc; do
  [ -n "$nc_inc" ] || continue
  nc_found=0
  while IFS= read -r nc_entry; do
    case "$nc_entry" in "$nc_inc" | "$nc_inc/"*) nc_found=1 ;; esac
  done <<< "$nc_entries"
  [ "$nc_found" -eq 1 ] || nc_problem missing-include "declared include $nc_inc is not in the zip" "add it to the zip"
done <<< "$nc_includes"
nc_total="$(unzip -Zt "$nc_zip" 2>/dev/null | awk '{print $3}')"
if [ -n "$nc_total" ] && [ "$nc_total" -gt 262144000 ]; then
  nc_problem too-large "unzipped size $nc_total bytes is above Lambda's 262144000" "drop includes or use a container image"
fi
if printf '%s\n' "$nc_entries" | grep -qx bootstrap; then
  nc_mode="$(unzip -Z "$nc_zip" bootstrap 2>/dev/null | awk 'NR==1 {print $1, $3}')"
  nc_perm="$(echo "$nc_mode" | cut -d' ' -f1)"
  if [ "$(echo "$nc_mode" | cut -d' ' -f2)" != unx ]; then nc_perm=unrecorded; fi
  if [ "$nc_perm" != "-rwxr-xr-x" ]; then
    nc_problem bootstrap-mode "bootstrap has mode $nc_perm, not -rwxr-xr-x" "zip a regular file with mode 0755 (package_shell does)"
  fi
  case "$nc_perm" in l* | d*) nc_elf_checks=0 ;; *) nc_elf_checks=1 ;; esac
  nc_tmp="$(mktemp -d)"
  trap 'rm -rf "$nc_tmp"' EXIT
  nc_bin="$nc_tmp/bootstrap"
  if [ "$nc_elf_checks" -eq 1 ] && ! unzip -p "$nc_zip" bootstrap > "$nc_bin"; then
    echo "error: $nc_zip: cannot read bootstrap: rebuild the zip" >&2
    exit 1
  fi
  if [ "$nc_elf_checks" -eq 1 ] && ! readelf -h "$nc_bin" > "$nc_tmp/h" 2>/dev/null; then
    nc_problem not-elf "bootstrap is not an ELF executable" "$nc_fix_rebuild"
    nc_elf_checks=0
  fi
  if [ "$nc_elf_checks" -eq 1 ]; then
    nc_class="$(sed -n 's/^ *Class: *ELF\([0-9]*\)$/\1/p' "$nc_tmp/h")"
    if [ "$nc_class" != 64 ]; then
      nc_problem wrong-class "bootstrap is ELF$nc_class, not ELF64" "$nc_fix_link"
    fi
    nc_machine="$(sed -n 's/^ *Machine: *//p' "$nc_tmp/h")"
    if [ "$nc_machine" != "$nc_machine_want" ]; then
      nc_problem wrong-machine "bootstrap is built for $nc_machine, not $nc_machine_want ($nc_arch)" "build for $nc_triple, or deploy with --arch matching the binary"
    fi
    nc_interp="$(readelf -l -W "$nc_bin" 2>/dev/null | sed -n 's/.*\[Requesting program interpreter: \(.*\)\]$/\1/p')"
    case "$nc_interp" in
      "")
        nc_problem no-interpreter "bootstrap has no program interpreter (static?)" "link dynamically against glibc: $nc_fix_link" ;;
      */nix/store*)
        nc_problem nix-store-interpreter "bootstrap's interpreter is $nc_interp, which Lambda does not have" "$nc_fix_link (its interpreter is $nc_interp_want)" ;;
      "$nc_interp_want") ;;
      *)
        nc_problem wrong-interpreter "bootstrap's interpreter is $nc_interp, not $nc_interp_want" "$nc_fix_link" ;;
    esac
    readelf -d -W "$nc_bin" > "$nc_tmp/d" 2>/dev/null
    for nc_kind in RPATH RUNPATH; do
      while IFS= read -r nc_path; do
        [ -n "$nc_path" ] || continue
        case "$nc_path" in
          */nix/store*)
            nc_problem nix-store-rpath "bootstrap's $nc_kind is $nc_path, a Nix store path Lambda does not have" "$nc_fix_link, or 'patchelf --remove-rpath'" ;;
        esac
      done <<< "$(sed -n "s/.*($nc_kind) *Library [a-z]*: \[\(.*\)\]$/\1/p" "$nc_tmp/d")"
    done
    # Both loaders: another architecture's (a binary built for the wrong one) is wrong-machine.
    nc_allowed="libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1 libutil.so.1 libresolv.so.2 libanl.so.1 libgcc_s.so.1 ld-linux-x86-64.so.2 ld-linux-aarch64.so.1"
    while IFS= read -r nc_lib; do
      [ -n "$nc_lib" ] || continue
      case " $nc_allowed " in
        *" $nc_lib "*) ;;
        *) nc_problem needed-library "bootstrap needs $nc_lib, which the Lambda runtime does not provide" "link it statically (e.g. a -sys crate's 'vendored'/'static' feature)" ;;
      esac
    done <<< "$(sed -n 's/.*(NEEDED) *Shared library: \[\(.*\)\]$/\1/p' "$nc_tmp/d")"
    readelf -V -W "$nc_bin" 2>/dev/null \
      | awk '/^Version needs section/ {inr=1; next} /^Version [a-z]+ section/ {inr=0} inr {for (i = 1; i < NF; i++) if ($i == "Name:") print $(i+1)}' \
      | grep '^GLIBC_' | sort -u > "$nc_tmp/versions"
    readelf --dyn-syms -W "$nc_bin" 2>/dev/null \
      | awk 'NF >= 8 { n = index($8, "@"); if (n > 0) { v = substr($8, n + 1); sub(/^@/, "", v); print v, substr($8, 1, n - 1) } }' \
      | sort -u > "$nc_tmp/symbols"
    {
      grep -E '^GLIBC_[0-9]+(\.[0-9]+)+$' "$nc_tmp/versions" | sort -t_ -k2,2V
      grep -vE '^GLIBC_[0-9]+(\.[0-9]+)+$' "$nc_tmp/versions" | sort
    } > "$nc_tmp/ordered"
    while IFS= read -r nc_ver; do
      [ -n "$nc_ver" ] || continue
      nc_implied=
      case "$nc_ver" in
        "GLIBC_ABI_DT_RELR") nc_implied=2.36 ;;
        *) if echo "$nc_ver" | grep -qE '^GLIBC_[0-9]+(\.[0-9]+)+$'; then nc_implied="${nc_ver#GLIBC_}"; fi ;;
      esac
      if [ -z "$nc_implied" ]; then
        nc_problem glibc-private "bootstrap needs $nc_ver, which no Lambda glibc promises" "$nc_fix_link"
        continue
      fi
      if [ "$(printf '%s\n%s\n' "$nc_implied" "$nc_pin" | sort -V | tail -n 1)" = "$nc_pin" ]; then
        continue
      fi
      nc_syms="$(awk -v v="$nc_ver" '$1 == v {print $2}' "$nc_tmp/symbols" | sort -u)"
      nc_count="$(printf '%s' "$nc_syms" | grep -c . || true)"
      if [ "$nc_count" -eq 0 ]; then
        nc_shown="no symbol"
      else
        nc_shown="$(printf '%s\n' "$nc_syms" | head -n 3 | paste -sd, - | sed 's/,/, /g')"
        if [ "$nc_count" -gt 3 ]; then nc_shown="$nc_shown, +$((nc_count - 3)) more"; fi
      fi
      nc_problem glibc-too-new "bootstrap needs $nc_ver (glibc $nc_implied, above the $nc_pin pin) for $nc_shown" "$nc_fix_link"
    done < "$nc_tmp/ordered"
    nc_max="$(grep -E '^GLIBC_[0-9]+(\.[0-9]+)+$' "$nc_tmp/versions" | sed 's/^GLIBC_//' | sort -V | tail -n 1)"
    echo "$nc_zip: max GLIBC version required: $nc_max (pin $nc_pin)" >&2
  fi
fi
if [ "$nc_failed" -ne 0 ]; then exit 1; fi
echo "$nc_zip: ok (bootstrap for $nc_arch, glibc <= $nc_pin)"
