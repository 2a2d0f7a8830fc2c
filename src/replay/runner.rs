//! The property check over a capture: many cases, each a random set of
//! mutations of the peer's frames; failures shrunk to a minimal case.

use std::net::SocketAddr;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config as PtConfig, RngAlgorithm, TestRng, TestRunner};

use super::build::ipv4_packet;
use super::capture::Capture;
use super::check::{check_bounds, check_emitted};
use super::engine::{run_case, PEER_IP, STACK_IP};
use super::mutate::{self, apply_bytes, Mutation};
use super::script::{plan, resolve_side, Plan, Side};
use crate::iface::{Config, Interface, Ipv4Cidr};
use crate::phy::{FrameBatch, Medium};
use crate::time::Instant;
use crate::wire::ipv4;

/// A failing case, shrunk.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The case's index (with the seed, it reproduces the case).
    pub case: u64,
    /// What was violated (in the minimal case).
    pub messages: Vec<String>,
    /// The minimal mutations that still fail: (peer frame index, mutation).
    pub minimal: Vec<(usize, Mutation)>,
}

/// What a property check found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Cases run.
    pub cases: u64,
    /// Cases that violated an invariant.
    pub violations: u64,
    /// Frames of the capture that were garbage.
    pub rejected: usize,
    /// The first [`MAX_FAILURES`] failing cases, shrunk.
    pub failures: Vec<Failure>,
    /// What limits the replay of this capture, and how the peer makes up
    /// for it (e.g. holes in the capture filled with synthetic bytes).
    pub notes: Vec<String>,
    /// What was replayed (for the tool's output).
    pub description: String,
    /// Frames delivered to the stack, over all cases.
    pub injected: u64,
    /// Frames the stack emitted, over all cases.
    pub emitted: u64,
}

fn case_rng(seed: u64, case: u64) -> TestRng {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(&case.to_le_bytes());
    s[16..24].copy_from_slice(b"ustkrply");
    TestRng::from_seed(RngAlgorithm::ChaCha, &s)
}

/// Runs one case of `plan` (or of the garbage alone when there is no
/// conversation) and returns the violations.
fn run_one(
    plan: Option<&Plan>,
    muts: &[(usize, Mutation)],
    garbage: &[(u64, Vec<u8>)],
    report: &mut Report,
) -> Vec<String> {
    let out = match plan {
        Some(p) => run_case(p, muts, garbage),
        None => run_garbage(muts, garbage),
    };
    report.injected += out.injected as u64;
    report.emitted += out.emitted as u64;
    out.violations
}

/// How many failing cases a [`Report`] keeps (shrunk); every further one
/// is still counted in [`Report::violations`].
pub const MAX_FAILURES: usize = 16;

/// Checks `cases` cases of the capture's main conversation, ustack
/// playing `side`; the seed makes it reproducible. `only_case` runs just
/// that case. Case 0 is the capture as it is, without mutations.
pub fn check_capture(
    cap: &Capture,
    side: Side,
    cases: u64,
    seed: u64,
    only_case: Option<u64>,
) -> Report {
    check_capture_with(cap, side, cases, seed, only_case, &mut |_| {})
}

