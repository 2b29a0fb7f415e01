#!/usr/bin/env python3
"""Regenerates the NetFlow/IPFIX test vectors in this directory.

1. Writes flow_input.pcap: hand-built Ethernet/IPv4/IPv6 frames (TCP both ways, 120 UDP flows,
   ICMP echo, an IPv6 UDP flow), timestamps from 1_700_000_000.25 s.
2. Runs softflowd (-r, -a: export times follow the capture) for each export format against a
   UDP socket on 127.0.0.1 and stores the datagrams it sends as <name>.pcap (LINKTYPE_RAW,
   IPv4/UDP from 127.0.0.1, so `tshark -r v9.pcap -d udp.port==2055,cflow` can read them).
   pmacctd's nfprobe plugin does the same for v9 and IPFIX (pmacct_*.pcap; wall-clock times).
3. Writes flow_vectors.json with the totals the input holds (what the decoder must report).

Usage: python3 make_flow_vectors.py   (needs softflowd, pmacct and tshark; run from this directory)
"""
import json, os, socket, struct, subprocess

T0 = 1_700_000_000.25
ETH4 = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00"
ETH6 = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x86\xdd"


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return (~s) & 0xFFFF


def ip4(src, dst, proto, payload, ttl=64):
    tl = 20 + len(payload)
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, tl, 1, 0, ttl, proto, 0, bytes(src), bytes(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload


def ip6(src, dst, nh, payload):
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), nh, 64, src, dst) + payload


def tcp(sport, dport, flags, data=b""):
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, flags, 8192, 0, 0) + data


def udp(sport, dport, data):
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def build_input():
    pkts = []  # (time, frame, family, ip_len)
    def add(t, frame, v6=False):
        ip_len = len(frame) - 14
        pkts.append((t, frame, 6 if v6 else 4, ip_len))
    a, b = [10, 0, 0, 1], [192, 0, 2, 10]
    add(T0, ETH4 + ip4(a, b, 6, tcp(40000, 80, 0x02)))
    add(T0 + 0.5, ETH4 + ip4(b, a, 6, tcp(80, 40000, 0x12)))
    add(T0 + 1.0, ETH4 + ip4(a, b, 6, tcp(40000, 80, 0x18, b"G" * 200)))
    add(T0 + 1.5, ETH4 + ip4(b, a, 6, tcp(80, 40000, 0x18, b"H" * 1000)))
    add(T0 + 2.0, ETH4 + ip4(a, b, 6, tcp(40000, 80, 0x11)))
    for i in range(120):
        add(T0 + 2.5 + i * 0.01, ETH4 + ip4([198, 51, 100, i], [203, 0, 113, 1], 17, udp(1024 + i, 53, b"q" * (20 + i))))
    for i in range(4):
        icmp = struct.pack("!BBHHH", 8, 0, 0, 7, i) + b"p" * 56
        add(T0 + 4.0 + i, ETH4 + ip4([10, 0, 0, 3], [192, 0, 2, 30], 1, icmp))
    s6, d6 = bytes.fromhex("20010db8000000000000000000000001"), bytes.fromhex("20010db8000000000000000000000002")
    for i in range(3):
        add(T0 + 5.0 + i * 0.25, ETH6 + ip6(s6, d6, 17, udp(5000, 123, b"n" * 48)), v6=True)
    return sorted(pkts, key=lambda p: p[0])


def write_pcap(path, linktype, records):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))
        for t, data in records:
            s = int(t)
            us = int(round((t - s) * 1e6))
            f.write(struct.pack("<IIII", s, us, len(data), len(data)) + data)


def capture(args):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2)
    port = sock.getsockname()[1]
    proc = subprocess.Popen(["softflowd", "-r", "flow_input.pcap", "-n", "127.0.0.1:%d" % port, "-d", "-a"] + args,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = []
    try:
        while True:
            data, _ = sock.recvfrom(65535)
            out.append(data)
    except socket.timeout:
        pass
    proc.wait(timeout=10)
    return port, out


def capture_pmacct(version):
    """pmacctd's nfprobe plugin over the same capture. Its export headers use the wall clock,
    so only counts and fields are meaningful, not times."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    port = sock.getsockname()[1]
    conf = "/tmp/rampart_pmacct_%d.conf" % port
    with open(conf, "w") as f:
        f.write("daemonize: false\npcap_savefile: %s/flow_input.pcap\npcap_savefile_wait: false\n"
                "plugins: nfprobe\nnfprobe_receiver: 127.0.0.1:%d\nnfprobe_version: %d\n"
                "aggregate: src_host, dst_host, src_port, dst_port, proto, tos\n" % (os.getcwd(), port, version))
    proc = subprocess.Popen(["pmacctd", "-f", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = []
    try:
        while True:
            data, _ = sock.recvfrom(65535)
            out.append(data)
    except socket.timeout:
        pass
    proc.wait(timeout=10)
    os.unlink(conf)
    return out


def raw_udp(payload, sport, dport):
    u = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return ip4([127, 0, 0, 1], [127, 0, 0, 1], 17, u)


def tshark_totals(path):
    """Records, octets and packets as Wireshark's cflow dissector reads them: a cross-check."""
    out = subprocess.run(["tshark", "-r", path, "-d", "udp.port==2055,cflow", "-T", "fields",
                          "-e", "cflow.octets", "-e", "cflow.packets"], capture_output=True, text=True).stdout
    records = octets = packets = 0
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) < 2 or not parts[0]:
            continue
        os_ = [int(x) for x in parts[0].split(",") if x]
        records += len(os_)
        octets += sum(os_)
        packets += sum(int(x) for x in parts[1].split(",") if x)
    return {"records": records, "bytes": octets, "packets": packets}


def main():
    pkts = build_input()
    write_pcap("flow_input.pcap", 1, [(t, fr) for t, fr, _, _ in pkts])
    v4 = [p for p in pkts if p[2] == 4]
    def ns(t):  # as written to the pcap: whole microseconds
        s = int(t)
        return s * 1_000_000_000 + int(round((t - s) * 1e6)) * 1_000
    def totals(ps):
        return {"packets": len(ps), "bytes": sum(p[3] for p in ps),
                "first_ns": min(ns(p[0]) for p in ps), "last_ns": max(ns(p[0]) for p in ps)}
    expected = {}
    runs = {"v5": ["-v", "5"], "v9": ["-v", "9"], "ipfix": ["-v", "10"], "ipfix_ms": ["-v", "10", "-A", "milli"],
            "ipfix_bi": ["-v", "10", "-b"],
            "v9_sampled": ["-v", "9", "-s", "5"]}
    for name, args in runs.items():
        port, datagrams = capture(args)
        write_pcap(name + ".pcap", 101, [(T0 + 10, raw_udp(d, 40000, 2055)) for d in datagrams])
        expected[name] = dict(totals(v4 if name == "v5" else pkts), datagrams=len(datagrams), softflowd_args=args)
        expected[name]["tshark"] = tshark_totals(name + ".pcap")
    for name, version in (("pmacct_v9", 9), ("pmacct_ipfix", 10)):
        datagrams = capture_pmacct(version)
        write_pcap(name + ".pcap", 101, [(T0 + 10, raw_udp(d, 40000, 2055)) for d in datagrams])
        expected[name] = dict(totals(pkts), datagrams=len(datagrams), pmacct_version=version)
        expected[name]["tshark"] = tshark_totals(name + ".pcap")
    with open("flow_vectors.json", "w") as f:
        json.dump(expected, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
