#!/usr/bin/env bash
# Manual smoke test of the QEMU test guest (run as root; not part of CI).
#
#   test/e2e-guest-smoke.sh
#
# Builds the guest (scripts/build-guest.sh, cached), then in a throwaway network namespace pvg-<rand>:
#  1. bridge + tap, boots the guest with pv.ip on the tap, pings it from the bridge address,
#     talks QMP over the -qmp unix socket (greeting, qmp_capabilities, query-status, quit) and checks
#     that the guest reported netem=yes;
#  2. boots with pv.hostroot=1 and a pv.cmd that puts netem delay 10ms on the guest's lo and pings
#     127.0.0.1 with the host's ping: the RTT must be about 20 ms (the delay applies both ways);
#  3. boots with pv.dhcp=1 against busybox udhcpd on the bridge and pings the leased address.
# Every wait is bounded. The root namespace's network is never touched. Cleanup runs on any exit.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
[ "$(id -u)" = 0 ] || { echo "smoke: must run as root" >&2; exit 2; }

GUEST=${PV_GUEST_DIR:-.cache/guest}
NS=pvg-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
WORK=$(mktemp -d /tmp/pvg-smoke.XXXXXX)
BR_IP=10.40.0.1 GUEST_IP=10.40.0.5
PASS=0 FAIL=0
QEMU_PIDS=()

