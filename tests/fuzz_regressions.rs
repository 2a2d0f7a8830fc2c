//! The fuzz targets' inputs as tests: every input saved in
//! `tests/fuzz-regressions/TARGET/` (crashes the fuzzers found, once fixed,
//! and a few corpus entries) runs through the same harness, plus random
//! inputs so the harness itself stays exercised in every test run.

use std::path::Path;

use proptest::prelude::*;
use ustack::replay::fuzz::{live_stack, raw_frames};

fn run_dir(target: &str, f: fn(&[u8])) -> usize {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fuzz-regressions"
    ))
    .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() && p.extension().is_none_or(|e| e != "md") {
            f(&std::fs::read(&p).unwrap());
            n += 1;
        }
    }
    n
}

#[test]
fn saved_live_stack_inputs() {
    assert!(run_dir("live_stack", live_stack) > 0);
}

#[test]
fn saved_raw_frames_inputs() {
    assert!(run_dir("raw_frames", raw_frames) > 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_live_stack_scripts(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
        live_stack(&data);
    }

    #[test]
    fn random_raw_frames(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
        raw_frames(&data);
    }
}
