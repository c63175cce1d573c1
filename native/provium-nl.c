/*
 * provium-nl: provium's netlink helper. One process does every per-namespace read and
 * write of `provium plan/apply/destroy` over NETLINK_ROUTE, instead of one `ip -n NS
 * -batch` process per network namespace (see docs/netlink.md for the measurements).
 *
 * Protocol (stdin -> stdout), one response per request, in request order:
 *
 *   request  = u32 length (little endian, <= 1 MiB) + payload
 *   payload  = NUL-terminated fields: ID, NAMESPACE, then operations, each an operation
 *              name followed by its fixed number of arguments (an argv array: nothing
 *              is ever interpreted by a shell):
 *                up DEV | down DEV | mtu DEV BYTES | address DEV MAC | alias DEV TEXT
 *                addr-add DEV CIDR | addr-add-nodad DEV CIDR | addr-del DEV CIDR
 *                route-replace DST GW | route-del DST GW      (DST "default" or a CIDR)
 *                dump    (links with their addresses, and routes of every table but
 *                         local, which holds only the kernel's local and broadcast routes)
 *                links   (links with their addresses)
 *                nft-gen (the nftables ruleset generation and the namespace's cookie:
 *                         "gen":N,"cookie":"HEX"; the generation changes with every
 *                         committed nftables transaction in that namespace; and its
 *                         tables, read after it: "tables":["inet provium_lab",...])
 *                tc      (the HTB and netem qdiscs of every link, and the HTB classes of
 *                         each link with an HTB root: "qdiscs":[...],"classes":[...],
 *                         see op_tc)
 *                link-del DEV          (as `ip link del DEV`)
 *                netns-del NAME        (as `ip netns del NAME`: umount2 and unlink of
 *                         /run/netns/NAME; NAMESPACE must be "", the helper's own)
 *                sysctl-get NAME        ("sysctl:NAME":"VALUE")
 *                sysctl-set NAME VALUE  (VALUE "0" or "1")
 *                         NAME is net.ipv4.ip_forward or net.ipv6.conf.all.forwarding
 *                         (nothing else: /proc/sys/net/... of the namespace, read or
 *                         written while the helper is in it)
 *              NAMESPACE is a name under /run/netns, or "" for the helper's own namespace.
 *   response = one JSON line:
 *              {"id":ID,"ok":true[,"links":[...]][,"routes":[...]],"us":T}
 *              {"id":ID,"ok":false,"op":K,"errno":E,"error":"...","ext":"...","us":T}
 *              T is the helper's own time for the request in microseconds.
 *              K is the index of the failing operation (0-based; -1: the namespace
 *              could not be entered). Operations run in order and stop at the first
 *              failure; the ones before it stay done (like `ip -batch`).
 *
 * Links, addresses and routes are printed with iproute2's JSON keys and value forms
 * (`ip -j -d addr show`, `ip -j -d route show table all`, iproute2 6.1) for the fields
 * provium reads, so one parser serves both paths.
 *
 * Each request enters its namespace only to create the socket: open /run/netns/NAME,
 * setns(CLONE_NEWNET), socket(NETLINK_ROUTE) (the socket stays bound to that
 * namespace), setns back. The helper is single-threaded, so setns affects only it.
 *
 * `provium-nl --version` prints "provium-nl PROTOCOL_VERSION".
 *
 * Built on libmnl (Debian libmnl-dev).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROTOCOL_VERSION "5"
#define MAX_REQUEST (1u << 20)
#define RECV_BUF (1u << 16)

/* ---------- output buffer and JSON ---------- */

struct out {
	char *p;
	size_t len, cap;
};

static void out_grow(struct out *o, size_t n)
{
	if (o->len + n <= o->cap)
		return;
	size_t cap = o->cap ? o->cap : 4096;
	while (cap < o->len + n)
		cap *= 2;
	char *p = realloc(o->p, cap);
	if (!p) {
		perror("provium-nl: realloc");
		exit(1);
	}
	o->p = p;
	o->cap = cap;
}

static void out_raw(struct out *o, const char *s, size_t n)
{
	out_grow(o, n);
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void out_s(struct out *o, const char *s)
{
	out_raw(o, s, strlen(s));
}

static void out_fmt(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_fmt(struct out *o, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	out_raw(o, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* A JSON string (escapes quote, backslash and control characters; other bytes as they are, like iproute2). */
static void out_str(struct out *o, const char *s, size_t n)
{
	out_raw(o, "\"", 1);
	for (size_t i = 0; i < n && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			out_raw(o, e, 2);
		} else if (c < 0x20) {
			out_fmt(o, "\\u%04x", c);
		} else {
			out_raw(o, (const char *)&c, 1);
		}
	}
	out_raw(o, "\"", 1);
}

static void out_key(struct out *o, int *first, const char *key)
{
	if (!*first)
		out_raw(o, ",", 1);
	*first = 0;
	out_str(o, key, strlen(key));
	out_raw(o, ":", 1);
}

/* ---------- namespaces and sockets ---------- */

static int self_ns = -1;
static unsigned int seq;

/* Namespace names: what `ip netns` accepts and provium uses; never a path. */
static int valid_ns_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 255 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
			return 0;
	}
	return 1;
}

/* Interface names: 1-15 bytes, no '/', ':' or whitespace (the kernel's dev_valid_name, stricter). */
static int valid_dev(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= IFNAMSIZ || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '/' || s[i] == ':' || s[i] <= ' ' || s[i] == 0x7f)
			return 0;
	return 1;
}

static struct mnl_socket *open_socket(int proto)
{
	struct mnl_socket *nl = mnl_socket_open2(proto, SOCK_CLOEXEC);
	if (!nl)
		return NULL;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int e = errno;
		mnl_socket_close(nl);
		errno = e;
		return NULL;
	}
	int one = 1;
	/* Extended acks carry the kernel's error text; capped acks do not echo the request. */
	mnl_socket_setsockopt(nl, NETLINK_EXT_ACK, &one, sizeof(one));
	mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &one, sizeof(one));
	return nl;
}

/* Enters namespace `ns` ("" = stay in the helper's own). -1 with errno set. */
static int enter_ns(const char *ns)
{
	if (ns[0] == 0)
		return 0;
	if (!valid_ns_name(ns)) {
		errno = EINVAL;
		return -1;
	}
	char path[300];
	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	int r = setns(fd, CLONE_NEWNET);
	int e = errno;
	close(fd);
	errno = e;
	return r;
}

/* Back to the helper's own namespace after enter_ns (exits when that fails: nothing else is safe). */
static void leave_ns(const char *ns)
{
	if (ns[0] != 0 && setns(self_ns, CLONE_NEWNET) < 0) {
		perror("provium-nl: cannot return to its own network namespace");
		exit(1);
	}
}

/* A netlink socket (NETLINK_ROUTE, NETLINK_NETFILTER) bound to namespace `ns` ("" = the helper's own). NULL with errno set. */
static struct mnl_socket *ns_socket(const char *ns, int proto)
{
	if (enter_ns(ns) < 0)
		return NULL;
	struct mnl_socket *nl = open_socket(proto);
	int e = errno;
	leave_ns(ns);
	errno = e;
	return nl;
}

/* ---------- request/ack ---------- */

struct err {
	int op;
	int no;
	char ext[256];
};

/*
 * Sends nlh and reads its acknowledgement. Returns 0, or -1 with e->no (errno) and the
 * kernel's extended-ack text in e->ext.
 */
