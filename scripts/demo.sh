#!/usr/bin/env bash
# The main job on the built-in example, on a fresh machine (root): set up, then
# plan, apply, prove it with traffic, show, plan again (empty), destroy.
# Everything happens inside a throwaway host namespace (--netns): the machine's
# own interfaces, routes and nftables ruleset are never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2

file=${1:-examples/basic.yaml}
host=pvdemo-$$
export PROVIUM_STATE_DIR=$(mktemp -d /tmp/provium-demo.XXXXXX)
export PROVIUM_CACHE_DIR=$PROVIUM_STATE_DIR/cache   # the topology cache (removed with it)
provium() { node bin/provium --netns "$host" "$@"; }
lab=$(sed -n 's/^lab: *\([a-z0-9]*\).*/\1/p' "$file")
cleanup() {
  provium destroy "$file" --auto-approve >/dev/null 2>&1 || true
  ip netns del "$host" 2>/dev/null || true
  rm -rf "$PROVIUM_STATE_DIR"
}
trap cleanup EXIT
ip netns add "$host"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step "provium plan $file"
provium plan "$file"
step "provium apply $file"
provium apply "$file" --auto-approve
step "provium plan again (must be empty)"
provium plan "$file" --detailed-exitcode
ns() { echo "pv-$lab-$1"; }
# The address the file gives NODE on BRIDGE (derived from the node's name unless the file pins
# it with ip:), read with provium's own loader.
addr() {
  node --input-type=module -e 'import { loadTopology } from "./dist/src/load/index.js";
    const [file, node, bridge] = process.argv.slice(1);
    console.log(loadTopology(file).bridges[bridge].attach.find((a) => a.node === node).ip.split("/")[0]);' "$file" "$1" "$2"
}
if [ "$lab" = basic ]; then
  b=$(addr b lan) c=$(addr c lan) a_data=$(addr a data)
  step "traffic: c -> b ($b), open"
  ip netns exec "$(ns c)" ping -c 3 -i 0.2 -W 1 "$b" | tail -2
  step "traffic: a -> c ($c), partitioned one way (expect 100% loss)"
  ip netns exec "$(ns a)" ping -c 3 -i 0.2 -W 1 "$c" | tail -2 || true
  step "traffic: b -> a's data address $a_data, routed from lan to data through the host"
  ip netns exec "$(ns b)" ping -c 3 -i 0.2 -W 1 "$a_data" | tail -2
  step "traffic: a -> b, 5 % drop (1000 pings)"
  ip netns exec "$(ns a)" ping -q -c 1000 -i 0.002 -W 1 "$b" | grep -E 'transmitted' || true
  step "traffic: a -> b bandwidth, 2 Mbit/s (iperf3, 3 s)"
  ip netns exec "$(ns b)" timeout 10 iperf3 -s -1 >/dev/null 2>&1 &
  sleep 0.5
  ip netns exec "$(ns a)" timeout 10 iperf3 -c "$b" -t 3 | grep -E 'receiver'
  wait
fi
step "provium show $file"
provium show "$file"
step "provium destroy $file"
provium destroy "$file" --auto-approve
step "host namespace $host after destroy"
ip -n "$host" -br link
