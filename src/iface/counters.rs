//! SNMP-style counters (RFC 4293 / RFC 4022 / RFC 4113 names, as `netstat -s`
//! prints them).

/// IPv4 counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpCounters {
    /// Datagrams received from the device (before any check).
    pub in_receives: u64,
    /// Dropped for a bad header: version, length, checksum, source address.
    pub in_hdr_errors: u64,
    /// Dropped because the destination is not one of ours.
    pub in_addr_errors: u64,
    /// Dropped for an unknown transport protocol.
    pub in_unknown_protos: u64,
    /// Dropped for lack of resources (queues full).
    pub in_discards: u64,
    /// Delivered to a transport protocol (ICMP included).
    pub in_delivers: u64,
    /// Datagrams the stack asked to send.
    pub out_requests: u64,
    /// Datagrams dropped on the way out (queues full, unresolved neighbour).
    pub out_discards: u64,
    /// Datagrams dropped for want of a route.
    pub out_no_routes: u64,
    /// Fragments received that needed reassembly.
    pub reasm_reqds: u64,
    /// Datagrams reassembled.
    pub reasm_oks: u64,
    /// Reassembly failures (overlaps, bad lengths, limits, timeouts).
    pub reasm_fails: u64,
    /// Reassemblies abandoned on timeout.
    pub reasm_timeout: u64,
    /// Overlapping fragments seen (each drops its datagram).
    pub reasm_overlaps: u64,
    /// Datagrams fragmented on output.
    pub frag_oks: u64,
    /// Fragments created on output.
    pub frag_creates: u64,
    /// Datagrams that needed fragmenting but had DF set.
    pub frag_fails: u64,
    /// IPv6: advertisements from another node for one of our addresses
    /// (duplicate address detection, RFC 4862).
    pub dad_conflicts: u64,
}

/// ICMPv4 counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpCounters {
    /// Messages received.
    pub in_msgs: u64,
    /// Messages received with errors (any reason).
    pub in_errors: u64,
    /// Messages received with a bad checksum (also in `in_errors`).
    pub in_csum_errors: u64,
    /// Messages received, by type.
    pub in_type: [u64; 256],
    /// Messages sent.
    pub out_msgs: u64,
    /// Messages sent, by type.
    pub out_type: [u64; 256],
    /// Error messages suppressed by the rate limit.
    pub out_rate_limited: u64,
}

impl Default for IcmpCounters {
    fn default() -> Self {
        IcmpCounters {
            in_msgs: 0,
            in_errors: 0,
            in_csum_errors: 0,
            in_type: [0; 256],
            out_msgs: 0,
            out_type: [0; 256],
            out_rate_limited: 0,
        }
    }
}

/// UDP counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UdpCounters {
    /// Datagrams delivered to sockets.
    pub in_datagrams: u64,
    /// Datagrams for a port nobody listens on.
    pub no_ports: u64,
    /// Datagrams dropped for other reasons (bad header, checksum, buffer).
    pub in_errors: u64,
    /// Datagrams dropped for a bad checksum (also in `in_errors`).
    pub in_csum_errors: u64,
    /// Datagrams dropped because the socket's receive queue was full
    /// (also in `in_errors`).
    pub rcvbuf_errors: u64,
    /// Datagrams sent.
    pub out_datagrams: u64,
}

/// Link-layer and ARP counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Frames handed to the interface.
    pub frames_in: u64,
    /// Frames produced by the interface.
    pub frames_out: u64,
    /// Frames too short or otherwise unparsable at the link layer.
    pub frames_malformed: u64,
    /// Frames addressed to another station.
    pub frames_not_for_us: u64,
    /// Frames of an ether type the stack does not handle.
    pub unknown_ethertype: u64,
    /// Frames dropped because the transmit queue was full.
    pub tx_queue_drops: u64,
    /// ARP requests received / sent.
    pub arp_requests_in: u64,
    /// ARP requests sent.
    pub arp_requests_out: u64,
    /// ARP replies received.
    pub arp_replies_in: u64,
    /// ARP replies sent.
    pub arp_replies_out: u64,
    /// ARP packets dropped as malformed or unsupported.
    pub arp_errors: u64,
    /// Packets dropped while waiting for ARP (queue full or no answer).
    pub arp_pending_drops: u64,
    /// TCP super-segments handed to the device to cut (TSO/GSO).
    pub gso_frames_out: u64,
    /// TCP super-segments received whole from the device (GRO).
    pub gro_frames_in: u64,
    /// Super-segments dropped because they could not go straight to the
    /// device (next hop's link address unknown); TCP retransmits the data.
    pub gso_drops: u64,
    /// Calls into the interface with a `now` earlier than one it was given
    /// before (several threads reading the clock); the core kept the later
    /// time, so its own clock never went backwards.
    pub clock_regressions: u64,
}

/// All of the interface's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Link layer and ARP.
    pub link: LinkCounters,
    /// IPv4.
    pub ip: IpCounters,
    /// ICMPv4.
    pub icmp: IcmpCounters,
    /// UDP.
    pub udp: UdpCounters,
    /// IPv6 (the same RFC 4293 counters as IPv4).
    pub ip6: IpCounters,
    /// ICMPv6.
    pub icmp6: IcmpCounters,
}

