// SPDX-License-Identifier: Apache-2.0
/* Rampart's XDP filter: drops by source prefix (IPv4 hosts in a hash, shorter prefixes in a
 * DIR-24-8 table, IPv6 per-length hashes searched
 * longest first), by signature per protected destination, by per-source token bucket, and
 * limits SYNs per source for guarded destinations. Rules carry their expiry; an expired rule
 * matches nothing even if no daemon is left to remove it. xdp_lpm is the same filter over the
 * kernel's LPM trie, kept only as the benchmark's comparison. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "rampart.h"

#define NS_PER_SEC 1000000000ull
#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88A8
#define IPPROTO_FRAGMENT_ 44
#define TCP_SYN 0x02
#define TCP_ACK 0x10

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TBL24_BLOCKS);
	__type(key, __u32);
	__type(value, struct tbl24_block);
} v4_tbl24 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct tbl8_group);
} v4_tbl8 SEC(".maps");

/* IPv4 /32s: a ban list of single hosts would need one tbl8 group per /24 it touches, so
 * hosts live in a hash tried first (the longest match there is). Key in network order. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1048576);
	__type(key, __u32);
	__type(value, __u32);
} v4_hosts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 131072);
	__type(key, struct prefix_key);
	__type(value, __u32);
} v6_prefixes SEC(".maps");

/* Index 0: IPv6 source lengths below /32 (always searched); 1: /32 and longer, searched only
 * when v6_filter has the bit of the source's /32. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct lengths);
} v6_lengths SEC(".maps");

/* A one-hash Bloom filter over the /32s of IPv6 source prefixes of /32 and longer: most
 * sources match nothing, and this turns their per-length search into one array read. Not
 * keyed: a source crafted to hit a set bit only takes the full search, still exact. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, V6_FILTER_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} v6_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2097152);
	__type(key, __u32);
	__type(value, struct rule);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2097152);
	__type(key, __u32);
	__type(value, struct counters);
} rule_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct prefix_key);
	__type(value, struct dst_entry);
} dsts SEC(".maps");

/* Index 0: IPv4 destination lengths, 1: IPv6. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct lengths);
} dst_lengths SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct sig_match);
} sig_matches SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct bucket_key);
	__type(value, struct bucket);
} buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* Loader bookkeeping, never read by the program: index 0 holds the highest rule slot in
 * use, so status and restore read only that many rules, not the whole array. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} meta SEC(".maps");

struct lpm_v4_key {
	__u32 prefixlen;
	__u32 addr;
};

struct lpm_v6_key {
	__u32 prefixlen;
	__u32 addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 2097152);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4_key);
	__type(value, __u32);
} lpm_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 131072);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v6_key);
	__type(value, __u32);
} lpm_v6 SEC(".maps");

/* What the filter looks at in a packet. Addresses in network order. */
struct pkt {
	__u32 src[4];
	__u32 dst[4];
	__u32 length; /* IP total length */
	__u8 family;  /* 4 or 6 */
	__u8 protocol;
	__u8 has_ports;
	__u8 tcp_flags;
	__u8 non_initial;
	__u16 sport;
	__u16 dport;
};

static __always_inline void count_stat(__u32 index)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &index);
	if (v)
		*v += 1;
}