/// [`check_capture`], calling `progress` with the report so far after
/// every case. Cases are generated one at a time as they run: memory stays
/// flat however many there are.
pub fn check_capture_with(
    cap: &Capture,
    side: Side,
    cases: u64,
    seed: u64,
    only_case: Option<u64>,
    progress: &mut dyn FnMut(&Report),
) -> Report {
    let plan = plan(cap, resolve_side(side));
    let mut report = Report {
        rejected: cap.rejected_count(),
        ..Report::default()
    };
    report.description = match &plan {
        Some(p) => format!(
            "{} {} <-> {}: ustack plays {} ({}), {} peer frames",
            if p.key.tcp { "TCP" } else { "UDP" },
            p.key.client,
            p.key.server,
            if p.stack_is_client {
                "the client"
            } else {
                "the server"
            },
            p.local,
            p.peer_frames()
        ),
        None => format!(
            "no TCP or UDP conversation; {} garbage frames thrown at a live stack",
            cap.rejected.len()
        ),
    };
    report.notes = plan.as_ref().map(|p| p.notes.clone()).unwrap_or_default();
    let frames = plan
        .as_ref()
        .map_or(cap.rejected.len(), |p| p.peer_frames());
    let strategy = mutate::case(frames);
    // `--case u64::MAX` too runs its one case (a half-open range ending
    // at `c + 1` would be empty there).
    let numbers: Box<dyn Iterator<Item = u64>> = match only_case {
        Some(c) => Box::new(std::iter::once(c)),
        None => Box::new(0..cases),
    };
    for case in numbers {
        let mut runner = TestRunner::new_with_rng(PtConfig::default(), case_rng(seed, case));
        let Ok(mut tree) = strategy.new_tree(&mut runner) else {
            continue;
        };
        report.cases += 1;
        let muts = if case == 0 {
            Vec::new()
        } else {
            tree.current()
        };
        let first = run_one(plan.as_ref(), &muts, &cap.rejected, &mut report);
        if first.is_empty() {
            progress(&report);
            continue;
        }
        report.violations += 1;
        if report.failures.len() >= MAX_FAILURES {
            progress(&report);
            continue;
        }
        // Shrink: simplify while it still fails (the unmutated case 0 is
        // as simple as a case gets).
        let mut best = (muts, first);
        for _ in 0..300 {
            if case == 0 || !tree.simplify() {
                break;
            }
            let v = run_one(plan.as_ref(), &tree.current(), &cap.rejected, &mut report);
            if v.is_empty() {
                if !tree.complicate() {
                    break;
                }
            } else {
                best = (tree.current(), v);
            }
        }
        report.failures.push(Failure {
            case,
            messages: best.1,
            minimal: best.0,
        });
        progress(&report);
    }
    report
}

/// A case without a conversation: the capture's garbage frames, mutated,
/// into a stack with a listener and a UDP socket.
fn run_garbage(muts: &[(usize, Mutation)], garbage: &[(u64, Vec<u8>)]) -> super::engine::Outcome {
    let mut out = super::engine::Outcome::default();
    let mut c = Config::new(Medium::Ip);
    c.addrs
        .push(Ipv4Cidr::new(STACK_IP, 24).expect("valid prefix"));
    let mut stack = Interface::new(c, Instant::ZERO);
    let _ = stack.tcp_listen(SocketAddr::from((STACK_IP, 80)), 8);
    let _ = stack.udp_bind(SocketAddr::from((STACK_IP, 7)));
    let mut batch = FrameBatch::new(1024, 1600);
    for (i, (t, f)) in garbage.iter().enumerate() {
        let now = Instant::from_micros(*t);
        let mut f = f.clone();
        for (_, m) in muts.iter().filter(|(j, _)| *j == i) {
            apply_bytes(&mut f, m);
        }
        stack.handle_frame(now, &f);
        // The same bytes as the payload of a valid IPv4 packet to the stack
        // reach the transports too.
        let proto = f.first().map_or(ipv4::protocol::TCP, |b| match b % 3 {
            0 => ipv4::protocol::TCP,
            1 => ipv4::protocol::UDP,
            _ => ipv4::protocol::ICMP,
        });
        let mut ip = ipv4_packet(PEER_IP, STACK_IP, proto, i as u16, &f[..f.len().min(1400)]);
        super::build::fix_checksums(&mut ip);
        stack.handle_frame(now, &ip);
        out.injected += 2;
        batch.clear();
        stack.poll_transmit(now, &mut batch);
        for e in batch.iter() {
            out.emitted += 1;
            if let Err(e) = check_emitted(Medium::Ip, e) {
                out.violations.push(e);
            }
        }
        if let Err(e) = check_bounds(&stack) {
            out.violations.push(e);
        }
    }
    out
}
