//! Round-trip time estimation and the retransmission timeout (RFC 6298).
//!
//! The estimator only does arithmetic on samples it is given. Choosing
//! samples is the caller's job, in particular **Karn's rule** (RFC 6298 §3):
//! never take a sample from a segment that was retransmitted (unless the
//! timestamp option disambiguates it, RFC 7323 §4), and after a backoff keep
//! the backed-off RTO until a valid sample arrives.

use crate::time::Duration;

/// Limits and defaults for the retransmission timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RttConfig {
    /// RTO before any sample (RFC 6298 §2.1: 1 s).
    pub initial_rto: Duration,
    /// Lower bound on the RTO. RFC 6298 §2.4 says 1 s; like Linux we use
    /// 200 ms by default.
    pub min_rto: Duration,
    /// Upper bound on the RTO, including backoff (RFC 6298 §2.5 allows a
    /// maximum of at least 60 s; Linux uses 120 s).
    pub max_rto: Duration,
    /// Clock granularity `G` (RFC 6298 §2).
    pub granularity: Duration,
}

impl Default for RttConfig {
    fn default() -> Self {
        RttConfig {
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(120),
            granularity: Duration::from_millis(1),
        }
    }
}

/// Smoothed RTT, RTT variance and RTO per RFC 6298, with exponential
/// backoff.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    config: RttConfig,
    srtt: Option<Duration>,
    rttvar: Duration,
    min_rtt: Option<Duration>,
    /// RTO before backoff, already clamped to `[min_rto, max_rto]`.
    base_rto: Duration,
    backoffs: u32,
}

