#!/bin/sh
# Build CPython 3.11 with --enable-shared inside the bullseye root (packaging/compat/build.py runs it):
#
#   build_python.sh SRC_DIR PREFIX
#
# SRC_DIR holds Debian's python3.11 orig tarball and debian.tar.xz (python_source.txt); Debian's fix
# and CVE patches are applied, then configure/make/make install into PREFIX with an rpath to
# PREFIX/lib, so the interpreter finds its libpython wherever PREFIX is mounted at that path.
set -eu
src=$1 prefix=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
tar xzf "$src"/python3.11_*.orig.tar.gz
tar xJf "$src"/python3.11_*.debian.tar.xz
cd Python-3.11.*
sed -n '/^shutdown-deadlock.diff/,$p' ../debian/patches/series | while read -r p; do
  patch -p1 -s --forward -i "../debian/patches/$p"
done
# Debian builds pyexpat into libpython (its setup-modules.diff); built as an extension module here,
# the CVE-2026-4224 fix's pycore_ceval.h needs the core-module define that other modules set so
sed -i '1i #ifndef Py_BUILD_CORE_BUILTIN\n#  define Py_BUILD_CORE_MODULE 1\n#endif' Modules/pyexpat.c
./configure -q --prefix="$prefix" --enable-shared --with-ensurepip=install \
  LDFLAGS="-Wl,-rpath,$prefix/lib" >/dev/null
make -s -j"$(nproc)" >/dev/null 2>make.err || { tail -40 make.err >&2; exit 1; }
make -s install >/dev/null 2>make.err || { tail -40 make.err >&2; exit 1; }
"$prefix/bin/python3.11" -c "import sqlite3, ssl, ctypes, bz2, lzma, zlib, readline, uuid, pyexpat, _decimal, _curses; print('python', __import__('sys').version)"
