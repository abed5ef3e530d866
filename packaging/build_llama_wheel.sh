#!/bin/sh
# Build the llama-cpp-python wheel KIIG Desktop uses (called by `make install`):
#
#   packaging/build_llama_wheel.sh PYTHON VERSION OUTDIR "CMAKE_ARGS" "CPU VARIANTS"
#
# Downloads the sdist, applies packaging/patches/*.patch (packaging/llama_patches.py: batch-invariant
# K-quant kernels), restricts GGML_CPU_ALL_VARIANTS to the listed CPU variants
# (packaging/llama_variants.py; "all" = every upstream variant but AMX) and builds without pip's
# cache (pip's wheel cache ignores CMAKE_ARGS). Prints how long the compile took.
set -eu
py=$1 ver=$2 out=$3 args=$4 variants=$5
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" -m pip download -q --no-deps --no-binary :all: -d "$tmp" "llama-cpp-python==$ver"
tar xzf "$tmp/llama_cpp_python-$ver.tar.gz" -C "$tmp"
"$py" "$here/llama_patches.py" "$tmp/llama_cpp_python-$ver"
case "$args" in
  *GGML_CPU_ALL_VARIANTS=ON*) "$py" "$here/llama_variants.py" "$tmp/llama_cpp_python-$ver" $variants ;;
esac
start=$(date +%s)
CMAKE_ARGS="$args" "$py" -m pip wheel -q --no-cache-dir --no-deps -w "$out" "$tmp/llama_cpp_python-$ver"
echo "llama-cpp-python $ver compiled in $(( $(date +%s) - start )) s"
