//! Plays the peer's side of a [`Plan`] against a ustack interface on a
//! virtual clock, applies a case's mutations, and checks the invariants.

use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, Shutdown, SocketAddr};

use super::build::ipv4_packet;
use super::capture::TcpPacket;
use super::check::{check_bounds, check_emitted, Emitted, TcpSegment};
use super::mutate::{apply_bytes, Mutation};
use super::script::{Plan, Script, TcpScript, UdpScript};
use crate::iface::{Config, Interface, Ipv4Cidr};
use crate::phy::{FrameBatch, Medium};
use crate::socket::SocketHandle;
use crate::tcp::State;
use crate::time::{Duration, Instant};
use crate::wire::{ipv4, tcp, udp};

/// The peer's address in the replay.
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
/// The stack's address in the replay.
pub const STACK_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
/// Virtual time the replay runs on after the script's last event.
const DRAIN: Duration = Duration::from_secs(130);
/// Loop iterations at most (each advances the clock or moves frames).
const MAX_STEPS: usize = 200_000;
/// Iterations in a row without the clock moving before it counts as a
/// livelock.
const MAX_STUCK: usize = 10_000;
/// How long a scripted segment waits for the stack's SYN it acknowledges.
const HOLD: Duration = Duration::from_secs(3);

/// What one case did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Invariant violations (empty: the case passed).
    pub violations: Vec<String>,
    /// Frames the stack emitted.
    pub emitted: usize,
    /// Frames delivered to the stack.
    pub injected: usize,
    /// Bytes (TCP) or datagrams (UDP) delivered to the application.
    pub delivered: usize,
    /// The stack's TCP state at the end (None: no connection or UDP).
    pub final_state: Option<State>,
    /// Segments the peer sent again at once: fast retransmits on three
    /// duplicate ACKs, on partial ACKs, and SYN data the stack's SYN-ACK
    /// left unacknowledged.
    pub peer_fast_resends: usize,
    /// Times the peer's retransmission timer expired with data (or its
    /// SYN) unacknowledged.
    pub peer_timeouts: usize,
}

fn stack_interface() -> Interface {
    let mut c = Config::new(Medium::Ip);
    c.addrs
        .push(Ipv4Cidr::new(STACK_IP, 24).expect("valid prefix"));
    // Small buffers: windows fill, zero windows happen, bounds are tested.
    c.tcp.send_buffer = 256 * 1024;
    c.tcp.recv_buffer = 256 * 1024;
    c.announce = false;
    Interface::new(c, Instant::ZERO)
}

/// A frame on its way to the stack.
struct Pending {
    at: Instant,
    order: u64,
    ip: Vec<u8>,
    /// Held until the scripted frame of this index has been sent (a
    /// reordered frame).
    after: Option<usize>,
}

/// Runs one case: the plan's peer, the given mutations (frame index,
/// mutation), garbage frames injected at their times.
pub fn run_case(
    plan: &Plan,
    mutations: &[(usize, Mutation)],
    garbage: &[(u64, Vec<u8>)],
) -> Outcome {
    match &plan.script {
        Script::Tcp(s) => TcpRun::new(plan, s, mutations, garbage).run(),
        Script::Udp(s) => run_udp(plan, s, mutations, garbage),
    }
}

fn by_index(mutations: &[(usize, Mutation)], i: usize) -> Vec<&Mutation> {
    mutations
        .iter()
        .filter(|(j, _)| *j == i)
        .map(|(_, m)| m)
        .collect()
}

/// Schedules a scripted frame with its mutations: returns the copies to
/// deliver with their times (reorders resolved later by the caller).
fn schedule(ip: Vec<u8>, at: Instant, muts: &[&Mutation]) -> (Vec<(Instant, Vec<u8>)>, u8) {
    let mut copies = vec![(at, ip)];
    let mut reorder = 0;
    // Damage that leaves checksums wrong goes last: a later fix-up would
    // otherwise turn a corrupted header into a valid forged one.
    let raw = |m: &Mutation| {
        matches!(
            m,
            Mutation::Truncate(_) | Mutation::Corrupt { fix: false, .. }
        )
    };
    let mut ordered: Vec<&Mutation> = muts.iter().copied().filter(|m| !raw(m)).collect();
    ordered.extend(muts.iter().copied().filter(|m| raw(m)));
    for m in ordered {
        match m {
            Mutation::Drop => copies.clear(),
            Mutation::Duplicate => {
                if let Some(c) = copies.first().cloned() {
                    copies.push(c);
                }
            }
            Mutation::Reorder(n) => reorder = reorder.max(*n),
            Mutation::Delay(ms) => {
                for c in &mut copies {
                    c.0 += Duration::from_millis(u64::from(*ms));
                }
            }
            m => {
                for c in &mut copies {
                    apply_bytes(&mut c.1, m);
                }
            }
        }
    }
    (copies, reorder)
}

/// The filler the peer sends where the capture lacks its bytes.
pub const FILLER: u8 = b'~';

/// The peer's whole byte stream as the capture shows it (data on its SYN
/// first), by offset from ISN + 1, as the peer's send buffer: holes the
/// capture lacks (segments it never saw, though the other end acknowledged
/// them) hold [`FILLER`], up to the last byte and the FIN. At most 16 MiB.
fn peer_stream(s: &TcpScript) -> Vec<u16> {
    let base = s.peer_isn.wrapping_add(1);
    let mut stream: Vec<u16> = Vec::new();
    for p in &s.peer {
        let off = if p.flags.syn() {
            0
        } else {
            p.seq.wrapping_sub(base) as usize
        };
        let end = off.saturating_add(p.payload.len());
        // A bare FIN (not a SYN's) marks the stream's end: holes before it
        // are filled too.
        let bare_fin = p.flags.fin() && !p.flags.syn();
        if end > 16 << 20 || (p.payload.is_empty() && !bare_fin) {
            continue;
        }
        if stream.len() < end {
            stream.resize(end, u16::from(FILLER));
        }
        for (i, &b) in p.payload.iter().enumerate() {
            stream[off + i] = u16::from(b);
        }
    }
    stream
}

