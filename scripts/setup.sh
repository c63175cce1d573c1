#!/usr/bin/env bash
# Installs what provium needs on a fresh Debian 12 machine (as root) and builds it.
# Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
# sshd/ssh/ssh-keygen/nsenter: the multi-host tests run real OpenSSH servers in test namespaces.
for pair in ip:iproute2 tc:iproute2 bridge:iproute2 nft:nftables iperf3:iperf3 tcpdump:tcpdump ping:iputils-ping socat:socat dnsmasq:dnsmasq-base pgrep:procps sysctl:procps conntrack:conntrack etcd:etcd-server etcdctl:etcd-client sshd:openssh-server ssh:openssh-client ssh-keygen:openssh-client nsenter:util-linux; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Installing openssh-server must not start a system-wide sshd: the tests start their
  # own. Without a policy-rc.d (containers usually have one), add one for the install.
  made_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1; fi
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
  [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages (and building: the package's prepare script)"
  npm ci --no-audit --no-fund --loglevel=error
else
  npm run build --silent
fi
