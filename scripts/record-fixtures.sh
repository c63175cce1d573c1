#!/usr/bin/env bash
# Re-records the planner's fixtures (test/fixtures/{applied,one-field,drifted,empty})
# from a real host, as root, inside a throwaway host namespace with a fake upstream
# (for the uplink's default routes: IPv4 via up0, IPv6 via up1). Run after changing
# what observe reads.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.json
src=test/fixtures/fx.yaml
h=pvt-fx$$
export PROVIUM_STATE_DIR=$(mktemp -d /tmp/pv-fx.XXXXXX)
tmp=$(mktemp -d /tmp/pv-fxt.XXXXXX)
cleanup() {
  node bin/provium --netns "$h" destroy "$src" --auto-approve >/dev/null 2>&1 || true
  ip netns del "$h" 2>/dev/null || true
  rm -rf "$PROVIUM_STATE_DIR" "$tmp"
}
trap cleanup EXIT
ip netns add "$h"
ip -n "$h" link add up0 type veth peer name up1
ip -n "$h" addr add 192.0.2.2/24 dev up0
ip -n "$h" link set up0 up
ip -n "$h" link set up1 up
ip -n "$h" route add default via 192.0.2.1
ip -n "$h" addr add 2001:db8::2/64 dev up1 nodad
ip -n "$h" -6 route add default via 2001:db8::1 dev up1

rec() { bash scripts/record-fixture.sh "$h" "$1" "test/fixtures/$2"; }
node bin/provium --netns "$h" apply "$src" --auto-approve >/dev/null
rec "$src" applied
sed 's/drop_pct: 2.5, bandwidth_bps: 1000000/drop_pct: 2.5, bandwidth_bps: 2000000/' "$src" > "$tmp/one-field.yaml"
rec "$tmp/one-field.yaml" one-field
cp "$src" test/fixtures/one-field/topology.yaml.orig 2>/dev/null || true
rm -f test/fixtures/one-field/topology.yaml.orig
# Drift by hand: a port deleted, a partition element removed, a's default routes (IPv4, IPv6) removed.
ip -n "$h" link del fx-c-0
mac_a=$(node -e 'import("./dist/src/model/names.js").then((m) => console.log(m.nicMac("fx", "a", "lan")))')
ip netns exec "$h" nft delete element bridge provium_fx blocked "{ $mac_a . \"fx-b-1\" }"
ip -n pv-fx-a route del default
ip -n pv-fx-a -6 route del default
rec "$src" drifted
node bin/provium --netns "$h" destroy "$src" --auto-approve >/dev/null
rec "$src" empty
echo "recorded test/fixtures/{applied,one-field,drifted,empty}"