fn seq_le(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) >= 0
}

fn seq_lt(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) > 0
}

/// What the stack's application does.
struct App {
    handle: Option<SocketHandle>,
    listener: Option<SocketHandle>,
    written: usize,
    shut: bool,
    aborted: bool,
    delivered: Vec<u8>,
    eof: bool,
}

struct TcpRun<'a> {
    plan: &'a Plan,
    s: &'a TcpScript,
    mutations: &'a [(usize, Mutation)],
    garbage: &'a [(u64, Vec<u8>)],
    stack: Interface,
    now: Instant,
    queue: Vec<Pending>,
    order: u64,
    out: Outcome,
    app: App,
    peer_port: u16,
    stack_port: u16,
    // What the stack sent.
    stack_iss: Option<u32>,
    stack_snd_max: u32,
    stack_ts: Option<u32>,
    stack_ws: Option<u8>,
    stack_last_ack: Option<u32>,
    stack_rst: bool,
    stack_edge: Option<u32>,
    // The peer's view.
    peer_ws: u8,
    /// Highest sequence number the peer has sent (plus its length).
    peer_snd_max: u32,
    /// Highest valid acknowledgement the stack has sent.
    peer_snd_una: u32,
    /// In-order end of the stack's sequence space the peer received.
    peer_rcv_nxt: Option<u32>,
    peer_ooo: BTreeMap<u32, u32>,
    peer_acked: Option<u32>,
    ack_due: Option<Instant>,
    rto_at: Option<Instant>,
    rto_backoff: u32,
    /// Duplicate ACKs from the stack in a row (three: fast retransmit).
    dup_acks: u32,
    /// A fast retransmission of the segment at SND.UNA is due.
    fast_rexmit: bool,
    /// The peer's SND.MAX when it entered fast recovery: partial ACKs
    /// below it retransmit the next hole at once (RFC 6582).
    recover: Option<u32>,
    peer_ts: u32,
    peer_dead: bool,
    peer_fin_sent: Option<u32>,
    peer_syn_opts: tcp::Options,
    /// The bytes the peer sent, by stream offset (0x100: never sent), and
    /// other values sent at the same offset.
    sent: Vec<u16>,
    /// The peer's own send buffer (what it sent before the wire mutated
    /// it), by stream offset: its retransmissions come from here.
    stream: Vec<u16>,
    sent_alt: HashSet<(usize, u8)>,
    max_edge: Option<u32>,
    reached_established: bool,
    broken: bool,
    forged_syn: bool,
    trace: bool,
    script_end: Instant,
}

