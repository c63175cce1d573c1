#!/usr/bin/env bash
# The whole test suite: set-up, build, unit tests (no root needed: recorded host
# output), then end-to-end tests as root in throwaway network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The QEMU test guest (cached under .cache/guest; built from Debian packages when missing).
bash scripts/build-guest.sh
# One runner for unit and end-to-end tests, so its closing summary counts every test. E2E
# tests share the kernel and measure bandwidth, so they run one file at a time. They run
# on the netlink helper (PROVIUM_NETLINK=on: a helper that failed to build fails them).
rc=0
# Every temporary folder of the run goes to a folder of its own (os.tmpdir() and mktemp honour
# TMPDIR); at the end, scripts/tmp-guard.sh fails the run naming any folder a test left there.
# The topology cache of every provium the tests run goes to a folder of the run too (not the
# machine's /var/cache/provium), removed at the end.
PROVIUM_CACHE_DIR=$(mktemp -d -t provium-test-cache.XXXXXX); export PROVIUM_CACHE_DIR
TMPDIR=$(mktemp -d -t provium-tests.XXXXXX); export TMPDIR
trap 'rm -rf --one-file-system -- "$TMPDIR" "$PROVIUM_CACHE_DIR"' EXIT
PROVIUM_NETLINK=on node --test --test-concurrency=1 dist/test/unit/ dist/test/e2e/ || rc=$?
# The iproute2 path (what runs without the helper, and on hosts reached over SSH) on a
# representative subset, so the two paths cannot drift apart: addresses, links and
# routes (basics, l3, ipv6-routes), partitions, and drift repair (reconcile).
echo "# iproute2 path (PROVIUM_NETLINK=off): basics, partitions, reconcile, l3, ipv6-routes"
PROVIUM_NETLINK=off node --test --test-concurrency=1 \
  dist/test/e2e/basics.test.js dist/test/e2e/partitions.test.js dist/test/e2e/reconcile.test.js \
  dist/test/e2e/l3.test.js dist/test/e2e/ipv6-routes.test.js || rc=$?
# Routers' namespaces (addresses, default and return routes, a replug) on the iproute2 path:
# two of the NAT tests (~15 s); the multi-host test with a local host covers VXLAN ports.
echo "# iproute2 path (PROVIUM_NETLINK=off): routers (double NAT, multi-homed), a local host of a multi-host lab"
PROVIUM_NETLINK=off node --test --test-concurrency=1 --test-name-pattern '^(double NAT|multi-homed|multi-host with a local host)' \
  dist/test/e2e/nat.test.js dist/test/e2e/multihost.test.js || rc=$?
bash scripts/tmp-guard.sh --check "$TMPDIR" || rc=1
exit $rc
