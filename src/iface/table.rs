//! A socket table like `ss -tuan` with TCP details like `ss -ti`: every
//! socket of the interface, for inspection and for the tools' SIGUSR1.

use std::fmt::Write;
use std::net::SocketAddr;

use super::Interface;
use crate::socket::Socket;
use crate::tcp::TcpInfo;

/// One row of [`Interface::socket_table`].
#[derive(Debug, Clone)]
pub struct SocketRow {
    /// "tcp" or "udp".
    pub proto: &'static str,
    /// TCP state name (`ss` style), "LISTEN", or "UNCONN" for UDP.
    pub state: String,
    /// Bytes (TCP) or datagrams (UDP) waiting to be read.
    pub recv_q: usize,
    /// Bytes waiting to be sent and acknowledged (TCP) or sent (UDP);
    /// for a listener, the backlog.
    pub send_q: usize,
    /// Local address.
    pub local: SocketAddr,
    /// Peer address (unspecified when none).
    pub peer: Option<SocketAddr>,
    /// TCP details.
    pub tcp: Option<TcpInfo>,
}

impl Interface {
    /// Every socket, with its queues and, for TCP, its `TCP_INFO`.
    /// TIME-WAIT entries of released connections are counted by
    /// [`Interface::tcp_time_wait_len`], not listed.
    pub fn socket_table(&self) -> Vec<SocketRow> {
        let mut rows = Vec::new();
        for (_, s) in self.sockets.iter() {
            match s {
                Socket::Tcp(c) => {
                    let i = c.tcb.info();
                    rows.push(SocketRow {
                        proto: "tcp",
                        state: c.tcb.state().name().to_string(),
                        recv_q: i.recv_queue,
                        send_q: i.send_queue,
                        local: c.tcb.local_addr(),
                        peer: Some(c.tcb.remote_addr()),
                        tcp: Some(i),
                    });
                }
                Socket::TcpListener(l) => rows.push(SocketRow {
                    proto: "tcp",
                    state: "LISTEN".into(),
                    recv_q: l.pending(),
                    send_q: l.backlog,
                    local: l.local_addr(),
                    peer: None,
                    tcp: None,
                }),
                Socket::Udp(u) if !u.closed => rows.push(SocketRow {
                    proto: "udp",
                    state: if u.peer_addr().is_some() {
                        "ESTAB"
                    } else {
                        "UNCONN"
                    }
                    .into(),
                    recv_q: u.recv_queue_len(),
                    send_q: u.send_queue_bytes(),
                    local: u.local_addr(),
                    peer: u.peer_addr(),
                    tcp: None,
                }),
                Socket::Udp(_) => {}
            }
        }
        rows.sort_by(|a, b| (a.proto, a.local, a.peer).cmp(&(b.proto, b.local, b.peer)));
        rows
    }

    /// [`Interface::socket_table`] as text, like `ss -tuani`.
    pub fn socket_report(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<5} {:<11} {:>8} {:>8} {:<22} {:<22}",
            "Netid", "State", "Recv-Q", "Send-Q", "Local", "Peer"
        );
        for r in self.socket_table() {
            let peer = r.peer.map_or("*:*".to_string(), |p| p.to_string());
            let _ = writeln!(
                s,
                "{:<5} {:<11} {:>8} {:>8} {:<22} {:<22}",
                r.proto, r.state, r.recv_q, r.send_q, r.local, peer
            );
            if let Some(i) = r.tcp {
                let _ = writeln!(
                    s,
                    "\t {} {} wscale:{} rto:{}ms rtt:{:.3}/{:.3}ms mss:{} cwnd:{} ssthresh:{} bytes_acked:{} bytes_received:{} retrans:{} snd_wnd:{} rcv_wnd:{}",
                    i.congestion.0,
                    i.congestion.1,
                    i.wscale.map_or("-".to_string(), |(a, b)| format!("{a},{b}")),
                    i.rto.as_millis(),
                    i.srtt.map_or(0.0, |d| d.as_secs_f64() * 1e3),
                    i.rttvar.as_secs_f64() * 1e3,
                    i.mss,
                    i.cwnd,
                    if i.ssthresh == usize::MAX { "inf".to_string() } else { i.ssthresh.to_string() },
                    i.bytes_acked,
                    i.bytes_received,
                    i.retransmits,
                    i.snd_wnd,
                    i.rcv_wnd
                );
            }
        }
        let _ = writeln!(s, "TIME-WAIT entries: {}", self.tcp_time_wait_len());
        s
    }
}

#[cfg(test)]
mod tests {
    use crate::iface::{Config, Interface, Ipv4Cidr};
    use crate::link::Medium;
    use crate::time::Instant;

    #[test]
    fn lists_every_kind_of_socket() {
        let mut c = Config::new(Medium::Ip);
        c.addrs.push("10.0.0.2/24".parse::<Ipv4Cidr>().unwrap());
        let mut i = Interface::new(c, Instant::ZERO);
        i.udp_bind("0.0.0.0:7".parse().unwrap()).unwrap();
        i.tcp_listen("0.0.0.0:80".parse().unwrap(), 16).unwrap();
        i.tcp_connect("10.0.0.1:443".parse().unwrap(), None, Instant::ZERO)
            .unwrap();
        let rows = i.socket_table();
        let states: Vec<_> = rows.iter().map(|r| (r.proto, r.state.as_str())).collect();
        assert_eq!(
            states,
            vec![("tcp", "LISTEN"), ("tcp", "SYN-SENT"), ("udp", "UNCONN")]
        );
        let text = i.socket_report();
        assert!(
            text.contains("SYN-SENT")
                && text.contains("cwnd:")
                && text.contains("TIME-WAIT entries: 0")
        );
    }
}
