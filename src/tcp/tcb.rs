//! The transmission control block: one connection's state (RFC 9293 §3.3.1),
//! its buffers, timers and the calls an application makes on it.
//!
//! Segment arrival is in [`super::input`], segment generation and timers in
//! [`super::output`]. Everything takes `now`; nothing does I/O.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use super::buffer::{BufferPool, ReceiveBuffer, SendBuffer};
use super::cc::{self, CongestionControl};
use super::config::TcpConfig;
use super::rate::RateEstimator;
use super::recovery::Recovery;
use super::rtt::RttEstimator;
use super::seq::SeqNumber;
use super::timer::{Fired, Timer, TimerTable};
use crate::time::{Duration, Instant};

/// The eleven states of RFC 9293 §3.3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// No connection.
    Closed,
    /// Waiting for a SYN.
    Listen,
    /// SYN sent, waiting for SYN-ACK.
    SynSent,
    /// SYN received and answered, waiting for the ACK.
    SynReceived,
    /// Open: data flows both ways.
    Established,
    /// Our FIN sent, not yet acknowledged.
    FinWait1,
    /// Our FIN acknowledged, waiting for the peer's.
    FinWait2,
    /// The peer's FIN received; we may still send.
    CloseWait,
    /// Both FINs sent, ours not yet acknowledged (simultaneous close).
    Closing,
    /// The peer closed first; our FIN sent, waiting for its ACK.
    LastAck,
    /// Both closed; waiting 2×MSL for stray segments.
    TimeWait,
}

impl State {
    /// States in which both sides have exchanged SYNs.
    pub fn is_synchronized(self) -> bool {
        !matches!(
            self,
            State::Closed | State::Listen | State::SynSent | State::SynReceived
        )
    }

