//! TCP settings, with Linux's defaults where the RFCs leave a choice.

use crate::tcp::rtt::RttConfig;
use crate::time::Duration;

/// Keep-alive probing (RFC 1122 §4.2.3.6); off unless set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe (Linux: 7200 s).
    pub idle: Duration,
    /// Time between unanswered probes (Linux: 75 s).
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped (Linux: 9).
    pub count: u32,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            idle: Duration::from_secs(7200),
            interval: Duration::from_secs(75),
            count: 9,
        }
    }
}

/// Settings of a TCP connection.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// Send buffer limit in bytes.
    pub send_buffer: usize,
    /// Receive buffer (and so the largest window) in bytes.
    pub recv_buffer: usize,
    /// Disable Nagle's algorithm.
    pub nodelay: bool,
    /// RTO estimator settings (RFC 6298; min 200 ms, max 120 s like Linux).
    pub rtt: RttConfig,
    /// SYN retransmissions before `TimedOut` (Linux: 6).
    pub syn_retries: u32,
    /// Data retransmissions before `TimedOut` (Linux: 15).
    pub data_retries: u32,
    /// Give up when data stays unacknowledged this long (`TCP_USER_TIMEOUT`);
    /// overrides `data_retries` when set.
    pub user_timeout: Option<Duration>,
    /// Longest an ACK may be delayed (RFC 1122: < 500 ms; Linux: 40 ms).
    pub delayed_ack: Duration,
    /// Maximum segment lifetime; TIME_WAIT lasts twice this (60 s).
    pub msl: Duration,
    /// How long an orphaned connection may sit in FIN_WAIT_2 (Linux: 60 s).
    pub fin_wait2_timeout: Duration,
    /// Keep-alive, when enabled.
    pub keepalive: Option<Keepalive>,
    /// Offer window scaling (RFC 7323).
    pub window_scaling: bool,
    /// Offer timestamps (RFC 7323).
    pub timestamps: bool,
    /// Offer SACK (RFC 2018).
    pub sack: bool,
    /// RACK-TLP loss detection (RFC 8985) when SACK is agreed (Linux:
    /// `tcp_recovery=1`, the default). Off: RFC 6675's DupThresh rule.
    pub rack: bool,
    /// Tail Loss Probes (RFC 8985 §7), with RACK (Linux:
    /// `tcp_early_retrans=3`).
    pub tlp: bool,
    /// The peer's worst-case delayed-ACK time, added to the probe timeout
    /// when one segment is in flight (RFC 8985 `WCDelAckT`: 200 ms).
    pub max_ack_delay: Duration,
    /// Congestion controller name: `cubic` (the default, as on Linux),
    /// `reno` or `bbr`.
    pub congestion: String,
    /// Pace controllers that do not pace themselves (CUBIC, NewReno): send
    /// at Linux's rate, 2 × cwnd / SRTT in slow start and 1.2 × cwnd / SRTT
    /// after (`tcp_pacing_ss_ratio` 200 %, `tcp_pacing_ca_ratio` 120 %),
    /// instead of in bursts as ACKs open the window. BBR always paces.
    /// Default off, as on Linux without the `fq` qdisc.
    pub pacing: bool,
    /// Challenge ACKs per second at most (RFC 5961 §7; Linux: 1000).
    pub challenge_ack_limit: u32,
    /// Half-open connections a listener keeps (Linux: `tcp_max_syn_backlog`).
    pub syn_backlog: usize,
    /// Answer SYNs with SYN cookies when the SYN queue is full (Linux:
    /// `tcp_syncookies=1`); otherwise such SYNs are dropped.
    pub syncookies: bool,
    /// RFC 5961 §3: a RST that is in the window but not exactly at RCV.NXT
    /// only draws a challenge ACK (the default, as on Linux). Off: RFC 793
    /// behaviour, any RST in the window resets the connection (FreeBSD's
    /// `net.inet.tcp.insecure_rst=1`).
    pub rfc5961_rst: bool,
    /// RFC 5961 §4: a SYN in a synchronized state draws a challenge ACK
    /// (the default, as on Linux). Off: RFC 793 behaviour, a SYN in the
    /// window resets the connection (FreeBSD's `insecure_syn=1`).
    pub rfc5961_syn: bool,
    /// What to do with a segment that carries both SYN and FIN, a
    /// combination no TCP sends (used by scanners to slip past filters).
    pub syn_fin: SynFin,
    /// ICMP destination-unreachable and time-exceeded errors that quote a
    /// connection attempt's SYN abort it (RFC 1122 §4.2.3.9, as Linux and
    /// FreeBSD by default). Off: they are ignored (FreeBSD's
    /// `net.inet.tcp.icmp_may_rst=0`), and the SYN is retried until it
    /// times out.
    pub icmp_may_abort: bool,
    /// Send no TCP options at all, not even MSS, and use none of the
    /// peer's (BSD's `TCP_NOOPT`): segments are then at most 536 bytes.
    pub no_options: bool,
    /// Largest payload of one super-segment handed to a device that cuts
    /// them itself (TSO/GSO); 0 or anything up to one MSS: none. The
    /// interface sets it from [`crate::iface::Config::offload`] (what is
    /// set here is replaced), so that it matches the device.
    pub segment_offload: usize,
}

/// Handling of segments with both SYN and FIN set ([`TcpConfig::syn_fin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynFin {
    /// Processed like any SYN, as RFC 9293 describes.
    Accept,
    /// Dropped when they reach a listener, processed elsewhere: Linux's
    /// behaviour (`tcp_rcv_state_process` discards them in LISTEN). The
    /// default.
    DropInListen,
    /// Dropped by listeners and by connections in SYN-SENT, where a SYN
    /// would open or complete a connection: FreeBSD's
    /// `net.inet.tcp.drop_synfin=1`. In the synchronized states a SYN+FIN
    /// is a SYN like any other (RFC 5961 §4: a challenge ACK).
    Drop,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            send_buffer: 1 << 20,
            recv_buffer: 1 << 20,
            nodelay: false,
            rtt: RttConfig::default(),
            syn_retries: 6,
            data_retries: 15,
            user_timeout: None,
            delayed_ack: Duration::from_millis(40),
            msl: Duration::from_secs(30),
            fin_wait2_timeout: Duration::from_secs(60),
            keepalive: None,
            window_scaling: true,
            timestamps: true,
            sack: true,
            rack: true,
            tlp: true,
            max_ack_delay: Duration::from_millis(200),
            congestion: "cubic".into(),
            pacing: false,
            challenge_ack_limit: 1000,
            syn_backlog: 256,
            syncookies: true,
            rfc5961_rst: true,
            rfc5961_syn: true,
            syn_fin: SynFin::DropInListen,
            icmp_may_abort: true,
            no_options: false,
            segment_offload: 0,
        }
    }
}
