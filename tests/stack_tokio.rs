//! The async API (`ustack::net::tokio`, feature `tokio`) end to end: two
//! stacks on an in-memory link, tokio tasks on both ends, woken by the
//! stack threads.
#![cfg(feature = "tokio")]

use std::future::Future;
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ustack::net::tokio::{TcpListener, TcpStream, UdpSocket};
use ustack::phy::{Medium, PipeDevice};
use ustack::stack::Stack;

mod common;

/// Every test gives up after this (a hang is a failure, not a stuck run).
const LIMIT: Duration = Duration::from_secs(120);

fn pair() -> (Stack, Stack) {
    common::pair(7)
}

use common::data;

/// FNV-1a over the bytes, fed in pieces.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// An echo server on `stack`: every connection in its own task, echoing
/// until EOF, then half-closing.
fn spawn_echo(stack: &Stack, port: u16) -> tokio::task::JoinHandle<()> {
    let listener = TcpListener::bind(stack, ("0.0.0.0", port)).unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 32768];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = s.shutdown().await;
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_small_message() {
    let (sa, sb) = pair();
    let server = spawn_echo(&sb, 7);
    tokio::time::timeout(LIMIT, async {
        let mut s = TcpStream::connect(&sa, "10.7.0.2:7").await.unwrap();
        assert_eq!(s.peer_addr().unwrap(), "10.7.0.2:7".parse().unwrap());
        assert_eq!(s.local_addr().unwrap().ip().to_string(), "10.7.0.1");
        s.set_nodelay(true).unwrap();
        assert!(s.nodelay().unwrap());
        s.write_all(b"hello, async").await.unwrap();
        let mut back = [0u8; 12];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"hello, async");
        let info = s.info().unwrap();
        assert_eq!(info.state, Some(ustack::tcp::State::Established));
        // Half-close: the echo server sees EOF and closes its side.
        s.shutdown().await.unwrap();
        let mut rest = Vec::new();
        assert_eq!(s.read_to_end(&mut rest).await.unwrap(), 0);
    })
    .await
    .expect("timed out");
    server.abort();
}

/// Issue 16: IPv6-only stacks from the builder (no IPv4 address at all)
/// under the async API: TCP echo through a `[::]` listener, a UDP datagram.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_only_stacks_echo() {
    let (a, b) = PipeDevice::pair(Medium::Ethernet, 1500);
    let sa = Stack::builder(a)
        .addr("fd00:17::1/64".parse().unwrap())
        .build()
        .unwrap();
    let sb = Stack::builder(b)
        .addr("fd00:17::2/64".parse().unwrap())
        .build()
        .unwrap();
    let listener = TcpListener::bind(&sb, "[::]:7").unwrap();
    let server = tokio::spawn(async move {
        let (mut s, peer) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        s.write_all(&buf).await.unwrap();
        s.shutdown().await.unwrap();
        peer
    });
    tokio::time::timeout(LIMIT, async {
        let mut s = TcpStream::connect(&sa, "[fd00:17::2]:7").await.unwrap();
        let payload = data(100_000, 17);
        s.write_all(&payload).await.unwrap();
        s.shutdown().await.unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).await.unwrap();
        assert!(back == payload, "the echo differs");
        assert_eq!(server.await.unwrap().ip().to_string(), "fd00:17::1");
        let ub = UdpSocket::bind(&sb, "[::]:9").unwrap();
        let ua = UdpSocket::bind(&sa, "[::]:0").unwrap();
        ua.send_to(b"v6 only", "[fd00:17::2]:9").await.unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = ub.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"v6 only");
        assert_eq!(from.ip().to_string(), "fd00:17::1");
    })
    .await
    .expect("timed out");
}

