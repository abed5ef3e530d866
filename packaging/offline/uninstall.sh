#!/bin/sh
# Remove KIIG Desktop: exactly the paths install.sh listed in install-manifest.txt (the links, menu
# entry, icon, models it copied, the app folder). Sessions, settings and other models are kept.
set -eu
app=$(cd "$(dirname "$0")" && pwd)
manifest="$app/install-manifest.txt"
[ -f "$manifest" ] || { echo "uninstall.sh: $manifest is missing: not an installed copy" >&2; exit 2; }
while IFS= read -r path; do
  [ -n "$path" ] || continue
  if [ "$path" = "$app" ]; then continue; fi
  if [ -L "$path" ] || [ -f "$path" ]; then rm -f "$path"; echo "removed $path"; fi
done < "$manifest"
rm -rf "$app"
echo "removed $app (sessions and settings are kept)"