/* 0: parsed; -1: not IP (or truncated), let it through. */
static __always_inline int parse(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u64 off = sizeof(*eth);
	if ((void *)(eth + 1) > end)
		return -1;
	__u16 proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q_) || proto == bpf_htons(ETH_P_8021AD_)) {
		__u16 *inner = data + off + 2;
		if ((void *)(inner + 1) > end)
			return -1;
		proto = *inner;
		off += 4;
	}
	void *l4;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + off;
		if ((void *)(ip + 1) > end)
			return -1;
		__u32 ihl = ip->ihl * 4;
		if (ihl < sizeof(*ip))
			return -1;
		p->family = 4;
		p->src[0] = ip->saddr;
		p->dst[0] = ip->daddr;
		p->protocol = ip->protocol;
		p->length = bpf_ntohs(ip->tot_len);
		p->non_initial = (ip->frag_off & bpf_htons(0x1fff)) != 0;
		l4 = (void *)ip + ihl;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;
		if ((void *)(ip6 + 1) > end)
			return -1;
		p->family = 6;
		__builtin_memcpy(p->src, &ip6->saddr, 16);
		__builtin_memcpy(p->dst, &ip6->daddr, 16);
		p->protocol = ip6->nexthdr;
		p->length = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
		l4 = ip6 + 1;
		if (p->protocol == IPPROTO_FRAGMENT_) {
			/* next header, reserved, offset+flags, id */
			__u8 *frag = l4;
			if ((void *)(frag + 8) > end)
				return 0;
			p->protocol = frag[0];
			p->non_initial = ((frag[2] << 8 | frag[3]) & 0xfff8) != 0;
			l4 = frag + 8;
		}
	} else {
		return -1;
	}
	if (p->non_initial)
		return 0;
	if (p->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;
		if ((void *)(tcp + 1) > end)
			return 0;
		p->has_ports = 1;
		p->sport = bpf_ntohs(tcp->source);
		p->dport = bpf_ntohs(tcp->dest);
		p->tcp_flags = ((__u8 *)tcp)[13];
	} else if (p->protocol == IPPROTO_UDP) {
		struct udphdr *udp = l4;
		if ((void *)(udp + 1) > end)
			return 0;
		p->has_ports = 1;
		p->sport = bpf_ntohs(udp->source);
		p->dport = bpf_ntohs(udp->dest);
	}
	return 0;
}

static __always_inline void mask_into(struct prefix_key *key, const __u32 *addr, __u32 len)
{
#pragma unroll
	for (int w = 0; w < 4; w++) {
		int bits = (int)len - 32 * w;
		__u32 m = bits <= 0 ? 0 : bits >= 32 ? 0xffffffffu : bpf_htonl(0xffffffffu << (32 - bits));
		key->addr[w] = addr[w] & m;
	}
}

/* Longest-first search of a per-length hash. */
static __always_inline void *lookup_by_length(void *map, const struct lengths *lens, __u8 family,
					      const __u32 *addr)
{
	struct prefix_key key = {};
	key.family = family;
	__u32 count = lens->count;
	for (__u32 i = 0; i < MAX_LENGTHS; i++) {
		if (i >= count)
			break;
		__u32 len = lens->len[i];
		key.len = len;
		mask_into(&key, addr, len);
		void *v = bpf_map_lookup_elem(map, &key);
		if (v)
			return v;
	}
	return 0;
}

static __always_inline __u32 v6_filter_bit(__u32 top32)
{
	return (top32 * V6_FILTER_MULTIPLIER) >> (32 - V6_FILTER_BITS_LOG2);
}

static __always_inline __u32 source_rule(const struct pkt *p)
{
	if (p->family == 4) {
		__u32 *host = bpf_map_lookup_elem(&v4_hosts, &p->src[0]);
		if (host)
			return *host;
		__u32 s = bpf_ntohl(p->src[0]);
		__u32 slot24 = s >> 8;
		__u32 block = slot24 / TBL24_SLOTS_PER_BLOCK;
		struct tbl24_block *b = bpf_map_lookup_elem(&v4_tbl24, &block);
		if (!b)
			return 0;
		__u32 v = b->slot[slot24 & (TBL24_SLOTS_PER_BLOCK - 1)];
		if (v & TBL8_FLAG) {
			__u32 group = v & ~TBL8_FLAG;
			struct tbl8_group *g = bpf_map_lookup_elem(&v4_tbl8, &group);
			if (!g)
				return 0;
			v = g->slot[s & 0xff];
		}
		return v;
	}
	__u32 index = 1;
	struct lengths *lens = bpf_map_lookup_elem(&v6_lengths, &index);
	if (lens && lens->count) {
		__u32 bit = v6_filter_bit(bpf_ntohl(p->src[0]));
		__u32 word = bit / 64;
		__u64 *w = bpf_map_lookup_elem(&v6_filter, &word);
		if (w && (*w >> (bit % 64)) & 1) {
			__u32 *rule = lookup_by_length(&v6_prefixes, lens, 6, p->src);
			if (rule)
				return *rule;
		}
	}
	index = 0;
	lens = bpf_map_lookup_elem(&v6_lengths, &index);
	if (!lens || !lens->count)
		return 0;
	__u32 *rule = lookup_by_length(&v6_prefixes, lens, 6, p->src);
	return rule ? *rule : 0;
}