cleanup() {
  local p
  for p in "${QEMU_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${QEMU_PIDS[@]}"; do
    timeout 5 tail --pid="$p" -f /dev/null 2>/dev/null || kill -9 "$p" 2>/dev/null
  done
  [ -f "$WORK/udhcpd.pid" ] && kill "$(cat "$WORK/udhcpd.pid")" 2>/dev/null
  ip netns del "$NS" 2>/dev/null
  if [ -n "${KEEP_LOGS:-}" ]; then echo "smoke: logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { PASS=$((PASS + 1)); echo "ok   - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
# wait_for FILE REGEX SECONDS: true once a line of FILE matches
wait_for() {
  local end=$(($(date +%s) + $3))
  while [ "$(date +%s)" -lt "$end" ]; do
    tr -d '\r' <"$1" 2>/dev/null | grep -qE "$2" && return 0
    sleep 0.1
  done
  return 1
}
# qemu_start NAME APPEND EXTRA-ARGS...: boots the guest in $NS in the background, console in
# $WORK/NAME.log, QMP socket $WORK/NAME.qmp; sets QPID.
qemu_start() {
  local name=$1 append=$2; shift 2
  ip netns exec "$NS" qemu-system-x86_64 -accel tcg -m 256 -nographic -no-reboot \
    -kernel "$GUEST/vmlinux" -initrd "$GUEST/initrd.gz" \
    -append "console=ttyS0 quiet $append" \
    -qmp "unix:$WORK/$name.qmp,server,nowait" "$@" </dev/null >"$WORK/$name.log" 2>&1 &
  QPID=$!
  QEMU_PIDS+=("$QPID")
}
# qemu_wait_exit PID SECONDS
qemu_wait_exit() { timeout "$2" tail --pid="$1" -f /dev/null 2>/dev/null; }

# --- build ---------------------------------------------------------------------------------------
t=$(date +%s%N)
scripts/build-guest.sh "$GUEST" || { echo "smoke: build failed" >&2; exit 1; }
echo "smoke: build-guest.sh took $(ms_since "$t") ms"
for c in qemu-system-x86_64 socat ip; do command -v $c >/dev/null || { echo "smoke: missing $c" >&2; exit 1; }; done

# --- namespace, bridge, tap ----------------------------------------------------------------------
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add br0 type bridge
ip -n "$NS" addr add "$BR_IP/24" dev br0
ip -n "$NS" link set br0 up
ip -n "$NS" tuntap add dev tap0 mode tap
ip -n "$NS" link set tap0 master br0
ip -n "$NS" link set tap0 up
echo "smoke: namespace $NS (br0 $BR_IP/24, tap0)"

# --- 1. static address, ping, QMP, netem -----------------------------------------------------------
t=$(date +%s%N)
qemu_start g1 "pv.ip=$GUEST_IP/24 pv.gw=$BR_IP" \
  -netdev tap,id=n0,ifname=tap0,script=no,downscript=no \
  -device virtio-net-pci,netdev=n0,mac=52:54:00:40:00:05,romfile=
P1=$QPID
if wait_for "$WORK/g1.log" '^PV-READY' 90; then
  ok "guest 1 PV-READY after $(ms_since "$t") ms"
else
  bad "guest 1 did not print PV-READY within 90 s"; tail -20 "$WORK/g1.log"
fi
if grep -qE '^PV-BOOT .* netem=yes' <(tr -d '\r' <"$WORK/g1.log"); then
  ok "guest reports $(tr -d '\r' <"$WORK/g1.log" | grep -oE 'PV-BOOT .*')"
else
  bad "guest did not report netem=yes: $(tr -d '\r' <"$WORK/g1.log" | grep -E 'PV-BOOT|PV-ERROR')"
fi
if ip netns exec "$NS" ping -c 3 -i 0.3 -w 15 "$GUEST_IP" >"$WORK/ping1.txt" 2>&1; then
  ok "ping $GUEST_IP from $NS: $(grep -oE '[0-9]+ received' "$WORK/ping1.txt"), $(grep -oE 'rtt .*' "$WORK/ping1.txt")"
else
  bad "ping $GUEST_IP failed"; cat "$WORK/ping1.txt"
fi
# QMP: the greeting, then capabilities, query-status and quit, one line each.
if [ -S "$WORK/g1.qmp" ]; then
  { sleep 0.5
    echo '{"execute":"qmp_capabilities"}'; sleep 0.5
    echo '{"execute":"query-status"}'; sleep 0.5
    echo '{"execute":"quit"}'; sleep 1
  } | timeout 10 socat -t 2 - "UNIX-CONNECT:$WORK/g1.qmp" >"$WORK/qmp.txt" 2>&1
  if grep -q '"QMP"' "$WORK/qmp.txt"; then ok "QMP greeting: $(grep -oE '"qemu": \{[^}]*\}' "$WORK/qmp.txt" | head -1)"
  else bad "no QMP greeting"; cat "$WORK/qmp.txt"; fi
  if grep -qE '"status": "running"' "$WORK/qmp.txt"; then ok "QMP query-status: running"
  else bad "QMP query-status did not say running"; cat "$WORK/qmp.txt"; fi
  if qemu_wait_exit "$P1" 10; then ok "QMP quit ended qemu"; else bad "qemu still running 10 s after quit"; fi
else
  bad "no QMP socket at $WORK/g1.qmp"
fi

# --- 2. host root over 9p, netem delay on the guest's lo -------------------------------------------
CMD='tc qdisc add dev lo root netem delay 10ms && ping -c 3 127.0.0.1'
t=$(date +%s%N)
qemu_start g2 "pv.hostroot=1 pv.timeout=60 pv.cmd=$(printf '%s' "$CMD" | base64 -w0)" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -nic none
P2=$QPID
if qemu_wait_exit "$P2" 150; then
  tr -d '\r' <"$WORK/g2.log" >"$WORK/g2.txt"
  out=$(sed -n '/^PV-CMD-BEGIN/,/^PV-CMD-END/p' "$WORK/g2.txt")
  if grep -q '^PV-CMD-END rc=0' "$WORK/g2.txt"; then
    ok "pv.cmd under pv.hostroot=1 rc=0, boot-to-poweroff $(ms_since "$t") ms"
  else
    bad "pv.cmd failed: $(grep -E 'PV-CMD-END|PV-ERROR' "$WORK/g2.txt")"; echo "$out"
  fi
  rtt=$(echo "$out" | sed -nE 's#^(rtt|round-trip) min/avg/max(/mdev)? = ([0-9.]+)/([0-9.]+)/([0-9.]+).*#\3 \4 \5#p')
  if [ -n "$rtt" ] && awk -v r="$rtt" 'BEGIN { split(r, a, " "); exit !(a[1] >= 19.5 && a[2] < 40) }'; then
    ok "netem delay 10ms on lo: rtt min/avg/max = ${rtt// //} ms"
  else
    bad "netem RTT not ~20 ms: '${rtt:-none}'"; echo "$out"
  fi
else
  bad "guest 2 did not power off within 150 s"; tail -20 "$WORK/g2.log"
fi

# --- 3. DHCP -------------------------------------------------------------------------------------
cat >"$WORK/udhcpd.conf" <<EOF
start 10.40.0.100
end 10.40.0.110
interface br0
option subnet 255.255.255.0
option router $BR_IP
lease_file $WORK/udhcpd.leases
pidfile $WORK/udhcpd.pid
EOF
: >"$WORK/udhcpd.leases"
ip netns exec "$NS" busybox udhcpd "$WORK/udhcpd.conf"
t=$(date +%s%N)
qemu_start g3 "pv.dhcp=1" \
  -netdev tap,id=n0,ifname=tap0,script=no,downscript=no \
  -device virtio-net-pci,netdev=n0,mac=52:54:00:40:00:06,romfile=
if wait_for "$WORK/g3.log" '^PV-READY' 90; then
  lease=$(tr -d '\r' <"$WORK/g3.log" | sed -nE 's#^PV-DHCP eth0 ([0-9.]+)/.*#\1#p' | head -1)
  if [ -n "$lease" ] && ip netns exec "$NS" ping -c 2 -i 0.3 -w 10 "$lease" >/dev/null 2>&1; then
    ok "pv.dhcp=1: leased $lease, answers ping ($(ms_since "$t") ms to PV-READY)"
  else
    bad "pv.dhcp=1: lease '${lease:-none}' not reachable"; tr -d '\r' <"$WORK/g3.log" | grep PV-
  fi
else
  bad "guest 3 did not print PV-READY within 90 s"; tail -20 "$WORK/g3.log"
fi

echo "smoke: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
