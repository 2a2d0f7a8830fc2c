//! A conversation of a capture turned into a script: what the peer sent
//! and when, and what the application on the stack's side did and when.

use std::net::SocketAddr;

use super::capture::{Capture, ConversationKey, Frame, TcpPacket, UdpPacket};
use crate::wire::tcp;

/// Which end of the conversation ustack plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The end that opened the connection (sent the SYN, or spoke first).
    Client,
    /// The other end.
    Server,
    /// The server when the capture shows one, else the end that spoke second.
    Auto,
}

impl std::str::FromStr for Side {
    type Err = String;
    fn from_str(s: &str) -> Result<Side, String> {
        match s {
            "client" => Ok(Side::Client),
            "server" => Ok(Side::Server),
            "auto" => Ok(Side::Auto),
            _ => Err(format!("side must be client, server or auto, not {s:?}")),
        }
    }
}

/// The TCP part of a script.
#[derive(Debug, Clone)]
pub struct TcpScript {
    /// The peer's segments as captured (times relative to the capture's
    /// start), handshake segments synthesized when the capture lacks them.
    pub peer: Vec<TcpPacket>,
    /// The peer's initial sequence number.
    pub peer_isn: u32,
    /// The captured local end's initial sequence number.
    pub local_isn: u32,
    /// The stack opens the connection (else it listens).
    pub stack_connects: bool,
    /// When the application connects (stack as client).
    pub connect_at: u64,
    /// The stack's application listens (the captured local end accepted
    /// the connection; a closed port does not listen).
    pub listens: bool,
    /// What the captured local end sent, in order, with the time by which
    /// each byte had been written: (time, stream end offset).
    pub local_writes: Vec<(u64, usize)>,
    /// The local end's byte stream.
    pub local_stream: Vec<u8>,
    /// When the local application shut down its sending side (sent FIN).
    pub local_fin_at: Option<u64>,
    /// When the local application aborted (an RST that was its own).
    pub local_abort_at: Option<u64>,
    /// The capture holds a complete three-way handshake.
    pub handshake: bool,
    /// The peer sent a FIN.
    pub peer_fin: bool,
    /// Someone sent an RST.
    pub rst: bool,
}

/// The UDP part of a script.
#[derive(Debug, Clone)]
pub struct UdpScript {
    /// The peer's datagrams.
    pub peer: Vec<UdpPacket>,
    /// The local end's datagrams (the application sends them).
    pub local: Vec<UdpPacket>,
}

/// What the replay plays.
#[derive(Debug, Clone)]
pub enum Script {
    /// A TCP conversation.
    Tcp(TcpScript),
    /// A UDP conversation.
    Udp(UdpScript),
}

/// The chosen conversation and the script for the chosen side.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The conversation.
    pub key: ConversationKey,
    /// The peer's captured address (the end ustack does not play).
    pub peer: SocketAddr,
    /// The captured address of the end ustack plays.
    pub local: SocketAddr,
    /// The stack plays the client.
    pub stack_is_client: bool,
    /// The script.
    pub script: Script,
    /// What the capture lacks or holds that a replay cannot play as it
    /// is, and what the peer does instead (one sentence each).
    pub notes: Vec<String>,
}

impl Plan {
    /// Frames the peer sends in the script (the indices mutations refer to).
    pub fn peer_frames(&self) -> usize {
        match &self.script {
            Script::Tcp(s) => s.peer.len(),
            Script::Udp(s) => s.peer.len(),
        }
    }
}

/// Builds the plan for the largest conversation of `cap` (TCP preferred),
/// or `None` when there is none.
pub fn plan(cap: &Capture, side: Side) -> Option<Plan> {
    let (key, _) = cap.conversations().into_iter().next()?;
    Some(plan_for(cap, key, side))
}

fn rel(seq: u32, isn: u32) -> usize {
    seq.wrapping_sub(isn) as usize
}

