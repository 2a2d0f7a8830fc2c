//! A TCP echo server on smoltcp over a TUN device: the user-space reference
//! that `scripts/bench.sh tcp` measures beside `tcpecho` and Linux. Generous
//! buffers (1 MiB each way per socket) and a pool of listening sockets, one
//! per concurrent connection, as smoltcp needs.
//!
//! `smoltcp_echo TUN-NAME ADDR/PREFIX [PORT] [SOCKETS] [DISCARD-PORT SOURCE-PORT]`
//!
//! With the last two, four more sockets each discard what they receive
//! (closing at the peer's FIN) or send zeros without end: the bulk sink and
//! source of `scripts/bench.sh`.

use std::os::fd::AsRawFd;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Medium, TunTapInterface};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpCidr};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!(
            "usage: smoltcp_echo TUN-NAME ADDR/PREFIX [PORT] [SOCKETS] [DISCARD-PORT SOURCE-PORT]"
        );
        std::process::exit(2);
    }
    let cidr: IpCidr = args[2].parse().unwrap_or_else(|_| {
        eprintln!("smoltcp_echo: '{}' is not ADDR/PREFIX", args[2]);
        std::process::exit(2)
    });
    let port: u16 = args.get(3).and_then(|p| p.parse().ok()).unwrap_or(7);
    let count: usize = args.get(4).and_then(|p| p.parse().ok()).unwrap_or(32);
    let mut dev = TunTapInterface::new(&args[1], Medium::Ip).unwrap_or_else(|e| {
        eprintln!("smoltcp_echo: cannot open TUN '{}': {e}", args[1]);
        std::process::exit(1)
    });
    let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut dev, Instant::now());
    iface.update_ip_addrs(|a| a.push(cidr).expect("one address"));
    let mut sockets = SocketSet::new(vec![]);
    // (socket, port, kind): 0 echo, 1 discard, 2 source.
    let mut plan: Vec<(u16, u8)> = vec![(port, 0); count];
    if let (Some(d), Some(src)) = (
        args.get(5).and_then(|p| p.parse::<u16>().ok()),
        args.get(6).and_then(|p| p.parse::<u16>().ok()),
    ) {
        plan.extend([(d, 1); 4]);
        plan.extend([(src, 2); 4]);
    }
    let handles: Vec<(SocketHandle, u16, u8)> = plan
        .into_iter()
        .map(|(port, kind)| {
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; 1 << 20]),
                tcp::SocketBuffer::new(vec![0; 1 << 20]),
            );
            s.listen(port).expect("listen");
            (sockets.add(s), port, kind)
        })
        .collect();
    eprintln!("smoltcp_echo: echoing TCP port {port} on {cidr} with {count} sockets");
    let mut buf = vec![0u8; 65536];
    loop {
        iface.poll(Instant::now(), &mut dev, &mut sockets);
        for &(h, port, kind) in &handles {
            let s = sockets.get_mut::<tcp::Socket>(h);
            match kind {
                1 => {
                    while s.can_recv() {
                        if s.recv(|b| (b.len(), b.len())).unwrap_or(0) == 0 {
                            break;
                        }
                    }
                }
                2 => {
                    while s.can_recv() && s.recv(|b| (b.len(), b.len())).unwrap_or(0) > 0 {}
                    if s.may_send() {
                        while s.send(|b| (b.len(), b.len())).unwrap_or(0) > 0 {}
                    }
                    if !s.may_recv() && s.state() == tcp::State::CloseWait {
                        s.close();
                    }
                }
                _ => {}
            }
            while kind == 0 && s.can_recv() && s.can_send() {
                let room = (s.send_capacity() - s.send_queue()).min(buf.len());
                let n = s.recv_slice(&mut buf[..room]).unwrap_or(0);
                if n == 0 {
                    break;
                }
                let _ = s.send_slice(&buf[..n]);
            }
            if !s.may_recv() && s.send_queue() == 0 && s.state() == tcp::State::CloseWait {
                s.close();
            }
            if s.state() == tcp::State::Closed {
                let _ = s.listen(port);
            }
        }
        let _ = phy::wait(dev.as_raw_fd(), iface.poll_delay(Instant::now(), &sockets));
    }
}
