//! A network emulator in the style of netem: [`Impair`] wraps a device and
//! impairs both directions, reproducibly from a seed, with the engine of
//! [`crate::link::impair`] (one [`Lane`] per direction). The spec grammar
//! (the `--impair` strings of the tools) and the semantics are documented
//! there.
//!
//! Held frames are released by [`Device::service`] and on every
//! `recv_batch`/`send_batch`; [`Device::poll_at`] returns the earliest
//! release time. `send_batch` always accepts the whole batch (the frames are
//! queued, then those due are given to the inner device; if the inner device
//! would block, the rest wait in a staging batch and `poll_at` asks to be
//! called again). An empty spec is a pure pass-through.

use std::io;
use std::os::fd::RawFd;

use super::{Device, DeviceCaps, FrameBatch};
pub use crate::link::impair::{
    DirectionStats, GilbertElliott, ImpairSpec, SpecError, DEFAULT_LIMIT,
};
use crate::link::impair::{Discipline, Lane};
use crate::link::Rng;
use crate::time::{Duration, Instant};

/// Frames pulled from or staged for the inner device per round.
const STAGE_FRAMES: usize = 64;
/// Largest frame the staging batches take.
const STAGE_FRAME_LEN: usize = 65_536 + 18;

/// Counters of both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImpairStats {
    /// Frames the stack sent (toward the inner device).
    pub tx: DirectionStats,
    /// Frames the inner device received (toward the stack).
    pub rx: DirectionStats,
}

/// A device wrapper that impairs both directions. See the
/// [module documentation](self).
pub struct Impair<D: Device> {
    inner: D,
    spec: ImpairSpec,
    tx: Lane,
    rx: Lane,
    /// Frames due toward the inner device that it has not taken yet.
    tx_ready: FrameBatch,
    /// Scratch for frames pulled from the inner device.
    rx_scratch: FrameBatch,
}

impl<D: Device> Impair<D> {
    /// Wraps `inner`; `seed` makes every random choice reproducible (the two
    /// directions use independent streams of it).
    pub fn new(inner: D, spec: ImpairSpec, seed: u64) -> Impair<D> {
        let caps = inner.caps();
        let link_hdr = caps.medium.header_len();
        Impair {
            inner,
            spec,
            tx: Lane::new(spec, link_hdr, Rng::with_stream(seed, 0), Discipline::Netem),
            rx: Lane::new(spec, link_hdr, Rng::with_stream(seed, 1), Discipline::Netem),
            tx_ready: FrameBatch::new(STAGE_FRAMES, STAGE_FRAME_LEN),
            rx_scratch: FrameBatch::new(STAGE_FRAMES, caps.max_frame_len().max(1)),
        }
    }

    /// The spec in force.
    pub fn spec(&self) -> &ImpairSpec {
        &self.spec
    }

    /// Counters of both directions.
    pub fn stats(&self) -> ImpairStats {
        ImpairStats {
            tx: *self.tx.stats(),
            rx: *self.rx.stats(),
        }
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The wrapped device, mutable.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// Unwraps the device; frames still held are discarded.
    pub fn into_inner(self) -> D {
        self.inner
    }

    /// Gives due outbound frames to the inner device until it would block.
    fn flush_tx(&mut self, now: Instant) -> io::Result<()> {
        loop {
            while !self.tx_ready.is_full() {
                match self.tx.pop_due(now) {
                    Some(f) => {
                        self.tx_ready.push(&f);
                        self.tx.recycle(f);
                    }
                    None => break,
                }
            }
            if self.tx_ready.is_empty() {
                return Ok(());
            }
            let n = self.inner.send_batch(now, &self.tx_ready)?;
            let all = n >= self.tx_ready.len();
            self.tx_ready.consume(n);
            if !all {
                return Ok(()); // inner would block; retry later
            }
        }
    }
}

impl<D: Device> Device for Impair<D> {
    fn dropped(&mut self) -> u64 {
        let s = self.stats();
        self.inner.dropped() + s.tx.lost + s.tx.queue_dropped + s.rx.lost + s.rx.queue_dropped
    }

    fn caps(&self) -> DeviceCaps {
        let mut caps = self.inner.caps();
        if !self.spec.is_passthrough() {
            // Impairment works on wire frames one at a time: super-segments
            // and partial checksums would bypass it (open the device
            // without offload under an impairment).
            caps.offload = crate::link::Offload::default();
        }
        caps
    }

