//! The one seeded generator of the crate: SplitMix64. The impairment
//! engine ([`super::impair::Lane`]), the interface (initial sequence
//! numbers, ephemeral ports, its hardware address) and the tests draw from
//! it; the same seed gives the same draws on every platform.

/// A small deterministic PRNG (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6a09_e667_f3bc_c909)
    }

    /// Stream `stream` of `seed`: generators that share a seed and differ
    /// in their stream draw independently (e.g. one per direction of a
    /// link). Stream 0 is [`Rng::new`].
    pub fn with_stream(seed: u64, stream: u64) -> Rng {
        Rng::new(seed ^ stream.wrapping_mul(0xd1b5_4a32_d192_ed03))
    }

    /// A generator whose state is `state` as it stands (no mixing with a
    /// constant).
    pub fn from_state(state: u64) -> Rng {
        Rng(state)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p` (no draw when `p` is 0 or less, or 1 or
    /// more).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (p >= 1.0 || self.unit() < p)
    }

    /// Uniform in [0, n) (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn streams_differ_and_repeat() {
        let draws = |mut r: Rng| (0..4).map(|_| r.next_u64()).collect::<Vec<_>>();
        assert_eq!(draws(Rng::with_stream(7, 0)), draws(Rng::new(7)));
        assert_eq!(draws(Rng::with_stream(7, 1)), draws(Rng::with_stream(7, 1)));
        assert_ne!(draws(Rng::with_stream(7, 1)), draws(Rng::new(7)));
        let mut r = Rng::new(1);
        assert!((0..1000).all(|_| r.below(10) < 10 && (0.0..1.0).contains(&r.unit())));
        assert!(!r.chance(0.0) && r.chance(1.0));
    }
}