    /// The name Linux's `ss` prints.
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "CLOSED",
            State::Listen => "LISTEN",
            State::SynSent => "SYN-SENT",
            State::SynReceived => "SYN-RECV",
            State::Established => "ESTAB",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::CloseWait => "CLOSE-WAIT",
            State::Closing => "CLOSING",
            State::LastAck => "LAST-ACK",
            State::TimeWait => "TIME-WAIT",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Per-connection statistics, a `TCP_INFO`-like snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpInfo {
    /// Connection state.
    pub state: Option<State>,
    /// Congestion window, bytes.
    pub cwnd: usize,
    /// Slow-start threshold, bytes (`usize::MAX` = infinite).
    pub ssthresh: usize,
    /// Smoothed RTT.
    pub srtt: Option<Duration>,
    /// RTT variation.
    pub rttvar: Duration,
    /// Current retransmission timeout.
    pub rto: Duration,
    /// Segments retransmitted.
    pub retransmits: u64,
    /// Fast retransmits among them.
    pub fast_retransmits: u64,
    /// Retransmission timeouts.
    pub timeouts: u64,
    /// Bytes the peer acknowledged.
    pub bytes_acked: u64,
    /// Bytes received in order.
    pub bytes_received: u64,
    /// Segments received.
    pub segs_in: u64,
    /// Segments sent.
    pub segs_out: u64,
    /// The peer's window, bytes (scaled).
    pub snd_wnd: usize,
    /// Our advertised window, bytes.
    pub rcv_wnd: usize,
    /// Sender MSS in use.
    pub mss: usize,
    /// Path MTU towards the peer, IP level (Linux's `tcpi_pmtu`): the
    /// link MTU, a value learned earlier for this destination, or what an
    /// ICMP "fragmentation needed" / "packet too big" reported since.
    pub pmtu: usize,
    /// Window scale shifts (ours, theirs) when negotiated.
    pub wscale: Option<(u8, u8)>,
    /// Timestamps negotiated.
    pub timestamps: bool,
    /// SACK negotiated.
    pub sack: bool,
    /// Bytes sent and not yet acknowledged.
    pub unacked: usize,
    /// Bytes waiting in the send buffer (unacked included).
    pub send_queue: usize,
    /// Bytes readable by the application.
    pub recv_queue: usize,
    /// Congestion controller name and state.
    pub congestion: (&'static str, &'static str),
    /// Segments the peer has SACKed (above the cumulative ACK), now.
    pub sacked: usize,
    /// Bytes the peer has SACKed, now.
    pub sacked_bytes: usize,
    /// SACKed ranges the sender's scoreboard forgot for its bound (256
    /// ranges): more distinct holes than it keeps. Their bytes count as
    /// not SACKed (at worst resent needlessly).
    pub sack_ranges_forgotten: u64,
    /// Segments marked lost and not yet acknowledged, now.
    pub lost: usize,
    /// Segments retransmitted and not yet acknowledged, now.
    pub retrans_out: usize,
    /// Segments RACK marked lost over the connection's life.
    pub lost_total: u64,
    /// Tail loss probes sent.
    pub tlps: u64,
    /// Losses a tail loss probe repaired (the window was reduced for them).
    pub tlp_loss_repaired: u64,
    /// D-SACK blocks received (RFC 2883): the peer got a segment twice.
    pub dsacks_received: u64,
    /// D-SACK blocks sent: we got a segment twice.
    pub dsacks_sent: u64,
    /// Congestion-window reductions undone because D-SACKs showed every
    /// retransmission of the episode was spurious.
    pub undos: u64,
    /// Smallest RTT measured.
    pub min_rtt: Option<Duration>,
    /// The last delivery-rate sample, bytes per second (Linux's
    /// `tcpi_delivery_rate`).
    pub delivery_rate: Option<u64>,
    /// The last delivery-rate sample was taken while the application
    /// limited the sender (`tcpi_delivery_rate_app_limited`).
    pub delivery_rate_app_limited: bool,
    /// Bytes delivered (cumulatively ACKed or SACKed; `tcpi_delivered`
    /// counts segments).
    pub delivered: u64,
    /// The pacing rate, bytes per second, when the connection paces (the
    /// controller's own, BBR; or `TcpConfig::pacing`).
    pub pacing_rate: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Timestamps {
    /// TS.Recent (RFC 7323 §4.3).
    pub recent: u32,
    pub recent_at: Instant,
    /// Added to our millisecond clock, random per connection (RFC 7323 §5.4).
    pub offset: u32,
}

/// One connection.
pub struct Tcb {
    pub(crate) state: State,
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    pub(crate) config: Arc<TcpConfig>,
    /// Opened by a listener (affects what RST in SYN-RECEIVED means).
    pub(crate) passive: bool,

    // Send sequence space (RFC 9293 §3.3.1).
    pub(crate) iss: SeqNumber,
    pub(crate) snd_una: SeqNumber,
    pub(crate) snd_nxt: SeqNumber,
    /// Highest sequence number sent (snd_nxt rewinds on RTO).
    pub(crate) snd_max: SeqNumber,
    pub(crate) snd_wnd: usize,
    pub(crate) max_snd_wnd: usize,
    pub(crate) snd_wl1: SeqNumber,
    pub(crate) snd_wl2: SeqNumber,
    /// Shift applied to the peer's window field.
    pub(crate) snd_wscale: u8,
    pub(crate) send_buf: SendBuffer,
    /// The application shut down writing: a FIN follows the data.
    pub(crate) fin_queued: bool,

    // Receive sequence space.
    pub(crate) irs: SeqNumber,
    pub(crate) rcv_nxt: SeqNumber,
    /// Shift we apply to our window field.
    pub(crate) rcv_wscale: u8,
    /// Right edge of the window last advertised.
    pub(crate) rcv_adv: SeqNumber,
    pub(crate) recv_buf: ReceiveBuffer,
    pub(crate) fin_received: bool,
    /// A FIN that arrived beyond a hole, at this sequence number.
    pub(crate) fin_pending: Option<SeqNumber>,
    pub(crate) last_ack_sent: SeqNumber,

    // Options.
    /// Largest segment (payload + options) the peer takes, capped by our MTU.
    pub(crate) smss: usize,
    /// MSS we advertise.
    pub(crate) our_mss: u16,
    /// Path MTU towards the peer (IP level): caps `smss` (RFC 1191/8201).
    pub(crate) pmtu: usize,
    pub(crate) ws_ok: bool,
    pub(crate) ts: Option<Timestamps>,
    pub(crate) sack_ok: bool,
    /// Offset for our timestamp clock, used once timestamps are agreed.
    pub(crate) ts_offset_seed: u32,
    /// Sequence number of our FIN once sent.
    pub(crate) fin_seq: Option<SeqNumber>,

    // Loss recovery and congestion control.
    pub(crate) rtt: RttEstimator,
    /// One segment being timed (Karn's rule: discarded when retransmitted).
    pub(crate) rtt_probe: Option<(SeqNumber, Instant)>,
    pub(crate) cc: Box<dyn CongestionControl>,
    /// Loss recovery: its state and the transmit records.
    pub(crate) rec: Recovery,
    /// A D-SACK block (RFC 2883) for the next ACK we send.
    pub(crate) dsack_pending: Option<(SeqNumber, SeqNumber)>,

    // Timers (deadlines) and the probes they leave due.
    pub(crate) timers: TimerTable,
    /// Probes a timer left for the next transmission.
    pub(crate) fired: Fired,
    pub(crate) persist_backoff: u32,
    pub(crate) keepalive_probes: u32,
    /// Consecutive RTOs without progress.
    pub(crate) retries: u32,
    /// When the oldest unacknowledged data was first sent (user timeout).
    pub(crate) unacked_since: Option<Instant>,

    // ACK policy.
    pub(crate) ack_now: bool,
    pub(crate) segs_unacked: u32,
    pub(crate) challenge_acks: (u64, u32),
    /// Text that came on the peer's SYN in a simultaneous open, held until
    /// the handshake completes (RFC 9293 §3.10.7.3: "queue them for
    /// processing after the ESTABLISHED state has been reached").
    pub(crate) syn_text: Vec<u8>,
    /// Delivery-rate estimation (`rate.rs`).
    pub(crate) rate: RateEstimator,

    // Application side.
    pub(crate) error: Option<io::ErrorKind>,
    pub(crate) read_closed: bool,
    /// The application has let go: the connection finishes on its own.
    pub(crate) orphaned: bool,
    /// Send a RST and close (abort, or data arriving after close).
    pub(crate) rst_pending: bool,
    pub(crate) last_recv_at: Instant,
    /// When data was last taken into the receive buffer.
    pub(crate) last_data_at: Option<Instant>,
    /// Requests and answers alternate on this connection (data went out
    /// within the delayed-ACK time of data coming in, and no delayed ACK
    /// has had to fire since): the peer's FIN is then ACKed with a short
    /// delay, so that the application's own FIN, usually right behind it,
    /// carries the ACK (Linux's pingpong mode, `tcp_event_data_sent`).
    pub(crate) pingpong: bool,

    pub(crate) info: TcpInfo,
}

impl fmt::Debug for Tcb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tcb")
            .field("state", &self.state)
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("snd_una", &self.snd_una)
            .field("snd_nxt", &self.snd_nxt)
            .field("rcv_nxt", &self.rcv_nxt)
            .finish_non_exhaustive()
    }
}

