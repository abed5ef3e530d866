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
#   ./install.sh --key FILE           also check the archive's detached signature: ARCHIVE.asc beside the
#                                     archive (ARCHIVE: this folder's name + .tar.gz next to it, or
#                                     --archive FILE) must be a valid signature by the public key in FILE
#                                     (checked with gpg in a throwaway keyring), and this folder must hold
#                                     that archive's files; otherwise nothing is installed
#
# Before anything is written, every file of this folder is checked against MANIFEST.sha256 (made when
# the archive was built): a changed, missing or added file stops the installer with one line.
# Every path it creates is listed in <app folder>/install-manifest.txt; uninstall.sh (copied into the
# app folder) removes exactly those and never the user's sessions or settings.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prefix="" models_from="" self_test=1 key="" archive=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=${2:?--prefix needs a folder}; shift 2 ;;
    --models-from) models_from=${2:?--models-from needs a folder}; shift 2 ;;
    --no-self-test) self_test=0; shift ;;
    --key) key=${2:?--key needs a public key file}; shift 2 ;;
    --archive) archive=${2:?--archive needs the .tar.gz file}; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
model_list="" listed="" gnupg=""
cleanup() {
  for f in "$model_list" "$listed"; do [ -z "$f" ] || rm -f "$f"; done
  if [ -n "$gnupg" ]; then GNUPGHOME="$gnupg" gpgconf --kill all >/dev/null 2>&1 || true; rm -rf "$gnupg"; fi
}
trap cleanup EXIT
refuse() { echo "install.sh: $*: refused" >&2; exit 2; }

# the signature first (is this the archive its maker signed?), then the files (are they its files?)
if [ -n "$key" ]; then
  [ -f "$key" ] || refuse "no key file $key"
  archive=${archive:-$here.tar.gz}
  [ -f "$archive" ] || refuse "$archive is missing: name the signed archive with --archive FILE"
  [ -f "$archive.asc" ] || refuse "$archive.asc is missing: no signature to check with $key"
  command -v gpg >/dev/null 2>&1 || refuse "gpg is not installed: cannot check the signature (apt-get install gpg)"
  gnupg=$(mktemp -d)
  GNUPGHOME="$gnupg" gpg --batch --quiet --import "$key" >/dev/null 2>&1 || refuse "$key holds no OpenPGP public key"
  status=$(GNUPGHOME="$gnupg" gpg --batch --status-fd 1 --verify "$archive.asc" "$archive" 2>/dev/null) || true
  # GOODSIG: good and by a key neither expired nor revoked; VALIDSIG: the signature itself checks out
  { printf '%s\n' "$status" | grep -q '^\[GNUPG:\] GOODSIG ' && printf '%s\n' "$status" | grep -q '^\[GNUPG:\] VALIDSIG '; } ||
    refuse "$archive.asc is not a valid signature of $archive by the key in $key"
  tar -xzOf "$archive" --wildcards '*/MANIFEST.sha256' 2>/dev/null | cmp -s - "$here/MANIFEST.sha256" ||
    refuse "$here does not hold the files of $archive (their MANIFEST.sha256 differ)"
fi
[ -f "$here/MANIFEST.sha256" ] || refuse "$here/MANIFEST.sha256 is missing: cannot check the archive's files"
if ! out=$(cd "$here" && sha256sum -c --quiet --strict MANIFEST.sha256 2>&1); then
  bad=$(printf '%s\n' "$out" | grep -m 1 ': FAILED' || true)
  case "$bad" in
    *": FAILED open or read") refuse "${bad%: FAILED open or read} is missing (listed in MANIFEST.sha256)" ;;
    *": FAILED") refuse "${bad%: FAILED}: SHA-256 mismatch with MANIFEST.sha256 (damaged or changed since the archive was built)" ;;
    *) refuse "MANIFEST.sha256 is damaged" ;;
  esac
fi
listed=$(mktemp)
cut -c67- "$here/MANIFEST.sha256" > "$listed"
extra=$(cd "$here" && find . ! -type d | sed 's|^\./||' | grep -vxF MANIFEST.sha256 | grep -vxF -f "$listed" | head -n 1 || true)
[ -z "$extra" ] || refuse "$extra is not in MANIFEST.sha256 (added since the archive was built)"

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
