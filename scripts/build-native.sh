#!/usr/bin/env bash
# Builds provium's netlink helper (native/provium-nl.c -> dist/native/provium-nl) when a C
# compiler and libmnl's headers are present (scripts/setup.sh installs gcc, make and
# libmnl-dev). Part of `npm run build`, and the package's install script: an installed
# provium builds its own. Without them provium works as well, only slower: every node namespace is
# then read and written by its own `ip` process (`provium doctor` says which path is used).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v cc >/dev/null 2>&1 || missing+=("a C compiler (gcc)")
command -v make >/dev/null 2>&1 || missing+=("make")
[ -f /usr/include/libmnl/libmnl.h ] || missing+=("libmnl's headers (libmnl-dev)")
if [ ${#missing[@]} -gt 0 ]; then
  rm -f dist/native/provium-nl
  echo "build: netlink helper not built (missing: ${missing[*]}); provium will use one ip process per namespace" >&2
  exit 0
fi
# --optional (the package's install script): a failed compilation leaves provium on the
# iproute2 path instead of failing the installation.
if [ "${1:-}" = "--optional" ]; then
  if ! make -s -C native OUT="$PWD/dist/native"; then
    rm -f dist/native/provium-nl
    echo "install: netlink helper failed to build; provium will use one ip process per namespace" >&2
  fi
  exit 0
fi
make -s -C native OUT="$PWD/dist/native"