/// Our window scale shift for a buffer: the smallest that lets the field
/// express the whole buffer (RFC 7323 §2.3, at most 14).
pub(crate) fn wscale_for(buffer: usize) -> u8 {
    let mut s = 0u8;
    while s < 14 && (65535usize << s) < buffer {
        s += 1;
    }
    s
}

impl Tcb {
    pub(crate) fn new(
        config: Arc<TcpConfig>,
        local: SocketAddr,
        remote: SocketAddr,
        iss: SeqNumber,
        mtu: usize,
        ts_offset: u32,
        now: Instant,
    ) -> Tcb {
        let headers = if remote.is_ipv6() { 60 } else { 40 };
        let our_mss = mtu.saturating_sub(headers).clamp(88, 65495) as u16;
        let smss = 536usize.min(our_mss as usize);
        let cc = cc::by_name(&config.congestion, smss)
            .unwrap_or_else(|| cc::by_name("reno", smss).expect("reno exists"));
        Tcb {
            state: State::Closed,
            local,
            remote,
            passive: false,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: SeqNumber(0),
            snd_wl2: iss,
            snd_wscale: 0,
            send_buf: SendBuffer::new(config.send_buffer),
            fin_queued: false,
            irs: SeqNumber(0),
            rcv_nxt: SeqNumber(0),
            rcv_wscale: if config.window_scaling {
                wscale_for(config.recv_buffer)
            } else {
                0
            },
            rcv_adv: SeqNumber(0),
            recv_buf: ReceiveBuffer::new(config.recv_buffer),
            fin_received: false,
            fin_pending: None,
            last_ack_sent: SeqNumber(0),
            smss,
            our_mss,
            pmtu: mtu,
            ws_ok: false,
            ts: None,
            sack_ok: false,
            rtt: RttEstimator::new(config.rtt),
            rtt_probe: None,
            cc,
            rec: Recovery::default(),
            dsack_pending: None,
            timers: TimerTable::default(),
            fired: Fired::default(),
            persist_backoff: 0,
            keepalive_probes: 0,
            retries: 0,
            unacked_since: None,
            ack_now: false,
            segs_unacked: 0,
            challenge_acks: (0, 0),
            syn_text: Vec::new(),
            rate: RateEstimator::default(),
            error: None,
            read_closed: false,
            orphaned: false,
            rst_pending: false,
            last_recv_at: now,
            last_data_at: None,
            pingpong: false,
            info: TcpInfo::default(),
            ts_offset_seed: ts_offset,
            fin_seq: None,
            config,
        }
    }

