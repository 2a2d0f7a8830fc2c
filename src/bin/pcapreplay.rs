//! `pcapreplay FILE [--cases N] [--seed S] [--side client|server|auto]`:
//! replays the main TCP or UDP conversation of a capture against ustack,
//! ustack playing one side and the capture's other end the peer, under
//! random mutations (drop, duplicate, reorder, delay, truncate, corrupt,
//! flipped flags, inserted options, zero windows), and checks the
//! invariants in every case. Exits 0 only when every invariant held; the
//! last line is `N cases, V violations, R frames rejected`.

use std::process::ExitCode;

use clap::Parser;
use ustack::replay::capture::Capture;
use ustack::replay::check_capture;
use ustack::replay::script::Side;

/// Property-check ustack against a packet capture.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The capture (pcap or pcapng; Ethernet, raw IP or Linux cooked).
    file: std::path::PathBuf,
    /// Cases to run.
    #[arg(long, default_value_t = 256)]
    cases: usize,
    /// Seed of the cases (a failure prints it with the case number).
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// The side ustack plays.
    #[arg(long, default_value = "auto")]
    side: Side,
    /// Run only this case (to reproduce a failure).
    #[arg(long)]
    case: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cap = match Capture::open(&args.file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pcapreplay: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(e) = &cap.error {
        println!("capture ends early ({e}); counted as one rejected frame");
    }
    let report = check_capture(&cap, args.side, args.cases, args.seed, args.case);
    println!("{}: {}", args.file.display(), report.description);
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
        let side = match args.side {
            Side::Client => "client",
            Side::Server => "server",
            Side::Auto => "auto",
        };
        println!(
            "  reproduce: pcapreplay {} --seed {} --side {side} --case {}",
            args.file.display(),
            args.seed,
            f.case
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