/// Builds the plan for conversation `key` of `cap`.
pub fn plan_for(cap: &Capture, key: ConversationKey, side: Side) -> Plan {
    let stack_is_client = side == Side::Client;
    let (local, peer) = if stack_is_client {
        (key.client, key.server)
    } else {
        (key.server, key.client)
    };
    if !key.tcp {
        let mut s = UdpScript {
            peer: Vec::new(),
            local: Vec::new(),
        };
        for f in &cap.frames {
            if let Frame::Udp(u) = f {
                if u.src == peer && u.dst == local {
                    s.peer.push(u.clone());
                } else if u.src == local && u.dst == peer {
                    s.local.push(u.clone());
                }
            }
        }
        return Plan {
            key,
            peer,
            local,
            stack_is_client,
            script: Script::Udp(s),
            notes: Vec::new(),
        };
    }
    let mut from_peer: Vec<TcpPacket> = Vec::new();
    let mut from_local: Vec<TcpPacket> = Vec::new();
    for f in &cap.frames {
        if let Frame::Tcp(p) = f {
            if p.src == peer && p.dst == local {
                from_peer.push(p.clone());
            } else if p.src == local && p.dst == peer {
                from_local.push(p.clone());
            }
        }
    }
    let isn_of = |v: &[TcpPacket]| -> Option<u32> {
        if let Some(s) = v.iter().find(|p| p.flags.syn()) {
            return Some(s.seq);
        }
        // Mid-stream: one before the lowest sequence number seen.
        let first = v.first()?.seq;
        let lowest = v
            .iter()
            .map(|p| p.seq)
            .min_by_key(|s| s.wrapping_sub(first) as i32)?;
        Some(lowest.wrapping_sub(1))
    };
    let t0 = from_peer
        .first()
        .map(|p| p.t)
        .into_iter()
        .chain(from_local.first().map(|p| p.t))
        .min()
        .unwrap_or(0);
    let mut peer_isn = isn_of(&from_peer).unwrap_or(0x1000);
    let local_isn = isn_of(&from_local).unwrap_or(0x2000);
    let peer_syn = from_peer.iter().any(|p| p.flags.syn());
    let local_syn = from_local.iter().any(|p| p.flags.syn());
    let local_synack = from_local.iter().any(|p| p.flags.syn() && p.flags.ack());
    let peer_synack = from_peer.iter().any(|p| p.flags.syn() && p.flags.ack());
    let handshake = (peer_syn && local_synack) || (local_syn && peer_synack);
    let syn_opts = || {
        let mut o = tcp::Options {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            ..tcp::Options::default()
        };
        o.timestamps = Some((1, 0));
        o
    };
    let mut peer_pkts = from_peer.clone();
    // Synthesize the peer's handshake when the capture started mid-stream.
    if !stack_is_client && !peer_syn {
        peer_isn = isn_of(&from_peer).unwrap_or(0x1000);
        peer_pkts.insert(
            0,
            TcpPacket {
                t: t0,
                src: peer,
                dst: local,
                seq: peer_isn,
                ack: 0,
                flags: tcp::Flags::SYN,
                window: 64240,
                options: syn_opts(),
                payload: Vec::new(),
            },
        );
    }
    let connect_at = from_local
        .iter()
        .find(|p| p.flags.syn())
        .map(|p| p.t)
        .unwrap_or(t0);
    if stack_is_client && !peer_synack && !from_peer.iter().any(|p| p.flags.rst()) {
        let at = from_local
            .iter()
            .find(|p| p.flags.syn())
            .map(|p| p.t + 1000)
            .unwrap_or(t0 + 1000);
        let pos = peer_pkts
            .iter()
            .position(|p| p.t > at)
            .unwrap_or(peer_pkts.len());
        peer_pkts.insert(
            pos,
            TcpPacket {
                t: at,
                src: peer,
                dst: local,
                seq: peer_isn,
                ack: local_isn.wrapping_add(1),
                flags: tcp::Flags(tcp::Flags::SYN.0 | tcp::Flags::ACK.0),
                window: 65160,
                options: syn_opts(),
                payload: Vec::new(),
            },
        );
    }
    // The local end's stream and when it was written.
    let mut local_stream: Vec<u8> = Vec::new();
    let mut local_writes = Vec::new();
    let mut local_fin_at = None;
    let mut local_abort_at = None;
    let mut connected = local_syn || local_synack;
    for p in &from_local {
        if !p.payload.is_empty() {
            // Data on a SYN (TCP Fast Open) is the stream's start.
            let off = if p.flags.syn() {
                0
            } else {
                rel(p.seq, local_isn.wrapping_add(1))
            };
            let end = off.saturating_add(p.payload.len());
            if end <= 16 << 20 {
                if local_stream.len() < end {
                    local_stream.resize(end, 0);
                }
                local_stream[off..end].copy_from_slice(&p.payload);
                if local_writes.last().is_none_or(|&(_, e)| e < end) {
                    local_writes.push((p.t, end));
                }
            }
            connected = true;
        }
        if p.flags.fin() && local_fin_at.is_none() {
            local_fin_at = Some(p.t);
        }
        if p.flags.rst() && connected && local_abort_at.is_none() && local_fin_at.is_none() {
            // An RST of a connection the local end had open and not closed:
            // its application aborted (SO_LINGER 0). An RST answering a SYN
            // to a closed port is the stack's, not the application's.
            local_abort_at = Some(p.t);
        }
        if p.flags.ack() && !p.flags.rst() {
            connected = true;
        }
    }
    let listens = !stack_is_client && (local_synack || (!peer_syn && connected));
    let rst = from_peer.iter().chain(&from_local).any(|p| p.flags.rst());
    let peer_fin = from_peer.iter().any(|p| p.flags.fin());
    let mut notes = Vec::new();
    if let Some(syn) = peer_pkts
        .iter()
        .find(|p| p.flags.syn() && !p.payload.is_empty())
    {
        notes.push(format!(
            "the peer's SYN carries {} bytes (TCP Fast Open); ustack does not take data on a SYN, so the peer sends them again after the handshake",
            syn.payload.len()
        ));
    }
    let holes = |v: &[TcpPacket], isn: u32| -> (usize, usize) {
        let mut spans: Vec<(usize, usize)> = v
            .iter()
            .filter(|p| !p.payload.is_empty() || (p.flags.fin() && !p.flags.syn()))
            .map(|p| {
                let off = rel(p.seq, isn.wrapping_add(1));
                let off = if p.flags.syn() { 0 } else { off };
                (off, off.saturating_add(p.payload.len()))
            })
            .filter(|&(_, e)| e <= 16 << 20)
            .collect();
        spans.sort();
        let (mut have, mut missing, mut n) = (0usize, 0usize, 0usize);
        for (o, e) in spans {
            if o > have {
                missing += o - have;
                n += 1;
            }
            have = have.max(e);
        }
        (n, missing)
    };
    let (n, missing) = holes(&from_peer, peer_isn);
    if missing > 0 {
        notes.push(format!(
            "the capture lacks {missing} bytes of the peer's stream in {n} holes; the peer sends filler bytes there"
        ));
    }
    let (n, missing) = holes(&from_local, local_isn);
    if missing > 0 {
        notes.push(format!(
            "the capture lacks {missing} bytes of the stream of the end ustack plays in {n} holes; its application writes zeros there"
        ));
    }
    Plan {
        key,
        peer,
        local,
        stack_is_client,
        notes,
        script: Script::Tcp(TcpScript {
            peer: peer_pkts,
            peer_isn,
            local_isn,
            stack_connects: stack_is_client,
            connect_at,
            listens,
            local_writes,
            local_stream,
            local_fin_at,
            local_abort_at,
            handshake,
            peer_fin,
            rst,
        }),
    }
}

/// Resolves [`Side::Auto`]: the server for TCP (the end that received the
/// SYN), for UDP the end that spoke second.
pub fn resolve_side(side: Side) -> Side {
    match side {
        Side::Auto => Side::Server,
        s => s,
    }
}