impl Counters {
    /// Formats the counters like `netstat -s`, one group a paragraph, leaving
    /// out zero per-type ICMP rows.
    pub fn report(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let l = &self.link;
        let _ = writeln!(s, "Link:");
        for (n, v) in [
            ("frames in", l.frames_in),
            ("frames out", l.frames_out),
            ("malformed frames", l.frames_malformed),
            ("frames not for us", l.frames_not_for_us),
            ("unknown ether types", l.unknown_ethertype),
            ("transmit queue drops", l.tx_queue_drops),
            ("ARP requests in", l.arp_requests_in),
            ("ARP requests out", l.arp_requests_out),
            ("ARP replies in", l.arp_replies_in),
            ("ARP replies out", l.arp_replies_out),
            ("ARP errors", l.arp_errors),
            ("ARP pending drops", l.arp_pending_drops),
            ("super-segments out (TSO)", l.gso_frames_out),
            ("super-segments in (GRO)", l.gro_frames_in),
            ("super-segments dropped", l.gso_drops),
            ("clock readings behind the core's time", l.clock_regressions),
        ] {
            let _ = writeln!(s, "    {v} {n}");
        }
        ip_section(&mut s, "Ip", &self.ip);
        icmp_section(&mut s, "Icmp", &self.icmp, icmp_type_name);
        let u = &self.udp;
        let _ = writeln!(s, "Udp:");
        for (n, v) in [
            ("packets received", u.in_datagrams),
            ("packets to unknown port received", u.no_ports),
            ("packet receive errors", u.in_errors),
            ("with bad checksum", u.in_csum_errors),
            ("receive buffer errors", u.rcvbuf_errors),
            ("packets sent", u.out_datagrams),
        ] {
            let _ = writeln!(s, "    {v} {n}");
        }
        if self.ip6.in_receives > 0 || self.ip6.out_requests > 0 {
            ip_section(&mut s, "Ip6", &self.ip6);
            icmp_section(&mut s, "Icmp6", &self.icmp6, icmpv6_type_name);
        }
        s
    }
}

fn ip_section(s: &mut String, label: &str, i: &IpCounters) {
    use std::fmt::Write;
    let _ = writeln!(s, "{label}:");
    for (n, v) in [
        ("total packets received", i.in_receives),
        ("with invalid headers", i.in_hdr_errors),
        ("with invalid addresses", i.in_addr_errors),
        ("with unknown protocol", i.in_unknown_protos),
        ("incoming packets discarded", i.in_discards),
        ("incoming packets delivered", i.in_delivers),
        ("requests sent out", i.out_requests),
        ("outgoing packets dropped", i.out_discards),
        ("dropped because of missing route", i.out_no_routes),
        ("fragments received", i.reasm_reqds),
        ("packets reassembled ok", i.reasm_oks),
        ("packet reassemblies failed", i.reasm_fails),
        ("reassemblies timed out", i.reasm_timeout),
        ("overlapping fragments", i.reasm_overlaps),
        ("fragmented ok", i.frag_oks),
        ("fragments created", i.frag_creates),
        ("fragmentation failed (DF)", i.frag_fails),
        ("duplicate address conflicts", i.dad_conflicts),
    ] {
        let _ = writeln!(s, "    {v} {n}");
    }
}

fn icmp_section(s: &mut String, label: &str, c: &IcmpCounters, name: fn(u8) -> &'static str) {
    use std::fmt::Write;
    let _ = writeln!(s, "{label}:");
    let _ = writeln!(s, "    {} ICMP messages received", c.in_msgs);
    let _ = writeln!(s, "    {} input ICMP message failed", c.in_errors);
    let _ = writeln!(s, "    {} with bad checksum", c.in_csum_errors);
    for (t, v) in c.in_type.iter().enumerate().filter(|(_, v)| **v > 0) {
        let _ = writeln!(s, "    in type {} ({}): {v}", t, name(t as u8));
    }
    let _ = writeln!(s, "    {} ICMP messages sent", c.out_msgs);
    let _ = writeln!(
        s,
        "    {} errors suppressed by rate limit",
        c.out_rate_limited
    );
    for (t, v) in c.out_type.iter().enumerate().filter(|(_, v)| **v > 0) {
        let _ = writeln!(s, "    out type {} ({}): {v}", t, name(t as u8));
    }
}

fn icmpv6_type_name(t: u8) -> &'static str {
    match t {
        1 => "destination unreachable",
        2 => "packet too big",
        3 => "time exceeded",
        4 => "parameter problem",
        128 => "echo request",
        129 => "echo reply",
        133 => "router solicitation",
        134 => "router advertisement",
        135 => "neighbor solicitation",
        136 => "neighbor advertisement",
        _ => "other",
    }
}

fn icmp_type_name(t: u8) -> &'static str {
    match t {
        0 => "echo reply",
        3 => "destination unreachable",
        5 => "redirect",
        8 => "echo request",
        11 => "time exceeded",
        12 => "parameter problem",
        _ => "other",
    }
}

