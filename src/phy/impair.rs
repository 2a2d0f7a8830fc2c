//! A network emulator in the style of netem: [`Impair`] wraps a device and
//! impairs both directions, reproducibly from a seed.
//!
//! # Spec grammar
//!
//! An [`ImpairSpec`] is parsed from comma-separated `key=value` tokens
//! (whitespace around tokens is ignored; the empty string is no impairment):
//!
//! | key       | value                    | meaning |
//! |-----------|--------------------------|---------|
//! | `delay`   | duration                 | fixed one-way delay |
//! | `jitter`  | duration                 | each frame's delay is `delay ± uniform(jitter)` |
//! | `loss`    | percent                  | independent random loss |
//! | `ge`      | `P/R` or `P/R/H/K` (percents) | Gilbert–Elliott bursty loss |
//! | `reorder` | percent                  | chance a frame overtakes delayed ones |
//! | `dup`     | percent                  | chance a frame is sent twice |
//! | `corrupt` | percent                  | chance one random bit of the frame is flipped |
//! | `rate`    | rate                     | bottleneck serialization rate |
//! | `queue`   | size                     | bottleneck buffer; excess is tail-dropped |
//! | `limit`   | integer                  | most frames held per direction (default 10000) |
//!
//! Units: durations `us`, `ms`, `s` (decimals allowed: `1.5ms`); percents end
//! in `%` (`0.5%`); rates `bit`/`bps` (bits per second — note that tc's
//! `bps` means *bytes* per second, ours does not), `kbit`, `mbit`, `gbit`
//! (powers of 1000); sizes `b`, `kb`, `mb` (1kb = 1000 bytes) or a bare byte
//! count. Example: `delay=10ms,jitter=2ms,loss=0.5%,reorder=1%,dup=0.1%,corrupt=0.01%,rate=100mbit,queue=256kb`.
//! A bad spec yields a [`SpecError`] naming the offending token.
//!
//! # Semantics (per direction, each with its own RNG stream)
//!
//! A frame entering a direction goes through, in order:
//! 1. **Loss**: Gilbert–Elliott first (the state moves good→bad with
//!    probability P or bad→good with R, then the frame is lost with
//!    probability `1-K` in the good state and `1-H` in the bad state;
//!    defaults K = 100%, H = 0%, so `ge=P/R` loses every frame in the bad
//!    state), then independent `loss`.
//! 2. **Duplication**: with probability `dup` a second copy follows the
//!    first through the remaining steps.
//! 3. **Corruption**: with probability `corrupt` one random bit of one random
//!    byte is flipped; on Ethernet the 14-byte link header is spared so the
//!    damage lands in the payload (as a checksum would notice).
//! 4. **Rate**: with `rate`, the frame occupies the bottleneck for
//!    `len*8/rate` seconds after the previous frame; its serialization ends
//!    at `max(now, link_free) + len*8/rate`. If the bytes not yet serialized
//!    plus this frame exceed `queue`, the frame is tail-dropped. Without
//!    `rate`, `queue` bounds the bytes held by the direction instead.
//! 5. **Delay**: the frame is released at serialization end plus `delay +
//!    uniform(-jitter, +jitter)` (never negative). Release times are kept
//!    monotonic, so jitter alone never reorders.
//! 6. **Reorder** (netem semantics): with probability `reorder` a frame
//!    skips the delay and is released at its serialization end, overtaking
//!    delayed frames. With no delay or jitter, a reordered frame is instead
//!    held back and released right after the next frame (or after 10 ms if
//!    no frame follows).
//!
//! Held frames are released by [`Device::service`] and on every
//! `recv_batch`/`send_batch`; [`Device::poll_at`] returns the earliest
//! release time. `send_batch` always accepts the whole batch (the frames are
//! queued, then those due are given to the inner device; if the inner device
//! would block, the rest wait in a staging batch and `poll_at` asks to be
//! called again). An empty spec is a pure pass-through.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::str::FromStr;

use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Device, DeviceCaps, FrameBatch};
use crate::time::{Duration, Instant};

/// Default most frames held per direction.
pub const DEFAULT_LIMIT: usize = 10_000;
/// With no delay, a reordered frame waits at most this long for a successor.
const HOLD_MAX: Duration = Duration::from_millis(10);
/// Frames pulled from or staged for the inner device per round.
const STAGE_FRAMES: usize = 64;
/// Largest frame the staging batches take.
const STAGE_FRAME_LEN: usize = 65_536 + 18;

/// Gilbert–Elliott loss parameters, probabilities in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    /// Good → bad transition probability per frame.
    pub p: f64,
    /// Bad → good transition probability per frame.
    pub r: f64,
    /// Delivery probability in the bad state (loss there is `1-h`).
    pub h: f64,
    /// Delivery probability in the good state (loss there is `1-k`).
    pub k: f64,
}

