#!/bin/sh
# Make (once) a Debian root with debootstrap and print its path:
#
#   packaging/compat/debian_root.sh SUITE [PACKAGE_LIST_FILE]
#
# minbase plus the packages listed in PACKAGE_LIST_FILE (one a line, # comments). Cached under
# ~/.cache/kiig-desktop/roots/SUITE-KEY, KEY a hash of the suite, the mirror, the package list and
# this script; built in KEY.partial and renamed when complete, so a broken run is never reused.
# Needs root and debootstrap. MIRROR overrides the Debian mirror.
set -eu
suite=$1 list=${2:-}
mirror=${MIRROR:-http://deb.debian.org/debian}
here=$(cd "$(dirname "$0")" && pwd)
pkgs=""
[ -n "$list" ] && pkgs=$(grep -v '^#' "$list" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
key=$( { echo "$suite|$mirror|$pkgs"; cat "$here/debian_root.sh"; } | sha256sum | cut -c1-16)
cache=${KIIG_ROOTS_CACHE:-$HOME/.cache/kiig-desktop/roots}
root=$cache/$suite-$key
if [ ! -f "$root/.complete" ]; then
  mkdir -p "$cache"
  rm -rf "$root.partial"
  start=$(date +%s)
  debootstrap --variant=minbase ${pkgs:+--include="$pkgs"} "$suite" "$root.partial" "$mirror" >"$root.log" 2>&1 || {
    echo "debian_root.sh: debootstrap $suite failed, see $root.log" >&2; exit 1; }
  rm -rf "$root" && mv "$root.partial" "$root"
  touch "$root/.complete"
  echo "debian_root.sh: $suite root made in $(( $(date +%s) - start )) s" >&2
fi
echo "$root"