use super::TcpCounters;

/// Adds the named `u64` fields of `$other` to `$into`; the pattern is
/// exhaustive, so a counter added to the struct and not here fails to build.
macro_rules! add_fields {
    ($into:expr, $other:expr, $T:ident { $($f:ident),* $(,)? }) => {{
        let $T { $($f),* } = $other;
        $( $into.$f += *$f; )*
    }};
}

impl Counters {
    /// Adds `other`'s counts to these (the totals of several interfaces,
    /// e.g. one stack per queue of a multi-queue device).
    pub fn add(&mut self, other: &Counters) {
        let Counters {
            link,
            ip,
            icmp,
            udp,
            ip6,
            icmp6,
        } = other;
        add_fields!(
            self.link,
            link,
            LinkCounters {
                frames_in,
                frames_out,
                frames_malformed,
                frames_not_for_us,
                unknown_ethertype,
                tx_queue_drops,
                arp_requests_in,
                arp_requests_out,
                arp_replies_in,
                arp_replies_out,
                arp_errors,
                arp_pending_drops,
                gso_frames_out,
                gro_frames_in,
                gso_drops,
                clock_regressions,
            }
        );
        add_ip(&mut self.ip, ip);
        add_ip(&mut self.ip6, ip6);
        add_icmp(&mut self.icmp, icmp);
        add_icmp(&mut self.icmp6, icmp6);
        add_fields!(
            self.udp,
            udp,
            UdpCounters {
                in_datagrams,
                no_ports,
                in_errors,
                in_csum_errors,
                rcvbuf_errors,
                out_datagrams,
            }
        );
    }
}

fn add_ip(into: &mut IpCounters, other: &IpCounters) {
    add_fields!(
        into,
        other,
        IpCounters {
            in_receives,
            in_hdr_errors,
            in_addr_errors,
            in_unknown_protos,
            in_discards,
            in_delivers,
            out_requests,
            out_discards,
            out_no_routes,
            reasm_reqds,
            reasm_oks,
            reasm_fails,
            reasm_timeout,
            reasm_overlaps,
            frag_oks,
            frag_creates,
            frag_fails,
            dad_conflicts,
        }
    );
}

fn add_icmp(into: &mut IcmpCounters, other: &IcmpCounters) {
    let IcmpCounters {
        in_msgs,
        in_errors,
        in_csum_errors,
        in_type,
        out_msgs,
        out_type,
        out_rate_limited,
    } = other;
    into.in_msgs += in_msgs;
    into.in_errors += in_errors;
    into.in_csum_errors += in_csum_errors;
    into.out_msgs += out_msgs;
    into.out_rate_limited += out_rate_limited;
    for (a, b) in into.in_type.iter_mut().zip(in_type) {
        *a += b;
    }
    for (a, b) in into.out_type.iter_mut().zip(out_type) {
        *a += b;
    }
}

impl TcpCounters {
    /// Adds `other`'s counts to these (see [`Counters::add`]).
    pub fn add(&mut self, other: &TcpCounters) {
        add_fields!(
            self,
            other,
            TcpCounters {
                active_opens,
                passive_opens,
                attempt_fails,
                estab_resets,
                in_segs,
                out_segs,
                retrans_segs,
                in_errs,
                in_csum_errors,
                out_rsts,
                listen_overflows,
                no_socket,
                syn_fin_drops,
                icmp_ignored,
                syncookies_sent,
                syncookies_recv,
                syncookies_failed,
                pmtu_updates,
                pmtu_unmatched,
                pmtu_bad_seq,
                pmtu_below_floor,
                pmtu_not_smaller,
            }
        );
    }
}

#[cfg(test)]
mod add_tests {
    use super::*;

    #[test]
    fn counters_add_up() {
        let mut a = Counters::default();
        a.link.frames_in = 3;
        a.ip.in_receives = 5;
        a.icmp.in_type[8] = 2;
        a.udp.no_ports = 1;
        let mut b = Counters::default();
        b.link.frames_in = 4;
        b.ip6.out_requests = 7;
        b.icmp.in_type[8] = 1;
        b.icmp6.out_type[129] = 9;
        b.udp.no_ports = 2;
        a.add(&b);
        assert_eq!(a.link.frames_in, 7);
        assert_eq!(a.ip.in_receives, 5);
        assert_eq!(a.ip6.out_requests, 7);
        assert_eq!(a.icmp.in_type[8], 3);
        assert_eq!(a.icmp6.out_type[129], 9);
        assert_eq!(a.udp.no_ports, 3);
        let mut t = TcpCounters {
            passive_opens: 10,
            pmtu_not_smaller: 1,
            ..TcpCounters::default()
        };
        t.add(&TcpCounters {
            passive_opens: 6,
            out_rsts: 2,
            ..TcpCounters::default()
        });
        assert_eq!(
            (t.passive_opens, t.out_rsts, t.pmtu_not_smaller),
            (16, 2, 1)
        );
    }
}