static int talk(struct mnl_socket *nl, struct nlmsghdr *nlh, struct err *e)
{
	static char buf[RECV_BUF];
	nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = ++seq;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		e->no = errno;
		return -1;
	}
	unsigned int portid = mnl_socket_get_portid(nl);
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			e->no = errno;
			return -1;
		}
		const struct nlmsghdr *m = (const struct nlmsghdr *)buf;
		int len = (int)n;
		for (; mnl_nlmsg_ok(m, len); m = mnl_nlmsg_next(m, &len)) {
			if (m->nlmsg_seq != seq || (m->nlmsg_pid && m->nlmsg_pid != portid))
				continue;
			if (m->nlmsg_type != NLMSG_ERROR)
				continue;
			const struct nlmsgerr *er = mnl_nlmsg_get_payload(m);
			if (er->error == 0)
				return 0;
			e->no = -er->error;
			e->ext[0] = 0;
			if (m->nlmsg_flags & NLM_F_ACK_TLVS) {
				/* Capped ack: nlmsgerr then attributes; uncapped: the request follows nlmsgerr. */
				size_t off = sizeof(*er);
				if (!(m->nlmsg_flags & NLM_F_CAPPED))
					off += er->msg.nlmsg_len - sizeof(struct nlmsghdr);
				const struct nlattr *a;
				mnl_attr_for_each(a, m, off)
				{
					if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0) {
						snprintf(e->ext, sizeof(e->ext), "%s", mnl_attr_get_str(a));
					}
				}
			}
			return -1;
		}
	}
}

/* Runs a dump request, calling cb for every message. 0, or -1 with e->no. */
static int dump(struct mnl_socket *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data, struct err *e)
{
	static char buf[RECV_BUF];
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = ++seq;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		e->no = errno;
		return -1;
	}
	unsigned int portid = mnl_socket_get_portid(nl);
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			e->no = errno;
			return -1;
		}
		int r = mnl_cb_run(buf, (size_t)n, seq, portid, cb, data);
		if (r == MNL_CB_STOP)
			return 0;
		if (r < 0) {
			e->no = errno;
			return -1;
		}
	}
}

/* ---------- parsing arguments ---------- */

/* "10.0.0.1/24", "fd00::1/64", "10.0.0.1" (host), "default" -> family, bytes, prefix length. */
static int parse_prefix(const char *s, int *family, unsigned char addr[16], int *plen, int allow_default)
{
	if (allow_default && strcmp(s, "default") == 0) {
		*family = AF_UNSPEC;
		*plen = 0;
		memset(addr, 0, 16);
		return 0;
	}
	char tmp[64];
	if (strlen(s) >= sizeof(tmp))
		return -1;
	strcpy(tmp, s);
	char *slash = strchr(tmp, '/');
	if (slash)
		*slash = 0;
	*family = strchr(tmp, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(*family, tmp, addr) != 1)
		return -1;
	int max = *family == AF_INET6 ? 128 : 32;
	if (!slash) {
		*plen = max;
		return 0;
	}
	char *end;
	long v = strtol(slash + 1, &end, 10);
	if (*end || end == slash + 1 || v < 0 || v > max)
		return -1;
	*plen = (int)v;
	return 0;
}

static int parse_mac(const char *s, unsigned char mac[6])
{
	unsigned int b[6];
	char tail;
	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
		return -1;
	for (int i = 0; i < 6; i++)
		mac[i] = (unsigned char)b[i];
	return 0;
}

/* ifindex of dev in the socket's namespace (RTM_GETLINK by name). 0 with e->no on failure. */
static int dev_index(struct mnl_socket *nl, const char *dev, struct err *e)
{
	static char buf[RECV_BUF];
	char req[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(req);
	nlh->nlmsg_type = RTM_GETLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nlh->nlmsg_seq = ++seq;
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, dev);
	uint32_t mask = RTEXT_FILTER_SKIP_STATS;
	mnl_attr_put_u32(nlh, IFLA_EXT_MASK, mask);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		e->no = errno;
		return 0;
	}
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			e->no = errno;
			return 0;
		}
		const struct nlmsghdr *m = (const struct nlmsghdr *)buf;
		int len = (int)n;
		for (; mnl_nlmsg_ok(m, len); m = mnl_nlmsg_next(m, &len)) {
			if (m->nlmsg_seq != seq)
				continue;
			if (m->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *er = mnl_nlmsg_get_payload(m);
				e->no = er->error ? -er->error : ENODEV;
				snprintf(e->ext, sizeof(e->ext), "Cannot find device \"%s\"", dev);
				return 0;
			}
			if (m->nlmsg_type == RTM_NEWLINK) {
				const struct ifinfomsg *r = mnl_nlmsg_get_payload(m);
				return r->ifi_index;
			}
		}
	}
}

/* ---------- writes ---------- */

static int op_link(struct mnl_socket *nl, const char *op, const char *dev, const char *arg, struct err *e)
{
	char req[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(req);
	nlh->nlmsg_type = RTM_NEWLINK;
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, dev);
	if (strcmp(op, "up") == 0) {
		ifi->ifi_change = IFF_UP;
		ifi->ifi_flags = IFF_UP;
	} else if (strcmp(op, "down") == 0) {
		ifi->ifi_change = IFF_UP;
		ifi->ifi_flags = 0;
	} else if (strcmp(op, "mtu") == 0) {
		char *end;
		unsigned long v = strtoul(arg, &end, 10);
		if (*end || end == arg || v == 0 || v > 0xffffffffUL) {
			e->no = EINVAL;
			snprintf(e->ext, sizeof(e->ext), "bad MTU \"%s\"", arg);
			return -1;
		}
		mnl_attr_put_u32(nlh, IFLA_MTU, (uint32_t)v);
	} else if (strcmp(op, "address") == 0) {
		unsigned char mac[6];
		if (parse_mac(arg, mac) < 0) {
			e->no = EINVAL;
			snprintf(e->ext, sizeof(e->ext), "bad MAC address \"%s\"", arg);
			return -1;
		}
		mnl_attr_put(nlh, IFLA_ADDRESS, 6, mac);
	} else { /* alias */
		size_t n = strlen(arg);
		if (n >= IFALIASZ) {
			e->no = EINVAL;
			snprintf(e->ext, sizeof(e->ext), "alias too long (%zu bytes, at most %d)", n, IFALIASZ - 1);
			return -1;
		}
		mnl_attr_put(nlh, IFLA_IFALIAS, n, arg);
	}
	return talk(nl, nlh, e);
}

/* As `ip link del DEV`: RTM_DELLINK by name in the request's namespace. */
static int op_link_del(struct mnl_socket *nl, const char *dev, struct err *e)
{
	char req[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(req);
	nlh->nlmsg_type = RTM_DELLINK;
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, dev);
	return talk(nl, nlh, e);
}

/*
 * As `ip netns del NAME` (iproute2's netns_delete): detach the namespace's bind mount at
 * /run/netns/NAME and remove the name; the kernel frees the namespace once nothing else
 * holds it. The helper never leaves its own mount namespace (it enters network namespaces
 * only), so this is the host's /run/netns. Only in a request for the helper's own namespace.
 */
static int op_netns_del(const char *ns, const char *name, struct err *e)
{
	if (ns[0]) {
		e->no = EINVAL;
		snprintf(e->ext, sizeof(e->ext), "netns-del is only for the helper's own namespace (\"\")");
		return -1;
	}
	char path[300];
	snprintf(path, sizeof(path), "/run/netns/%s", name);
	umount2(path, MNT_DETACH);
	if (unlink(path) < 0) {
		e->no = errno;
		snprintf(e->ext, sizeof(e->ext), "Cannot remove namespace file \"%.200s\"", path);
		return -1;
	}
	return 0;
}