    /// Moves to `to`, with a `debug` event for the transition (cheap when no
    /// subscriber listens at that level).
    #[inline]
    pub(crate) fn set_state(&mut self, to: State) {
        if self.state != to {
            tracing::debug!(
                target: "ustack::tcp::state",
                local = %self.local,
                remote = %self.remote,
                from = ?self.state,
                to = ?to,
                "tcp state transition"
            );
            self.state = to;
        }
    }

    /// An active open: SYN-SENT, the SYN goes out on the next poll.
    pub(crate) fn connect(&mut self, now: Instant) {
        self.set_state(State::SynSent);
        self.snd_nxt = self.iss;
        self.timers.set(Timer::Rto, now);
        self.unacked_since = Some(now);
    }

    /// The connection's state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Remote address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote
    }

    /// Bytes the application can read now.
    pub fn recv_queue(&self) -> usize {
        self.recv_buf.readable()
    }

    /// True when a read would not block: data, end of stream or an error.
    pub fn can_recv(&self) -> bool {
        self.recv_buf.readable() > 0
            || self.fin_received
            || self.error.is_some()
            || matches!(self.state, State::Closed)
            || self.read_closed
    }

    /// Room in the send buffer.
    pub fn send_room(&self) -> usize {
        if self.may_send() {
            self.send_buf.free()
        } else {
            0
        }
    }

    /// True when a write would not block (room, or an error to report).
    pub fn can_send(&self) -> bool {
        self.error.is_some() || !self.may_send() || self.send_buf.free() > 0
    }

    fn may_send(&self) -> bool {
        matches!(
            self.state,
            State::SynSent | State::SynReceived | State::Established | State::CloseWait
        ) && !self.fin_queued
    }

    /// True once the handshake completed (or the connection failed).
    pub fn is_connected(&self) -> bool {
        self.state.is_synchronized()
    }

    /// Queues `data` for sending. `WouldBlock` when the buffer is full;
    /// `BrokenPipe` after shutdown(Write); the pending error if any.
    pub(crate) fn send(&mut self, data: &[u8], pool: &mut BufferPool) -> io::Result<usize> {
        if let Some(e) = self.error.take() {
            return Err(e.into());
        }
        match self.state {
            State::SynSent | State::SynReceived | State::Established | State::CloseWait => {}
            // Linux: EPIPE once the connection is gone (sk_stream_wait_connect).
            _ => return Err(io::ErrorKind::BrokenPipe.into()),
        }
        if self.fin_queued {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = self.send_buf.write(data, pool);
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Reads in-order data. `Ok(0)` at end of stream; `WouldBlock` when
    /// nothing is there yet; a reset or timeout as its error, once.
    pub(crate) fn recv(&mut self, buf: &mut [u8], pool: &mut BufferPool) -> io::Result<usize> {
        let n = self.recv_buf.read(buf, pool);
        if n > 0 {
            self.after_read();
            return Ok(n);
        }
        if let Some(e) = self.error.take() {
            return Err(e.into());
        }
        if self.fin_received || self.read_closed || buf.is_empty() {
            return Ok(0);
        }
        match self.state {
            State::Closed => Ok(0),
            State::Listen => Err(io::ErrorKind::NotConnected.into()),
            _ => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Copies readable data without consuming it.
    pub fn peek(&self, buf: &mut [u8]) -> usize {
        self.recv_buf.peek(buf)
    }

    /// After the application read: advertise the opened window when it grew
    /// enough to matter (RFC 1122 §4.2.3.3 receiver SWS avoidance).
    fn after_read(&mut self) {
        // No window updates once the peer has finished sending: nothing more
        // can use the window, and a peer that already closed would answer
        // with RST (Linux: RCV_SHUTDOWN in tcp_cleanup_rbuf).
        if !self.state.is_synchronized() || self.fin_received {
            return;
        }
        let advertised = (self.rcv_adv - self.rcv_nxt).max(0) as usize;
        let now_possible = self.recv_buf.window();
        let threshold = (2 * self.smss).min(self.recv_buf.capacity() / 2).max(1);
        if now_possible >= advertised + threshold {
            self.ack_now = true;
        }
    }

    /// Half-closes: no more sends; a FIN follows the queued data.
    pub fn shutdown_write(&mut self) {
        if self.fin_queued {
            return;
        }
        match self.state {
            State::SynSent => {
                self.set_state(State::Closed);
            }
            State::SynReceived | State::Established => {
                self.fin_queued = true;
                self.set_state(State::FinWait1);
            }
            State::CloseWait => {
                self.fin_queued = true;
                self.set_state(State::LastAck);
            }
            _ => {}
        }
    }

    /// No more reads: data still arriving is discarded; after close it
    /// draws a RST (RFC 9293 §3.10.4 / Linux behaviour).
    pub fn shutdown_read(&mut self) {
        self.read_closed = true;
    }

    /// The application closes: half-close for writing and let go. Unread
    /// data makes it an abort with RST (RFC 2525 §2.17, as Linux does).
    pub fn close(&mut self) {
        self.orphaned = true;
        self.read_closed = true;
        if self.recv_buf.readable() > 0 {
            self.abort();
            return;
        }
        self.shutdown_write();
    }

    /// Aborts with a RST (linger 0).
    pub fn abort(&mut self) {
        self.orphaned = true;
        if self.state.is_synchronized() || self.state == State::SynReceived {
            self.rst_pending = true;
        } else {
            self.set_state(State::Closed);
        }
    }

    /// Takes the pending error (`SO_ERROR`).
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take().map(io::Error::from)
    }

    /// The snapshot `TCP_INFO` would give.
    pub fn info(&self) -> TcpInfo {
        let mut i = self.info.clone();
        i.state = Some(self.state);
        i.cwnd = self.cc.cwnd();
        i.ssthresh = self.cc.ssthresh();
        i.srtt = self.rtt.srtt();
        i.rttvar = self.rtt.rttvar();
        i.rto = self.rtt.rto();
        i.snd_wnd = self.snd_wnd;
        i.rcv_wnd = self.recv_buf.window();
        i.mss = self.data_mss();
        i.pmtu = self.pmtu;
        i.wscale = self.ws_ok.then_some((self.rcv_wscale, self.snd_wscale));
        i.timestamps = self.ts.is_some();
        i.sack = self.sack_ok;
        i.unacked = self.bytes_in_flight();
        i.send_queue = self.send_buf.len();
        i.recv_queue = self.recv_buf.readable();
        i.congestion = (self.cc.name(), self.cc.state_name());
        if self.sack_recovery() {
            i.cwnd = self.recovery_cwnd();
        }
        i.sacked_bytes = self.sacked_bytes();
        i.sack_ranges_forgotten = self.rec.sack.forgotten();
        if self.rack_on() {
            i.sacked = self.rec.segs_sacked();
            let live = || self.rec.segs.iter().filter(|r| !self.rec.is_sacked(r));
            i.lost = live().filter(|r| r.lost).count();
            i.retrans_out = live().filter(|r| r.rexmit).count();
        } else {
            let mss = self.data_mss();
            i.sacked = self
                .rec
                .sack
                .sacked()
                .ranges()
                .iter()
                .map(|&(s, e)| ((e - s).max(0) as usize).div_ceil(mss))
                .sum();
            i.lost = self.rec.sack.lost_bytes().div_ceil(mss);
        }
        i.min_rtt = self.min_rtt();
        let last = self.rate.last();
        i.delivery_rate = last.map(|s| s.rate());
        i.delivery_rate_app_limited = last.is_some_and(|s| s.app_limited);
        i.delivered = self.rate.delivered();
        i.pacing_rate = self.pacing_rate();
        i
    }

    /// The smallest RTT measured (RTO estimator or RACK).
    pub(crate) fn min_rtt(&self) -> Option<Duration> {
        match (self.rtt.min_rtt(), self.rec.rack.min_rtt) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Payload bytes per full segment (SMSS less the options every data
    /// segment carries).
    pub(crate) fn data_mss(&self) -> usize {
        let opts = if self.ts.is_some() { 12 } else { 0 };
        self.smss.saturating_sub(opts).max(1)
    }

    /// Sequence space in flight (SYN and FIN count).
    pub(crate) fn bytes_in_flight(&self) -> usize {
        (self.snd_nxt - self.snd_una).max(0) as usize
    }

    /// The FlightSize a window reduction (recovery, RTO) starts from: the
    /// bytes in flight, but never more than the congestion window. After a
    /// long SACK recovery the span from snd_una to snd_nxt can be several
    /// windows (mostly SACKed; RFC 6675 sends by `pipe`), and reducing from
    /// it would *raise* the window: two CUBIC flows sharing a link then
    /// entered recovery with ssthresh = 0.7 × 1.95 MB over a 544 kB window
    /// and spiralled into 150,000 retransmissions. Linux reduces from cwnd.
    pub(crate) fn reduction_flight(&self) -> usize {
        self.bytes_in_flight().min(self.cc.cwnd())
    }

    /// True when the connection is over and its state can be dropped.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Sets the error the application will see, and closes.
    pub(crate) fn fail(&mut self, kind: io::ErrorKind) {
        tracing::debug!(
            target: "ustack::tcp",
            local = %self.local,
            remote = %self.remote,
            state = ?self.state,
            error = ?kind,
            "tcp connection failed"
        );
        self.error = Some(kind);
        self.enter_closed();
    }

    pub(crate) fn enter_closed(&mut self) {
        self.set_state(State::Closed);
        // Nothing is armed once closed (the pacer's gate included).
        self.timers = TimerTable::default();
        self.rec.tlp.due = false;
    }

    pub(crate) fn enter_time_wait(&mut self, now: Instant) {
        self.set_state(State::TimeWait);
        self.timers.stop_all(&[
            Timer::Rto,
            Timer::ReoWnd,
            Timer::Tlp,
            Timer::Persist,
            Timer::Keepalive,
            Timer::FinWait2,
        ]);
        self.rec.tlp.due = false;
        self.timers.set(Timer::TimeWait, now + 2 * self.config.msl);
    }

    /// The timestamp clock value for `now` (milliseconds plus offset).
    pub(crate) fn ts_val(&self, now: Instant) -> u32 {
        (now.total_millis() as u32).wrapping_add(self.ts.map_or(self.ts_offset_seed, |t| t.offset))
    }

    /// Sets nodelay (disables Nagle).
    pub fn set_nodelay(&mut self, on: bool) {
        Arc::make_mut(&mut self.config).nodelay = on;
    }

    /// Keep-alive settings (`None`: off).
    pub fn set_keepalive(&mut self, ka: Option<super::config::Keepalive>, now: Instant) {
        Arc::make_mut(&mut self.config).keepalive = ka;
        self.keepalive_probes = 0;
        match ka.filter(|_| self.state.is_synchronized()) {
            Some(k) => self.timers.set(Timer::Keepalive, now + k.idle),
            None => self.timers.stop(Timer::Keepalive),
        }
    }

    /// Chooses this connection's congestion controller by name (one of
    /// [`cc::AVAILABLE`]; Linux's `TCP_CONGESTION`). The new controller
    /// starts from its initial state (initial window, no estimates), as
    /// Linux re-initialises one; set it before data flows for a clean
    /// start. An unknown name is `InvalidInput` and changes nothing.
    pub fn set_congestion(&mut self, name: &str) -> io::Result<()> {
        if self.cc.name() == name {
            return Ok(());
        }
        let cc = cc::by_name(name, self.data_mss()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "unknown congestion control {name:?} (available: {})",
                    cc::AVAILABLE.join(", ")
                ),
            )
        })?;
        self.cc = cc;
        self.timers.stop(Timer::Pacing);
        Arc::make_mut(&mut self.config).congestion = name.into();
        Ok(())
    }

    /// The connection's settings.
    pub fn config(&self) -> &TcpConfig {
        &self.config
    }
}