#[tokio::test(flavor = "current_thread")]
async fn transfer_8_mib_intact_on_one_thread() {
    let (sa, sb) = pair();
    let n = 8 << 20;
    let listener = TcpListener::bind(&sb, "0.0.0.0:9").unwrap();
    // The receiver checks every byte and its checksum, then answers with
    // the count and the checksum.
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let expect = data(n, 7);
        let mut got = 0usize;
        let mut sum = Fnv::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let k = s.read(&mut buf).await.unwrap();
            if k == 0 {
                break;
            }
            assert!(got + k <= n, "more bytes than were sent");
            assert!(
                buf[..k] == expect[got..got + k],
                "data differs within bytes {got}..{}",
                got + k
            );
            sum.update(&buf[..k]);
            got += k;
        }
        s.write_all(&(got as u64).to_be_bytes()).await.unwrap();
        s.write_all(&sum.0.to_be_bytes()).await.unwrap();
        s.shutdown().await.unwrap();
    });
    tokio::time::timeout(LIMIT, async {
        let payload = data(n, 7);
        let mut want = Fnv::new();
        want.update(&payload);
        let mut s = TcpStream::connect(&sa, "10.7.0.2:9").await.unwrap();
        // Uneven chunks, so writes often meet a full send buffer.
        for chunk in payload.chunks(100_003) {
            s.write_all(chunk).await.unwrap();
        }
        s.shutdown().await.unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply.len(), 16);
        assert_eq!(u64::from_be_bytes(reply[..8].try_into().unwrap()), n as u64);
        assert_eq!(u64::from_be_bytes(reply[8..].try_into().unwrap()), want.0);
        server.await.unwrap();
    })
    .await
    .expect("timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn into_split_reads_and_writes_concurrently() {
    let (sa, sb) = pair();
    let server = spawn_echo(&sb, 7);
    let n = 4 << 20;
    tokio::time::timeout(LIMIT, async {
        let s = TcpStream::connect(&sa, "10.7.0.2:7").await.unwrap();
        let (mut r, mut w) = s.into_split();
        assert_eq!(r.peer_addr().unwrap(), w.peer_addr().unwrap());
        // Far more than both ends' buffers hold: without a reader running
        // at the same time as the writer, this would stall.
        let writer = tokio::spawn(async move {
            let payload = data(n, 3);
            for chunk in payload.chunks(65536) {
                w.write_all(chunk).await.unwrap();
            }
            // Dropping the write half sends the FIN.
            drop(w);
        });
        let expect = data(n, 3);
        let mut got = Vec::with_capacity(n);
        let mut buf = vec![0u8; 50_000];
        loop {
            let k = r.read(&mut buf).await.unwrap();
            if k == 0 {
                break;
            }
            got.extend_from_slice(&buf[..k]);
        }
        writer.await.unwrap();
        assert_eq!(got.len(), n);
        assert!(got == expect, "echoed data differs");
    })
    .await
    .expect("timed out");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reunite_gives_the_stream_back() {
    let (sa, sb) = pair();
    let server = spawn_echo(&sb, 7);
    tokio::time::timeout(LIMIT, async {
        let a = TcpStream::connect(&sa, "10.7.0.2:7").await.unwrap();
        let b = TcpStream::connect(&sa, "10.7.0.2:7").await.unwrap();
        let (ar, aw) = a.into_split();
        let (br, bw) = b.into_split();
        let e = ar.reunite(bw).unwrap_err();
        let (ar, bw) = (e.0, e.1);
        let mut a = ar.reunite(aw).unwrap();
        let _b = br.reunite(bw).unwrap();
        // Reuniting did not send a FIN: the stream still echoes.
        a.write_all(b"still open").await.unwrap();
        let mut back = [0u8; 10];
        a.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"still open");
    })
    .await
    .expect("timed out");
    server.abort();
}