impl RttEstimator {
    /// An estimator with no samples; its RTO is `config.initial_rto`
    /// (clamped to `[min_rto, max_rto]`).
    pub fn new(config: RttConfig) -> Self {
        let base_rto = clamp(config.initial_rto, &config);
        RttEstimator {
            config,
            srtt: None,
            rttvar: Duration::ZERO,
            min_rtt: None,
            base_rto,
            backoffs: 0,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &RttConfig {
        &self.config
    }

    /// Feeds one RTT measurement `R` (RFC 6298 §2.2-2.3) and resets the
    /// backoff.
    ///
    /// First sample: `SRTT = R`, `RTTVAR = R/2`. Later ones:
    /// `RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|` (with the old SRTT), then
    /// `SRTT = 7/8 SRTT + 1/8 R`. Then `RTO = SRTT + max(G, 4 RTTVAR)`,
    /// clamped to `[min_rto, max_rto]`.
    pub fn sample(&mut self, rtt: Duration) {
        let srtt = match self.srtt {
            None => {
                self.rttvar = rtt / 2;
                rtt
            }
            Some(srtt) => {
                // Written as `x - x/4 + y/4` rather than `3x/4 + y/4` so
                // that no intermediate can overflow, whatever the sample.
                self.rttvar =
                    (self.rttvar - self.rttvar / 4).saturating_add(srtt.abs_diff(rtt) / 4);
                (srtt - srtt / 8).saturating_add(rtt / 8)
            }
        };
        self.srtt = Some(srtt);
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        let var_term = self
            .rttvar
            .checked_mul(4)
            .unwrap_or(Duration::MAX)
            .max(self.config.granularity);
        self.base_rto = clamp(srtt.saturating_add(var_term), &self.config);
        self.backoffs = 0;
    }

    /// The current retransmission timeout: the base RTO doubled once per
    /// [`backoff`](Self::backoff), never above `max_rto`.
    pub fn rto(&self) -> Duration {
        let factor = 1u32.checked_shl(self.backoffs).unwrap_or(0);
        match self.base_rto.checked_mul(factor) {
            Some(d) if factor != 0 => d.min(self.config.max_rto),
            _ => self.config.max_rto,
        }
    }

    /// Doubles the RTO after a retransmission timeout (RFC 6298 §5.5).
    pub fn backoff(&mut self) {
        self.backoffs = self.backoffs.saturating_add(1);
    }

    /// How many times the RTO was doubled since the last sample (keeps
    /// counting after the RTO reached `max_rto`, so it can bound retries).
    #[cfg(test)]
    pub fn backoffs(&self) -> u32 {
        self.backoffs
    }

    /// The smoothed RTT, once there is a sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The RTT variation estimate (zero before any sample).
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    /// The smallest sample seen so far (over the connection's lifetime; no
    /// windowing yet).
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// Whether any sample has been taken.
    #[cfg(test)]
    pub fn has_sample(&self) -> bool {
        self.srtt.is_some()
    }
}

fn clamp(d: Duration, c: &RttConfig) -> Duration {
    // Not `Duration::clamp`: that panics if min > max, and a config is input.
    d.max(c.min_rto).min(c.max_rto)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn initial_rto_and_backoff() {
        let mut e = RttEstimator::new(RttConfig::default());
        assert!(!e.has_sample());
        assert_eq!(e.srtt(), None);
        assert_eq!(e.min_rtt(), None);
        assert_eq!(e.rto(), ms(1000));
        e.backoff();
        assert_eq!(e.rto(), ms(2000));
        e.backoff();
        assert_eq!(e.rto(), ms(4000));
        for _ in 0..5 {
            e.backoff();
        }
        assert_eq!(e.backoffs(), 7);
        assert_eq!(e.rto(), ms(120_000), "128 s capped at max_rto");
        for _ in 0..100 {
            e.backoff();
        }
        assert_eq!(e.backoffs(), 107);
        assert_eq!(e.rto(), ms(120_000), "huge shifts do not overflow");
    }

    #[test]
    fn rfc_formulas_worked() {
        let mut e = RttEstimator::new(RttConfig::default());
        // First sample R = 100 ms: SRTT = 100, RTTVAR = 50,
        // RTO = 100 + max(1, 200) = 300 ms.
        e.sample(ms(100));
        assert_eq!(e.srtt(), Some(ms(100)));
        assert_eq!(e.rttvar(), ms(50));
        assert_eq!(e.rto(), ms(300));
        // R = 200 ms: RTTVAR = 3/4*50 + 1/4*|100-200| = 37.5 + 25 = 62.5,
        // SRTT = 7/8*100 + 1/8*200 = 87.5 + 25 = 112.5,
        // RTO = 112.5 + 250 = 362.5 ms.
        e.sample(ms(200));
        assert_eq!(e.rttvar(), Duration::from_micros(62_500));
        assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(e.rto(), Duration::from_micros(362_500));
        // R = 100 ms: RTTVAR = 3/4*62.5 + 1/4*12.5 = 46.875 + 3.125 = 50,
        // SRTT = 7/8*112.5 + 12.5 = 98.4375 + 12.5 = 110.9375,
        // RTO = 110.9375 + 200 = 310.9375 ms.
        e.sample(ms(100));
        assert_eq!(e.rttvar(), ms(50));
        assert_eq!(e.srtt(), Some(Duration::from_nanos(110_937_500)));
        assert_eq!(e.rto(), Duration::from_nanos(310_937_500));
        assert_eq!(e.min_rtt(), Some(ms(100)));
        assert!(e.has_sample());
    }

    #[test]
    fn sample_resets_backoff() {
        let mut e = RttEstimator::new(RttConfig::default());
        e.sample(ms(100));
        e.backoff();
        e.backoff();
        assert_eq!(e.rto(), ms(1200));
        e.sample(ms(100));
        assert_eq!(e.backoffs(), 0);
        // RTTVAR = 3/4*50 + 0 = 37.5; RTO = 100 + 150 = 250 ms.
        assert_eq!(e.rto(), ms(250));
    }

    #[test]
    fn min_clamp_and_granularity() {
        let mut e = RttEstimator::new(RttConfig::default());
        // A LAN: 1 ms RTT gives 1 + max(1, 2) = 3 ms, clamped to 200 ms.
        e.sample(ms(1));
        assert_eq!(e.rto(), ms(200));
        // With no lower bound, a steady RTT drives RTTVAR towards 0 and
        // G takes over: RTO -> SRTT + G.
        let mut e = RttEstimator::new(RttConfig {
            min_rto: Duration::ZERO,
            ..RttConfig::default()
        });
        for _ in 0..200 {
            e.sample(ms(10));
        }
        assert_eq!(e.srtt(), Some(ms(10)));
        assert_eq!(e.rto(), ms(11));
    }

    #[test]
    fn max_clamp() {
        let mut e = RttEstimator::new(RttConfig::default());
        e.sample(Duration::from_secs(100));
        assert_eq!(e.rto(), ms(120_000));
        for _ in 0..100 {
            e.sample(Duration::MAX);
        }
        assert_eq!(e.rto(), ms(120_000));
        e.sample(Duration::ZERO);
        assert_eq!(e.min_rtt(), Some(Duration::ZERO));
    }

    #[test]
    fn nonsense_config_does_not_panic() {
        let mut e = RttEstimator::new(RttConfig {
            min_rto: ms(500),
            max_rto: ms(100),
            ..RttConfig::default()
        });
        e.sample(ms(300));
        assert_eq!(e.rto(), ms(100));
    }

    proptest! {
        #[test]
        fn extreme_samples_never_panic(samples in proptest::collection::vec(any::<(u64, u32)>(), 1..100)) {
            let mut e = RttEstimator::new(RttConfig::default());
            for (secs, nanos) in samples {
                e.sample(Duration::new(secs, nanos % 1_000_000_000));
                e.backoff();
                prop_assert!(e.rto() <= RttConfig::default().max_rto);
            }
        }

        #[test]
        fn rto_within_bounds(samples in proptest::collection::vec(0u64..10_000_000_000, 1..50), backoffs in 0u32..40) {
            let c = RttConfig::default();
            let mut e = RttEstimator::new(c);
            for s in &samples {
                e.sample(Duration::from_micros(*s));
                prop_assert!(e.rto() >= c.min_rto && e.rto() <= c.max_rto);
                prop_assert!(e.rto() >= e.srtt().unwrap().min(c.max_rto));
            }
            let min = samples.iter().copied().min().map(Duration::from_micros);
            prop_assert_eq!(e.min_rtt(), min);
            let mut prev = e.rto();
            for _ in 0..backoffs {
                e.backoff();
                prop_assert!(e.rto() >= prev);
                prev = e.rto();
            }
        }
    }
}
