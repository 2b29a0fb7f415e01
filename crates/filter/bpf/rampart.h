/* SPDX-License-Identifier: Apache-2.0 */
/* Map layouts shared by the XDP program and the Rust loader (crates/filter/src/xdp/layout.rs
 * mirrors every struct here byte for byte; a unit test checks the sizes). */
#ifndef RAMPART_H
#define RAMPART_H

/* IPv4: DIR-24-8. tbl24 is indexed by the top 24 bits of the source, packed 16 slots per
 * array element (an array element is at least 8 bytes, so one slot per element would double
 * the memory). A slot holds 0 (no rule), a rule id, or TBL8_FLAG | group for sources whose
 * /24 holds longer prefixes: the group's 256 slots are indexed by the last byte. */
#define TBL24_SLOTS_PER_BLOCK 16
#define TBL24_BLOCKS (1 << 20)
#define TBL8_FLAG 0x80000000u

/* Generations of the source tables (see source_gen in rampart.bpf.c). */
#define SOURCE_GENS 2

/* IPv6 /32 Bloom filter: 2^24 bits, bit = (top 32 bits * multiplier) >> 8. */
#define V6_FILTER_BITS_LOG2 24
#define V6_FILTER_WORDS (1 << (V6_FILTER_BITS_LOG2 - 6))
#define V6_FILTER_MULTIPLIER 0x9E3779B1u

/* IPv6 length masks: per slot (hash of the /32), bit len - 32 set for each length of /32 and
 * longer that a prefix under a /32 of the slot has. */
#define V6_MASK_SLOTS_LOG2 18
#define V6_MASK_MULTIPLIER 0x85EBCA77u

struct len_mask {
	__u64 w[2];
};

#define ACTION_NONE 0
#define ACTION_DROP 1
#define ACTION_RATE_PACKETS 2
#define ACTION_RATE_BYTES 3

#define MAX_LENGTHS 129
#define MAX_SIGS_PER_DST 8
#define MAX_PORT_RANGES 8

#define FRAGMENT_ANY 0
#define FRAGMENT_NON_INITIAL 1
#define FRAGMENT_NOT_NON_INITIAL 2

struct tbl24_block {
	__u32 slot[TBL24_SLOTS_PER_BLOCK];
};

struct tbl8_group {
	__u32 slot[256];
};

/* One rule: a prefix ban or rate limit, a signature or a SYN guard. */
struct rule {
	__u64 expires_ns; /* CLOCK_BOOTTIME; 0: never */
	__u64 decision;   /* the Decision id, so a restarted loader can map rules back */
	__u32 action;     /* ACTION_* ; ACTION_NONE: free slot */
	__u32 rate;       /* packets or bytes per second for ACTION_RATE_* */
};

/* What a rule dropped (per CPU). */
struct counters {
	__u64 packets;
	__u64 bytes;
};

/* An address under a prefix length: IPv6 source prefixes, and signature destinations of
 * both families (family 4 or 6; IPv4 in addr[0]). addr is masked to len. */
struct prefix_key {
	__u8 family;
	__u8 len;
	__u16 pad;
	__u32 addr[4];
};

/* The prefix lengths in use, longest first, so a lookup only tries those. */
struct lengths {
	__u32 count;
	__u8 len[MAX_LENGTHS];
	__u8 pad[3];
};

struct port_range {
	__u16 first;
	__u16 last;
};

struct sig_match {
	__u32 rule;
	__u8 protocol;
	__u8 has_protocol;
	__u8 tcp_value;
	__u8 tcp_mask;
	__u8 fragment; /* FRAGMENT_* */
	__u8 n_src;    /* port ranges in use; 0: any */
	__u8 n_dst;
	__u8 pad;
	__u16 len_min; /* IP total length, inclusive */
	__u16 len_max;
	struct port_range src[MAX_PORT_RANGES];
	struct port_range dst[MAX_PORT_RANGES];
	/* Aggregate token bucket of a rate-limit signature (updated without a lock: two CPUs
	 * may both take the last token, which a rate limit can afford). */
	__u64 tokens;
	__u64 last_ns;
};

/* Everything filtered for one protected destination prefix. */
struct dst_entry {
	__u32 count;                  /* signatures in sig[] */
	__u32 sig[MAX_SIGS_PER_DST];  /* indexes into sig_matches */
	__u32 syn_rule;               /* 0: no SYN guard; else the rule counting its drops */
	__u32 syn_cookies;            /* 1: answer SYNs with cookies from XDP; 0: the SYN rate
				       * per source is the rule's rate */
};

/* Per-source token bucket key: rule id (or SYN guard rule), source address. */
struct bucket_key {
	__u32 rule;
	__u32 addr[4];
};

struct bucket {
	__u64 tokens; /* scaled by 1e9: one packet or byte costs 1e9 */
	__u64 last_ns;
};

/* Whole-program counters (per CPU), indexes: */
#define STAT_SEEN 0
#define STAT_PASSED 1
#define STAT_DROPPED 2
#define STAT_NOT_IP 3
#define STAT_COUNT 4

#endif
