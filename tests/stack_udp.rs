//! The threaded API end to end: two stacks on an in-memory link, talking
//! through `ustack::net::UdpSocket` from application threads.

use std::io::ErrorKind;
use std::time::Duration;

use ustack::net::UdpSocket;
use ustack::phy::{Medium, PipeDevice};
use ustack::stack::Stack;

fn pair(medium: Medium) -> (Stack, Stack) {
    let (a, b) = PipeDevice::pair(medium, 1500);
    let sa = Stack::builder(a)
        .addr("10.5.0.1/24".parse().unwrap())
        .build()
        .unwrap();
    let sb = Stack::builder(b)
        .addr("10.5.0.2/24".parse().unwrap())
        .build()
        .unwrap();
    (sa, sb)
}

#[test]
fn echo_between_two_stacks_over_ethernet_and_ip() {
    for medium in [Medium::Ethernet, Medium::Ip] {
        let (sa, sb) = pair(medium);
        let server = UdpSocket::bind(&sb, "0.0.0.0:7").unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = vec![0u8; 70000];
            for _ in 0..100 {
                let (n, from) = server.recv_from(&mut buf).unwrap();
                server.send_to(&buf[..n], from).unwrap();
            }
        });
        let mut client = UdpSocket::bind(&sa, "10.5.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client.connect("10.5.0.2:7").unwrap();
        let mut buf = vec![0u8; 70000];
        for i in 0..100usize {
            // Sizes across the MTU, fragmentation included.
            let len = 1 + (i * 997) % 9000;
            let msg: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
            client.send(&msg).unwrap();
            let n = client.recv(&mut buf).unwrap_or_else(|e| {
                panic!(
                    "{medium:?} {i} len {len}: {e} {:#?} {:#?}",
                    sa.counters(),
                    sb.counters()
                )
            });
            assert_eq!(&buf[..n], &msg[..], "{medium:?} datagram {i}");
        }
        t.join().unwrap();
        let c = sb.counters();
        assert_eq!(c.udp.in_datagrams, 100);
        if medium == Medium::Ethernet {
            assert!(c.link.arp_requests_in + c.link.arp_replies_in >= 1);
        }
    }
}

#[test]
fn errors_and_timeouts_like_std() {
    let (sa, _sb) = pair(Medium::Ip);
    let mut c = UdpSocket::bind(&sa, "0.0.0.0:0").unwrap();
    assert_eq!(
        UdpSocket::bind(&sa, c.local_addr().unwrap())
            .unwrap_err()
            .kind(),
        ErrorKind::AddrInUse
    );
    assert_eq!(
        c.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 10];
    assert_eq!(
        c.recv_from(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    c.set_nonblocking(true).unwrap();
    assert_eq!(
        c.recv_from(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    c.set_nonblocking(false).unwrap();
    assert_eq!(c.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);

    // Closed port on the peer: the connected socket sees ConnectionRefused.
    c.connect("10.5.0.2:9999").unwrap();
    c.send(b"anyone?").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(
        c.recv(&mut buf).unwrap_err().kind(),
        ErrorKind::ConnectionRefused
    );
}

#[test]
fn shutdown_releases_blocked_readers() {
    let (sa, _sb) = pair(Medium::Ip);
    let s = UdpSocket::bind(&sa, "0.0.0.0:7").unwrap();
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 10];
        s.recv_from(&mut buf).unwrap_err().kind()
    });
    std::thread::sleep(Duration::from_millis(100));
    sa.shutdown().unwrap();
    assert_eq!(t.join().unwrap(), ErrorKind::NotConnected);
}

/// `StackBuilder::build` refuses a gateway outside every subnet and a MAC
/// that is not unicast (`Config::validate`), before starting anything.
#[test]
fn build_refuses_unreachable_gateway_and_group_mac() {
    let addr: ustack::iface::IpCidr = "10.0.0.2/24".parse().unwrap();
    let (a, b) = PipeDevice::pair(Medium::Ethernet, 1500);
    let e = Stack::builder(a)
        .addr(addr)
        .gateway("10.7.0.1".parse().unwrap())
        .build()
        .err()
        .expect("an off-subnet gateway is refused");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(
        e.to_string().contains("outside every configured subnet"),
        "{e}"
    );
    let e = Stack::builder(b)
        .addr(addr)
        .hardware_addr(ustack::wire::EthernetAddress::BROADCAST)
        .build()
        .err()
        .expect("a broadcast MAC is refused");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("broadcast"), "{e}");
    let (c, _d) = PipeDevice::pair(Medium::Ethernet, 1500);
    Stack::builder(c)
        .addr(addr)
        .gateway("10.0.0.1".parse().unwrap())
        .build()
        .expect("an on-link gateway is fine");
}