static int op_addr(struct mnl_socket *nl, const char *op, const char *dev, const char *cidr, struct err *e)
{
	int family, plen;
	unsigned char a[16];
	if (parse_prefix(cidr, &family, a, &plen, 0) < 0) {
		e->no = EINVAL;
		snprintf(e->ext, sizeof(e->ext), "bad address \"%s\"", cidr);
		return -1;
	}
	int idx = dev_index(nl, dev, e);
	if (!idx)
		return -1;
	int del = strcmp(op, "addr-del") == 0;
	char req[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(req);
	nlh->nlmsg_type = del ? RTM_DELADDR : RTM_NEWADDR;
	if (!del)
		nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = (unsigned char)family;
	ifa->ifa_prefixlen = (unsigned char)plen;
	ifa->ifa_index = (unsigned int)idx;
	size_t alen = family == AF_INET6 ? 16 : 4;
	/* As iproute2: local = address (no peer); loopback addresses get host scope. */
	if (!del && family == AF_INET && a[0] == 127)
		ifa->ifa_scope = RT_SCOPE_HOST;
	if (strcmp(op, "addr-add-nodad") == 0)
		ifa->ifa_flags = IFA_F_NODAD;
	mnl_attr_put(nlh, IFA_LOCAL, alen, a);
	if (!del)
		mnl_attr_put(nlh, IFA_ADDRESS, alen, a);
	return talk(nl, nlh, e);
}

static int op_route(struct mnl_socket *nl, const char *op, const char *dst, const char *gw, struct err *e)
{
	int family, plen, gfamily, gplen;
	unsigned char d[16], g[16];
	if (parse_prefix(dst, &family, d, &plen, 1) < 0) {
		e->no = EINVAL;
		snprintf(e->ext, sizeof(e->ext), "bad destination \"%s\"", dst);
		return -1;
	}
	if (parse_prefix(gw, &gfamily, g, &gplen, 0) < 0 || gplen != (gfamily == AF_INET6 ? 128 : 32)) {
		e->no = EINVAL;
		snprintf(e->ext, sizeof(e->ext), "bad gateway \"%s\"", gw);
		return -1;
	}
	/* The gateway tells the family of "default" (as iproute2 infers it). */
	if (family == AF_UNSPEC)
		family = gfamily;
	if (family != gfamily) {
		e->no = EINVAL;
		snprintf(e->ext, sizeof(e->ext), "gateway \"%s\" is not of the family of \"%s\"", gw, dst);
		return -1;
	}
	int del = strcmp(op, "route-del") == 0;
	char req[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(req);
	nlh->nlmsg_type = del ? RTM_DELROUTE : RTM_NEWROUTE;
	if (!del)
		nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
	struct rtmsg *rt = mnl_nlmsg_put_extra_header(nlh, sizeof(*rt));
	rt->rtm_family = (unsigned char)family;
	rt->rtm_dst_len = (unsigned char)plen;
	rt->rtm_table = RT_TABLE_MAIN;
	/* As `ip route replace/del`: protocol boot, universe scope, unicast; deletes match any. */
	if (del) {
		rt->rtm_scope = RT_SCOPE_NOWHERE;
	} else {
		rt->rtm_protocol = RTPROT_BOOT;
		rt->rtm_scope = RT_SCOPE_UNIVERSE;
		rt->rtm_type = RTN_UNICAST;
	}
	size_t alen = family == AF_INET6 ? 16 : 4;
	if (plen > 0)
		mnl_attr_put(nlh, RTA_DST, alen, d);
	mnl_attr_put(nlh, RTA_GATEWAY, alen, g);
	return talk(nl, nlh, e);
}

/* ---------- reads ---------- */

#define MAX_DUMP_LINKS 65536

/*
 * Room for one more element of `size` bytes in tab (n used of *cap): the table, moved when
 * it had to grow (doubling, up to MAX_DUMP_LINKS elements), or NULL when that many are
 * already there (the dump skips the rest; tab stays valid). Exits when memory runs out.
 */
static void *grow(void *tab, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return tab;
	size_t c = *cap ? *cap * 2 : 64;
	if (c > MAX_DUMP_LINKS)
		return NULL;
	void *t = realloc(tab, c * size);
	if (!t) {
		perror("provium-nl: realloc");
		exit(1);
	}
	*cap = c;
	return t;
}

/* One link of a dump: its fields, and its addresses as JSON objects (comma-separated). */
struct link {
	int index;
	unsigned int flags;
	int has_mtu;
	uint32_t mtu, master;
	char name[IFNAMSIZ];
	char kind[32];
	/* VXLAN (kind "vxlan"): IFLA_VXLAN_ID, _PORT, _LOCAL or _LOCAL6 (printed as iproute2 does). */
	int has_vx_id, has_vx_port;
	uint32_t vx_id;
	uint16_t vx_port;
	char vx_local[INET6_ADDRSTRLEN];
	int vx_local6;
	char *alias;
	unsigned char addr[32];
	size_t alen;
	struct out addrs;
	int naddrs;
};

struct dumpst {
	struct out *o;
	struct link *tab;
	size_t n, cap;
	int nroutes;
};

static struct link *find_link(struct dumpst *st, int index)
{
	for (size_t i = 0; i < st->n; i++)
		if (st->tab[i].index == index)
			return &st->tab[i];
	return NULL;
}

static const char *scope_name(unsigned int s, char *tmp)
{
	switch (s) {
	case RT_SCOPE_UNIVERSE: return "global";
	case RT_SCOPE_SITE: return "site";
	case RT_SCOPE_LINK: return "link";
	case RT_SCOPE_HOST: return "host";
	case RT_SCOPE_NOWHERE: return "nowhere";
	}
	sprintf(tmp, "%u", s);
	return tmp;
}

/* iproute2's default rt_protos names. */
static const char *proto_name(unsigned int p, char *tmp)
{
	switch (p) {
	case 0: return "unspec";
	case 1: return "redirect";
	case 2: return "kernel";
	case 3: return "boot";
	case 4: return "static";
	case 8: return "gated";
	case 9: return "ra";
	case 10: return "mrt";
	case 11: return "zebra";
	case 12: return "bird";
	case 13: return "dnrouted";
	case 14: return "xorp";
	case 15: return "ntk";
	case 16: return "dhcp";
	case 18: return "keepalived";
	case 42: return "babel";
	case 99: return "openr";
	case 186: return "bgp";
	case 187: return "isis";
	case 188: return "ospf";
	case 189: return "rip";
	case 192: return "eigrp";
	}
	sprintf(tmp, "%u", p);
	return tmp;
}

static const char *rtype_name(unsigned int t, char *tmp)
{
	static const char *names[] = { "none", "unicast", "local", "broadcast", "anycast", "multicast", "blackhole", "unreachable", "prohibit", "throw", "nat", "xresolve" };
	if (t < sizeof(names) / sizeof(names[0]))
		return names[t];
	sprintf(tmp, "%u", t);
	return tmp;
}

static void out_flags(struct out *o, unsigned int f)
{
	/* iproute2's order and names (print_link_flags). */
	static const struct { unsigned int bit; const char *name; } names[] = {
		{ IFF_LOOPBACK, "LOOPBACK" }, { IFF_BROADCAST, "BROADCAST" }, { IFF_POINTOPOINT, "POINTOPOINT" },
		{ IFF_MULTICAST, "MULTICAST" }, { IFF_NOARP, "NOARP" }, { IFF_ALLMULTI, "ALLMULTI" },
		{ IFF_PROMISC, "PROMISC" }, { IFF_MASTER, "MASTER" }, { IFF_SLAVE, "SLAVE" },
		{ IFF_DEBUG, "DEBUG" }, { IFF_DYNAMIC, "DYNAMIC" }, { IFF_AUTOMEDIA, "AUTOMEDIA" },
		{ IFF_PORTSEL, "PORTSEL" }, { IFF_NOTRAILERS, "NOTRAILERS" }, { IFF_UP, "UP" },
		{ IFF_LOWER_UP, "LOWER_UP" }, { IFF_DORMANT, "DORMANT" }, { IFF_ECHO, "ECHO" },
	};
	int first = 1;
	out_s(o, "[");
	if ((f & IFF_UP) && !(f & IFF_RUNNING)) {
		out_s(o, "\"NO-CARRIER\"");
		first = 0;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(f & names[i].bit))
			continue;
		if (!first)
			out_s(o, ",");
		first = 0;
		out_fmt(o, "\"%s\"", names[i].name);
	}
	out_s(o, "]");
}

/* VXLAN attributes of a link's IFLA_INFO_DATA: what `ip -j -d` prints as info_data id, port, local (local6). */
static void vxlan_info(struct link *l, const struct nlattr *info)
{
	const struct nlattr *c;
	mnl_attr_for_each_nested(c, info)
	{
		size_t n = mnl_attr_get_payload_len(c);
		switch (mnl_attr_get_type(c)) {
		case IFLA_VXLAN_ID:
			if (mnl_attr_validate(c, MNL_TYPE_U32) == 0) {
				l->vx_id = mnl_attr_get_u32(c);
				l->has_vx_id = 1;
			}
			break;
		case IFLA_VXLAN_PORT:
			if (mnl_attr_validate(c, MNL_TYPE_U16) == 0) {
				l->vx_port = ntohs(mnl_attr_get_u16(c));
				l->has_vx_port = 1;
			}
			break;
		case IFLA_VXLAN_LOCAL:
			/* iproute2 prints "local" for a non-zero IPv4 address. */
			if (n == 4 && *(const uint32_t *)mnl_attr_get_payload(c) != 0 && !l->vx_local[0])
				inet_ntop(AF_INET, mnl_attr_get_payload(c), l->vx_local, sizeof(l->vx_local));
			break;
		case IFLA_VXLAN_LOCAL6: {
			static const unsigned char zero[16];
			if (n == 16 && memcmp(mnl_attr_get_payload(c), zero, 16) != 0 && !l->vx_local[0]) {
				inet_ntop(AF_INET6, mnl_attr_get_payload(c), l->vx_local, sizeof(l->vx_local));
				l->vx_local6 = 1;
			}
			break;
		}
		}
	}
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
	struct dumpst *st = data;
	if (nlh->nlmsg_type != RTM_NEWLINK)
		return MNL_CB_OK;
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
	struct link *tab = grow(st->tab, &st->cap, st->n, sizeof(*tab));
	if (!tab)
		return MNL_CB_OK;
	st->tab = tab;
	struct link *l = &st->tab[st->n];
	memset(l, 0, sizeof(*l));
	l->index = ifi->ifi_index;
	l->flags = ifi->ifi_flags;
	const struct nlattr *a;
	mnl_attr_for_each(a, nlh, sizeof(*ifi))
	{
		switch (mnl_attr_get_type(a)) {
		case IFLA_IFNAME:
			if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
				snprintf(l->name, sizeof(l->name), "%s", mnl_attr_get_str(a));
			break;
		case IFLA_IFALIAS:
			if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0 && mnl_attr_get_str(a)[0])
				l->alias = strdup(mnl_attr_get_str(a));
			break;
		case IFLA_MTU:
			if (mnl_attr_validate(a, MNL_TYPE_U32) == 0) {
				l->mtu = mnl_attr_get_u32(a);
				l->has_mtu = 1;
			}
			break;
		case IFLA_MASTER:
			if (mnl_attr_validate(a, MNL_TYPE_U32) == 0)
				l->master = mnl_attr_get_u32(a);
			break;
		case IFLA_ADDRESS:
			l->alen = mnl_attr_get_payload_len(a);
			if (l->alen > sizeof(l->addr))
				l->alen = 0;
			else
				memcpy(l->addr, mnl_attr_get_payload(a), l->alen);
			break;
		case IFLA_LINKINFO: {
			const struct nlattr *b, *info = NULL;
			mnl_attr_for_each_nested(b, a)
			{
				if (mnl_attr_get_type(b) == IFLA_INFO_KIND && mnl_attr_validate(b, MNL_TYPE_NUL_STRING) == 0)
					snprintf(l->kind, sizeof(l->kind), "%s", mnl_attr_get_str(b));
				else if (mnl_attr_get_type(b) == IFLA_INFO_DATA && mnl_attr_validate(b, MNL_TYPE_NESTED) == 0)
					info = b;
			}
			if (info && strcmp(l->kind, "vxlan") == 0)
				vxlan_info(l, info);
			break;
		}
		}
	}
	if (l->name[0])
		st->n++;
	else
		free(l->alias);
	return MNL_CB_OK;
}