    fn recv_batch(&mut self, now: Instant, batch: &mut FrameBatch) -> io::Result<usize> {
        if self.spec.is_passthrough() {
            let n = self.inner.recv_batch(now, batch)?;
            self.rx.stats_mut().passed += n as u64;
            return Ok(n);
        }
        self.flush_tx(now)?;
        // Pull no more than the caller has room for, so that a slow reader
        // leaves the backlog in the inner device rather than in our queue.
        let room = batch.max_frames() - batch.len();
        let mut pulled = 0;
        while pulled < room {
            self.rx_scratch.clear();
            let n = self.inner.recv_batch(now, &mut self.rx_scratch)?;
            for f in self.rx_scratch.iter() {
                self.rx.offer(now, f, Duration::ZERO);
            }
            pulled += n;
            if n < self.rx_scratch.max_frames() {
                break;
            }
        }
        let mut n = 0;
        while !batch.is_full() {
            let Some(f) = self.rx.pop_due(now) else { break };
            if batch.push(&f) {
                n += 1;
            } else {
                // Longer than the caller's frame limit.
                self.rx.stats_mut().passed -= 1;
                self.rx.stats_mut().queue_dropped += 1;
            }
            self.rx.recycle(f);
        }
        Ok(n)
    }

    fn send_batch(&mut self, now: Instant, batch: &FrameBatch) -> io::Result<usize> {
        if self.spec.is_passthrough() {
            let n = self.inner.send_batch(now, batch)?;
            self.tx.stats_mut().passed += n as u64;
            return Ok(n);
        }
        self.flush_tx(now)?;
        for f in batch.iter() {
            self.tx.offer(now, f, Duration::ZERO);
        }
        self.flush_tx(now)?;
        Ok(batch.len())
    }

    fn as_raw_fd(&self) -> Option<RawFd> {
        self.inner.as_raw_fd()
    }

    fn wants_writable(&self) -> bool {
        // Released frames the inner device refused wait for it to drain.
        !self.tx_ready.is_empty() || self.inner.wants_writable()
    }

