//! The core's `tracing` events: state transitions, RTOs and drops reach a
//! subscriber (captured here in a buffer) with the connection's addresses.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::sim::{LinkConfig, Sim};
use crate::tcp::State;
use crate::testkit::{host, sim, A, B};
use crate::time::{Duration, Instant};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Runs `f` with a subscriber that records every event at `level` and
/// above; returns the recorded text.
fn capture(level: tracing::Level, f: impl FnOnce()) -> String {
    let cap = Capture::default();
    let w = cap.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .without_time()
        .with_writer(move || w.clone())
        .finish();
    tracing::subscriber::with_default(sub, f);
    cap.text()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn rto_state_transitions_and_timeout_are_traced() {
    let log = capture(tracing::Level::TRACE, || {
        let mut s = sim(LinkConfig::default(), 1);
        let l = s.b.tcp_listen(sa("0.0.0.0:80"), 4).unwrap();
        let now = s.now();
        let c = s.a.tcp_connect(sa("10.0.0.2:80"), None, now).unwrap();
        s.run_until(now + Duration::from_secs(1));
        assert!(s.b.tcp_accept(l).is_ok());
        // Cut the link both ways: the data is never acknowledged.
        let cut = LinkConfig {
            loss: 1.0,
            ..LinkConfig::default()
        };
        let mut s = Sim::new(
            std::mem::replace(&mut s.a, host(A, 0)),
            std::mem::replace(&mut s.b, host(B, 0)),
            cut,
            cut,
            1,
        );
        s.a.tcp_send(c, b"into the void").unwrap();
        s.run_until(Instant::from_secs(2000));
        assert_eq!(s.a.tcp_socket(c).unwrap().state(), State::Closed);
    });
    let lines: Vec<&str> = log.lines().collect();
    let has = |needles: &[&str]| lines.iter().any(|l| needles.iter().all(|n| l.contains(n)));
    assert!(
        has(&[
            "tcp state transition",
            "local=10.0.0.1:",
            "remote=10.0.0.2:80",
            "from=SynSent",
            "to=Established"
        ]),
        "{log}"
    );
    assert!(
        has(&["tcp state transition", "from=Listen", "to=SynReceived"])
            || has(&["tcp state transition", "from=SynReceived", "to=Established"]),
        "{log}"
    );
    assert!(
        has(&[
            "tcp retransmission timeout",
            "retries=1",
            "remote=10.0.0.2:80"
        ]),
        "{log}"
    );
    assert!(has(&["tcp retransmission timeout", "retries=15"]), "{log}");
    assert!(has(&["tcp connection failed", "error=TimedOut"]), "{log}");
    assert!(
        has(&["tcp state transition", "from=Established", "to=Closed"]),
        "{log}"
    );
    assert!(
        has(&["tcp segment retransmitted", "remote=10.0.0.2:80"]),
        "{log}"
    );
}

#[test]
fn drops_are_traced_with_their_reason() {
    let log = capture(tracing::Level::TRACE, || {
        let mut s = sim(LinkConfig::default(), 3);
        // No listener on B: the SYN is a drop ("no socket") answered by RST.
        let now = s.now();
        let c = s.a.tcp_connect(sa("10.0.0.2:81"), None, now).unwrap();
        s.run_until(now + Duration::from_secs(1));
        let t = s.a.tcp_socket_mut(c).unwrap();
        assert_eq!(
            t.take_error().map(|e| e.kind()),
            Some(io::ErrorKind::ConnectionRefused)
        );
    });
    assert!(
        log.lines()
            .any(|l| l.contains("dropped") && l.contains("reason=\"tcp.no_socket\"")),
        "{log}"
    );
}