/* One link as iproute2's `ip -j -d addr show` prints it (the keys provium reads, and a few more). */
static void out_link(struct out *o, struct dumpst *st, struct link *l)
{
	int first = 1;
	out_s(o, "{");
	out_key(o, &first, "ifindex");
	out_fmt(o, "%d", l->index);
	out_key(o, &first, "ifname");
	out_str(o, l->name, strlen(l->name));
	out_key(o, &first, "flags");
	out_flags(o, l->flags);
	if (l->has_mtu) {
		out_key(o, &first, "mtu");
		out_fmt(o, "%u", l->mtu);
	}
	if (l->master) {
		struct link *m = find_link(st, (int)l->master);
		out_key(o, &first, "master");
		if (m)
			out_str(o, m->name, strlen(m->name));
		else
			out_fmt(o, "\"if%u\"", l->master);
	}
	if (l->alen) {
		out_key(o, &first, "address");
		out_s(o, "\"");
		for (size_t i = 0; i < l->alen; i++)
			out_fmt(o, i ? ":%02x" : "%02x", l->addr[i]);
		out_s(o, "\"");
	}
	if (l->kind[0]) {
		out_key(o, &first, "linkinfo");
		out_s(o, "{\"info_kind\":");
		out_str(o, l->kind, strlen(l->kind));
		if (l->has_vx_id || l->has_vx_port || l->vx_local[0]) {
			int f2 = 1;
			out_s(o, ",\"info_data\":{");
			if (l->has_vx_id) {
				out_key(o, &f2, "id");
				out_fmt(o, "%u", l->vx_id);
			}
			if (l->vx_local[0]) {
				out_key(o, &f2, l->vx_local6 ? "local6" : "local");
				out_str(o, l->vx_local, strlen(l->vx_local));
			}
			if (l->has_vx_port) {
				out_key(o, &f2, "port");
				out_fmt(o, "%u", l->vx_port);
			}
			out_s(o, "}");
		}
		out_s(o, "}");
	}
	if (l->alias) {
		out_key(o, &first, "ifalias");
		out_str(o, l->alias, strlen(l->alias));
	}
	out_key(o, &first, "addr_info");
	out_s(o, "[");
	if (l->addrs.len)
		out_raw(o, l->addrs.p, l->addrs.len);
	out_s(o, "]}");
}