/// What to do to the traffic. See the [module documentation](self) for the
/// grammar and semantics. `Default` is no impairment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImpairSpec {
    /// Fixed delay.
    pub delay: Duration,
    /// Uniform jitter around the delay.
    pub jitter: Duration,
    /// Independent loss probability.
    pub loss: f64,
    /// Bursty loss.
    pub ge: Option<GilbertElliott>,
    /// Probability a frame skips the delay.
    pub reorder: f64,
    /// Probability a frame is duplicated.
    pub dup: f64,
    /// Probability a frame gets one bit flipped.
    pub corrupt: f64,
    /// Bottleneck rate in bits per second.
    pub rate_bps: Option<u64>,
    /// Bottleneck buffer in bytes.
    pub queue_bytes: Option<usize>,
    /// Most frames held per direction.
    pub limit: usize,
}

impl Default for ImpairSpec {
    fn default() -> Self {
        ImpairSpec {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            ge: None,
            reorder: 0.0,
            dup: 0.0,
            corrupt: 0.0,
            rate_bps: None,
            queue_bytes: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl ImpairSpec {
    /// True when the spec changes nothing (frames pass straight through).
    pub fn is_passthrough(&self) -> bool {
        let d = ImpairSpec::default();
        ImpairSpec {
            limit: d.limit,
            ..*self
        } == d
    }
}

/// A spec that did not parse: the offending token and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The token as written.
    pub token: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad impairment token '{}': {}", self.token, self.reason)
    }
}

impl std::error::Error for SpecError {}

fn parse_number(s: &str) -> Option<f64> {
    let v: f64 = s.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v)
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let num = s
        .strip_suffix('%')
        .ok_or_else(|| format!("'{s}' is not a percentage (write e.g. 0.5%)"))?;
    let v = parse_number(num).ok_or_else(|| format!("'{s}' is not a percentage"))?;
    if v > 100.0 {
        return Err(format!("'{s}' is over 100%"));
    }
    Ok(v / 100.0)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, scale) = if let Some(n) = s.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(format!("'{s}' needs a unit: us, ms or s"));
    };
    let v = parse_number(num).ok_or_else(|| format!("'{s}' is not a duration"))?;
    let secs = v * scale;
    if secs > 86_400.0 {
        return Err(format!("'{s}' is longer than a day"));
    }
    Ok(Duration::from_micros((secs * 1e6).round() as u64))
}

fn parse_rate(s: &str) -> Result<u64, String> {
    let units = [
        ("gbit", 1e9),
        ("mbit", 1e6),
        ("kbit", 1e3),
        ("bit", 1.0),
        ("bps", 1.0),
    ];
    for (suffix, mult) in units {
        if let Some(n) = s.strip_suffix(suffix) {
            let v = parse_number(n).ok_or_else(|| format!("'{s}' is not a rate"))?;
            let bps = (v * mult).round();
            if !(1.0..=1e15).contains(&bps) {
                return Err(format!("rate '{s}' is out of range"));
            }
            return Ok(bps as u64);
        }
    }
    Err(format!("'{s}' needs a unit: bit, bps, kbit, mbit or gbit"))
}

fn parse_size(s: &str) -> Result<usize, String> {
    let (num, mult) = if let Some(n) = s.strip_suffix("kb") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix("mb") {
        (n, 1e6)
    } else if let Some(n) = s.strip_suffix('b') {
        (n, 1.0)
    } else {
        (s, 1.0)
    };
    let v = parse_number(num).ok_or_else(|| format!("'{s}' is not a size (b, kb, mb)"))?;
    let bytes = (v * mult).round();
    if !(1.0..=1e12).contains(&bytes) {
        return Err(format!("size '{s}' is out of range"));
    }
    Ok(bytes as usize)
}

fn parse_ge(s: &str) -> Result<GilbertElliott, String> {
    let parts: Vec<&str> = s.split('/').collect();
    if parts.len() != 2 && parts.len() != 4 {
        return Err("expected P/R or P/R/H/K, as percentages".into());
    }
    let p = parse_percent(parts[0])?;
    let r = parse_percent(parts[1])?;
    let (h, k) = if parts.len() == 4 {
        (parse_percent(parts[2])?, parse_percent(parts[3])?)
    } else {
        (0.0, 1.0)
    };
    Ok(GilbertElliott { p, r, h, k })
}