#[tokio::test(flavor = "current_thread")]
async fn connect_to_a_closed_port_is_refused() {
    let (sa, _sb) = pair();
    let r = tokio::time::timeout(LIMIT, TcpStream::connect(&sa, "10.7.0.2:4444"))
        .await
        .expect("timed out");
    assert_eq!(r.unwrap_err().kind(), ErrorKind::ConnectionRefused);
    // The failed attempt leaves no socket behind (once the stack thread
    // has run).
    let t0 = std::time::Instant::now();
    while !sa.sockets().is_empty() && t0.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(sa.sockets().is_empty(), "{:?}", sa.sockets());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_streams_and_listeners_closes_them() {
    let (sa, sb) = pair();
    let listener = TcpListener::bind(&sb, "0.0.0.0:7").unwrap();
    tokio::time::timeout(LIMIT, async {
        let mut c = TcpStream::connect(&sa, "10.7.0.2:7").await.unwrap();
        let (s, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
        // The server drops its stream: the client reads EOF (a FIN).
        drop(s);
        let mut buf = [0u8; 8];
        assert_eq!(c.read(&mut buf).await.unwrap(), 0);
        // Dropping the listener frees the port and refuses new connects.
        drop(listener);
        let r = TcpStream::connect(&sa, "10.7.0.2:7").await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::ConnectionRefused);
        let again = TcpListener::bind(&sb, "0.0.0.0:7").unwrap();
        assert_eq!(again.local_addr().unwrap().port(), 7);
    })
    .await
    .expect("timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linger_zero_drop_resets_the_peer() {
    let (sa, sb) = pair();
    let listener = TcpListener::bind(&sb, "0.0.0.0:7").unwrap();
    tokio::time::timeout(LIMIT, async {
        let mut c = TcpStream::connect(&sa, "10.7.0.2:7").await.unwrap();
        let (s, _) = listener.accept().await.unwrap();
        s.set_linger(Some(Duration::ZERO)).unwrap();
        drop(s);
        let mut buf = [0u8; 8];
        let e = c.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionReset);
    })
    .await
    .expect("timed out");
}

#[tokio::test(flavor = "current_thread")]
async fn three_hundred_connections_on_one_thread() {
    let (sa, sb) = pair();
    let listener = TcpListener::bind_with_backlog(&sb, "0.0.0.0:7", 512).unwrap();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    if s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
                let _ = s.shutdown().await;
            });
        }
    });
    let sa = Arc::new(sa);
    tokio::time::timeout(LIMIT, async {
        let mut tasks = Vec::new();
        for i in 0..300u32 {
            let sa = sa.clone();
            tasks.push(tokio::spawn(async move {
                let msg = data(1000 + 17 * i as usize, i);
                let mut s = TcpStream::connect(&sa, "10.7.0.2:7").await?;
                s.write_all(&msg).await?;
                s.shutdown().await?;
                let mut back = Vec::new();
                s.read_to_end(&mut back).await?;
                Ok::<bool, std::io::Error>(back == msg)
            }));
        }
        let mut ok = 0;
        for t in tasks {
            if t.await.unwrap().unwrap() {
                ok += 1;
            }
        }
        assert_eq!(ok, 300);
    })
    .await
    .expect("timed out");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_roundtrip() {
    let (sa, sb) = pair();
    let server = Arc::new(UdpSocket::bind(&sb, "0.0.0.0:7").unwrap());
    let srv = server.clone();
    let echo = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, from) = srv.recv_from(&mut buf).await.unwrap();
            srv.send_to(&buf[..n], from).await.unwrap();
        }
    });
    tokio::time::timeout(LIMIT, async {
        let c = UdpSocket::bind(&sa, "0.0.0.0:0").unwrap();
        assert_ne!(c.local_addr().unwrap().port(), 0);
        let mut buf = vec![0u8; 65536];
        for (i, len) in [1usize, 100, 1472, 1473, 8000, 60000]
            .into_iter()
            .enumerate()
        {
            let msg = data(len, i as u32);
            assert_eq!(c.send_to(&msg, "10.7.0.2:7").await.unwrap(), len);
            let (n, from) = c.recv_from(&mut buf).await.unwrap();
            assert_eq!(from, "10.7.0.2:7".parse().unwrap());
            assert_eq!(&buf[..n], &msg[..], "datagram {i} of {len} bytes");
        }
        // Connected: send/recv, and an ICMP port unreachable surfaces as
        // ConnectionRefused.
        c.connect("10.7.0.2:7").unwrap();
        c.send(b"ping").await.unwrap();
        let n = c.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"ping");
        let lonely = UdpSocket::bind(&sa, "0.0.0.0:0").unwrap();
        lonely.connect("10.7.0.2:9999").unwrap();
        lonely.send(b"anyone?").await.unwrap();
        let e = lonely.recv(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    })
    .await
    .expect("timed out");
    echo.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_stack_wakes_waiting_tasks() {
    let (sa, sb) = pair();
    let listener = TcpListener::bind(&sb, "0.0.0.0:7").unwrap();
    let udp = UdpSocket::bind(&sb, "0.0.0.0:7").unwrap();
    let c = TcpStream::connect(&sa, "10.7.0.2:7").await.unwrap();
    let (mut s, _) = listener.accept().await.unwrap();
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 8];
        s.read(&mut buf).await
    });
    let accepter = tokio::spawn(async move { listener.accept().await.map(|_| ()) });
    let receiver = tokio::spawn(async move {
        let mut buf = [0u8; 8];
        udp.recv_from(&mut buf).await.map(|_| ())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!reader.is_finished() && !accepter.is_finished() && !receiver.is_finished());
    sb.shutdown().unwrap();
    let r = tokio::time::timeout(LIMIT, reader)
        .await
        .expect("timed out");
    assert_eq!(r.unwrap().unwrap_err().kind(), ErrorKind::NotConnected);
    let r = tokio::time::timeout(LIMIT, accepter)
        .await
        .expect("timed out");
    assert_eq!(r.unwrap().unwrap_err().kind(), ErrorKind::NotConnected);
    let r = tokio::time::timeout(LIMIT, receiver)
        .await
        .expect("timed out");
    assert_eq!(r.unwrap().unwrap_err().kind(), ErrorKind::NotConnected);
    drop(c);
}