static __always_inline __u64 now_ns(__u64 *now)
{
	if (!*now)
		*now = bpf_ktime_get_boot_ns();
	return *now;
}

/* The rule if it exists and has not expired. */
static __always_inline struct rule *active_rule(__u32 id, __u64 *now)
{
	if (!id)
		return 0;
	struct rule *r = bpf_map_lookup_elem(&rules, &id);
	if (!r || r->action == ACTION_NONE)
		return 0;
	if (r->expires_ns && now_ns(now) >= r->expires_ns)
		return 0;
	return r;
}

static __always_inline int drop_counted(__u32 id, const struct pkt *p)
{
	struct counters *c = bpf_map_lookup_elem(&rule_stats, &id);
	if (c) {
		c->packets += 1;
		c->bytes += p->length;
	}
	count_stat(STAT_DROPPED);
	return XDP_DROP;
}

/* Refills a token bucket (burst: one second of rate) and takes the packet's cost from it. */
static __always_inline int bucket_take(__u64 *tokens, __u64 *last, __u64 now, __u32 rate, __u64 cost)
{
	__u64 cap = (__u64)rate * NS_PER_SEC;
	__u64 elapsed = now - *last;
	if (*last == 0 || elapsed >= NS_PER_SEC) {
		*tokens = cap;
	} else {
		__u64 t = *tokens + elapsed * rate;
		*tokens = t > cap ? cap : t;
	}
	*last = now;
	__u64 want = cost * NS_PER_SEC;
	if (*tokens >= want) {
		*tokens -= want;
		return 1;
	}
	return 0;
}

static __always_inline __u64 cost_of(const struct rule *r, const struct pkt *p)
{
	return r->action == ACTION_RATE_BYTES ? p->length : 1;
}

/* Per-source bucket under a rule: 1 if the packet may pass. */
static __always_inline int source_bucket_take(__u32 id, const struct rule *r, const struct pkt *p, __u64 *now)
{
	struct bucket_key key = {};
	key.rule = id;
	__builtin_memcpy(key.addr, p->src, 16);
	__u64 t = now_ns(now);
	__u64 cost = cost_of(r, p);
	struct bucket *b = bpf_map_lookup_elem(&buckets, &key);
	if (b)
		return bucket_take(&b->tokens, &b->last_ns, t, r->rate, cost);
	struct bucket fresh = {};
	int ok = bucket_take(&fresh.tokens, &fresh.last_ns, t, r->rate, cost);
	bpf_map_update_elem(&buckets, &key, &fresh, BPF_ANY);
	return ok;
}

static __always_inline int in_ranges(const struct port_range *ranges, __u8 n, __u16 port)
{
#pragma unroll
	for (int i = 0; i < MAX_PORT_RANGES; i++) {
		if (i < n && ranges[i].first <= port && port <= ranges[i].last)
			return 1;
	}
	return 0;
}

