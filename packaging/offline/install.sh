#!/bin/sh
# KIIG Desktop offline installer: needs nothing from the network and no Python on this machine.
#
#   ./install.sh                      one user: ~/.local/lib/kiig-desktop, ~/.local/bin links, menu entry
#   sudo ./install.sh                 everyone: /opt/kiig-desktop, /usr/local/bin links, menu entry
#   ./install.sh --prefix DIR         app in DIR/lib/kiig-desktop, links in DIR/bin, entry in DIR/share
#   ./install.sh --models-from DIR    also copy DIR/*.gguf to the models folder, each checked against
#                                     DIR/SHA256SUMS (lines of `sha256sum` output); a file without a
#                                     matching line is refused and nothing of it is copied; they go
#                                     to the models folder of the user running install.sh (as root
#                                     for everyone: set KIIG_MODELS_DIR to a shared folder)
#   ./install.sh --no-self-test       skip the self-test the installer runs at the end
#
# Every path it creates is listed in <app folder>/install-manifest.txt; uninstall.sh (copied into the
# app folder) removes exactly those and never the user's sessions or settings.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prefix="" models_from="" self_test=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=${2:?--prefix needs a folder}; shift 2 ;;
    --models-from) models_from=${2:?--models-from needs a folder}; shift 2 ;;
    --no-self-test) self_test=0; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -n "$prefix" ]; then
  app="$prefix/lib/kiig-desktop" bindir="$prefix/bin" share="$prefix/share"
elif [ "$(id -u)" = 0 ]; then
  app=/opt/kiig-desktop bindir=/usr/local/bin share=/usr/local/share
else
  app="$HOME/.local/lib/kiig-desktop" bindir="$HOME/.local/bin" share="${XDG_DATA_HOME:-$HOME/.local/share}"
fi
models="${KIIG_MODELS_DIR:-${KIIG_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/kiig-desktop}/models}"
if [ -e "$app/install-manifest.txt" ]; then
  echo "install.sh: KIIG Desktop is already installed in $app: run $app/uninstall.sh first" >&2; exit 2
fi

# check the models before anything is written, so a bad file leaves the machine untouched
if [ -n "$models_from" ]; then
  [ -f "$models_from/SHA256SUMS" ] || { echo "install.sh: $models_from/SHA256SUMS is missing: cannot check the models" >&2; exit 2; }
  found=0
  for f in "$models_from"/*.gguf; do
    [ -f "$f" ] || continue
    found=1
    name=$(basename "$f")
    want=$(awk -v n="$name" '{sub(/^\*/, "", $2)} $2 == n {print $1}' "$models_from/SHA256SUMS")
    [ -n "$want" ] || { echo "install.sh: $name has no line in SHA256SUMS: refused" >&2; exit 2; }
    got=$(sha256sum "$f" | cut -d' ' -f1)
    [ "$got" = "$want" ] || { echo "install.sh: $name: SHA-256 mismatch (file damaged or replaced): refused" >&2; exit 2; }
  done
  [ "$found" = 1 ] || { echo "install.sh: no .gguf files in $models_from" >&2; exit 2; }
fi

manifest_tmp=$(mktemp)
add() { echo "$1" >> "$manifest_tmp"; }
mkdir -p "$app" "$bindir" "$share/applications" "$share/icons/hicolor/scalable/apps"
cp -R "$here/_internal" "$here/kiig-desktop" "$here/kiig" "$here/uninstall.sh" "$app/"
for name in kiig-desktop kiig; do
  ln -sf "$app/$name" "$bindir/$name"; add "$bindir/$name"
done
sed "s|@BIN@|$app|" "$here/kiig-desktop.desktop" > "$share/applications/kiig-desktop.desktop"
add "$share/applications/kiig-desktop.desktop"
cp "$here/kiig-desktop.svg" "$share/icons/hicolor/scalable/apps/kiig-desktop.svg"
add "$share/icons/hicolor/scalable/apps/kiig-desktop.svg"
if [ -n "$models_from" ]; then
  mkdir -p "$models"
  for f in "$models_from"/*.gguf; do
    dest="$models/$(basename "$f")"
    if [ -e "$dest" ]; then echo "note: $dest exists already: kept"; continue; fi
    cp "$f" "$dest"; add "$dest"; echo "model added: $dest"
  done
fi
add "$app"
mv "$manifest_tmp" "$app/install-manifest.txt"
echo "KIIG Desktop installed in $app (commands kiig-desktop and kiig in $bindir)"
case ":$PATH:" in *":$bindir:"*) ;; *) echo "note: $bindir is not on your PATH" ;; esac
if [ "$self_test" = 1 ]; then
  "$app/kiig-desktop" --self-test || { echo "install.sh: the self-test failed (above); the app stays installed: $app/uninstall.sh removes it" >&2; exit 1; }
fi