static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
	struct dumpst *st = data;
	if (nlh->nlmsg_type != RTM_NEWADDR)
		return MNL_CB_OK;
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6)
		return MNL_CB_OK;
	const void *local = NULL, *address = NULL;
	const char *label = NULL;
	uint32_t flags = ifa->ifa_flags;
	const struct nlattr *a;
	size_t alen = ifa->ifa_family == AF_INET6 ? 16 : 4;
	mnl_attr_for_each(a, nlh, sizeof(*ifa))
	{
		switch (mnl_attr_get_type(a)) {
		case IFA_LOCAL:
			if (mnl_attr_get_payload_len(a) == alen)
				local = mnl_attr_get_payload(a);
			break;
		case IFA_ADDRESS:
			if (mnl_attr_get_payload_len(a) == alen)
				address = mnl_attr_get_payload(a);
			break;
		case IFA_FLAGS:
			if (mnl_attr_validate(a, MNL_TYPE_U32) == 0)
				flags = mnl_attr_get_u32(a);
			break;
		case IFA_LABEL:
			if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
				label = mnl_attr_get_str(a);
			break;
		}
	}
	if (!local)
		local = address;
	if (!local)
		return MNL_CB_OK;
	struct link *l = find_link(st, (int)ifa->ifa_index);
	if (!l)
		return MNL_CB_OK;
	char txt[INET6_ADDRSTRLEN], tmp[16];
	inet_ntop(ifa->ifa_family, local, txt, sizeof(txt));
	struct out *o = &l->addrs;
	if (l->naddrs++)
		out_s(o, ",");
	int first = 1;
	out_s(o, "{");
	out_key(o, &first, "family");
	out_s(o, ifa->ifa_family == AF_INET6 ? "\"inet6\"" : "\"inet\"");
	out_key(o, &first, "local");
	out_fmt(o, "\"%s\"", txt);
	if (address && local != address && memcmp(local, address, alen) != 0) {
		char peer[INET6_ADDRSTRLEN];
		inet_ntop(ifa->ifa_family, address, peer, sizeof(peer));
		out_key(o, &first, "address");
		out_fmt(o, "\"%s\"", peer);
	}
	out_key(o, &first, "prefixlen");
	out_fmt(o, "%u", ifa->ifa_prefixlen);
	out_key(o, &first, "scope");
	out_fmt(o, "\"%s\"", scope_name(ifa->ifa_scope, tmp));
	/* As iproute2's print_ifa_flags: "dynamic" when not permanent; the DAD states as booleans. */
	if (!(flags & IFA_F_PERMANENT)) {
		out_key(o, &first, "dynamic");
		out_s(o, "true");
	}
	if (flags & IFA_F_TENTATIVE) {
		out_key(o, &first, "tentative");
		out_s(o, "true");
	}
	if (flags & IFA_F_DADFAILED) {
		out_key(o, &first, "dadfailed");
		out_s(o, "true");
	}
	if (flags & IFA_F_NODAD) {
		out_key(o, &first, "nodad");
		out_s(o, "true");
	}
	if (label) {
		out_key(o, &first, "label");
		out_str(o, label, strlen(label));
	}
	out_s(o, "}");
	return MNL_CB_OK;
}

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
	struct dumpst *st = data;
	if (nlh->nlmsg_type != RTM_NEWROUTE)
		return MNL_CB_OK;
	const struct rtmsg *rt = mnl_nlmsg_get_payload(nlh);
	if (rt->rtm_family != AF_INET && rt->rtm_family != AF_INET6)
		return MNL_CB_OK;
	if (rt->rtm_flags & RTM_F_CLONED)
		return MNL_CB_OK;
	size_t alen = rt->rtm_family == AF_INET6 ? 16 : 4;
	const void *dst = NULL, *gw = NULL;
	uint32_t table = rt->rtm_table, oif = 0;
	int has_pref = 0;
	unsigned int pref = 0;
	const struct nlattr *a;
	mnl_attr_for_each(a, nlh, sizeof(*rt))
	{
		switch (mnl_attr_get_type(a)) {
		case RTA_DST:
			if (mnl_attr_get_payload_len(a) == alen)
				dst = mnl_attr_get_payload(a);
			break;
		case RTA_GATEWAY:
			if (mnl_attr_get_payload_len(a) == alen)
				gw = mnl_attr_get_payload(a);
			break;
		case RTA_TABLE:
			if (mnl_attr_validate(a, MNL_TYPE_U32) == 0)
				table = mnl_attr_get_u32(a);
			break;
		case RTA_OIF:
			if (mnl_attr_validate(a, MNL_TYPE_U32) == 0)
				oif = mnl_attr_get_u32(a);
			break;
		case RTA_PREF:
			if (mnl_attr_validate(a, MNL_TYPE_U8) == 0) {
				pref = mnl_attr_get_u8(a);
				has_pref = 1;
			}
			break;
		}
	}
	/* The local table (the kernel's local and broadcast routes, ~60 % of a node's dump)
	 * holds nothing provium reads or manages. */
	if (table == RT_TABLE_LOCAL)
		return MNL_CB_OK;
	struct out *o = st->o;
	if (st->nroutes++)
		out_s(o, ",");
	char txt[INET6_ADDRSTRLEN], tmp[16];
	int first = 1;
	out_s(o, "{");
	out_key(o, &first, "type");
	out_fmt(o, "\"%s\"", rtype_name(rt->rtm_type, tmp));
	/* As iproute2: "default", "ADDR" for a host route, else "ADDR/LEN". */
	out_key(o, &first, "dst");
	if (dst) {
		inet_ntop(rt->rtm_family, dst, txt, sizeof(txt));
		if (rt->rtm_dst_len == alen * 8)
			out_fmt(o, "\"%s\"", txt);
		else
			out_fmt(o, "\"%s/%u\"", txt, rt->rtm_dst_len);
	} else if (rt->rtm_dst_len) {
		out_fmt(o, "\"0/%u\"", rt->rtm_dst_len);
	} else {
		out_s(o, "\"default\"");
	}
	if (gw) {
		inet_ntop(rt->rtm_family, gw, txt, sizeof(txt));
		out_key(o, &first, "gateway");
		out_fmt(o, "\"%s\"", txt);
	}
	if (oif) {
		struct link *l = find_link(st, (int)oif);
		out_key(o, &first, "dev");
		if (l)
			out_str(o, l->name, strlen(l->name));
		else
			out_fmt(o, "\"if%u\"", oif);
	}
	/* As `ip -j -d route show table all`: type, table, protocol and scope always. */
	out_key(o, &first, "table");
	if (table == RT_TABLE_MAIN)
		out_s(o, "\"main\"");
	else if (table == RT_TABLE_LOCAL)
		out_s(o, "\"local\"");
	else if (table == RT_TABLE_DEFAULT)
		out_s(o, "\"default\"");
	else
		out_fmt(o, "\"%u\"", table);
	out_key(o, &first, "protocol");
	out_fmt(o, "\"%s\"", proto_name(rt->rtm_protocol, tmp));
	out_key(o, &first, "scope");
	out_fmt(o, "\"%s\"", scope_name(rt->rtm_scope, tmp));
	if (has_pref) {
		out_key(o, &first, "pref");
		out_s(o, pref == 1 ? "\"high\"" : pref == 3 ? "\"low\"" : "\"medium\"");
	}
	out_s(o, "}");
	return MNL_CB_OK;
}

static void dumpst_free(struct dumpst *st)
{
	for (size_t i = 0; i < st->n; i++) {
		free(st->tab[i].addrs.p);
		free(st->tab[i].alias);
	}
	free(st->tab);
}

