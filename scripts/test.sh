#!/usr/bin/env bash
# The whole test suite: set-up, build, unit tests (no root needed: recorded host
# output), then end-to-end tests as root in throwaway network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The QEMU test guest (cached under .cache/guest; built from Debian packages when missing).
bash scripts/build-guest.sh
# One runner for both, so its closing summary counts every test. E2E tests share
# the kernel and measure bandwidth, so they run one file at a time.
exec node --test --test-concurrency=1 dist/test/unit/ dist/test/e2e/