static __always_inline int sig_match(const struct sig_match *m, const struct pkt *p)
{
	if (m->has_protocol && m->protocol != p->protocol)
		return 0;
	if (m->fragment == FRAGMENT_NON_INITIAL && !p->non_initial)
		return 0;
	if (m->fragment == FRAGMENT_NOT_NON_INITIAL && p->non_initial)
		return 0;
	if (p->length < m->len_min || p->length > m->len_max)
		return 0;
	if ((p->tcp_flags & m->tcp_mask) != (m->tcp_value & m->tcp_mask))
		return 0;
	if (m->n_src && !(p->has_ports && in_ranges(m->src, m->n_src, p->sport)))
		return 0;
	if (m->n_dst && !(p->has_ports && in_ranges(m->dst, m->n_dst, p->dport)))
		return 0;
	return 1;
}

static __always_inline int destination_verdict(const struct pkt *p, __u64 *now)
{
	__u32 li = p->family == 4 ? 0 : 1;
	struct lengths *lens = bpf_map_lookup_elem(&dst_lengths, &li);
	if (!lens || !lens->count)
		return XDP_PASS;
	struct dst_entry *d = lookup_by_length(&dsts, lens, p->family, p->dst);
	if (!d)
		return XDP_PASS;
	for (__u32 i = 0; i < MAX_SIGS_PER_DST; i++) {
		if (i >= d->count)
			break;
		__u32 index = d->sig[i];
		struct sig_match *m = bpf_map_lookup_elem(&sig_matches, &index);
		if (!m || !sig_match(m, p))
			continue;
		__u32 id = m->rule;
		struct rule *r = active_rule(id, now);
		if (!r)
			continue;
		if (r->action == ACTION_DROP)
			return drop_counted(id, p);
		if (!bucket_take(&m->tokens, &m->last_ns, now_ns(now), r->rate, cost_of(r, p)))
			return drop_counted(id, p);
	}
	if (d->syn_rule && p->protocol == IPPROTO_TCP && p->has_ports &&
	    (p->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN) {
		__u32 id = d->syn_rule;
		struct rule *r = active_rule(id, now);
		if (r && r->action != ACTION_DROP && !source_bucket_take(id, r, p, now))
			return drop_counted(id, p);
	}
	return XDP_PASS;
}

static __always_inline int verdict_for_source(__u32 id, const struct pkt *p, __u64 *now)
{
	struct rule *r = active_rule(id, now);
	if (!r)
		return XDP_PASS;
	if (r->action == ACTION_DROP)
		return drop_counted(id, p);
	if (!source_bucket_take(id, r, p, now))
		return drop_counted(id, p);
	return XDP_PASS;
}

SEC("xdp")
int xdp_rampart(struct xdp_md *ctx)
{
	struct pkt p = {};
	count_stat(STAT_SEEN);
	if (parse(ctx, &p) < 0) {
		count_stat(STAT_NOT_IP);
		return XDP_PASS;
	}
	__u64 now = 0;
	if (verdict_for_source(source_rule(&p), &p, &now) == XDP_DROP)
		return XDP_DROP;
	if (destination_verdict(&p, &now) == XDP_DROP)
		return XDP_DROP;
	count_stat(STAT_PASSED);
	return XDP_PASS;
}

/* The benchmark's comparison: the same source filter over the kernel LPM trie. */
SEC("xdp")
int xdp_lpm(struct xdp_md *ctx)
{
	struct pkt p = {};
	count_stat(STAT_SEEN);
	if (parse(ctx, &p) < 0)
		return XDP_PASS;
	__u32 *rule;
	if (p.family == 4) {
		struct lpm_v4_key key = { .prefixlen = 32, .addr = p.src[0] };
		rule = bpf_map_lookup_elem(&lpm_v4, &key);
	} else {
		struct lpm_v6_key key = { .prefixlen = 128 };
		__builtin_memcpy(key.addr, p.src, 16);
		rule = bpf_map_lookup_elem(&lpm_v6, &key);
	}
	__u64 now = 0;
	if (rule && verdict_for_source(*rule, &p, &now) == XDP_DROP)
		return XDP_DROP;
	count_stat(STAT_PASSED);
	return XDP_PASS;
}