/* Every link of the socket's namespace into st (RTM_GETLINK dump, without statistics). 0, or -1 with e->no. */
static int dump_links(struct mnl_socket *nl, struct dumpst *st, struct err *e)
{
	char req[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(req);
	nlh->nlmsg_type = RTM_GETLINK;
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	return dump(nl, nlh, link_cb, st, e);
}

/* Links with their addresses (and, when `routes`, every route) as ,"links":[...] (,"routes":[...]). */
static int op_dump(struct mnl_socket *nl, struct out *o, int routes, struct err *e)
{
	struct dumpst st = { .o = o };
	char req[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;
	int r = dump_links(nl, &st, e);
	if (r == 0) {
		nlh = mnl_nlmsg_put_header(req);
		nlh->nlmsg_type = RTM_GETADDR;
		struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
		ifa->ifa_family = AF_UNSPEC;
		r = dump(nl, nlh, addr_cb, &st, e);
	}
	if (r == 0) {
		out_s(o, ",\"links\":[");
		for (size_t i = 0; i < st.n; i++) {
			if (i)
				out_s(o, ",");
			out_link(o, &st, &st.tab[i]);
		}
		out_s(o, "]");
	}
	if (r == 0 && routes) {
		out_s(o, ",\"routes\":[");
		nlh = mnl_nlmsg_put_header(req);
		nlh->nlmsg_type = RTM_GETROUTE;
		struct rtmsg *rt = mnl_nlmsg_put_extra_header(nlh, sizeof(*rt));
		rt->rtm_family = AF_UNSPEC;
		r = dump(nl, nlh, route_cb, &st, e);
		out_s(o, "]");
	}
	dumpst_free(&st);
	return r;
}

/* ---------- nftables generation ---------- */

static int gen_cb(const struct nlmsghdr *nlh, void *data)
{
	uint32_t *gen = data;
	const struct nlattr *a;
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
	{
		if (mnl_attr_get_type(a) == NFTA_GEN_ID && mnl_attr_validate(a, MNL_TYPE_U32) == 0)
			*gen = ntohl(mnl_attr_get_u32(a));
	}
	return MNL_CB_OK;
}

/* A JSON list being written: its output and how many items it has so far. */
struct listst {
	struct out *o;
	int n;
};

/* One table of an NFT_MSG_GETTABLE dump as "FAMILY NAME" (nft's family names). */
static int table_cb(const struct nlmsghdr *nlh, void *data)
{
	struct listst *st = data;
	if ((nlh->nlmsg_type & 0xff) != NFT_MSG_NEWTABLE)
		return MNL_CB_OK;
	const struct nfgenmsg *g = mnl_nlmsg_get_payload(nlh);
	const char *fam = g->nfgen_family == NFPROTO_INET ? "inet" : g->nfgen_family == NFPROTO_IPV4 ? "ip"
		: g->nfgen_family == NFPROTO_IPV6 ? "ip6" : g->nfgen_family == NFPROTO_BRIDGE ? "bridge"
		: g->nfgen_family == NFPROTO_ARP ? "arp" : g->nfgen_family == NFPROTO_NETDEV ? "netdev" : "unknown";
	const struct nlattr *a;
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
	{
		if (mnl_attr_get_type(a) != NFTA_TABLE_NAME || mnl_attr_validate(a, MNL_TYPE_NUL_STRING) != 0)
			continue;
		char name[300];
		snprintf(name, sizeof(name), "%s %s", fam, mnl_attr_get_str(a));
		if (st->n++)
			out_s(st->o, ",");
		out_str(st->o, name, strlen(name));
	}
	return MNL_CB_OK;
}

/*
 * ,"gen":N,"cookie":"HEX","tables":["FAMILY NAME",...]: the nftables ruleset generation of
 * the namespace (bumped by every committed transaction there), the namespace's cookie
 * (SO_NETNS_COOKIE: unique for the boot, never reused), so a reader can tell that neither
 * changed, and the names of its tables (read after the generation), so a reader can tell
 * that a table is absent without listing the ruleset.
 */
static int op_nftgen(const char *ns, struct out *o, struct err *e)
{
	struct mnl_socket *nl = ns_socket(ns, NETLINK_NETFILTER);
	if (!nl) {
		e->no = errno;
		return -1;
	}
	uint64_t cookie = 0;
	socklen_t clen = sizeof(cookie);
	if (getsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, 71 /* SO_NETNS_COOKIE */, &cookie, &clen) < 0) {
		e->no = errno;
		snprintf(e->ext, sizeof(e->ext), "no network namespace cookie (SO_NETNS_COOKIE needs Linux 5.14)");
		mnl_socket_close(nl);
		return -1;
	}
	char req[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(req);
	nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nlh->nlmsg_seq = ++seq;
	struct nfgenmsg *g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->nfgen_family = AF_UNSPEC;
	g->version = NFNETLINK_V0;
	g->res_id = 0;
	uint32_t gen = 0;
	int r = -1;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		e->no = errno;
	} else {
		static char buf[RECV_BUF];
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n < 0) {
			e->no = errno;
		} else if (mnl_cb_run(buf, (size_t)n, seq, mnl_socket_get_portid(nl), gen_cb, &gen) < 0) {
			e->no = errno;
		} else {
			out_fmt(o, ",\"gen\":%u,\"cookie\":\"%llx\",\"tables\":[", gen, (unsigned long long)cookie);
			struct listst st = { .o = o };
			nlh = mnl_nlmsg_put_header(req);
			nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE;
			g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
			g->nfgen_family = NFPROTO_UNSPEC;
			g->version = NFNETLINK_V0;
			g->res_id = 0;
			r = dump(nl, nlh, table_cb, &st, e);
			out_s(o, "]");
		}
	}
	mnl_socket_close(nl);
	return r;
}

/* ---------- traffic control (read only) ---------- */

/* One HTB or netem qdisc of a dump. */
struct qd {
	int ifindex;
	uint32_t handle, parent, defcls, limit;
	int netem;
	int64_t latency_ns, jitter_ns;
};

struct tcst {
	struct qd *q;
	size_t n, cap;
	struct out *o;
	const char *dev;
	int nclasses;
};

static const struct nlattr *nested_attr(const struct nlattr *nest, uint16_t type)
{
	const struct nlattr *a;
	mnl_attr_for_each_nested(a, nest)
	{
		if (mnl_attr_get_type(a) == type)
			return a;
	}
	return NULL;
}

