#!/usr/bin/env bash
# Records a planner fixture from a real host: the reader commands' exact output
# for one `provium plan`, plus the namespace list. Usage (root):
#   scripts/record-fixture.sh HOSTNS TOPOLOGY.yaml OUTDIR
# Writes OUTDIR/topology.yaml, OUTDIR/calls.jsonl, OUTDIR/netns.json.
set -euo pipefail
hostns=$1; topo=$2; out=$3
mkdir -p "$out"
cp "$topo" "$out/topology.yaml"
rm -f "$out/calls.jsonl"
PROVIUM_RECORD="$out/calls.jsonl" node "$(dirname "$0")/../bin/provium" --netns "$hostns" plan "$topo" --no-color >/dev/null || true
lab=$(sed -n 's/^lab: *\([a-z0-9]*\).*/\1/p' "$topo")
# Only the lab's own namespaces: others on the machine are noise to the planner.
ls /run/netns | { grep "^pv-$lab-" || true; } | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.stringify(s.split("\n").filter(Boolean))))' > "$out/netns.json"