impl<'a> TcpRun<'a> {
    fn new(
        plan: &'a Plan,
        s: &'a TcpScript,
        mutations: &'a [(usize, Mutation)],
        garbage: &'a [(u64, Vec<u8>)],
    ) -> TcpRun<'a> {
        let peer_syn_opts = s
            .peer
            .iter()
            .find(|p| p.flags.syn())
            .map(|p| p.options)
            .unwrap_or_default();
        let last = s
            .peer
            .iter()
            .map(|p| p.t)
            .chain(s.local_writes.iter().map(|w| w.0))
            .chain(s.local_fin_at)
            .chain(s.local_abort_at)
            .max()
            .unwrap_or(0);
        let broken = mutations.iter().any(|(_, m)| m.breaks_flow());
        let port = |p: u16, alt: u16| if p == 0 { alt } else { p };
        TcpRun {
            plan,
            s,
            mutations,
            garbage,
            stack: stack_interface(),
            now: Instant::ZERO,
            queue: Vec::new(),
            order: 0,
            out: Outcome::default(),
            app: App {
                handle: None,
                listener: None,
                written: 0,
                shut: false,
                aborted: false,
                delivered: Vec::new(),
                eof: false,
            },
            peer_port: port(plan.peer.port(), 40000),
            stack_port: port(plan.local.port(), 80),
            stack_iss: None,
            stack_snd_max: 0,
            stack_ts: None,
            stack_ws: None,
            stack_last_ack: None,
            stack_rst: false,
            stack_edge: None,
            peer_ws: 0,
            peer_snd_max: s.peer_isn,
            peer_snd_una: s.peer_isn,
            peer_rcv_nxt: None,
            peer_ooo: BTreeMap::new(),
            peer_acked: None,
            ack_due: None,
            rto_at: None,
            rto_backoff: 0,
            dup_acks: 0,
            fast_rexmit: false,
            recover: None,
            peer_ts: 1,
            peer_dead: false,
            peer_fin_sent: None,
            peer_syn_opts,
            sent: Vec::new(),
            stream: peer_stream(s),
            sent_alt: HashSet::new(),
            max_edge: None,
            reached_established: false,
            broken,
            forged_syn: false,
            trace: std::env::var_os("USTACK_REPLAY_TRACE").is_some(),
            script_end: Instant::from_micros(last),
        }
    }

    fn violation(&mut self, msg: String) {
        if self.out.violations.len() < 8 {
            self.out
                .violations
                .push(format!("at {} ms: {msg}", self.now.total_millis()));
        }
    }

    fn push(&mut self, at: Instant, ip: Vec<u8>, after: Option<usize>) {
        self.order += 1;
        self.queue.push(Pending {
            at,
            order: self.order,
            ip,
            after,
        });
    }

    /// When a queued frame is due: a reordered one not before the frame it
    /// waits for.
    fn due_at(&self, p: &Pending, next_script: usize) -> Instant {
        match p.after {
            Some(j) if next_script <= j => self
                .s
                .peer
                .get(j)
                .map_or(p.at, |q| p.at.max(Instant::from_micros(q.t))),
            _ => p.at,
        }
    }

    /// The peer's segment `p` (captured or a reaction) with addresses,
    /// ports, acknowledgement, timestamps and SACK blocks rewritten.
    fn build(&mut self, p: &TcpPacket) -> Vec<u8> {
        let mut options = p.options;
        let mut ack = 0;
        if p.flags.ack() {
            let target = match self.stack_iss {
                Some(iss) => iss.wrapping_add(p.ack.wrapping_sub(self.s.local_isn)),
                None => 0,
            };
            // Never acknowledge what the stack has not sent (and the peer
            // not received, in order).
            ack = match self.peer_rcv_nxt {
                Some(r) if seq_lt(r, target) => r,
                Some(_) => target,
                None => target,
            };
        }
        if let Some((val, _)) = options.timestamps {
            let v = val.max(self.peer_ts);
            self.peer_ts = v;
            options.timestamps = Some((v, self.stack_ts.unwrap_or(0)));
        }
        if options.sack_count > 0 {
            let blocks: Vec<(u32, u32)> = options.sack_blocks().to_vec();
            options.clear_sack_blocks();
            if let (Some(iss), Some(_)) = (self.stack_iss, self.peer_rcv_nxt) {
                for (l, r) in blocks {
                    let nl = iss.wrapping_add(l.wrapping_sub(self.s.local_isn));
                    let nr = iss.wrapping_add(r.wrapping_sub(self.s.local_isn));
                    let seen = self
                        .peer_ooo
                        .iter()
                        .any(|(&s, &e)| seq_le(s, nl) && seq_le(nr, e));
                    if seen && seq_lt(ack, nl) {
                        options.push_sack_block((nl, nr));
                    }
                }
            }
        }
        let repr = tcp::Repr {
            src_port: self.peer_port,
            dst_port: self.stack_port,
            seq_number: p.seq,
            ack_number: ack,
            flags: p.flags,
            window_len: p.window,
            urgent_at: 0,
            options,
            payload: &p.payload,
        };
        let mut seg = vec![0u8; repr.buffer_len()];
        repr.emit(
            &mut tcp::Packet::new_unchecked(&mut seg[..]),
            PEER_IP.into(),
            STACK_IP.into(),
        );
        // Account what the peer sends (before the wire mutates it).
        // Data on a SYN (TCP Fast Open) is the start of the stream: ustack
        // does not take it, so the peer sends it again after the handshake.
        let off = if p.flags.syn() {
            0
        } else {
            p.seq.wrapping_sub(self.s.peer_isn.wrapping_add(1)) as usize
        };
        if !p.payload.is_empty() && off < 16 << 20 {
            let end = off + p.payload.len();
            if self.stream.len() < end {
                self.stream.resize(end, 0x100);
            }
            for (i, &b) in p.payload.iter().enumerate() {
                self.stream[off + i] = u16::from(b);
            }
        }
        let end = p.seq.wrapping_add(repr.segment_len() as u32);
        if seq_lt(self.peer_snd_max, end) {
            self.peer_snd_max = end;
        }
        if p.flags.fin() {
            self.peer_fin_sent = Some(end);
        }
        if p.flags.rst() {
            self.peer_dead = true;
        }
        if self.rto_at.is_none() && seq_lt(self.peer_snd_una, self.peer_snd_max) {
            self.rto_at = Some(self.now + self.rto());
        }
        if p.flags.ack() {
            self.peer_acked = Some(ack);
            self.ack_due = None;
        }
        ipv4_packet(
            PEER_IP,
            STACK_IP,
            ipv4::protocol::TCP,
            self.order as u16,
            &seg,
        )
    }

    /// A scripted segment acknowledging the stack's SYN waits until the
    /// stack has sent one (at most [`HOLD`]; then it goes as it is).
    fn blocked(&self, p: &TcpPacket) -> bool {
        p.flags.ack()
            && !p.flags.rst()
            && self.stack_iss.is_none()
            && !self.peer_dead
            && self.now < Instant::from_micros(p.t) + HOLD
    }

    fn rto(&self) -> Duration {
        Duration::from_millis(300u64 << self.rto_backoff.min(8))
    }

    /// Records what a frame delivered to the stack carries, as the stack
    /// will see it: the window edge, the peer's bytes.
    fn note_delivered(&mut self, ip: &[u8]) {
        let Ok(p) = ipv4::Packet::new_checked(ip) else {
            return;
        };
        if !p.verify_checksum() || p.protocol() != ipv4::protocol::TCP {
            return;
        }
        let Ok(t) = tcp::Packet::new_checked(p.payload()) else {
            return;
        };
        if !t.verify_checksum(PEER_IP.into(), STACK_IP.into()) {
            return;
        }
        let flags = t.flags();
        if flags.syn() && t.seq_number() != self.s.peer_isn {
            // A SYN made up by a flipped flag: the stack may take it as a
            // new initial sequence number (simultaneous open), after which
            // byte offsets no longer line up with the peer's stream.
            self.forged_syn = true;
        }
        let end = t.seq_number().wrapping_add(
            (t.payload().len() + usize::from(flags.syn()) + usize::from(flags.fin())) as u32,
        );
        if seq_lt(self.peer_snd_max, end) {
            self.peer_snd_max = end;
        }
        if flags.ack() && !flags.rst() {
            let shift = if flags.syn() { 0 } else { self.peer_ws };
            let edge = t
                .ack_number()
                .wrapping_add(u32::from(t.window_len()) << shift);
            if self.max_edge.is_none_or(|m| seq_lt(m, edge)) {
                self.max_edge = Some(edge);
            }
        }
        let base = self.s.peer_isn.wrapping_add(1);
        let off = t.seq_number().wrapping_sub(base) as usize;
        let payload = t.payload();
        if !payload.is_empty() && off < 16 << 20 && !flags.syn() {
            let end = off + payload.len();
            if self.sent.len() < end {
                self.sent.resize(end, 0x100);
            }
            for (i, &b) in payload.iter().enumerate() {
                let slot = &mut self.sent[off + i];
                if *slot == 0x100 {
                    *slot = u16::from(b);
                } else if *slot != u16::from(b) {
                    self.sent_alt.insert((off + i, b));
                }
            }
        }
    }

    fn run(mut self) -> Outcome {
        let s = self.s;
        if s.listens {
            match self
                .stack
                .tcp_listen(SocketAddr::from((STACK_IP, self.stack_port)), 16)
            {
                Ok(h) => self.app.listener = Some(h),
                Err(e) => self.violation(format!("listen failed: {e}")),
            }
        }
        let mut next_script = 0;
        let mut next_garbage = 0;
        let mut steps = 0;
        let mut stuck = 0;
        let mut last_now = self.now;
        let end = self.script_end + DRAIN;
        loop {
            steps += 1;
            if steps > MAX_STEPS {
                self.violation("replay did not finish within its step bound".into());
                break;
            }
            if self.now == last_now {
                stuck += 1;
                if stuck > MAX_STUCK {
                    let at = self.stack.poll_at();
                    let mut table = self.stack.socket_report();
                    if let Some(t) = self.app.handle.and_then(|h| self.stack.tcp_socket(h).ok()) {
                        table.push_str(&format!(
                            "ack_now {} retransmit_one {} sack_wants_send {} rst_pending {}",
                            t.ack_now,
                            t.rec.retransmit_one,
                            t.sack_wants_send(),
                            t.rst_pending
                        ));
                    }
                    self.violation(format!(
                        "the stack's deadline does not advance (livelock): poll_at {at:?}, sockets:\n{table}"
                    ));
                    break;
                }
            } else {
                stuck = 0;
                last_now = self.now;
            }
            // The next event.
            let mut next = Instant::MAX;
            if let Some(p) = s.peer.get(next_script) {
                let t = Instant::from_micros(p.t);
                next = next.min(if self.blocked(p) { t + HOLD } else { t });
            }
            if let Some(g) = self.garbage.get(next_garbage) {
                next = next.min(Instant::from_micros(g.0));
            }
            for p in &self.queue {
                next = next.min(self.due_at(p, next_script));
            }
            for t in [self.ack_due, self.rto_at].into_iter().flatten() {
                next = next.min(t);
            }
            for t in self.app_events() {
                next = next.min(t);
            }
            if let Some(t) = self.stack.poll_at() {
                next = next.min(t);
            }
            if next == Instant::MAX || next > end {
                break;
            }
            if next > self.now {
                self.now = next;
            }
            let now = self.now;
            self.app_step();
            // Scripted frames due now, one at a time: the stack answers
            // each before the peer sends the next.
            while let Some(p) = s.peer.get(next_script) {
                if Instant::from_micros(p.t) > now || self.blocked(p) {
                    break;
                }
                let i = next_script;
                next_script += 1;
                if self.peer_dead {
                    continue;
                }
                let ip = self.build(p);
                let muts = by_index(self.mutations, i);
                let (copies, reorder) = schedule(ip, now, &muts);
                let after = (reorder > 0).then(|| i + usize::from(reorder));
                for (at, ip) in copies {
                    self.push(at, ip, after);
                }
                self.deliver_due(next_script);
                self.collect();
                self.app_step();
                self.collect();
            }
            while let Some(g) = self.garbage.get(next_garbage) {
                if Instant::from_micros(g.0) > now {
                    break;
                }
                next_garbage += 1;
                let f = g.1.clone();
                self.stack.handle_frame(now, &f);
                self.out.injected += 1;
            }
            self.deliver_due(next_script);
            self.collect();
            self.react();
            self.deliver_due(next_script);
            self.collect();
            self.app_step();
            self.collect();
            if let Err(e) = check_bounds(&self.stack) {
                self.violation(e);
            }
            if !self.out.violations.is_empty() {
                break;
            }
        }
        self.finish();
        self.out
    }

    /// Delivers the queued frames that are due; a reordered frame waits
    /// until the scripted frame it follows has been sent.
    fn deliver_due(&mut self, next_script: usize) {
        let now = self.now;
        let mut due: Vec<Pending> = Vec::new();
        let mut keep = Vec::new();
        for p in std::mem::take(&mut self.queue) {
            if self.due_at(&p, next_script) <= now {
                due.push(p);
            } else {
                keep.push(p);
            }
        }
        self.queue = keep;
        due.sort_by_key(|p| (p.at, p.after.is_some(), p.order));
        for p in due {
            if self.trace {
                eprintln!("{:>10} peer  -> {}", now.total_micros(), describe(&p.ip));
            }
            self.note_delivered(&p.ip);
            self.stack.handle_frame(now, &p.ip);
            self.out.injected += 1;
        }
    }

    fn app_events(&self) -> Vec<Instant> {
        let s = self.s;
        let mut v = Vec::new();
        if s.stack_connects && self.app.handle.is_none() {
            v.push(Instant::from_micros(s.connect_at));
        }
        if let Some(&(t, _)) = s.local_writes.iter().find(|(_, e)| *e > self.app.written) {
            v.push(Instant::from_micros(t));
        }
        if let (Some(t), false) = (s.local_fin_at, self.app.shut) {
            v.push(Instant::from_micros(t));
        }
        if let (Some(t), false) = (s.local_abort_at, self.app.aborted) {
            v.push(Instant::from_micros(t));
        }
        v.retain(|&t| t > self.now);
        v
    }

    fn app_step(&mut self) {
        let s = self.s;
        let now = self.now;
        let t = now.total_micros();
        if s.stack_connects && self.app.handle.is_none() && t >= s.connect_at {
            match self.stack.tcp_connect(
                SocketAddr::from((PEER_IP, self.peer_port)),
                Some(SocketAddr::from((STACK_IP, self.stack_port))),
                now,
            ) {
                Ok(h) => self.app.handle = Some(h),
                Err(e) => {
                    self.violation(format!("connect failed: {e}"));
                    return;
                }
            }
        }
        if self.app.handle.is_none() {
            if let Some(l) = self.app.listener {
                if let Ok((h, _)) = self.stack.tcp_accept(l) {
                    self.app.handle = Some(h);
                }
            }
        }
        let Some(h) = self.app.handle else {
            return;
        };
        if self.app.aborted {
            return;
        }
        if let Some(at) = s.local_abort_at {
            if t >= at {
                let _ = self.stack.tcp_abort(h);
                self.app.aborted = true;
                return;
            }
        }
        // Write what the local end had written by now.
        let target = s
            .local_writes
            .iter()
            .take_while(|(wt, _)| *wt <= t)
            .map(|(_, e)| *e)
            .max()
            .unwrap_or(0);
        while self.app.written < target && !self.app.shut {
            match self
                .stack
                .tcp_send(h, &s.local_stream[self.app.written..target])
            {
                Ok(0) | Err(_) => break,
                Ok(n) => self.app.written += n,
            }
        }
        if let Some(at) = s.local_fin_at {
            if t >= at && !self.app.shut && self.app.written >= target {
                // Not yet connected (SYN-SENT): try again later.
                if self.stack.tcp_shutdown(h, Shutdown::Write).is_ok() {
                    self.app.shut = true;
                }
            }
        }
        let mut buf = [0u8; 16384];
        while !self.app.eof {
            match self.stack.tcp_recv(h, &mut buf) {
                Ok(0) => self.app.eof = true,
                Ok(n) => {
                    let start = self.app.delivered.len();
                    self.app.delivered.extend_from_slice(&buf[..n]);
                    self.check_delivered(start);
                }
                Err(_) => break,
            }
        }
    }

    fn check_delivered(&mut self, from: usize) {
        if self.forged_syn {
            return;
        }
        for i in from..self.app.delivered.len() {
            let b = self.app.delivered[i];
            let ok = self.sent.get(i).is_some_and(|&v| v == u16::from(b))
                || self.sent_alt.contains(&(i, b));
            if !ok {
                let sent = self.sent.get(i).copied();
                self.violation(format!(
                    "byte {i} delivered to the application is {b:#04x}, the peer sent {}",
                    match sent {
                        Some(v) if v < 0x100 => format!("{v:#04x}"),
                        _ => "nothing there".into(),
                    }
                ));
                return;
            }
        }
    }

    /// Collects what the stack transmits now and checks it.
    fn collect(&mut self) {
        let mut batch = FrameBatch::new(1024, 1600);
        for _ in 0..64 {
            batch.clear();
            self.stack.poll_transmit(self.now, &mut batch);
            if batch.is_empty() {
                break;
            }
            let frames: Vec<Vec<u8>> = batch.iter().map(|f| f.to_vec()).collect();
            for f in frames {
                self.out.emitted += 1;
                match check_emitted(Medium::Ip, &f) {
                    Err(e) => self.violation(e),
                    Ok(Emitted::Tcp { src, dst, seg }) => {
                        if self.trace {
                            let tcb = self
                                .app
                                .handle
                                .and_then(|h| self.stack.tcp_socket(h).ok())
                                .map(|t| {
                                    format!(
                                        " [una {} nxt {} max {} wnd {}]",
                                        t.snd_una.0, t.snd_nxt.0, t.snd_max.0, t.snd_wnd
                                    )
                                })
                                .unwrap_or_default();
                            eprintln!(
                                "{:>10} stack -> {}{tcb}",
                                self.now.total_micros(),
                                describe(&f)
                            );
                        }
                        if src != STACK_IP || (dst != PEER_IP && !seg.payload.is_empty()) {
                            // Mutations may forge a peer elsewhere (a
                            // corrupted address made valid by a later
                            // fix-up): answering it is fine, sending it the
                            // application's data is not.
                            self.violation(format!("data segment from {src} to {dst}"));
                        } else if dst == PEER_IP
                            && seg.dst_port == self.peer_port
                            && seg.src_port == self.stack_port
                        {
                            self.observe(&seg);
                        }
                    }
                    Ok(_) => {}
                }
            }
        }
        if let Some(h) = self.app.handle {
            if let Ok(tcb) = self.stack.tcp_socket(h) {
                if tcb.state().is_synchronized() {
                    self.reached_established = true;
                }
            }
        }
    }

    /// Checks one segment the stack sent and lets the peer take it in.
    fn observe(&mut self, seg: &TcpSegment) {
        let f = seg.flags;
        if f.syn() {
            match self.stack_iss {
                None => self.stack_iss = Some(seg.seq),
                Some(iss) if iss != seg.seq => {
                    // A new incarnation is legal only once the first
                    // connection is gone (a reset, then a SYN again).
                    let old_alive = self
                        .app
                        .handle
                        .and_then(|h| self.stack.tcp_socket(h).ok())
                        .is_some_and(|t| t.state() != State::Closed);
                    if old_alive {
                        self.violation(format!("SYN with seq {} after ISS {iss}", seg.seq));
                    } else {
                        self.stack_iss = Some(seg.seq);
                        self.stack_snd_max = 0;
                        self.stack_last_ack = None;
                        self.peer_rcv_nxt = Some(seg.seq.wrapping_add(1));
                        self.peer_ooo.clear();
                        self.peer_dead = false;
                        self.broken = true;
                        self.app.written = 0;
                    }
                }
                _ => {}
            }
            self.stack_ws = seg.options.window_scale;
            if self.peer_rcv_nxt.is_none() {
                self.peer_rcv_nxt = Some(seg.seq.wrapping_add(1));
            }
            // The peer's windows are scaled when both SYNs offered it.
            let peer_ws = self.peer_syn_opts.window_scale;
            if let (Some(p), Some(_)) = (peer_ws, seg.options.window_scale) {
                self.peer_ws = p.min(14);
            }
        }
        if let Some((val, _)) = seg.options.timestamps {
            self.stack_ts = Some(val);
        }
        if f.rst() {
            // The peer takes an RST that fits its connection: in its window,
            // or acknowledging its SYN.
            let fits = match self.peer_rcv_nxt {
                Some(r) => seg.seq == r,
                None => f.ack() && seg.ack == self.s.peer_isn.wrapping_add(1),
            };
            if fits {
                self.stack_rst = true;
                self.peer_dead = true;
            }
            return;
        }
        let Some(iss) = self.stack_iss else {
            if !seg.payload.is_empty() || f.fin() {
                self.violation("data or FIN before any SYN".into());
            }
            return;
        };
        // Sequence space: within what the application wrote (+SYN, +FIN).
        let end = seg.seq.wrapping_add(seg.seq_len());
        let limit = iss.wrapping_add(self.app.written as u32 + 2);
        if !seq_le(iss, seg.seq) || !seq_le(end, limit) {
            self.violation(format!(
                "segment {}..{end} outside the sequence space the application filled (ISS {iss}, {} bytes written)",
                seg.seq, self.app.written
            ));
        }
        if seq_lt(self.stack_snd_max, end) || self.stack_snd_max == 0 {
            self.stack_snd_max = end;
        }
        // The window: payload beyond the largest right edge the peer ever
        // advertised (a one-byte zero-window probe may pass it by one).
        if !seg.payload.is_empty() && !f.syn() {
            let data_end = seg.seq.wrapping_add(seg.payload.len() as u32);
            match self.max_edge {
                None => self.violation("data before the peer advertised any window".into()),
                Some(edge) => {
                    let allowed = if seg.payload.len() == 1 {
                        edge.wrapping_add(1)
                    } else {
                        edge
                    };
                    if !seq_le(data_end, allowed) {
                        self.violation(format!(
                            "data up to {data_end} beyond the peer's window edge {edge} (scale {})",
                            self.peer_ws
                        ));
                    }
                }
            }
        }
        if f.ack() {
            // Never acknowledges what the peer did not send; never goes back.
            if !seq_le(seg.ack, self.peer_snd_max) {
                self.violation(format!(
                    "ACK {} beyond what the peer sent ({})",
                    seg.ack, self.peer_snd_max
                ));
            }
            if let Some(prev) = self.stack_last_ack {
                if seq_lt(seg.ack, prev) {
                    self.violation(format!("ACK went back from {prev} to {}", seg.ack));
                }
            }
            let outstanding = seq_lt(seg.ack, self.peer_snd_max);
            let dup = self.stack_last_ack == Some(seg.ack)
                && seg.payload.is_empty()
                && !f.syn()
                && !f.fin()
                && outstanding;
            self.stack_last_ack = Some(seg.ack);
            if dup {
                self.dup_acks += 1;
                if self.dup_acks == 3 && self.recover.is_none() {
                    self.fast_rexmit = true;
                    self.recover = Some(self.peer_snd_max);
                }
            } else {
                self.dup_acks = 0;
            }
            if seq_lt(self.peer_snd_una, seg.ack) {
                self.peer_snd_una = seg.ack;
                self.rto_backoff = 0;
                self.rto_at = if seq_lt(self.peer_snd_una, self.peer_snd_max) {
                    Some(self.now + self.rto())
                } else {
                    None
                };
                match self.recover {
                    // A partial ACK: the next hole goes at once.
                    Some(r) if seq_lt(seg.ack, r) => self.fast_rexmit = true,
                    Some(_) => self.recover = None,
                    None => {}
                }
            }
            if f.syn() && outstanding && self.peer_fin_sent.is_none() {
                // The stack's SYN-ACK leaves data of the peer's SYN
                // unacknowledged (no TCP Fast Open): a real client sends it
                // again at once.
                self.fast_rexmit = true;
            }
            // The stack's windows are scaled when both SYNs offered it.
            let shift = match (f.syn(), self.peer_syn_opts.window_scale) {
                (false, Some(_)) => self.stack_ws.unwrap_or(0).min(14),
                _ => 0,
            };
            self.stack_edge = Some(seg.ack.wrapping_add(u32::from(seg.window) << shift));
        }
        // The peer receives the stack's data in order.
        if let Some(rcv) = self.peer_rcv_nxt {
            let start = if f.syn() {
                seg.seq.wrapping_add(1)
            } else {
                seg.seq
            };
            let stop = end;
            if seq_lt(start, stop) || (f.fin() && seq_le(start, stop)) {
                if seq_le(start, rcv) && seq_lt(rcv, stop) {
                    let mut r = stop;
                    // Join what had arrived out of order.
                    loop {
                        let next = self
                            .peer_ooo
                            .iter()
                            .find(|(&s, &e)| seq_le(s, r) && seq_lt(r, e))
                            .map(|(_, &e)| e);
                        match next {
                            Some(e) => r = e,
                            None => break,
                        }
                    }
                    self.peer_ooo.retain(|_, e| seq_lt(r, *e));
                    self.peer_rcv_nxt = Some(r);
                } else if seq_lt(rcv, start) && self.peer_ooo.len() < 64 {
                    self.peer_ooo.insert(start, stop);
                }
            }
            if self.peer_rcv_nxt != self.peer_acked && self.ack_due.is_none() {
                self.ack_due = Some(self.now + Duration::from_millis(40));
            }
            if seq_lt(seg.seq, rcv) {
                // A retransmission of what the peer has, or a window probe
                // below RCV.NXT: answer at once (RFC 9293 §3.10.7.4).
                self.ack_due = Some(self.now);
            }
        }
    }

    /// The peer's own reactions: acknowledgements and retransmissions.
    fn react(&mut self) {
        if self.peer_dead {
            self.ack_due = None;
            self.rto_at = None;
            return;
        }
        let now = self.now;
        let window = self.peer_window();
        if self.ack_due.is_some_and(|t| t <= now) {
            self.ack_due = None;
            if let Some(r) = self.peer_rcv_nxt {
                let p = self.reaction(
                    self.peer_snd_max_data(),
                    r,
                    tcp::Flags::ACK,
                    window,
                    Vec::new(),
                );
                let ip = self.build(&p);
                self.push(now, ip, None);
            }
        }
        if std::mem::take(&mut self.fast_rexmit) && seq_lt(self.peer_snd_una, self.peer_snd_max) {
            // Fast retransmit (RFC 5681 §3.2): the segment at SND.UNA.
            self.out.peer_fast_resends += 1;
            self.resend(1);
        }
        if self.rto_at.is_some_and(|t| t <= now) {
            self.rto_at = None;
            if !seq_lt(self.peer_snd_una, self.peer_snd_max) || self.rto_backoff > 12 {
                return;
            }
            self.rto_backoff += 1;
            self.out.peer_timeouts += 1;
            self.recover = Some(self.peer_snd_max);
            self.resend(8);
            self.rto_at = Some(now + self.rto());
        }
    }

    /// Sends again up to `segments` segments from SND.UNA, within the
    /// stack's window and below what the peer has sent: the SYN when that is
    /// unacknowledged, else the peer's stream (holes of the capture hold
    /// filler bytes) and its FIN.
    fn resend(&mut self, segments: usize) {
        let now = self.now;
        let window = self.peer_window();
        let una = self.peer_snd_una;
        let isn = self.s.peer_isn;
        if una == isn {
            // The SYN (or SYN-ACK) itself.
            if let Some(mut syn) = self.s.peer.iter().find(|p| p.flags.syn()).cloned() {
                syn.t = now.total_micros();
                let ip = self.build(&syn);
                self.push(now, ip, None);
            }
            return;
        }
        // Data goes up to what the peer has sent, not beyond: the script
        // sends the rest when its time comes.
        let data_limit = match self.peer_fin_sent {
            Some(fin_end) if seq_le(fin_end, self.peer_snd_max) => fin_end.wrapping_sub(1),
            _ => self.peer_snd_max,
        };
        let room_total = self
            .stack_edge
            .map_or(1, |e| e.wrapping_sub(una) as i32)
            .clamp(1, segments as i32 * 1400) as usize;
        let mut seq = una;
        let mut left = room_total;
        for _ in 0..segments {
            let off = seq.wrapping_sub(isn.wrapping_add(1)) as usize;
            let below = (data_limit.wrapping_sub(seq) as i32).max(0) as usize;
            let have: Vec<u8> = self
                .stream
                .get(off..)
                .unwrap_or(&[])
                .iter()
                .take(left.min(1400).min(below))
                .take_while(|&&v| v < 0x100)
                .map(|&v| v as u8)
                .collect();
            let data_end = seq.wrapping_add(have.len() as u32);
            let mut flags = tcp::Flags::ACK;
            if self.peer_fin_sent == Some(data_end.wrapping_add(1)) {
                flags = tcp::Flags(flags.0 | tcp::Flags::FIN.0);
            }
            if have.is_empty() && !flags.fin() {
                break;
            }
            left = left.saturating_sub(have.len());
            let ack = self.peer_rcv_nxt.unwrap_or(0);
            let p = self.reaction(seq, ack, flags, window, have);
            let ip = self.build(&p);
            self.push(now, ip, None);
            if flags.fin() || left == 0 {
                break;
            }
            seq = data_end;
        }
    }

    /// The peer's send sequence number for a pure ACK.
    fn peer_snd_max_data(&self) -> u32 {
        self.peer_snd_max
    }

    /// The peer's advertised window field for its reactions.
    fn peer_window(&self) -> u16 {
        self.s
            .peer
            .iter()
            .rev()
            .find(|p| !p.flags.syn())
            .map_or(65535, |p| p.window.max(1024))
    }

    /// A reaction segment in the captured local end's numbering (build()
    /// rewrites it like a captured one).
    fn reaction(
        &self,
        seq: u32,
        ack: u32,
        flags: tcp::Flags,
        window: u16,
        payload: Vec<u8>,
    ) -> TcpPacket {
        // `ack` is in the stack's numbering; build() maps captured numbers,
        // so map it back.
        let captured_ack = match self.stack_iss {
            Some(iss) => self.s.local_isn.wrapping_add(ack.wrapping_sub(iss)),
            None => 0,
        };
        let mut options = tcp::Options::default();
        if self.peer_syn_opts.timestamps.is_some() {
            options.timestamps = Some((self.peer_ts.wrapping_add(1), 0));
        }
        TcpPacket {
            t: self.now.total_micros(),
            src: self.plan.peer,
            dst: self.plan.local,
            seq,
            ack: captured_ack,
            flags,
            window,
            options,
            payload,
        }
    }

    fn finish(&mut self) {
        self.out.delivered = self.app.delivered.len();
        let state = self
            .app
            .handle
            .and_then(|h| self.stack.tcp_socket(h).ok().map(|t| t.state()));
        self.out.final_state = state;
        if !self.out.violations.is_empty() || self.broken || self.s.rst {
            return;
        }
        let s = self.s;
        if s.handshake && !self.reached_established {
            self.violation(format!(
                "an intact handshake did not reach ESTABLISHED (state {state:?})"
            ));
        }
        let closed_both = s.peer_fin && s.local_fin_at.is_some();
        if s.handshake && closed_both {
            if !matches!(state, None | Some(State::Closed) | Some(State::TimeWait)) {
                self.violation(format!(
                    "an intact close ended in {state:?}, not CLOSED or TIME-WAIT"
                ));
            }
            let sent_len = self.sent.iter().take_while(|&&v| v < 0x100).count();
            if self.app.delivered.len() != sent_len {
                self.violation(format!(
                    "after an intact close the application got {} of the {} bytes the peer sent",
                    self.app.delivered.len(),
                    sent_len
                ));
            }
        }
    }
}

