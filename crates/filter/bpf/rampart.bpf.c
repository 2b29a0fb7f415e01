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
#define TCP_RST 0x04
#define TCP_ACK 0x10
#define BPF_F_CURRENT_NETNS_ (-1L)
#define BPF_TCP_LISTEN_ 10

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by the loader before loading: 1 when the kernel has the raw SYN cookie helpers (probed).
 * At 0 their calls are dead code the verifier never walks, so the program still loads on a
 * kernel without them and SYN guards use the per-source rate instead. */
const volatile __u32 have_syncookies = 0;

/* The source tables come in generations: each table is an outer array of SOURCE_GENS slots
 * holding inner maps, and source_gen names the live generation. A full reload fills a new
 * generation off to the side, puts it in the other slots, flips source_gen in one update and
 * then deletes the old slots (the kernel frees those maps once no program holds them): a
 * packet sees one whole generation, never a half-filled table, and no large map is emptied
 * in place. A lookup that finds a slot of its generation empty (deleted just after the flip)
 * takes the other generation, whole. The inner maps are sized by the loader (these
 * templates hold the defaults; sizes rather than BTF types: libbpf cannot size a value type
 * that is reachable only through an inner map's definition). */
struct tbl24_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TBL24_BLOCKS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct tbl24_block));
};

struct tbl8_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16384);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct tbl8_group));
};

/* IPv4 /32s: a ban list of single hosts would need one tbl8 group per /24 it touches, so
 * hosts live in a hash tried first (the longest match there is). Key in network order. */
struct hosts_inner {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1048576);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
};

struct v6_prefixes_inner {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 131072);
	__uint(key_size, sizeof(struct prefix_key));
	__uint(value_size, sizeof(__u32));
};

/* Index 0: IPv6 source lengths below /32 (always searched); 1: /32 and longer, searched only
 * when v6_filter has the bit of the source's /32. */
struct v6_lengths_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct lengths));
};

/* A one-hash Bloom filter over the /32s of IPv6 source prefixes of /32 and longer: most
 * sources match nothing, and this turns their per-length search into one array read. Not
 * keyed: a source crafted to hit a set bit only takes the full search, still exact. */
struct v6_filter_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, V6_FILTER_WORDS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u64));
};

/* Behind a set filter bit: which lengths the source's /32 (or one sharing its slot) has, so
 * the search tries those only. */
struct v6_len_masks_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << V6_MASK_SLOTS_LOG2);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct len_mask));
};

#define OUTER(name, inner)                              \
	struct {                                        \
		__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); \
		__uint(max_entries, SOURCE_GENS);        \
		__type(key, __u32);                      \
		__array(values, struct inner);           \
	} name SEC(".maps")

OUTER(v4_tbl24, tbl24_inner);
OUTER(v4_tbl8, tbl8_inner);
OUTER(v4_hosts, hosts_inner);
OUTER(v6_prefixes, v6_prefixes_inner);
OUTER(v6_lengths, v6_lengths_inner);
OUTER(v6_filter, v6_filter_inner);
OUTER(v6_len_masks, v6_len_masks_inner);

