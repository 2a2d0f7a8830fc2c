//! `pcapreplay FILE [--cases N] [--seed S] [--side client|server|auto]`:
//! replays the main TCP or UDP conversation of a capture against ustack,
//! ustack playing one side and the capture's other end the peer, under
//! random mutations (drop, duplicate, reorder, delay, truncate, corrupt,
//! flipped flags, inserted options, zero windows), and checks the
//! invariants in every case. Exits 0 only when every invariant held; the
//! last line is `N cases, V violations, R frames rejected`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use ustack::cli::parse_args;
use ustack::replay::capture::Capture;
use ustack::replay::check_capture_with;
use ustack::replay::script::Side;

/// The most cases one run takes.
const MAX_CASES: u64 = 1_000_000_000;
/// How often progress goes to stderr (wall clock).
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Property-check ustack against a packet capture: ustack plays one end of
/// the capture's main TCP (else UDP) conversation on a virtual clock, a
/// reactive peer plays the other end from the capture, under random drops,
/// duplicates, reordering, delays, truncation, corruption, flipped flags,
/// inserted options and zero windows; every case is checked against the
/// replay's invariants (valid frames, window respected, delivered bytes a
/// prefix of what the peer sent, bounded queues, a legal final state).
#[derive(clap::Parser, Debug)]
#[command(
    name = "pcapreplay",
    version,
    after_help = "Sides: client (ustack opens the connection, the capture's server is the peer), \
server (ustack listens, the capture's client is the peer), auto (the server).\n\
Case 0 is the capture unmutated; a violation prints the seed, the case and its shrunk mutations, \
and --case I reruns it (USTACK_REPLAY_TRACE=1 prints every segment). Progress goes to stderr \
every 5 seconds.\n\
Exit status: 0 when every invariant held in every case; 1 on a violation; 2 on bad arguments or \
a file that is not a capture, holds no frame, or (without --no-conversation-ok) holds no TCP or \
UDP conversation, with one line on stderr."
)]
struct Args {
    /// The capture (pcap or pcapng; Ethernet, raw IP, Linux cooked SLL/SLL2
    /// or BSD loopback).
    file: std::path::PathBuf,
    /// Cases to run (1 to 1000000000; generated one at a time).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=MAX_CASES))]
    cases: u64,
    /// Seed of the cases (a failure prints it with the case number).
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// The side ustack plays.
    #[arg(long, default_value = "auto", value_parser = ["client", "server", "auto"])]
    side: String,
    /// Run only this case (to reproduce a failure).
    #[arg(long)]
    case: Option<u64>,
    /// A capture without a TCP or UDP conversation is not an error: its
    /// garbage frames (if any) are thrown at a live stack instead.
    #[arg(long)]
    no_conversation_ok: bool,
}

fn main() -> ExitCode {
    let args: Args = parse_args("pcapreplay");
    let bad = |msg: String| {
        eprintln!("pcapreplay: {msg}");
        ExitCode::from(2)
    };
    let name = args.file.display();
    let cap = match Capture::open(&args.file) {
        Ok(c) => c,
        Err(e) => return bad(e.to_string()),
    };
    if cap.frames_read == 0 {
        return bad(match &cap.error {
            Some(e) => format!("{name}: not a capture: {e}"),
            None => format!("{name}: the capture holds no frame"),
        });
    }
    let side = match args.side.as_str() {
        "client" => Side::Client,
        "server" => Side::Server,
        _ => Side::Auto,
    };
    if cap.conversations().is_empty() && !args.no_conversation_ok {
        return bad(format!(
            "{name}: no TCP or UDP conversation in its {} frames ({} rejected{}); --no-conversation-ok throws them at a live stack instead",
            cap.frames_read,
            cap.rejected_count(),
            cap.reject_summary()
                .map_or(String::new(), |s| format!(": {s}"))
        ));
    }
    if let Some(e) = &cap.error {
        println!("capture ends early ({e}); counted as one rejected frame");
    }
    if let Some(s) = cap.reject_summary() {
        println!("rejected: {s}");
    }
    if cap.zero_ip_checksums > 0 {
        println!(
            "{} frames with IPv4 header checksum 0 (a capture on a host with checksum offload) taken, as tshark does",
            cap.zero_ip_checksums
        );
    }
    let total = if args.case.is_some() { 1 } else { args.cases };
    let started = Instant::now();
    let mut last = started;
    let report = check_capture_with(&cap, side, args.cases, args.seed, args.case, &mut |r| {
        if last.elapsed() >= PROGRESS_EVERY {
            last = Instant::now();
            eprintln!(
                "pcapreplay: {} of {total} cases, {} violations, {:.0} s",
                r.cases,
                r.violations,
                started.elapsed().as_secs_f64()
            );
        }
    });
    println!("{name}: {}", report.description);
    for n in &report.notes {
        println!("note: {n}");
    }
    println!(
        "{} frames read; {} delivered to the stack and {} emitted over all cases",
        cap.frames_read, report.injected, report.emitted
    );
    for f in &report.failures {
        println!("VIOLATION in case {} (seed {}):", f.case, args.seed);
        for m in &f.messages {
            println!("  {m}");
        }
        println!(
            "  minimal case (peer frame index, mutation): {:?}",
            f.minimal
        );
        println!(
            "  reproduce: pcapreplay {name} --seed {} --side {} --case {}",
            args.seed, args.side, f.case
        );
    }
    if report.violations > report.failures.len() as u64 {
        println!(
            "({} more violating cases not shown)",
            report.violations - report.failures.len() as u64
        );
    }
    println!(
        "{} cases, {} violations, {} frames rejected",
        report.cases, report.violations, report.rejected
    );
    if report.violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