fn run_udp(
    plan: &Plan,
    s: &UdpScript,
    mutations: &[(usize, Mutation)],
    garbage: &[(u64, Vec<u8>)],
) -> Outcome {
    let mut out = Outcome::default();
    let mut stack = stack_interface();
    let peer_port = if plan.peer.port() == 0 {
        40000
    } else {
        plan.peer.port()
    };
    let stack_port = if plan.local.port() == 0 {
        7
    } else {
        plan.local.port()
    };
    let h = match stack.udp_bind(SocketAddr::from((STACK_IP, stack_port))) {
        Ok(h) => h,
        Err(e) => {
            out.violations.push(format!("bind failed: {e}"));
            return out;
        }
    };
    // Every frame the peer sends, with its time (fragments are frames).
    let mut frames: Vec<(Instant, Vec<u8>, usize)> = Vec::new();
    let mut sent: HashSet<Vec<u8>> = HashSet::new();
    for (i, p) in s.peer.iter().enumerate() {
        let mut u = vec![0u8; udp::HEADER_LEN + p.payload.len()];
        udp::Repr {
            src_port: peer_port,
            dst_port: stack_port,
        }
        .emit(
            &mut udp::Packet::new_unchecked(&mut u[..]),
            PEER_IP.into(),
            STACK_IP.into(),
            &p.payload,
        );
        sent.insert(p.payload.clone());
        let ident = i as u16;
        let at = Instant::from_micros(p.t);
        match p.fragment_size {
            Some(size) if size >= 8 && u.len() > size => {
                let size = size - size % 8;
                let mut off = 0;
                while off < u.len() {
                    let end = (off + size).min(u.len());
                    let mut f =
                        ipv4_packet(PEER_IP, STACK_IP, ipv4::protocol::UDP, ident, &u[off..end]);
                    let mut ip = ipv4::Packet::new_unchecked(&mut f[..]);
                    ip.set_dont_frag(false);
                    ip.set_more_frags(end < u.len());
                    ip.set_frag_offset(off);
                    ip.fill_checksum();
                    frames.push((at, f, i));
                    off = end;
                }
            }
            _ => frames.push((
                at,
                ipv4_packet(PEER_IP, STACK_IP, ipv4::protocol::UDP, ident, &u),
                i,
            )),
        }
    }
    // Mutations index frames (fragments included).
    let mut schedule_list: Vec<(Instant, u64, Vec<u8>)> = Vec::new();
    let mut order = 0u64;
    for (fi, (at, ip, _)) in frames.iter().enumerate() {
        let muts = by_index(mutations, fi);
        let (copies, reorder) = schedule(ip.clone(), *at, &muts);
        for (mut t, c) in copies {
            if reorder > 0 {
                let later = frames.get(fi + usize::from(reorder)).map_or(t, |f| f.0);
                t = t.max(later);
            }
            order += 1;
            // A whole datagram whose payload was corrupted with fixed
            // checksums is something the peer sent too.
            if let Ok(p) = ipv4::Packet::new_checked(&c[..]) {
                if !p.is_fragment() {
                    if let Ok(u) = udp::Packet::new_checked(p.payload()) {
                        if u.verify_checksum(PEER_IP.into(), STACK_IP.into()) {
                            sent.insert(u.payload().to_vec());
                        }
                    }
                }
            }
            schedule_list.push((t, order + if reorder > 0 { 1 << 32 } else { 0 }, c));
        }
    }
    for g in garbage {
        order += 1;
        schedule_list.push((Instant::from_micros(g.0), order, g.1.clone()));
    }
    let mut local_list: Vec<(Instant, &Vec<u8>)> = s
        .local
        .iter()
        .map(|p| (Instant::from_micros(p.t), &p.payload))
        .collect();
    schedule_list.sort_by_key(|e| (e.0, e.1));
    local_list.sort_by_key(|e| e.0);
    let mut events: Vec<Instant> = schedule_list.iter().map(|e| e.0).collect();
    events.extend(local_list.iter().map(|e| e.0));
    events.sort();
    let end = events.last().copied().unwrap_or(Instant::ZERO) + Duration::from_secs(40);
    let mut now = Instant::ZERO;
    let (mut si, mut li) = (0, 0);
    let mut buf = vec![0u8; 65536];
    let mut batch = FrameBatch::new(1024, 1600);
    for _ in 0..MAX_STEPS {
        let mut next = Instant::MAX;
        if let Some(e) = schedule_list.get(si) {
            next = next.min(e.0);
        }
        if let Some(e) = local_list.get(li) {
            next = next.min(e.0);
        }
        if let Some(t) = stack.poll_at() {
            next = next.min(t.max(now));
        }
        if next == Instant::MAX || next > end {
            break;
        }
        now = now.max(next);
        while let Some(e) = schedule_list.get(si) {
            if e.0 > now {
                break;
            }
            stack.handle_frame(now, &e.2);
            out.injected += 1;
            si += 1;
        }
        while let Some(e) = local_list.get(li) {
            if e.0 > now {
                break;
            }
            let _ = stack.udp_send_to(h, e.1, SocketAddr::from((PEER_IP, peer_port)));
            li += 1;
        }
        while let Ok((n, from)) = stack.udp_recv_from(h, &mut buf) {
            out.delivered += 1;
            // The source may differ from the peer's when mutations forged
            // one (a corrupted address made valid by a later fix-up); the
            // unconnected socket takes it. The payload must still be one
            // the peer (or that forgery) sent.
            if !sent.contains(&buf[..n]) {
                out.violations.push(format!(
                    "a {n}-byte datagram from {from} delivered that the peer never sent"
                ));
            }
        }
        batch.clear();
        stack.poll_transmit(now, &mut batch);
        for f in batch.iter() {
            out.emitted += 1;
            if let Err(e) = check_emitted(Medium::Ip, f) {
                out.violations.push(e);
            }
        }
        if let Err(e) = check_bounds(&stack) {
            out.violations.push(e);
        }
        if !out.violations.is_empty() {
            break;
        }
        if next == now
            && si >= schedule_list.len()
            && li >= local_list.len()
            && stack.poll_at().is_none_or(|t| t > end)
        {
            break;
        }
    }
    out
}

/// One line about an IPv4 packet, for traces.
pub fn describe(ip: &[u8]) -> String {
    let Ok(p) = ipv4::Packet::new_checked(ip) else {
        return format!("{} bytes, not IPv4", ip.len());
    };
    if p.protocol() != ipv4::protocol::TCP {
        return format!("IPv4 proto {} len {}", p.protocol(), ip.len());
    }
    let Ok(t) = tcp::Packet::new_checked(p.payload()) else {
        return "bad TCP".into();
    };
    let ok = t.verify_checksum(p.src_addr().into(), p.dst_addr().into());
    format!(
        "{}>{} {:?} seq {} ack {} win {} len {}{}",
        t.src_port(),
        t.dst_port(),
        t.flags(),
        t.seq_number(),
        t.ack_number(),
        t.window_len(),
        t.payload().len(),
        if ok { "" } else { " BADSUM" }
    )
}
