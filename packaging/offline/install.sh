#!/bin/sh
# KIIG Desktop offline installer: needs nothing from the network and no Python on this machine.
#
#   ./install.sh                      one user: ~/.local/lib/kiig-desktop, ~/.local/bin links, menu entry
#   sudo ./install.sh                 everyone: /opt/kiig-desktop, /usr/local/bin links, menu entry
#   ./install.sh --prefix DIR         app in DIR/lib/kiig-desktop, links in DIR/bin, entry in DIR/share
#   ./install.sh --models-from DIR    also copy every *.gguf under DIR (subfolders too, same layout),
#                                     each checked against DIR/SHA256SUMS (sha256sum lines with paths
#                                     relative to DIR; `kiig models checksums DIR` writes it); a file
#                                     without a matching line is refused and nothing is installed.
#                                     They go to your models folder (KIIG_MODELS_DIR, else
#                                     ~/.local/share/kiig-desktop/models); as root without --prefix to the shared
#                                     /usr/local/share/kiig-desktop/models that every user's app reads
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
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
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
if [ -z "$prefix" ] && [ "$(id -u)" = 0 ] && [ -z "${KIIG_MODELS_DIR:-}" ]; then
  models="$share/kiig-desktop/models"  # installed for everyone: the app reads kiig-desktop/models in $XDG_DATA_DIRS
else
  models="${KIIG_MODELS_DIR:-${KIIG_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/kiig-desktop}/models}"
fi
if [ -e "$app/install-manifest.txt" ]; then
  echo "install.sh: KIIG Desktop is already installed in $app: run $app/uninstall.sh first" >&2; exit 2
fi

# check the models before anything is written, so a bad file leaves the machine untouched
model_list=""
if [ -n "$models_from" ]; then
  [ -d "$models_from" ] || { echo "install.sh: no folder $models_from" >&2; exit 2; }
  sums="$models_from/SHA256SUMS"
  [ -f "$sums" ] || { echo "install.sh: $sums is missing: cannot check the models (write it on the machine the models come from: kiig models checksums FOLDER)" >&2; exit 2; }
  model_list=$(mktemp)
  trap 'rm -f "$model_list"' EXIT
  (cd "$models_from" && find . -name '*.gguf' -type f | sed 's|^\./||' | LC_ALL=C sort) > "$model_list"
  [ -s "$model_list" ] || { echo "install.sh: no .gguf files in $models_from" >&2; exit 2; }
  while IFS= read -r rel; do
    # a sha256sum line: 64 hex digits, a space, a space or '*', the path (a leading ./ ignored)
    want=$(awk -v n="$rel" 'length($0) > 66 { p = substr($0, 67); sub(/^\.\//, "", p); if (p == n) print substr($0, 1, 64) }' "$sums" | head -n 1)
    [ -n "$want" ] || { echo "install.sh: $rel has no line in SHA256SUMS: refused" >&2; exit 2; }
    got=$(sha256sum < "$models_from/$rel" | cut -d' ' -f1)
    [ "$got" = "$want" ] || { echo "install.sh: $rel: SHA-256 mismatch (file damaged or replaced): refused" >&2; exit 2; }
  done < "$model_list"
fi

manifest_tmp=$(mktemp)
add() { echo "$1" >> "$manifest_tmp"; }
mkdir -p "$app" "$bindir" "$share/applications" "$share/icons/hicolor/scalable/apps"
cp -R "$here/_internal" "$here/kiig-desktop" "$here/kiig" "$here/uninstall.sh" "$here/licenses" "$here"/*.cdx.json "$app/"
for name in kiig-desktop kiig; do
  ln -sf "$app/$name" "$bindir/$name"; add "$bindir/$name"
done
sed "s|@BIN@|$app|" "$here/kiig-desktop.desktop" > "$share/applications/kiig-desktop.desktop"
add "$share/applications/kiig-desktop.desktop"
cp "$here/kiig-desktop.svg" "$share/icons/hicolor/scalable/apps/kiig-desktop.svg"
add "$share/icons/hicolor/scalable/apps/kiig-desktop.svg"
if [ -n "$models_from" ]; then
  # as root the models are shared: folders and files readable by every user, whatever the umask
  if [ "$(id -u)" = 0 ]; then umask 022; fi
  mkdir -p "$models"
  while IFS= read -r rel; do
    dest="$models/$rel"
    if [ -e "$dest" ]; then echo "note: $dest exists already: kept"; continue; fi
    mkdir -p "$(dirname "$dest")"
    cp "$models_from/$rel" "$dest"; add "$dest"; echo "model added: $dest"
    if [ "$(id -u)" = 0 ]; then chmod 0644 "$dest"; fi
  done < "$model_list"
fi
add "$app"
mv "$manifest_tmp" "$app/install-manifest.txt"
echo "KIIG Desktop installed in $app (commands kiig-desktop and kiig in $bindir)"
case ":$PATH:" in *":$bindir:"*) ;; *) echo "note: $bindir is not on your PATH" ;; esac
if [ "$self_test" = 1 ]; then
  "$app/kiig-desktop" --self-test || { echo "install.sh: the self-test failed (above); the app stays installed: $app/uninstall.sh removes it" >&2; exit 1; }
fi
