#!/bin/sh
# Make sure the X libraries Qt's xcb platform plugin needs are installed (Debian/Ubuntu package names).
#
#   packaging/x_libs.sh [--with-xvfb]
#
# A fresh Debian machine lacks them and Qt then aborts with "no Qt platform plugin could be
# initialized". Run as root (CI, containers) it installs what is missing with apt-get; otherwise it
# prints the one apt-get line that fixes it and exits 1. --with-xvfb adds the virtual X server the
# bundle's GUI test uses. Other distributions: it says what is missing and leaves the rest to you.
set -eu
PACKAGES="libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-shape0 libegl1 libgl1"
SONAMES="libxcb-cursor.so.0 libxcb-icccm.so.4 libxcb-keysyms.so.1 libxcb-image.so.0 libxcb-render-util.so.0 libxcb-xkb.so.1 libxkbcommon-x11.so.0 libxcb-shape.so.0 libEGL.so.1 libGL.so.1"
[ "$(uname -s)" = Linux ] || exit 0
missing=""
with_xvfb=0
[ "${1:-}" = "--with-xvfb" ] && with_xvfb=1
i=0
for so in $SONAMES; do
  i=$((i + 1))
  pkg=$(echo "$PACKAGES" | cut -d' ' -f$i)
  PATH="$PATH:/sbin:/usr/sbin" ldconfig -p 2>/dev/null | grep -q "[[:space:]]$so[[:space:]]" || missing="$missing $pkg"
done
if [ "$with_xvfb" = 1 ] && ! command -v Xvfb >/dev/null 2>&1; then missing="$missing xvfb"; fi
[ -n "$missing" ] || exit 0
line="apt-get install -y$missing"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing the X libraries Qt needs:$missing"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive $line -qq >/dev/null && exit 0
  echo "x_libs.sh: apt-get failed; run: $line" >&2
  exit 1
fi
echo "KIIG Desktop needs X libraries this machine lacks. Install them with:" >&2
echo "  sudo $line" >&2
exit 1