/* Index 0: the live generation of the source tables (0 or 1). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} source_gen SEC(".maps");

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
	__u8 ext;     /* an IPv6 extension header came before the transport header */
	__u16 sport;
	__u16 dport;
	__u32 l3;     /* offsets of the IP and transport headers in the frame */
	__u32 l4;
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
		p->l3 = off;
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
		p->l3 = off;
		if (p->protocol == IPPROTO_FRAGMENT_) {
			p->ext = 1;
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
	p->l4 = l4 - data;
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

/* Longest-first search of the IPv6 hash over the lengths (all /32 or longer) in `mask`. */
static __always_inline __u32 *lookup_masked(void *prefixes, const struct lengths *lens,
					    const struct len_mask *mask, const __u32 *addr)
{
	struct prefix_key key = {};
	key.family = 6;
	__u32 count = lens->count;
	for (__u32 i = 0; i < MAX_LENGTHS; i++) {
		if (i >= count)
			break;
		__u32 len = lens->len[i];
		__u32 bit = (len - 32) & 127;
		if (!((mask->w[bit >> 6] >> (bit & 63)) & 1))
			continue;
		key.len = len;
		mask_into(&key, addr, len);
		__u32 *v = bpf_map_lookup_elem(prefixes, &key);
		if (v)
			return v;
	}
	return 0;
}

static __always_inline __u32 v6_filter_bit(__u32 top32)
{
	return (top32 * V6_FILTER_MULTIPLIER) >> (32 - V6_FILTER_BITS_LOG2);
}

static __always_inline __u32 v4_rule(void *hosts, void *tbl24, void *tbl8, const struct pkt *p)
{
	__u32 *host = bpf_map_lookup_elem(hosts, &p->src[0]);
	if (host)
		return *host;
	__u32 s = bpf_ntohl(p->src[0]);
	__u32 slot24 = s >> 8;
	__u32 block = slot24 / TBL24_SLOTS_PER_BLOCK;
	struct tbl24_block *b = bpf_map_lookup_elem(tbl24, &block);
	if (!b)
		return 0;
	__u32 v = b->slot[slot24 & (TBL24_SLOTS_PER_BLOCK - 1)];
	if (v & TBL8_FLAG) {
		__u32 group = v & ~TBL8_FLAG;
		struct tbl8_group *g = bpf_map_lookup_elem(tbl8, &group);
		if (!g)
			return 0;
		v = g->slot[s & 0xff];
	}
	return v;
}

static __always_inline __u32 v6_rule(void *prefixes, void *lengths, void *filter, void *masks,
				     const struct pkt *p)
{
	__u32 index = 1;
	struct lengths *lens = bpf_map_lookup_elem(lengths, &index);
	if (lens && lens->count) {
		__u32 bit = v6_filter_bit(bpf_ntohl(p->src[0]));
		__u32 word = bit / 64;
		__u64 *w = bpf_map_lookup_elem(filter, &word);
		if (w && (*w >> (bit % 64)) & 1) {
			__u32 top = bpf_ntohl(p->src[0]);
			__u32 slot = (top * V6_MASK_MULTIPLIER) >> (32 - V6_MASK_SLOTS_LOG2);
			struct len_mask *m = bpf_map_lookup_elem(masks, &slot);
			__u32 *rule = m ? lookup_masked(prefixes, lens, m, p->src) : 0;
			if (rule)
				return *rule;
		}
	}
	index = 0;
	lens = bpf_map_lookup_elem(lengths, &index);
	if (!lens || !lens->count)
		return 0;
	__u32 *rule = lookup_by_length(prefixes, lens, 6, p->src);
	return rule ? *rule : 0;
}

/* The source's rule in the live generation of the tables (or, should a slot of it be empty, in
 * the other one, whole: the loader keeps both slots filled, but pins of an older one may hold
 * a single generation). */
static __always_inline __u32 source_rule(const struct pkt *p)
{
	__u32 zero = 0;
	__u32 *live = bpf_map_lookup_elem(&source_gen, &zero);
	__u32 gen = live ? *live & (SOURCE_GENS - 1) : 0;
	if (p->family == 4) {
		void *hosts = bpf_map_lookup_elem(&v4_hosts, &gen);
		void *tbl24 = bpf_map_lookup_elem(&v4_tbl24, &gen);
		void *tbl8 = bpf_map_lookup_elem(&v4_tbl8, &gen);
		if (!hosts || !tbl24 || !tbl8) {
			gen ^= 1;
			hosts = bpf_map_lookup_elem(&v4_hosts, &gen);
			tbl24 = bpf_map_lookup_elem(&v4_tbl24, &gen);
			tbl8 = bpf_map_lookup_elem(&v4_tbl8, &gen);
			if (!hosts || !tbl24 || !tbl8)
				return 0;
		}
		return v4_rule(hosts, tbl24, tbl8, p);
	}
	void *prefixes = bpf_map_lookup_elem(&v6_prefixes, &gen);
	void *lengths = bpf_map_lookup_elem(&v6_lengths, &gen);
	void *filter = bpf_map_lookup_elem(&v6_filter, &gen);
	void *masks = bpf_map_lookup_elem(&v6_len_masks, &gen);
	if (!prefixes || !lengths || !filter || !masks) {
		gen ^= 1;
		prefixes = bpf_map_lookup_elem(&v6_prefixes, &gen);
		lengths = bpf_map_lookup_elem(&v6_lengths, &gen);
		filter = bpf_map_lookup_elem(&v6_filter, &gen);
		masks = bpf_map_lookup_elem(&v6_len_masks, &gen);
		if (!prefixes || !lengths || !filter || !masks)
			return 0;
	}
	return v6_rule(prefixes, lengths, filter, masks, p);
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

/* SYN-flood mode with cookies, as the kernel's xdp_synproxy does it: a SYN is answered in
 * place with a SYN-ACK whose sequence number is the kernel's own SYN cookie (XDP_TX), so no
 * state is kept for it anywhere; the ACK that completes the handshake carries the cookie back,
 * is checked by the kernel's helper and passed to the stack, which (net.ipv4.tcp_syncookies
 * on) turns it into a connection. ACKs of connections the stack already holds pass. */

static __always_inline __u16 csum_fold(__s64 sum)
{
	__u32 s = (__u32)sum;
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

struct synack4 {
	struct iphdr ip;
	struct tcphdr tcp;
	__be32 mss;
};

struct synack6 {
	struct ipv6hdr ip;
	struct tcphdr tcp;
	__be32 mss;
};

/* The TCP header of the SYN (options included, for the MSS the cookie encodes). */
static __always_inline int load_tcp(struct xdp_md *ctx, const struct pkt *p, __u8 *th, __u32 *len)
{
	if (bpf_xdp_load_bytes(ctx, p->l4, th, sizeof(struct tcphdr)))
		return -1;
	__u64 n = (th[12] >> 4) * 4; /* 64 bits: no zero extension between test and use; at most 60: the data offset has 4 bits */
	/* Keeps clang from testing the byte instead of n, which would leave the verifier
	 * unaware that n is at least 20. */
	asm volatile("" : "+r"(n));
	if (n < sizeof(struct tcphdr))
		return -1;
	if (bpf_xdp_load_bytes(ctx, p->l4, th, n))
		return -1;
	*len = n;
	return 0;
}

static __always_inline void synack_tcp(struct tcphdr *out, const struct tcphdr *in, __u32 cookie, __u16 mss,
				       __be32 *mss_opt)
{
	out->source = in->dest;
	out->dest = in->source;
	out->seq = bpf_htonl(cookie);
	out->ack_seq = bpf_htonl(bpf_ntohl(in->seq) + 1);
	out->doff = (sizeof(struct tcphdr) + 4) / 4;
	out->syn = 1;
	out->ack = 1;
	out->window = bpf_htons(65535);
	*mss_opt = bpf_htonl(2 << 24 | 4 << 16 | mss); /* kind 2, length 4 */
}

/* Swaps the Ethernet addresses, sizes the frame to `l3 + size` and writes `resp` at l3. */
static __always_inline int transmit(struct xdp_md *ctx, const struct pkt *p, void *resp, __u32 size)
{
	__u8 mac[12];
	if (bpf_xdp_load_bytes(ctx, 0, mac, 12))
		return XDP_DROP;
	if (bpf_xdp_store_bytes(ctx, 0, mac + 6, 6) || bpf_xdp_store_bytes(ctx, 6, mac, 6))
		return XDP_DROP;
	int have = (int)(ctx->data_end - ctx->data);
	if (bpf_xdp_adjust_tail(ctx, (int)(p->l3 + size) - have))
		return XDP_DROP;
	if (bpf_xdp_store_bytes(ctx, p->l3, resp, size))
		return XDP_DROP;
	return XDP_TX;
}

static __always_inline int syncookie_answer(struct xdp_md *ctx, const struct pkt *p)
{
	__u8 th[60] = {};
	__u32 th_len = 0;
	if (p->ext || load_tcp(ctx, p, th, &th_len) < 0)
		return XDP_DROP;
	const struct tcphdr *in = (const struct tcphdr *)th;
	if (p->family == 4) {
		struct iphdr ip;
		if (bpf_xdp_load_bytes(ctx, p->l3, &ip, sizeof(ip)))
			return XDP_DROP;
		__s64 value = bpf_tcp_raw_gen_syncookie_ipv4(&ip, (struct tcphdr *)th, th_len);
		if (value < 0)
			return XDP_DROP;
		struct synack4 r = {};
		r.ip.version = 4;
		r.ip.ihl = 5;
		r.ip.tot_len = bpf_htons(sizeof(r));
		r.ip.frag_off = bpf_htons(0x4000); /* don't fragment */
		r.ip.ttl = 64;
		r.ip.protocol = IPPROTO_TCP;
		r.ip.saddr = ip.daddr;
		r.ip.daddr = ip.saddr;
		r.ip.check = csum_fold(bpf_csum_diff(0, 0, (__be32 *)&r.ip, sizeof(r.ip), 0));
		synack_tcp(&r.tcp, in, (__u32)value, (__u16)(value >> 32), &r.mss);
		__be32 pseudo[3] = { r.ip.saddr, r.ip.daddr,
				     bpf_htonl(IPPROTO_TCP << 16 | (sizeof(r) - sizeof(r.ip))) };
		__s64 sum = bpf_csum_diff(0, 0, pseudo, sizeof(pseudo), 0);
		sum = bpf_csum_diff(0, 0, (__be32 *)&r.tcp, sizeof(r) - sizeof(r.ip), (__u32)sum);
		r.tcp.check = csum_fold(sum);
		return transmit(ctx, p, &r, sizeof(r));
	}
	struct ipv6hdr ip6;
	if (bpf_xdp_load_bytes(ctx, p->l3, &ip6, sizeof(ip6)))
		return XDP_DROP;
	__s64 value = bpf_tcp_raw_gen_syncookie_ipv6(&ip6, (struct tcphdr *)th, th_len);
	if (value < 0)
		return XDP_DROP;
	struct synack6 r = {};
	r.ip.version = 6;
	r.ip.payload_len = bpf_htons(sizeof(r) - sizeof(r.ip));
	r.ip.nexthdr = IPPROTO_TCP;
	r.ip.hop_limit = 64;
	r.ip.saddr = ip6.daddr;
	r.ip.daddr = ip6.saddr;
	synack_tcp(&r.tcp, in, (__u32)value, (__u16)(value >> 32), &r.mss);
	__be32 pseudo[10];
	__builtin_memcpy(pseudo, &r.ip.saddr, 16);
	__builtin_memcpy(pseudo + 4, &r.ip.daddr, 16);
	pseudo[8] = bpf_htonl(sizeof(r) - sizeof(r.ip));
	pseudo[9] = bpf_htonl(IPPROTO_TCP);
	__s64 sum = bpf_csum_diff(0, 0, pseudo, sizeof(pseudo), 0);
	sum = bpf_csum_diff(0, 0, (__be32 *)&r.tcp, sizeof(r) - sizeof(r.ip), (__u32)sum);
	r.tcp.check = csum_fold(sum);
	return transmit(ctx, p, &r, sizeof(r));
}

/* An ACK: a connection the stack holds (any state but listening) passes; otherwise it must
 * carry a valid cookie. */
static __always_inline int syncookie_check_ack(struct xdp_md *ctx, const struct pkt *p)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	if (p->family == 4) {
		t.ipv4.saddr = p->src[0];
		t.ipv4.daddr = p->dst[0];
		t.ipv4.sport = bpf_htons(p->sport);
		t.ipv4.dport = bpf_htons(p->dport);
		sk = bpf_skc_lookup_tcp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS_, 0);
	} else {
		__builtin_memcpy(t.ipv6.saddr, p->src, 16);
		__builtin_memcpy(t.ipv6.daddr, p->dst, 16);
		t.ipv6.sport = bpf_htons(p->sport);
		t.ipv6.dport = bpf_htons(p->dport);
		sk = bpf_skc_lookup_tcp(ctx, &t, sizeof(t.ipv6), BPF_F_CURRENT_NETNS_, 0);
	}
	if (sk) {
		__u32 state = sk->state;
		bpf_sk_release(sk);
		if (state != BPF_TCP_LISTEN_)
			return XDP_PASS;
	}
	struct tcphdr th;
	if (p->ext || bpf_xdp_load_bytes(ctx, p->l4, &th, sizeof(th)))
		return XDP_DROP;
	long ok;
	if (p->family == 4) {
		struct iphdr ip;
		if (bpf_xdp_load_bytes(ctx, p->l3, &ip, sizeof(ip)))
			return XDP_DROP;
		ok = bpf_tcp_raw_check_syncookie_ipv4(&ip, &th);
	} else {
		struct ipv6hdr ip6;
		if (bpf_xdp_load_bytes(ctx, p->l3, &ip6, sizeof(ip6)))
			return XDP_DROP;
		ok = bpf_tcp_raw_check_syncookie_ipv6(&ip6, &th);
	}
	return ok == 0 ? XDP_PASS : XDP_DROP;
}

/* The stack accepts the ACK of a cookie only on a listener that sent cookies itself in the
 * last two minutes or so (tcp_synq_no_recent_overflow). So one SYN a second per destination
 * address and port goes to the stack, which at net.ipv4.tcp_syncookies=2 answers it with a
 * cookie of its own (no state either) and so keeps accepting the filter's. 1: pass this one. */
static __always_inline int stack_syn_take(__u32 id, const struct pkt *p, __u64 *now)
{
	struct bucket_key key = {};
	key.rule = id | 0x80000000u; /* apart from the rule's per-source buckets */
	__builtin_memcpy(key.addr, p->dst, 16);
	key.addr[3] ^= (__u32)p->dport << 16;
	__u64 t = now_ns(now);
	struct bucket *b = bpf_map_lookup_elem(&buckets, &key);
	if (b)
		return bucket_take(&b->tokens, &b->last_ns, t, 1, 1);
	struct bucket fresh = {};
	int ok = bucket_take(&fresh.tokens, &fresh.last_ns, t, 1, 1);
	bpf_map_update_elem(&buckets, &key, &fresh, BPF_ANY);
	return ok;
}

/* XDP_TX (a SYN answered), XDP_DROP (a forged ACK) or XDP_PASS. */
static __always_inline int syncookie_verdict(struct xdp_md *ctx, __u32 id, const struct pkt *p, __u64 *now)
{
	__u8 f = p->tcp_flags;
	if (f & TCP_RST)
		return XDP_PASS;
	if ((f & (TCP_SYN | TCP_ACK)) == TCP_SYN)
		return stack_syn_take(id, p, now) ? XDP_PASS : syncookie_answer(ctx, p);
	if ((f & (TCP_SYN | TCP_ACK)) == TCP_ACK)
		return syncookie_check_ack(ctx, p);
	return XDP_PASS;
}

/* XDP_PASS, XDP_DROP or XDP_TX (a SYN answered with a cookie). */
static __always_inline int destination_verdict(struct xdp_md *ctx, const struct pkt *p, __u64 *now)
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
	if (d->syn_rule && p->protocol == IPPROTO_TCP && p->has_ports) {
		__u32 id = d->syn_rule;
		struct rule *r = active_rule(id, now);
		if (!r)
			return XDP_PASS;
		if (have_syncookies && d->syn_cookies) {
			/* The guard's counters: SYNs kept from the stack (answered) and forged ACKs. */
			int v = syncookie_verdict(ctx, id, p, now);
			if (v != XDP_PASS)
				drop_counted(id, p);
			return v;
		}
		if ((p->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN && r->action != ACTION_DROP &&
		    !source_bucket_take(id, r, p, now))
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
	int v = destination_verdict(ctx, &p, &now);
	if (v != XDP_PASS)
		return v;
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

/* The benchmark's zero: nothing but the verdict, so BPF_PROG_TEST_RUN's own cost per run
 * (context setup, the call, the timing) can be taken off the two programs' figures. */
SEC("xdp")
int xdp_noop(struct xdp_md *ctx)
{
	return XDP_PASS;
}