/* A qdisc's or class's TCA_KIND (into kind[16]) and its TCA_OPTIONS attribute (NULL when absent). */
static const struct nlattr *tc_kind(const struct nlmsghdr *nlh, char *kind, size_t klen)
{
	const struct nlattr *a, *opts = NULL;
	kind[0] = 0;
	mnl_attr_for_each(a, nlh, sizeof(struct tcmsg))
	{
		if (mnl_attr_get_type(a) == TCA_KIND && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
			snprintf(kind, klen, "%s", mnl_attr_get_str(a));
		else if (mnl_attr_get_type(a) == TCA_OPTIONS)
			opts = a;
	}
	return opts;
}

static int qdisc_cb(const struct nlmsghdr *nlh, void *data)
{
	struct tcst *st = data;
	if (nlh->nlmsg_type != RTM_NEWQDISC)
		return MNL_CB_OK;
	const struct tcmsg *tcm = mnl_nlmsg_get_payload(nlh);
	char kind[16];
	const struct nlattr *opts = tc_kind(nlh, kind, sizeof(kind));
	int netem = strcmp(kind, "netem") == 0;
	if (!netem && strcmp(kind, "htb") != 0)
		return MNL_CB_OK;
	struct qd *tab = grow(st->q, &st->cap, st->n, sizeof(*tab));
	if (!tab)
		return MNL_CB_OK;
	st->q = tab;
	struct qd *q = &st->q[st->n];
	memset(q, 0, sizeof(*q));
	q->ifindex = tcm->tcm_ifindex;
	q->handle = tcm->tcm_handle;
	q->parent = tcm->tcm_parent;
	q->netem = netem;
	if (opts && !netem) {
		/* HTB: TCA_OPTIONS nests TCA_HTB_INIT, struct tc_htb_glob (its default class). */
		const struct nlattr *init = nested_attr(opts, TCA_HTB_INIT);
		if (init && mnl_attr_get_payload_len(init) >= sizeof(struct tc_htb_glob))
			q->defcls = ((const struct tc_htb_glob *)mnl_attr_get_payload(init))->defcls;
	} else if (opts && mnl_attr_get_payload_len(opts) >= sizeof(struct tc_netem_qopt)) {
		/* netem: struct tc_netem_qopt, then attributes (iproute2's parse_rtattr_nested_compat). */
		const struct tc_netem_qopt *qopt = mnl_attr_get_payload(opts);
		q->limit = qopt->limit;
		q->latency_ns = (int64_t)qopt->latency << 6; /* psched ticks (64 ns): kernels before 4.15 */
		q->jitter_ns = (int64_t)qopt->jitter << 6;
		size_t off = MNL_ALIGN(sizeof(*qopt));
		size_t len = mnl_attr_get_payload_len(opts);
		const char *p = (const char *)mnl_attr_get_payload(opts) + off;
		size_t left = len > off ? len - off : 0;
		while (left >= sizeof(struct nlattr)) {
			const struct nlattr *b = (const struct nlattr *)p;
			if (b->nla_len < sizeof(struct nlattr) || b->nla_len > left)
				break;
			if (mnl_attr_get_type(b) == TCA_NETEM_LATENCY64 && mnl_attr_get_payload_len(b) == 8)
				memcpy(&q->latency_ns, mnl_attr_get_payload(b), 8);
			else if (mnl_attr_get_type(b) == TCA_NETEM_JITTER64 && mnl_attr_get_payload_len(b) == 8)
				memcpy(&q->jitter_ns, mnl_attr_get_payload(b), 8);
			size_t step = MNL_ALIGN(b->nla_len);
			if (step > left)
				break;
			p += step;
			left -= step;
		}
	}
	st->n++;
	return MNL_CB_OK;
}

/* "86e0:" / "86e0:2" as tc prints handles and class ids (hex). */
static void out_handle(struct out *o, uint32_t h, int minor)
{
	if (minor)
		out_fmt(o, "\"%x:%x\"", h >> 16, h & 0xffff);
	else
		out_fmt(o, "\"%x:\"", h >> 16);
}

static int class_cb(const struct nlmsghdr *nlh, void *data)
{
	struct tcst *st = data;
	if (nlh->nlmsg_type != RTM_NEWTCLASS)
		return MNL_CB_OK;
	const struct tcmsg *tcm = mnl_nlmsg_get_payload(nlh);
	char kind[16];
	const struct nlattr *opts = tc_kind(nlh, kind, sizeof(kind));
	if (strcmp(kind, "htb") != 0 || !opts)
		return MNL_CB_OK;
	/* struct tc_htb_opt carries rate and ceil in bytes/s (32 bits); TCA_HTB_RATE64/CEIL64 when larger. */
	const struct nlattr *parms = nested_attr(opts, TCA_HTB_PARMS);
	if (!parms || mnl_attr_get_payload_len(parms) < sizeof(struct tc_htb_opt))
		return MNL_CB_OK;
	const struct tc_htb_opt *h = mnl_attr_get_payload(parms);
	uint64_t rate = h->rate.rate, ceil = h->ceil.rate;
	const struct nlattr *r64 = nested_attr(opts, TCA_HTB_RATE64), *c64 = nested_attr(opts, TCA_HTB_CEIL64);
	if (r64 && mnl_attr_get_payload_len(r64) == 8)
		memcpy(&rate, mnl_attr_get_payload(r64), 8);
	if (c64 && mnl_attr_get_payload_len(c64) == 8)
		memcpy(&ceil, mnl_attr_get_payload(c64), 8);
	if (st->nclasses++)
		out_s(st->o, ",");
	out_s(st->o, "{\"dev\":");
	out_str(st->o, st->dev, strlen(st->dev));
	out_s(st->o, ",\"class\":");
	out_handle(st->o, tcm->tcm_handle, 1);
	out_s(st->o, ",\"parent\":");
	if (tcm->tcm_parent == TC_H_ROOT)
		out_s(st->o, "\"root\"");
	else
		out_handle(st->o, tcm->tcm_parent, 1);
	out_fmt(st->o, ",\"rate\":%llu,\"ceil\":%llu}", (unsigned long long)rate * 8, (unsigned long long)ceil * 8);
	return MNL_CB_OK;
}

/*
 * ,"qdiscs":[...],"classes":[...]: the HTB and netem qdiscs of every link of the namespace,
 * with the keys and value forms of `tc -j qdisc show` (iproute2 6.1) that provium reads:
 *   {"kind":"htb","handle":"86e0:","dev":D,"root":true,"options":{"default":"0x2"}}
 *   {"kind":"netem","handle":"8001:","dev":D,"parent":"86e0:2","options":{"limit":N,
 *    "delay":{"delay":S,"jitter":S}}}    (seconds, like iproute2's JSON)
 * and the HTB classes of every link whose root qdisc is HTB, rate and ceil in bits/s:
 *   {"dev":D,"class":"86e0:2","parent":"86e0:1"|"root","rate":N,"ceil":N}
 * Other qdisc kinds are left out (provium reads only these).
 */
static int op_tc(struct mnl_socket *nl, struct out *o, struct err *e)
{
	struct dumpst links = { .o = o };
	struct tcst st = { .o = o };
	char req[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;
	int r = dump_links(nl, &links, e);
	if (r == 0) {
		nlh = mnl_nlmsg_put_header(req);
		nlh->nlmsg_type = RTM_GETQDISC;
		struct tcmsg *tcm = mnl_nlmsg_put_extra_header(nlh, sizeof(*tcm));
		tcm->tcm_family = AF_UNSPEC;
		r = dump(nl, nlh, qdisc_cb, &st, e);
	}
	if (r == 0) {
		out_s(o, ",\"qdiscs\":[");
		int n = 0;
		for (size_t i = 0; i < st.n; i++) {
			struct qd *q = &st.q[i];
			struct link *l = find_link(&links, q->ifindex);
			if (!l)
				continue;
			out_s(o, n++ ? ",{\"kind\":" : "{\"kind\":");
			out_s(o, q->netem ? "\"netem\"" : "\"htb\"");
			out_s(o, ",\"handle\":");
			out_handle(o, q->handle, 0);
			out_s(o, ",\"dev\":");
			out_str(o, l->name, strlen(l->name));
			if (q->parent == TC_H_ROOT) {
				out_s(o, ",\"root\":true");
			} else {
				out_s(o, ",\"parent\":");
				out_handle(o, q->parent, 1);
			}
			if (q->netem) {
				out_fmt(o, ",\"options\":{\"limit\":%u", q->limit);
				if (q->latency_ns || q->jitter_ns)
					out_fmt(o, ",\"delay\":{\"delay\":%.9f,\"jitter\":%.9f}", (double)q->latency_ns / 1e9, (double)q->jitter_ns / 1e9);
				out_s(o, "}}");
			} else {
				out_fmt(o, ",\"options\":{\"default\":\"0x%x\"}}", q->defcls);
			}
		}
		out_s(o, "],\"classes\":[");
		for (size_t i = 0; r == 0 && i < st.n; i++) {
			struct qd *q = &st.q[i];
			struct link *l = find_link(&links, q->ifindex);
			if (q->netem || q->parent != TC_H_ROOT || !l)
				continue;
			st.dev = l->name;
			nlh = mnl_nlmsg_put_header(req);
			nlh->nlmsg_type = RTM_GETTCLASS;
			struct tcmsg *tcm = mnl_nlmsg_put_extra_header(nlh, sizeof(*tcm));
			tcm->tcm_family = AF_UNSPEC;
			tcm->tcm_ifindex = q->ifindex;
			r = dump(nl, nlh, class_cb, &st, e);
		}
		out_s(o, "]");
	}
	free(st.q);
	dumpst_free(&links);
	return r;
}

/* The sysctls the helper reads and writes: forwarding only (what provium manages per namespace). */
static const char *sysctl_path(const char *name)
{
	if (strcmp(name, "net.ipv4.ip_forward") == 0)
		return "/proc/sys/net/ipv4/ip_forward";
	if (strcmp(name, "net.ipv6.conf.all.forwarding") == 0)
		return "/proc/sys/net/ipv6/conf/all/forwarding";
	return NULL;
}

/*
 * sysctl-get / sysctl-set in namespace `ns`: /proc/sys/net shows the namespace of the
 * thread that opens it, so the file is opened (and read or written) inside `ns`.
 */
static int op_sysctl(const char *ns, int set, const char *name, const char *value, struct out *o, struct err *e)
{
	const char *path = sysctl_path(name);
	if (!path || (set && strcmp(value, "0") != 0 && strcmp(value, "1") != 0)) {
		e->no = EINVAL;
		snprintf(e->ext, sizeof(e->ext), "sysctl %.64s%s%.8s not allowed", name, set ? "=" : "", set ? value : "");
		return -1;
	}
	if (enter_ns(ns) < 0) {
		e->no = errno;
		snprintf(e->ext, sizeof(e->ext), "cannot enter network namespace \"%.200s\"", ns);
		return -1;
	}
	int r = -1;
	int fd = open(path, (set ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
	if (fd < 0) {
		e->no = errno;
		snprintf(e->ext, sizeof(e->ext), "%s", path);
	} else if (set) {
		if (write(fd, value, 1) == 1)
			r = 0;
		else
			e->no = errno;
	} else {
		char buf[64];
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		if (n < 0) {
			e->no = errno;
		} else {
			while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
				n--;
			buf[n] = 0;
			out_fmt(o, ",\"sysctl:%s\":", name);
			out_str(o, buf, (size_t)n);
			r = 0;
		}
	}
	if (fd >= 0)
		close(fd);
	leave_ns(ns);
	return r;
}

/* ---------- requests ---------- */

struct opdef {
	const char *name;
	int nargs;
};

static const struct opdef OPS[] = {
	{ "up", 1 }, { "down", 1 }, { "mtu", 2 }, { "address", 2 }, { "alias", 2 },
	{ "addr-add", 2 }, { "addr-add-nodad", 2 }, { "addr-del", 2 },
	{ "route-replace", 2 }, { "route-del", 2 }, { "dump", 0 }, { "links", 0 }, { "tc", 0 }, { "nft-gen", 0 },
	{ "sysctl-get", 1 }, { "sysctl-set", 2 }, { "link-del", 1 }, { "netns-del", 1 },
};

static const struct opdef *find_op(const char *s)
{
	for (size_t i = 0; i < sizeof(OPS) / sizeof(OPS[0]); i++)
		if (strcmp(OPS[i].name, s) == 0)
			return &OPS[i];
	return NULL;
}

static void respond_error(struct out *o, const char *id, struct err *e, const char *msg)
{
	int first = 1;
	o->len = 0;
	out_s(o, "{");
	out_key(o, &first, "id");
	out_s(o, id);
	out_key(o, &first, "ok");
	out_s(o, "false");
	out_key(o, &first, "op");
	out_fmt(o, "%d", e->op);
	out_key(o, &first, "errno");
	out_fmt(o, "%d", e->no);
	out_key(o, &first, "error");
	const char *m = msg ? msg : strerror(e->no);
	out_str(o, m, strlen(m));
	if (e->ext[0]) {
		out_key(o, &first, "ext");
		out_str(o, e->ext, strlen(e->ext));
	}
	out_s(o, "}\n");
}

static int valid_id(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 15)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* Handles one request payload (fields NUL-terminated); writes exactly one JSON line to o. */
static void handle(const char *p, size_t len, struct out *o)
{
	const char *f[4096];
	size_t nf = 0;
	for (size_t i = 0; i < len;) {
		const char *z = memchr(p + i, 0, len - i);
		if (!z || nf == sizeof(f) / sizeof(f[0]))
			break;
		f[nf++] = p + i;
		i = (size_t)(z - p) + 1;
	}
	struct err e = { .op = -1 };
	if (nf < 2 || !valid_id(f[0])) {
		e.no = EINVAL;
		respond_error(o, "0", &e, "malformed request (expected ID and NAMESPACE fields)");
		return;
	}
	const char *id = f[0];
	/* Check every operation before touching the namespace: a malformed request does nothing. */
	for (size_t i = 2; i < nf;) {
		const struct opdef *d = find_op(f[i]);
		e.op = (int)i;
		if (!d || i + (size_t)d->nargs >= nf) {
			e.no = EINVAL;
			snprintf(e.ext, sizeof(e.ext), "unknown operation or missing arguments: \"%.64s\"", f[i]);
			e.op = -1;
			respond_error(o, id, &e, "malformed request");
			return;
		}
		if (strncmp(d->name, "sysctl-", 7) == 0 && !sysctl_path(f[i + 1])) {
			e.no = EINVAL;
			snprintf(e.ext, sizeof(e.ext), "sysctl \"%.64s\" not allowed", f[i + 1]);
			e.op = -1;
			respond_error(o, id, &e, "malformed request");
			return;
		}
		if (strcmp(d->name, "netns-del") == 0 && !valid_ns_name(f[i + 1])) {
			e.no = EINVAL;
			snprintf(e.ext, sizeof(e.ext), "bad namespace name \"%.64s\"", f[i + 1]);
			e.op = -1;
			respond_error(o, id, &e, "malformed request");
			return;
		}
		if (d->nargs && !valid_dev(f[i + 1]) && strncmp(d->name, "route", 5) != 0 && strncmp(d->name, "sysctl-", 7) != 0 && strcmp(d->name, "netns-del") != 0) {
			e.no = EINVAL;
			snprintf(e.ext, sizeof(e.ext), "bad interface name \"%.64s\"", f[i + 1]);
			e.op = -1;
			respond_error(o, id, &e, "malformed request");
			return;
		}
		i += 1 + (size_t)d->nargs;
	}
	struct mnl_socket *nl = ns_socket(f[1], NETLINK_ROUTE);
	if (!nl) {
		e.op = -1;
		e.no = errno;
		snprintf(e.ext, sizeof(e.ext), "cannot enter network namespace \"%.200s\"", f[1]);
		respond_error(o, id, &e, NULL);
		return;
	}
	o->len = 0;
	int first = 1;
	out_s(o, "{");
	out_key(o, &first, "id");
	out_s(o, id);
	out_key(o, &first, "ok");
	out_s(o, "true");
	int k = 0;
	for (size_t i = 2; i < nf; k++) {
		const struct opdef *d = find_op(f[i]);
		const char *op = d->name;
		const char *a1 = d->nargs > 0 ? f[i + 1] : NULL;
		const char *a2 = d->nargs > 1 ? f[i + 2] : NULL;
		e.op = k;
		e.ext[0] = 0;
		int r;
		if (strcmp(op, "dump") == 0 || strcmp(op, "links") == 0)
			r = op_dump(nl, o, op[0] == 'd', &e);
		else if (strcmp(op, "tc") == 0)
			r = op_tc(nl, o, &e);
		else if (strcmp(op, "nft-gen") == 0)
			r = op_nftgen(f[1], o, &e);
		else if (strncmp(op, "sysctl-", 7) == 0)
			r = op_sysctl(f[1], op[7] == 's', a1, a2, o, &e);
		else if (strncmp(op, "addr-", 5) == 0)
			r = op_addr(nl, op, a1, a2, &e);
		else if (strncmp(op, "route-", 6) == 0)
			r = op_route(nl, op, a1, a2, &e);
		else if (strcmp(op, "link-del") == 0)
			r = op_link_del(nl, a1, &e);
		else if (strcmp(op, "netns-del") == 0)
			r = op_netns_del(f[1], a1, &e);
		else
			r = op_link(nl, op, a1, a2, &e);
		if (r < 0) {
			mnl_socket_close(nl);
			respond_error(o, id, &e, NULL);
			return;
		}
		i += 1 + (size_t)d->nargs;
	}
	mnl_socket_close(nl);
	out_s(o, "}\n");
}

static int read_full(FILE *in, void *buf, size_t n)
{
	return fread(buf, 1, n, in) == n ? 0 : -1;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("provium-nl %s\n", PROTOCOL_VERSION);
		return 0;
	}
	if (argc != 1) {
		fprintf(stderr, "usage: provium-nl [--version]  (requests on stdin, see native/provium-nl.c)\n");
		return 2;
	}
	self_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self_ns < 0) {
		perror("provium-nl: /proc/self/ns/net");
		return 1;
	}
	static char inbuf[1 << 16];
	setvbuf(stdin, inbuf, _IOFBF, sizeof(inbuf));
	char *req = malloc(MAX_REQUEST);
	struct out o = { 0 };
	if (!req) {
		perror("provium-nl: malloc");
		return 1;
	}
	for (;;) {
		unsigned char hdr[4];
		if (read_full(stdin, hdr, 4) < 0)
			break; /* end of input: provium is done */
		uint32_t len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
		if (len > MAX_REQUEST) {
			fprintf(stderr, "provium-nl: request of %u bytes (at most %u)\n", len, MAX_REQUEST);
			return 1;
		}
		if (read_full(stdin, req, len) < 0) {
			fprintf(stderr, "provium-nl: truncated request\n");
			return 1;
		}
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		handle(req, len, &o);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		/* Every response ends with "}\n": add the helper's own time before it. */
		long us = (long)(t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000L;
		o.len -= 2;
		out_fmt(&o, ",\"us\":%ld}\n", us);
		if (fwrite(o.p, 1, o.len, stdout) != o.len || fflush(stdout) != 0)
			return 1;
	}
	return 0;
}