impl FromStr for ImpairSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<ImpairSpec, SpecError> {
        let mut spec = ImpairSpec::default();
        for token in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let err = |reason: String| SpecError {
                token: token.to_string(),
                reason,
            };
            let (key, value) = token
                .split_once('=')
                .ok_or_else(|| err("expected key=value".into()))?;
            let value = value.trim();
            match key.trim() {
                "delay" => spec.delay = parse_duration(value).map_err(err)?,
                "jitter" => spec.jitter = parse_duration(value).map_err(err)?,
                "loss" => spec.loss = parse_percent(value).map_err(err)?,
                "ge" => spec.ge = Some(parse_ge(value).map_err(err)?),
                "reorder" => spec.reorder = parse_percent(value).map_err(err)?,
                "dup" => spec.dup = parse_percent(value).map_err(err)?,
                "corrupt" => spec.corrupt = parse_percent(value).map_err(err)?,
                "rate" => spec.rate_bps = Some(parse_rate(value).map_err(err)?),
                "queue" => spec.queue_bytes = Some(parse_size(value).map_err(err)?),
                "limit" => {
                    spec.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| err(format!("'{value}' is not a positive frame count")))?
                }
                k => {
                    return Err(err(format!(
                        "unknown key '{k}' (known: delay, jitter, loss, ge, reorder, dup, corrupt, rate, queue, limit)"
                    )))
                }
            }
        }
        Ok(spec)
    }
}

/// Counters of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirectionStats {
    /// Frames released (duplicates included).
    pub passed: u64,
    /// Frames lost (random or Gilbert–Elliott).
    pub lost: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Frames with a flipped bit.
    pub corrupted: u64,
    /// Frames that skipped the delay or were held back.
    pub reordered: u64,
    /// Frames tail-dropped because the queue (bytes) or limit (frames) was full.
    pub queue_dropped: u64,
}

/// Counters of both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImpairStats {
    /// Frames the stack sent (toward the inner device).
    pub tx: DirectionStats,
    /// Frames the inner device received (toward the stack).
    pub rx: DirectionStats,
}

struct Held {
    release: Instant,
    seq: u64,
    frame: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, o: &Held) -> bool {
        (self.release, self.seq) == (o.release, o.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Held) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    /// Reversed, so the `BinaryHeap` pops the earliest release first.
    fn cmp(&self, o: &Held) -> Ordering {
        (o.release, o.seq).cmp(&(self.release, self.seq))
    }
}

/// One direction's impairment state.
struct Lane {
    rng: ChaCha8Rng,
    ge_bad: bool,
    heap: BinaryHeap<Held>,
    seq: u64,
    last_release: Instant,
    link_free_ns: u128,
    held_back: Option<(Vec<u8>, Instant)>,
    held_bytes: usize,
    free: Vec<Vec<u8>>,
    stats: DirectionStats,
}

impl Lane {
    fn new(seed: u64, stream: u64) -> Lane {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Lane {
            rng,
            ge_bad: false,
            heap: BinaryHeap::new(),
            seq: 0,
            last_release: Instant::ZERO,
            link_free_ns: 0,
            held_back: None,
            held_bytes: 0,
            free: Vec::new(),
            stats: DirectionStats::default(),
        }
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (p >= 1.0 || self.unit() < p)
    }

