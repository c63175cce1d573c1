#!/usr/bin/env bash
# Builds provium's small QEMU test guest from Debian packages and caches it.
#
#   scripts/build-guest.sh [OUTDIR]        (default: <repo>/.cache/guest; run as root)
#
# Output in OUTDIR: vmlinuz, initrd.gz (busybox + guest/init + kernel modules), modules.txt (the
# insmod order), kernel-release, stamp. Idempotent: when vmlinuz and initrd.gz exist and the stamp
# matches the inputs (this script, guest/init, kernel flavour, kernel package name and version), it
# exits 0 at once. See guest/README.md for the guest's kernel command-line contract.
#
# Environment:
#   PV_GUEST_FLAVOUR  Debian kernel flavour: "amd64" (default; has 9p for pv.hostroot) or
#                     "cloud-amd64" (smaller, boots a little faster, but has no 9p at all).
#   PV_GUEST_KVER     Force a kernel ABI name such as 6.1.0-56-amd64 instead of asking apt-cache.
#   PV_GUEST_FORCE=1  Rebuild even if the stamp matches.
set -euo pipefail

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(dirname "$(dirname "$SCRIPT")")
INIT_SRC=$REPO/guest/init
OUT=${1:-$REPO/.cache/guest}
FLAVOUR=${PV_GUEST_FLAVOUR:-amd64}
export DEBIAN_FRONTEND=noninteractive

log() { echo "build-guest: $*" >&2; }
die() { echo "build-guest: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (apt-get, mknod)"
[ -f "$INIT_SRC" ] || die "missing $INIT_SRC"
case $FLAVOUR in amd64|cloud-amd64) ;; *) die "PV_GUEST_FLAVOUR must be amd64 or cloud-amd64" ;; esac