    fn poll_at(&self) -> Option<Instant> {
        [
            self.tx.next_release(),
            self.rx.next_release(),
            self.inner.poll_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn service(&mut self, now: Instant) -> io::Result<()> {
        self.inner.service(now)?;
        self.flush_tx(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phy::pipe::{PipeDevice, PipeOptions};
    use crate::phy::Medium;

    fn spec(s: &str) -> ImpairSpec {
        s.parse().unwrap()
    }

    /// An impaired end `a` and a plain peer `b` with a large queue.
    fn link(s: &str, seed: u64) -> (Impair<PipeDevice>, PipeDevice) {
        let mut o = PipeOptions::new(Medium::Ip, 1500);
        o.capacity = 1 << 20;
        let (a, b) = PipeDevice::pair_with(o).unwrap();
        (Impair::new(a, spec(s), seed), b)
    }

    fn send_one(d: &mut impl Device, now: Instant, f: &[u8]) {
        let mut b = FrameBatch::new(1, 1500);
        b.push(f);
        assert_eq!(d.send_batch(now, &b).unwrap(), 1);
    }

    fn recv_all(d: &mut impl Device, now: Instant) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut b = FrameBatch::new(64, 1500);
        loop {
            b.clear();
            let n = d.recv_batch(now, &mut b).unwrap();
            out.extend(b.iter().map(<[u8]>::to_vec));
            if n == 0 {
                return out;
            }
        }
    }

    #[test]
    fn parse_good_specs() {
        let s = spec("delay=10ms,jitter=2ms,loss=0.5%,reorder=1%,dup=0.1%,corrupt=0.01%,rate=100mbit,queue=256kb");
        assert_eq!(s.delay, Duration::from_millis(10));
        assert_eq!(s.jitter, Duration::from_millis(2));
        assert!((s.loss - 0.005).abs() < 1e-12);
        assert!((s.reorder - 0.01).abs() < 1e-12);
        assert!((s.dup - 0.001).abs() < 1e-12);
        assert!((s.corrupt - 0.0001).abs() < 1e-12);
        assert_eq!(s.rate_bps, Some(100_000_000));
        assert_eq!(s.queue_bytes, Some(256_000));
        let g = spec(" ge=1%/30% , delay=1.5ms ").ge.unwrap();
        assert_eq!((g.p, g.r, g.h, g.k), (0.01, 0.3, 0.0, 1.0));
        let g = spec("ge=1%/30%/10%/99%").ge.unwrap();
        assert_eq!((g.h, g.k), (0.1, 0.99));
        assert_eq!(spec("delay=250us").delay, Duration::from_micros(250));
        assert_eq!(spec("delay=2s").delay, Duration::from_secs(2));
        assert_eq!(spec("rate=1gbit").rate_bps, Some(1_000_000_000));
        assert_eq!(spec("rate=64kbit").rate_bps, Some(64_000));
        assert_eq!(spec("rate=9600bps").rate_bps, Some(9600));
        assert_eq!(spec("queue=1mb").queue_bytes, Some(1_000_000));
        assert_eq!(spec("queue=1500b").queue_bytes, Some(1500));
        assert_eq!(spec("queue=1500").queue_bytes, Some(1500));
        assert_eq!(spec("limit=50").limit, 50);
        assert!(spec("").is_passthrough());
        assert!(spec(" , ").is_passthrough());
        assert!(!spec("loss=1%").is_passthrough());
    }

    #[test]
    fn parse_bad_specs_name_the_token() {
        for bad in [
            "delay=10",
            "delay=ms",
            "loss=0.5",
            "loss=150%",
            "loss=-1%",
            "rate=100",
            "rate=0mbit",
            "queue=big",
            "ge=1%",
            "ge=1%/2%/3%",
            "bogus=1",
            "delay",
            "limit=0",
            "jitter=nanms",
        ] {
            let e = format!("delay=1ms,{bad},loss=1%")
                .parse::<ImpairSpec>()
                .unwrap_err();
            assert_eq!(e.token, bad, "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn empty_spec_is_pass_through() {
        let (mut a, mut b) = link("", 1);
        send_one(&mut a, Instant::ZERO, b"out");
        assert_eq!(recv_all(&mut b, Instant::ZERO), vec![b"out".to_vec()]);
        send_one(&mut b, Instant::ZERO, b"in");
        assert_eq!(recv_all(&mut a, Instant::ZERO), vec![b"in".to_vec()]);
        assert_eq!(a.poll_at(), None);
        assert_eq!(a.stats().tx.passed, 1);
        assert_eq!(a.stats().rx.passed, 1);
    }

    #[test]
    fn loss_rate_within_bounds() {
        let (mut a, mut b) = link("loss=1%", 42);
        let mut batch = FrameBatch::new(64, 1500);
        let mut got = 0usize;
        for i in 0..100_000u32 {
            batch.push(&i.to_be_bytes());
            if batch.is_full() {
                a.send_batch(Instant::ZERO, &batch).unwrap();
                batch.clear();
                got += recv_all(&mut b, Instant::ZERO).len();
            }
        }
        a.send_batch(Instant::ZERO, &batch).unwrap();
        got += recv_all(&mut b, Instant::ZERO).len();
        let lost = 100_000 - got;
        // Expected 1000, sigma ~31.5: allow 5 sigma.
        assert!((840..=1160).contains(&lost), "lost {lost}");
        assert_eq!(a.stats().tx.lost as usize, lost);
        // Inbound too, independently.
        for i in 0..20_000u32 {
            send_one(&mut b, Instant::ZERO, &i.to_be_bytes());
        }
        let inbound = recv_all(&mut a, Instant::ZERO).len();
        assert!((19_700..=19_900).contains(&inbound), "inbound {inbound}");
    }

    fn trace(seed: u64) -> Vec<(u64, Vec<u8>)> {
        let (mut a, mut b) = link(
            "delay=5ms,jitter=3ms,loss=5%,reorder=10%,dup=5%,corrupt=5%,rate=10mbit,queue=20kb",
            seed,
        );
        let mut out = Vec::new();
        for t in 0..2000u64 {
            let now = Instant::from_micros(t * 100);
            send_one(&mut a, now, &[(t % 251) as u8; 200]);
            a.service(now).unwrap();
            for f in recv_all(&mut b, now) {
                out.push((now.total_micros(), f));
            }
        }
        out
    }

    #[test]
    fn same_seed_same_output() {
        let x = trace(7);
        assert!(x.len() > 1000);
        assert_eq!(x, trace(7));
        assert_ne!(x, trace(8));
    }

    #[test]
    fn delay_is_exact() {
        let (mut a, mut b) = link("delay=10ms", 1);
        send_one(&mut a, Instant::from_millis(1), b"x");
        assert_eq!(a.poll_at(), Some(Instant::from_millis(11)));
        a.service(Instant::from_micros(10_999)).unwrap();
        assert!(recv_all(&mut b, Instant::ZERO).is_empty());
        a.service(Instant::from_millis(11)).unwrap();
        assert_eq!(recv_all(&mut b, Instant::ZERO), vec![b"x".to_vec()]);
        assert_eq!(a.poll_at(), None);
        // Inbound: held inside the wrapper until due.
        send_one(&mut b, Instant::ZERO, b"y");
        assert!(recv_all(&mut a, Instant::from_millis(20)).is_empty());
        assert_eq!(a.poll_at(), Some(Instant::from_millis(30)));
        assert!(recv_all(&mut a, Instant::from_micros(29_999)).is_empty());
        assert_eq!(
            recv_all(&mut a, Instant::from_millis(30)),
            vec![b"y".to_vec()]
        );
    }

    #[test]
    fn rate_limits() {
        // 100 frames of 1250 bytes at 10 Mbit/s: 1 ms each, 100 ms in all.
        let (mut a, mut b) = link("rate=10mbit", 1);
        let mut batch = FrameBatch::new(100, 1500);
        for _ in 0..100 {
            batch.push(&[0; 1250]);
        }
        a.send_batch(Instant::ZERO, &batch).unwrap();
        let mut got = 0;
        for ms in 1..=100u64 {
            a.service(Instant::from_micros(ms * 1000 - 1)).unwrap();
            assert_eq!(recv_all(&mut b, Instant::ZERO).len(), 0, "early at {ms} ms");
            a.service(Instant::from_millis(ms)).unwrap();
            got += recv_all(&mut b, Instant::ZERO).len();
            assert_eq!(got, ms as usize);
        }
        assert_eq!(a.poll_at(), None);
    }

    #[test]
    fn queue_tail_drop() {
        // 8 Mbit/s = 1 byte/us; 10 kB of buffer holds ten 1000-byte frames.
        let (mut a, mut b) = link("rate=8mbit,queue=10kb", 1);
        let mut batch = FrameBatch::new(100, 1500);
        for _ in 0..100 {
            batch.push(&[0; 1000]);
        }
        assert_eq!(a.send_batch(Instant::ZERO, &batch).unwrap(), 100);
        assert_eq!(a.stats().tx.queue_dropped, 90);
        a.service(Instant::from_secs(1)).unwrap();
        assert_eq!(recv_all(&mut b, Instant::ZERO).len(), 10);
        // The queue drains with time: 5 ms later five more fit.
        let t = Instant::from_secs(2);
        batch.consume(90); // ten left
        a.send_batch(t, &batch).unwrap();
        a.send_batch(t + Duration::from_millis(5), &batch).unwrap();
        assert_eq!(a.stats().tx.queue_dropped, 90 + 5);
        // Frame limit as well.
        let (mut a, _b) = link("delay=1s,limit=3", 1);
        a.send_batch(Instant::ZERO, &batch).unwrap();
        assert_eq!(a.stats().tx.queue_dropped, 7);
    }

    #[test]
    fn gilbert_elliott_is_bursty() {
        let (mut a, mut b) = link("ge=1%/30%", 3);
        let n = 100_000u32;
        for chunk in 0..n / 1000 {
            let mut batch = FrameBatch::new(1000, 1500);
            for i in chunk * 1000..(chunk + 1) * 1000 {
                batch.push(&i.to_be_bytes());
            }
            a.send_batch(Instant::ZERO, &batch).unwrap();
        }
        let mut got = Vec::new();
        loop {
            let f = recv_all(&mut b, Instant::ZERO);
            if f.is_empty() {
                break;
            }
            got.extend(
                f.iter()
                    .map(|f| u32::from_be_bytes(f[..4].try_into().unwrap())),
            );
        }
        let mut bursts = 0;
        let mut lost = 0;
        let mut prev: i64 = -1;
        for &s in &got {
            let gap = s as i64 - prev - 1;
            if gap > 0 {
                bursts += 1;
                lost += gap;
            }
            prev = s as i64;
        }
        let mean_burst = lost as f64 / bursts as f64;
        // Stationary loss p/(p+r) ~ 3.2%; mean burst 1/r ~ 3.3.
        assert!(mean_burst > 2.0, "mean burst {mean_burst}");
        let rate = lost as f64 / n as f64;
        assert!((0.02..0.045).contains(&rate), "loss rate {rate}");
    }

    #[test]
    fn dup_and_corrupt() {
        let (mut a, mut b) = link("dup=100%", 1);
        send_one(&mut a, Instant::ZERO, b"twice");
        assert_eq!(
            recv_all(&mut b, Instant::ZERO),
            vec![b"twice".to_vec(), b"twice".to_vec()]
        );
        assert_eq!(a.stats().tx.duplicated, 1);
        assert_eq!(a.stats().tx.passed, 2);
        let (mut a, mut b) = link("corrupt=100%", 1);
        let orig = [0x55u8; 100];
        for _ in 0..50 {
            send_one(&mut a, Instant::ZERO, &orig);
            let got = recv_all(&mut b, Instant::ZERO);
            let flipped: u32 = got[0]
                .iter()
                .zip(&orig)
                .map(|(x, y)| (x ^ y).count_ones())
                .sum();
            assert_eq!(flipped, 1);
        }
        // Ethernet: the link header is spared.
        let (x, mut y) = PipeDevice::pair(Medium::Ethernet, 1500);
        let mut a = Impair::new(x, spec("corrupt=100%"), 9);
        for _ in 0..200 {
            send_one(&mut a, Instant::ZERO, &[0u8; 20]);
            let got = recv_all(&mut y, Instant::ZERO);
            assert_eq!(&got[0][..14], &[0u8; 14]);
        }
    }

    #[test]
    fn reorder_with_delay_overtakes_and_jitter_alone_does_not() {
        let (mut a, mut b) = link("delay=10ms,jitter=5ms", 5);
        let mut seqs = Vec::new();
        for t in 0..3000u64 {
            let now = Instant::from_micros(t * 100);
            send_one(&mut a, now, &(t as u32).to_be_bytes());
            a.service(now).unwrap();
            seqs.extend(
                recv_all(&mut b, now)
                    .iter()
                    .map(|f| u32::from_be_bytes(f[..4].try_into().unwrap())),
            );
        }
        a.service(Instant::from_secs(10)).unwrap();
        seqs.extend(
            recv_all(&mut b, Instant::ZERO)
                .iter()
                .map(|f| u32::from_be_bytes(f[..4].try_into().unwrap())),
        );
        assert_eq!(seqs, (0..3000).collect::<Vec<_>>());

        let (mut a, mut b) = link("delay=10ms,reorder=10%", 5);
        let mut seqs = Vec::new();
        for t in 0..3000u64 {
            let now = Instant::from_micros(t * 100);
            send_one(&mut a, now, &(t as u32).to_be_bytes());
            a.service(now).unwrap();
            seqs.extend(
                recv_all(&mut b, now)
                    .iter()
                    .map(|f| u32::from_be_bytes(f[..4].try_into().unwrap())),
            );
        }
        a.service(Instant::from_secs(10)).unwrap();
        seqs.extend(
            recv_all(&mut b, Instant::ZERO)
                .iter()
                .map(|f| u32::from_be_bytes(f[..4].try_into().unwrap())),
        );
        assert_eq!(seqs.len(), 3000);
        let out_of_order = seqs.windows(2).filter(|w| w[1] < w[0]).count();
        let r = a.stats().tx.reordered;
        assert!((200..400).contains(&r), "reordered {r}");
        assert!(out_of_order > 100, "out of order {out_of_order}");
    }

    #[test]
    fn reorder_without_delay_holds_back_one() {
        let (mut a, mut b) = link("reorder=50%", 11);
        let mut seqs = Vec::new();
        for t in 0..1000u32 {
            send_one(&mut a, Instant::ZERO, &t.to_be_bytes());
            seqs.extend(
                recv_all(&mut b, Instant::ZERO)
                    .iter()
                    .map(|f| u32::from_be_bytes(f[..4].try_into().unwrap())),
            );
        }
        // A frame held back at the end goes after HOLD_MAX.
        assert!(a.poll_at().is_some_and(|t| t <= Instant::from_millis(10)));
        a.service(Instant::from_millis(10)).unwrap();
        seqs.extend(
            recv_all(&mut b, Instant::ZERO)
                .iter()
                .map(|f| u32::from_be_bytes(f[..4].try_into().unwrap())),
        );
        assert_eq!(seqs.len(), 1000);
        let mut sorted = seqs.clone();
        sorted.sort();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert!(seqs.windows(2).any(|w| w[1] < w[0]));
        assert_eq!(a.poll_at(), None);
    }
}