/// Counts a task's wake-ups.
struct CountingWaker(std::sync::atomic::AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_reader_is_not_woken_by_acks() {
    use std::sync::atomic::Ordering::SeqCst;
    use tokio::io::{AsyncRead, ReadBuf};

    let (sa, sb) = pair();
    let listener = TcpListener::bind(&sb, "0.0.0.0:7").unwrap();
    tokio::time::timeout(LIMIT, async {
        let c = TcpStream::connect(&sa, "10.7.0.2:7").await.unwrap();
        let (mut s, _) = listener.accept().await.unwrap();
        let (mut rd, mut wr) = c.into_split();
        // The reader waits (registered once)…
        let counter = Arc::new(CountingWaker(Default::default()));
        let waker = std::task::Waker::from(counter.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        let mut space = [0u8; 16];
        let mut buf = ReadBuf::new(&mut space);
        assert!(std::pin::Pin::new(&mut rd)
            .poll_read(&mut cx, &mut buf)
            .is_pending());
        // …while 2 MiB go the other way and hundreds of ACKs come back.
        let n = 2 << 20;
        let sink = tokio::spawn(async move {
            let mut got = 0;
            let mut b = vec![0u8; 65536];
            while got < n {
                got += s.read(&mut b).await.unwrap();
            }
            s
        });
        wr.write_all(&data(n, 5)).await.unwrap();
        let mut s = sink.await.unwrap();
        // Wait for the last ACKs, so that all of them have been processed.
        let t0 = std::time::Instant::now();
        while sa
            .sockets()
            .iter()
            .any(|r| r.proto == "tcp" && r.send_q > 0)
            && t0.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            sa.sockets().iter().all(|r| r.send_q == 0),
            "data still unacknowledged"
        );
        assert_eq!(counter.0.load(SeqCst), 0, "woken without anything to read");
        // Data arrives: one wake-up, and the read finds it.
        s.write_all(b"x").await.unwrap();
        let t0 = std::time::Instant::now();
        while counter.0.load(SeqCst) == 0 && t0.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(counter.0.load(SeqCst), 1);
        let mut buf = ReadBuf::new(&mut space);
        match std::pin::Pin::new(&mut rd).poll_read(&mut cx, &mut buf) {
            std::task::Poll::Ready(Ok(())) => assert_eq!(buf.filled(), b"x"),
            other => panic!("the read should find the byte: {other:?}"),
        }
    })
    .await
    .expect("timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_writer_is_woken_for_a_third_of_the_buffer_not_per_ack() {
    let (sa, sb) = pair();
    let listener = TcpListener::bind(&sb, "0.0.0.0:7").unwrap();
    let n = 8 << 20;
    tokio::time::timeout(LIMIT, async {
        let mut c = TcpStream::connect(&sa, "10.7.0.2:7").await.unwrap();
        let (mut s, _) = listener.accept().await.unwrap();
        let sink = tokio::spawn(async move {
            let mut got = 0;
            let mut b = vec![0u8; 65536];
            while got < n {
                got += s.read(&mut b).await.unwrap();
            }
            got
        });
        let payload = data(n, 9);
        let mut write = std::pin::pin!(c.write_all(&payload));
        let mut polls = 0usize;
        std::future::poll_fn(|cx| {
            polls += 1;
            write.as_mut().poll(cx)
        })
        .await
        .unwrap();
        assert_eq!(sink.await.unwrap(), n);
        // The 1 MiB send buffer takes the first MiB at once; after that,
        // each wake-up finds at least a third of it free, so 7 MiB take at
        // most 21 wake-ups (23 polls). Waking on every pass of the stack
        // thread that brought an ACK took 60 here.
        assert!(polls <= 24, "{polls} polls to write 8 MiB");
        eprintln!("8 MiB written in {polls} polls");
    })
    .await
    .expect("timed out");
}