# --- packages (only what is missing) -------------------------------------------------------------
apt_updated=0
apt_update() { [ $apt_updated = 1 ] || { log "apt-get update"; apt-get update -qq >&2; apt_updated=1; }; }
ensure_pkgs() { # pairs "command:package"
  local need=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
  done
  [ ${#need[@]} = 0 ] && return 0
  log "installing: ${need[*]}"
  apt-get install -y -qq --no-install-recommends "${need[@]}" >&2 ||
    { apt_update; apt-get install -y -qq --no-install-recommends "${need[@]}" >&2; }
}
# qemu is not needed to build, but whoever builds the guest wants to boot it.
ensure_pkgs qemu-system-x86_64:qemu-system-x86 cpio:cpio xz:xz-utils sha256sum:coreutils flock:util-linux
[ "$FLAVOUR" = cloud-amd64 ] && ensure_pkgs lz4:lz4 # its bzImage is LZ4-compressed
# The initramfs needs the static busybox (Debian's "busybox" package is dynamically linked).
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || {
  log "installing: busybox-static"
  apt-get install -y -qq --no-install-recommends busybox-static >&2 ||
    { apt_update; apt-get install -y -qq --no-install-recommends busybox-static >&2; }
}

# --- which kernel ---------------------------------------------------------------------------------
kernel_abi() { # prints e.g. 6.1.0-56-amd64
  apt-cache depends "linux-image-$FLAVOUR" 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { sub(/^linux-image-/, "", $2); print $2; exit }'
}
kernel_pkgver() {
  apt-cache show --no-all-versions "linux-image-$1-unsigned" 2>/dev/null | awk '$1 == "Version:" { print $2; exit }'
}
mkdir -p "$OUT"
OUT=$(readlink -f "$OUT")
exec 9>"$OUT/.lock"
flock -w 900 9 || die "another build holds $OUT/.lock"

INPUTS=$(cat "$SCRIPT" "$INIT_SRC" | sha256sum | cut -c1-16)
have_outputs() { [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/vmlinux" ] && [ -f "$OUT/initrd.gz" ] && [ -f "$OUT/stamp" ]; }
# Fast path: apt-cache takes ~1.5 s, and its answer can only change when the package lists do. If no
# list is newer than the stamp, the kernel recorded in the stamp is still the one apt would pick.
if [ -z "${PV_GUEST_FORCE:-}" ] && [ -z "${PV_GUEST_KVER:-}" ] && have_outputs &&
   [ -z "$(find /var/lib/apt/lists -maxdepth 1 -type f -newer "$OUT/stamp" -print -quit 2>/dev/null)" ]; then
  case $(cat "$OUT/stamp") in
    "v1 flavour=$FLAVOUR kernel="*" inputs=$INPUTS") log "up to date: $OUT"; exit 0 ;;
  esac
fi

KABI=${PV_GUEST_KVER:-$(kernel_abi)}
if [ -z "$KABI" ] && have_outputs && [ -z "${PV_GUEST_FORCE:-}" ]; then
  # No package lists (offline machine, lists cleaned): the cached guest is still good.
  log "apt-cache knows no linux-image-$FLAVOUR; keeping the cached guest in $OUT"
  exit 0
fi
if [ -z "$KABI" ]; then apt_update; KABI=$(kernel_abi); fi
[ -n "$KABI" ] || die "apt-cache depends linux-image-$FLAVOUR found no kernel"
KPKG=linux-image-$KABI-unsigned
KVER=$(kernel_pkgver "$KABI")
if [ -z "$KVER" ]; then apt_update; KVER=$(kernel_pkgver "$KABI"); fi
[ -n "$KVER" ] || die "apt-cache does not know $KPKG"

STAMP="v1 flavour=$FLAVOUR kernel=$KPKG=$KVER inputs=$INPUTS"
if [ -z "${PV_GUEST_FORCE:-}" ] && have_outputs && [ "$(cat "$OUT/stamp")" = "$STAMP" ]; then
  touch "$OUT/stamp" # checked against newer package lists: skip apt-cache next time
  log "up to date: $OUT ($KPKG $KVER)"
  exit 0
fi

# --- fetch and unpack the kernel ------------------------------------------------------------------
T0=$(date +%s.%N)
TMP=$(mktemp -d /tmp/pv-build-guest.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
chmod 755 "$TMP"
mkdir "$TMP/deb"
# apt-get download as root drops privileges to _apt, which must be able to write the directory.
id _apt >/dev/null 2>&1 && chown _apt "$TMP/deb"
log "downloading $KPKG=$KVER"
(cd "$TMP/deb" && apt-get download -qq "$KPKG=$KVER" >&2) ||
  { apt_update; (cd "$TMP/deb" && apt-get download -qq "$KPKG=$KVER" >&2); }
DEB=$(ls "$TMP"/deb/*.deb)
log "unpacking $(basename "$DEB")"
# Only the kernel image and the module tree are needed.
dpkg-deb --fsys-tarfile "$DEB" | tar -x -C "$TMP" --wildcards './boot/vmlinuz-*' './boot/config-*' './lib/modules/*' \
  2>/dev/null || { mkdir -p "$TMP/x"; dpkg -x "$DEB" "$TMP/x"; cp -a "$TMP"/x/* "$TMP"/; }
KREL=$(ls "$TMP/lib/modules")
[ "$(echo "$KREL" | wc -l)" = 1 ] || die "expected one module tree, found: $KREL"
MODDIR=$TMP/lib/modules/$KREL
[ -f "$TMP/boot/vmlinuz-$KREL" ] || die "no vmlinuz-$KREL in $KPKG"

# Debian generates modules.dep in postinst, so the package has none: make it with busybox depmod.
[ -f "$MODDIR/modules.dep" ] || /bin/busybox depmod -b "$TMP" "$KREL"
[ -s "$MODDIR/modules.dep" ] || die "depmod produced no modules.dep"

# --- choose modules, resolve dependencies, order them for insmod -----------------------------------
# Wanted modules, in the order they should load (dependencies are pulled in before each one).
# Missing ones are reported and skipped; built-in ones need no file.
WANT=(
  # virtio transport and NIC (+ rng so the guest's entropy pool fills at once)
  virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
  failover net_failover virtio_net virtio-rng
  # traffic control
  sch_netem sch_htb sch_tbf sch_ingress sch_prio sch_sfq sch_fq_codel ifb act_mirred act_gact
  cls_u32 cls_matchall cls_bpf cls_fw cls_basic
  # links
  bridge veth tun macvlan macvtap dummy
  # nftables (ip, ip6, inet, netdev, bridge families are in nf_tables itself on 6.x)
  nfnetlink nf_tables nf_tables_bridge nft_chain_nat nf_conntrack nf_defrag_ipv4 nf_defrag_ipv6
  nf_nat nft_nat nft_masq nft_redir nft_ct nft_numgen nft_limit nft_counter nft_hash nft_quota
  nft_objref nft_log nft_reject nft_reject_inet nft_reject_ipv4 nft_reject_ipv6 nft_reject_bridge
  nft_meta_bridge nft_fib nft_fib_inet nft_fib_ipv4 nft_fib_ipv6 nft_fwd_netdev nft_dup_netdev
  nf_conntrack_bridge br_netfilter nf_conntrack_netlink
  # host sharing and a writable root over it
  netfs fscache 9pnet 9pnet_virtio 9p overlay fuse virtiofs
)
# Module parameters: no ifb0/ifb1/dummy0 that the tests did not ask for.
declare -A MODARGS=([ifb]="numifbs=0" [dummy]="numdummies=0")
# name -> path (relative to MODDIR); module names treat '-' and '_' alike.
declare -A MODPATH DEPS BUILTIN
norm() { echo "${1//-/_}"; }
while IFS= read -r line; do
  mod=${line%%:*}; deps=${line#*:}
  n=${mod##*/}; n=${n%%.ko*}; n=${n//-/_}
  MODPATH[$n]=$mod
  DEPS[$n]=$deps
done <"$MODDIR/modules.dep"
if [ -f "$MODDIR/modules.builtin" ]; then
  while IFS= read -r b; do n=${b##*/}; n=${n%%.ko*}; BUILTIN[${n//-/_}]=1; done <"$MODDIR/modules.builtin"
fi
# Aliases (exact names only), for soft dependencies such as libcrc32c's "pre: crc32c".
declare -A ALIAS
if [ -f "$MODDIR/modules.alias" ]; then
  while read -r _ a m; do
    case $a in *[\*\?\[]*) continue ;; esac
    a=${a//-/_}; ALIAS[$a]="${ALIAS[$a]:-} ${m//-/_}"
  done <"$MODDIR/modules.alias"
fi
modinfo_field() { # FILE FIELD: values of one .modinfo field, one per line
  local cat=cat
  case $1 in *.xz) ensure_pkgs xz:xz-utils; cat="xz -dc" ;; *.zst) ensure_pkgs zstd:zstd; cat="zstd -qdc" ;; *.gz) cat="gzip -dc" ;; esac
  $cat "$1" | tr '\0' '\n' | sed -n "s/^$2=//p"
}
soft_pre() { # NAME: modules named by "softdep=pre: ..." (requested by name or alias at run time)
  local f=$MODDIR/${MODPATH[$1]} mode=pre tok
  for tok in $(modinfo_field "$f" softdep); do
    case $tok in
      pre:) mode=pre ;; post:) mode=post ;;
      *) [ $mode = pre ] || continue
         tok=$(norm "$tok")
         if [ -n "${MODPATH[$tok]:-}" ]; then echo "$tok"; else echo "${ALIAS[$tok]:-}" | tr ' ' '\n'; fi ;;
    esac
  done | awk 'NF && !seen[$0]++'
}
ORDER=(); declare -A SEEN
visit() { # depth-first: every (soft) dependency before the module itself
  local n; n=$(norm "$1")
  [ -n "${SEEN[$n]:-}" ] && return 0
  [ -n "${MODPATH[$n]:-}" ] || return 0
  SEEN[$n]=1
  local d
  for d in $(soft_pre "$n"); do visit "$d"; done
  for d in ${DEPS[$n]}; do d=$(basename "$d"); visit "${d%%.ko*}"; done
  ORDER+=("$n")
}
MISSING=(); BUILTINS=()
for w in "${WANT[@]}"; do
  n=$(norm "$w")
  if [ -n "${MODPATH[$n]:-}" ]; then visit "$n"
  elif [ -n "${BUILTIN[$n]:-}" ]; then BUILTINS+=("$n")
  else MISSING+=("$n"); fi
done
[ ${#BUILTINS[@]} = 0 ] || log "built into $KREL (nothing to load): ${BUILTINS[*]}"
[ ${#MISSING[@]} = 0 ] || log "not in $KREL (skipped): ${MISSING[*]}"

# --- initramfs ------------------------------------------------------------------------------------
R=$TMP/initramfs
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,etc,root,host,host-rw,newroot,lib/modules}
chmod 1777 "$R/tmp"
cp /bin/busybox "$R/bin/busybox"
# Applet links where busybox expects them (relative, so they resolve inside the initramfs).
/bin/busybox --list-full | while IFS= read -r p; do
  [ "$p" = bin/busybox ] && continue
  case $p in bin/*) tgt=busybox ;; sbin/*) tgt=../bin/busybox ;; usr/*) tgt=../../bin/busybox ;; *) continue ;; esac
  [ -e "$R/$p" ] || ln -s "$tgt" "$R/$p"
done
mknod -m 600 "$R/dev/console" c 5 1
mknod -m 666 "$R/dev/null" c 1 3
install -m 755 "$INIT_SRC" "$R/init"
echo "pv-guest" >"$R/etc/hostname"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$R/etc/passwd"
printf 'root:x:0:\n' >"$R/etc/group"
: >"$R/lib/modules/load.order"
for n in "${ORDER[@]}"; do
  src=$MODDIR/${MODPATH[$n]}
  dst=$R/lib/modules/$n.ko
  case $src in
    *.ko) cp "$src" "$dst" ;;
    *.ko.xz) ensure_pkgs xz:xz-utils; xz -dc "$src" >"$dst" ;;
    *.ko.zst) ensure_pkgs zstd:zstd; zstd -qdc "$src" >"$dst" ;;
    *.ko.gz) gzip -dc "$src" >"$dst" ;;
    *) die "unknown module file type: $src" ;;
  esac
  echo "$n${MODARGS[$n]:+ ${MODARGS[$n]}}" >>"$R/lib/modules/load.order"
done
echo "$KREL" >"$R/etc/kernel-release"

find "$R" -exec touch -h -d @0 {} + # same inputs, same initrd.gz
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) |
  gzip -9n >"$TMP/initrd.gz"

# --- uncompressed kernel for PVH boot -------------------------------------------------------------
# Under TCG the generic kernel's XZ decompressor alone costs ~3 s of every boot. QEMU boots an ELF
# vmlinux with a PVH note (CONFIG_PVH=y) directly with -kernel, skipping it. Same method as the
# kernel's scripts/extract-vmlinux. Falls back to a copy of the bzImage (boots too, just slower).
extract_vmlinux() { # BZIMAGE OUT
  local pair magic tool off
  for pair in 'xz:\xfd7zXZ\x00' 'lz4:\x02!L\x18' 'gzip:\x1f\x8b\x08' 'zstd:\x28\xb5\x2f\xfd'; do
    tool=${pair%%:*}; magic=${pair#*:}
    command -v "$tool" >/dev/null 2>&1 || continue
    for off in $(LC_ALL=C grep -obUaP "$magic" "$1" 2>/dev/null | cut -d: -f1 | head -4); do
      case $tool in
        xz) tail -c +$((off + 1)) "$1" | xz -dc --single-stream >"$2" 2>/dev/null ;;
        *) tail -c +$((off + 1)) "$1" | $tool -dc >"$2" 2>/dev/null ;;
      esac
      [ "$(head -c 4 "$2" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] && return 0
    done
  done
  return 1
}
if grep -qx 'CONFIG_PVH=y' "$TMP/boot/config-$KREL" 2>/dev/null &&
   extract_vmlinux "$TMP/boot/vmlinuz-$KREL" "$TMP/vmlinux"; then
  log "extracted vmlinux ($(( $(stat -c %s "$TMP/vmlinux") >> 20 )) MiB, PVH boot)"
else
  log "no PVH vmlinux could be extracted; vmlinux is a copy of vmlinuz"
  cp "$TMP/boot/vmlinuz-$KREL" "$TMP/vmlinux"
fi

# --- publish atomically ---------------------------------------------------------------------------
cp "$TMP/boot/vmlinuz-$KREL" "$OUT/vmlinuz.new"
mv "$TMP/vmlinux" "$OUT/vmlinux.new"
mv "$TMP/initrd.gz" "$OUT/initrd.gz.new"
cp "$R/lib/modules/load.order" "$OUT/modules.txt"
echo "$KREL" >"$OUT/kernel-release"
mv -f "$OUT/vmlinuz.new" "$OUT/vmlinuz"
mv -f "$OUT/vmlinux.new" "$OUT/vmlinux"
mv -f "$OUT/initrd.gz.new" "$OUT/initrd.gz"
echo "$STAMP" >"$OUT/stamp"
T1=$(date +%s.%N)
log "built $OUT: kernel $KREL ($KPKG $KVER), ${#ORDER[@]} modules, initrd $(du -k "$OUT/initrd.gz" | cut -f1) KiB, $(awk -v a="$T0" -v b="$T1" 'BEGIN{printf "%.1f", b-a}') s"
