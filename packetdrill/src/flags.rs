//! `--so_flags`: the stack's settings for one packetdrill run.
//!
//! The string is a list of `key=value` pairs separated by spaces or commas,
//! for example `--so_flags="cc=cubic rcvbuf=65535 min_rto_ms=1000"`.

use std::net::Ipv4Addr;
use std::time::Duration;

use ustack::iface::{Config, Ipv4Cidr};
use ustack::phy::Medium;

/// Every key `--so_flags` understands, with what it sets.
pub const HELP: &str = "\
local_ip=A.B.C.D     the stack's address (default 192.168.0.2; pass the same to packetdrill's --local_ip)
prefix=N             its prefix length (default 16)
gateway=A.B.C.D      the next hop for off-link peers (default 192.168.0.1)
mtu=N                link MTU (default 1500)
rcvbuf=N             TCP receive buffer, bytes (the largest window)
sndbuf=N             TCP send buffer, bytes
cc=NAME              congestion control: reno (the default here, as FreeBSD's for which the suite is written) or cubic
sack=0|1             offer SACK
ts=0|1               offer timestamps
ws=0|1               offer window scaling
nodelay=0|1          disable Nagle by default
syncookies=0|1       SYN cookies when the SYN queue is full
syn_backlog=N        half-open connections per listener
delayed_ack_ms=N     longest delay of an ACK
initial_rto_ms=N     RTO before the first RTT sample
min_rto_ms=N         lower bound of the RTO
max_rto_ms=N         upper bound of the RTO
msl_ms=N             maximum segment lifetime (TIME_WAIT is twice this)
syn_retries=N        SYN retransmissions before ETIMEDOUT
data_retries=N       data retransmissions before ETIMEDOUT
rfc5961_rst=0|1      RST in the window but not at RCV.NXT: challenge ACK (1) or reset (0, RFC 793)
rfc5961_syn=0|1      SYN in a synchronized state: challenge ACK (1) or reset (0, RFC 793)
icmp_may_abort=0|1   ICMP errors abort connection attempts (FreeBSD icmp_may_rst)
syn_fin=MODE         SYN+FIN segments: accept, listen (dropped by listeners: Linux, the default) or drop (everywhere: FreeBSD drop_synfin=1)
keepidle_s=N         keep-alive idle time for sockets that turn SO_KEEPALIVE on
keepintvl_s=N        keep-alive probe interval
keepcnt=N            keep-alive probes before the connection is dropped
seed=N               seed of the stack's randomness";

/// The keep-alive settings sockets get when they turn `SO_KEEPALIVE` on.
/// They live in `Config::tcp.keepalive`, which the harness reads as the
/// default and never applies to a socket that did not ask for it.
fn keepalive(c: &mut Config) -> &mut ustack::tcp::Keepalive {
    c.tcp.keepalive.get_or_insert_with(Default::default)
}

/// Parses `flags` into an interface configuration.
pub fn parse(flags: &str) -> Result<Config, String> {
    let mut c = Config::new(Medium::Ip);
    // The stack's default is CUBIC, as on Linux; the FreeBSD suite's
    // scripts assume FreeBSD's default, NewReno.
    c.tcp.congestion = "reno".into();
    let mut ip = Ipv4Addr::new(192, 168, 0, 2);
    let mut prefix = 16u8;
    c.gateway = Some(Ipv4Addr::new(192, 168, 0, 1));
    // IPv6 scripts (`--ip_version=ipv6`): the stack is fd3d:fa7b:d17d::2
    // in packetdrill's local /48 (pass the same to `--local_ip`).
    c.addrs_v6 = vec!["fd3d:fa7b:d17d::2/48".parse().expect("valid")];
    c.announce = false;
    for kv in flags
        .split(|ch: char| ch == ',' || ch.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("so_flags: `{kv}` is not key=value"))?;
        let num = || -> Result<u64, String> {
            v.parse::<u64>()
                .map_err(|_| format!("so_flags: {k}={v}: not a number"))
        };
        let flag = || -> Result<bool, String> {
            match v {
                "1" | "on" | "true" => Ok(true),
                "0" | "off" | "false" => Ok(false),
                _ => Err(format!("so_flags: {k}={v}: expected 0 or 1")),
            }
        };
        let ms = || num().map(Duration::from_millis);
        let addr = || -> Result<Ipv4Addr, String> {
            v.parse()
                .map_err(|_| format!("so_flags: {k}={v}: not an IPv4 address"))
        };
        match k {
            "local_ip" => ip = addr()?,
            "prefix" => prefix = num()?.min(32) as u8,
            "gateway" => c.gateway = Some(addr()?),
            "mtu" => c.mtu = (num()? as usize).clamp(576, 65535),
            "rcvbuf" => c.tcp.recv_buffer = num()? as usize,
            "sndbuf" => c.tcp.send_buffer = num()? as usize,
            "cc" => match v {
                "reno" | "newreno" | "cubic" => c.tcp.congestion = v.replace("newreno", "reno"),
                _ => return Err(format!("so_flags: cc={v}: expected reno or cubic")),
            },
            "sack" => c.tcp.sack = flag()?,
            "ts" => c.tcp.timestamps = flag()?,
            "ws" => c.tcp.window_scaling = flag()?,
            "nodelay" => c.tcp.nodelay = flag()?,
            "syncookies" => c.tcp.syncookies = flag()?,
            "syn_backlog" => c.tcp.syn_backlog = num()? as usize,
            "delayed_ack_ms" => c.tcp.delayed_ack = ms()?,
            "initial_rto_ms" => c.tcp.rtt.initial_rto = ms()?,
            "min_rto_ms" => c.tcp.rtt.min_rto = ms()?,
            "max_rto_ms" => c.tcp.rtt.max_rto = ms()?,
            "msl_ms" => c.tcp.msl = ms()?,
            "syn_retries" => c.tcp.syn_retries = num()? as u32,
            "data_retries" => c.tcp.data_retries = num()? as u32,
            "rfc5961_rst" => c.tcp.rfc5961_rst = flag()?,
            "rfc5961_syn" => c.tcp.rfc5961_syn = flag()?,
            "icmp_may_abort" => c.tcp.icmp_may_abort = flag()?,
            "syn_fin" => {
                c.tcp.syn_fin = match v {
                    "accept" => ustack::tcp::SynFin::Accept,
                    "listen" => ustack::tcp::SynFin::DropInListen,
                    "drop" => ustack::tcp::SynFin::Drop,
                    _ => {
                        return Err(format!(
                            "so_flags: syn_fin={v}: expected accept, listen or drop"
                        ))
                    }
                }
            }
            "keepidle_s" => keepalive(&mut c).idle = Duration::from_secs(num()?),
            "keepintvl_s" => keepalive(&mut c).interval = Duration::from_secs(num()?),
            "keepcnt" => keepalive(&mut c).count = num()? as u32,
            "seed" => c.seed = num()?,
            _ => return Err(format!("so_flags: unknown key `{k}`; known keys:\n{HELP}")),
        }
    }
    let cidr = Ipv4Cidr::new(ip, prefix).ok_or("so_flags: bad prefix")?;
    c.addrs = vec![cidr];
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = parse("").unwrap();
        assert_eq!(c.addrs[0].addr, Ipv4Addr::new(192, 168, 0, 2));
        assert_eq!(c.tcp.congestion, "reno", "FreeBSD's default");
        let c = parse("cc=cubic, rcvbuf=1000 local_ip=10.1.2.3 min_rto_ms=1000").unwrap();
        assert_eq!(c.tcp.congestion, "cubic");
        assert_eq!(c.tcp.recv_buffer, 1000);
        assert_eq!(c.tcp.rtt.min_rto, Duration::from_secs(1));
        assert_eq!(c.addrs[0].addr, Ipv4Addr::new(10, 1, 2, 3));
    }

    #[test]
    fn rejects_unknown_and_malformed() {
        assert!(parse("bogus=1").unwrap_err().contains("unknown key"));
        assert!(parse("rcvbuf").is_err());
        assert!(parse("rcvbuf=x").is_err());
        assert!(parse("cc=bbr").is_err());
    }
}