    /// Uniform in [0, n).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.rng.next_u64()) * u128::from(n)) >> 64) as u64
    }

    fn frames_held(&self) -> usize {
        self.heap.len() + usize::from(self.held_back.is_some())
    }

    fn next_release(&self) -> Option<Instant> {
        let h = self.heap.peek().map(|h| h.release);
        let b = self.held_back.as_ref().map(|b| b.1);
        match (h, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        }
    }

    fn push(&mut self, release: Instant, frame: Vec<u8>) {
        self.held_bytes += frame.len();
        self.seq += 1;
        self.heap.push(Held {
            release,
            seq: self.seq,
            frame,
        });
    }

    fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.free.len() < 64 {
            buf.clear();
            self.free.push(buf);
        }
    }

    /// Runs one frame through loss and duplication.
    fn admit(&mut self, spec: &ImpairSpec, now: Instant, frame: &[u8], link_hdr: usize) {
        let mut lost = false;
        if let Some(ge) = spec.ge {
            if self.ge_bad {
                if self.chance(ge.r) {
                    self.ge_bad = false;
                }
            } else if self.chance(ge.p) {
                self.ge_bad = true;
            }
            let loss = if self.ge_bad { 1.0 - ge.h } else { 1.0 - ge.k };
            lost = self.chance(loss);
        }
        if self.chance(spec.loss) {
            lost = true;
        }
        if lost {
            self.stats.lost += 1;
            return;
        }
        let copies = if self.chance(spec.dup) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            self.enqueue(spec, now, frame, link_hdr);
        }
    }

    /// Corruption, rate, queue, delay and reorder for one copy.
    fn enqueue(&mut self, spec: &ImpairSpec, now: Instant, frame: &[u8], link_hdr: usize) {
        if self.frames_held() >= spec.limit {
            self.stats.queue_dropped += 1;
            return;
        }
        let mut buf = self.free.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(frame);
        if !buf.is_empty() && self.chance(spec.corrupt) {
            let start = if buf.len() > link_hdr { link_hdr } else { 0 };
            let at = start + self.below((buf.len() - start) as u64) as usize;
            let bit = self.below(8);
            buf[at] ^= 1 << bit;
            self.stats.corrupted += 1;
        }
        let now_ns = u128::from(now.total_micros()) * 1000;
        let mut ready_ns = now_ns;
        if let Some(rate) = spec.rate_bps {
            let rate = u128::from(rate);
            let start = now_ns.max(self.link_free_ns);
            if let Some(q) = spec.queue_bytes {
                let backlog = (start - now_ns) * rate / 8 / 1_000_000_000;
                if backlog + buf.len() as u128 > q as u128 {
                    self.stats.queue_dropped += 1;
                    self.recycle(buf);
                    return;
                }
            }
            let end = start + (buf.len() as u128 * 8 * 1_000_000_000).div_ceil(rate);
            self.link_free_ns = end;
            ready_ns = end;
        } else if let Some(q) = spec.queue_bytes {
            if self.held_bytes + buf.len() > q {
                self.stats.queue_dropped += 1;
                self.recycle(buf);
                return;
            }
        }
        let ready =
            Instant::from_micros(u64::try_from(ready_ns.div_ceil(1000)).unwrap_or(u64::MAX));
        let delayed = !spec.delay.is_zero() || !spec.jitter.is_zero();
        if self.chance(spec.reorder) {
            self.stats.reordered += 1;
            if delayed {
                self.push(ready, buf);
            } else {
                if let Some((prev, _)) = self.held_back.take() {
                    self.push(ready, prev);
                }
                self.held_back = Some((buf, ready + HOLD_MAX));
            }
            return;
        }
        let mut delay = spec.delay.as_micros() as i128;
        if !spec.jitter.is_zero() {
            let j = spec.jitter.as_micros() as u64;
            delay += self.below(2 * j + 1) as i128 - j as i128;
        }
        let mut release = ready + Duration::from_micros(delay.max(0) as u64);
        if release < self.last_release {
            release = self.last_release;
        }
        self.last_release = release;
        self.push(release, buf);
        if let Some((prev, _)) = self.held_back.take() {
            // Released right after the frame that overtook it.
            self.push(release, prev);
        }
    }

    /// The next frame due at `now`, if any.
    fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if let Some((_, deadline)) = &self.held_back {
            let deadline = *deadline;
            if deadline <= now && self.heap.peek().is_none_or(|h| h.release > deadline) {
                let (f, _) = self.held_back.take().expect("checked");
                self.push(deadline, f);
            }
        }
        if self.heap.peek()?.release > now {
            return None;
        }
        let h = self.heap.pop().expect("peeked");
        self.held_bytes -= h.frame.len();
        self.stats.passed += 1;
        Some(h.frame)
    }
}

/// A device wrapper that impairs both directions. See the
/// [module documentation](self).
pub struct Impair<D: Device> {
    inner: D,
    spec: ImpairSpec,
    link_hdr: usize,
    tx: Lane,
    rx: Lane,
    /// Frames due toward the inner device that it has not taken yet.
    tx_ready: FrameBatch,
    /// Scratch for frames pulled from the inner device.
    rx_scratch: FrameBatch,
    last_now: Instant,
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
            link_hdr,
            tx: Lane::new(seed, 0),
            rx: Lane::new(seed, 1),
            tx_ready: FrameBatch::new(STAGE_FRAMES, STAGE_FRAME_LEN),
            rx_scratch: FrameBatch::new(STAGE_FRAMES, caps.max_frame_len().max(1)),
            last_now: Instant::ZERO,
        }
    }

    /// The spec in force.
    pub fn spec(&self) -> &ImpairSpec {
        &self.spec
    }

    /// Counters of both directions.
    pub fn stats(&self) -> ImpairStats {
        ImpairStats {
            tx: self.tx.stats,
            rx: self.rx.stats,
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
        self.last_now = self.last_now.max(now);
        if self.spec.is_passthrough() {
            let n = self.inner.recv_batch(now, batch)?;
            self.rx.stats.passed += n as u64;
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
                self.rx.admit(&self.spec, now, f, self.link_hdr);
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
                self.rx.stats.passed -= 1;
                self.rx.stats.queue_dropped += 1;
            }
            self.rx.recycle(f);
        }
        Ok(n)
    }

    fn send_batch(&mut self, now: Instant, batch: &FrameBatch) -> io::Result<usize> {
        self.last_now = self.last_now.max(now);
        if self.spec.is_passthrough() {
            let n = self.inner.send_batch(now, batch)?;
            self.tx.stats.passed += n as u64;
            return Ok(n);
        }
        self.flush_tx(now)?;
        for f in batch.iter() {
            self.tx.admit(&self.spec, now, f, self.link_hdr);
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
        self.last_now = self.last_now.max(now);
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
