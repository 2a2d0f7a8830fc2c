//! TCP sequence numbers and their modular arithmetic.
//!
//! Sequence numbers live in the 32-bit space `0..2^32` and wrap (RFC 9293
//! §3.4). Comparisons are made with serial-number arithmetic (RFC 1982): `a`
//! is before `b` when the signed 32-bit distance `a - b` is negative. This
//! order is only meaningful for numbers less than 2^31 apart, which TCP's
//! window limits guarantee for any two numbers a connection compares.

use std::cmp::Ordering;
use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// A TCP sequence (or acknowledgment) number.
///
/// `SeqNumber` deliberately implements [`PartialOrd`] but **not** [`Ord`]:
/// the modular order is not transitive (`0 < 2^30 < 2^31 < 0` ... roughly),
/// and two numbers exactly 2^31 apart are each "before" the other's
/// negation. Only compare numbers known to be within 2^31 of each other; do
/// not sort them or use them as keys of ordered maps.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// `self + n`, wrapping modulo 2^32.
    #[inline]
    pub const fn wrapping_add(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(n))
    }

    /// `self - n`, wrapping modulo 2^32.
    #[inline]
    pub const fn wrapping_sub(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(n))
    }

    /// The later of the two numbers in modular order (`self` on a tie).
    #[inline]
    pub fn max(self, other: SeqNumber) -> SeqNumber {
        if other > self {
            other
        } else {
            self
        }
    }

    /// The earlier of the two numbers in modular order (`self` on a tie).
    #[inline]
    pub fn min(self, other: SeqNumber) -> SeqNumber {
        if other < self {
            other
        } else {
            self
        }
    }

    /// Whether `start <= self < end` in modular arithmetic.
    ///
    /// This is computed as `self - start < end - start` over unsigned
    /// distances, so it is correct for any range shorter than 2^32 and an
    /// empty range (`start == end`) contains nothing.
    #[inline]
    pub fn in_range(self, start: SeqNumber, end: SeqNumber) -> bool {
        self.0.wrapping_sub(start.0) < end.0.wrapping_sub(start.0)
    }

    /// Whether `start <= self <= end` in modular arithmetic.
    ///
    /// Useful for acknowledgment checks such as `SND.UNA <= SEG.ACK <=
    /// SND.NXT` (RFC 9293 §3.10.7.4), where both ends are acceptable.
    #[inline]
    pub fn in_window_inclusive(self, start: SeqNumber, end: SeqNumber) -> bool {
        self.0.wrapping_sub(start.0) <= end.0.wrapping_sub(start.0)
    }

    /// The unsigned forward distance from `earlier` to `self`
    /// (`self - earlier` modulo 2^32).
    ///
    /// Unlike `self - earlier` (an `i32`), this never goes negative; use it
    /// when `earlier <= self` is already established.
    #[inline]
    pub const fn distance_from(self, earlier: SeqNumber) -> u32 {
        self.0.wrapping_sub(earlier.0)
    }
}

impl fmt::Debug for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u32> for SeqNumber {
    fn from(v: u32) -> Self {
        SeqNumber(v)
    }
}

impl From<SeqNumber> for u32 {
    fn from(v: SeqNumber) -> Self {
        v.0
    }
}

/// Advances by `rhs` bytes, wrapping; `rhs` is taken modulo 2^32.
impl Add<usize> for SeqNumber {
    type Output = SeqNumber;
    #[inline]
    fn add(self, rhs: usize) -> SeqNumber {
        // Truncation is the intended reduction modulo 2^32.
        SeqNumber(self.0.wrapping_add(rhs as u32))
    }
}

/// Moves back by `rhs` bytes, wrapping; `rhs` is taken modulo 2^32.
impl Sub<usize> for SeqNumber {
    type Output = SeqNumber;
    #[inline]
    fn sub(self, rhs: usize) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(rhs as u32))
    }
}

impl AddAssign<usize> for SeqNumber {
    #[inline]
    fn add_assign(&mut self, rhs: usize) {
        *self = *self + rhs;
    }
}

/// The signed distance `self - rhs`, i.e. `(self.0 - rhs.0) mod 2^32`
/// reinterpreted as an `i32`.
impl Sub<SeqNumber> for SeqNumber {
    type Output = i32;
    #[inline]
    fn sub(self, rhs: SeqNumber) -> i32 {
        self.0.wrapping_sub(rhs.0) as i32
    }
}

/// Serial-number order: `a < b` iff `(a - b) < 0` as a signed distance.
///
/// Not transitive over the whole space; see [`SeqNumber`].
impl PartialOrd for SeqNumber {
    #[inline]
    fn partial_cmp(&self, other: &SeqNumber) -> Option<Ordering> {
        Some((*self - *other).cmp(&0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wraps_across_zero() {
        let a = SeqNumber(0xffff_fff0);
        let b = a + 0x20;
        assert_eq!(b, SeqNumber(0x10));
        assert!(b > a);
        assert!(a < b);
        assert_eq!(b - a, 0x20);
        assert_eq!(a - b, -0x20);
        assert_eq!(b - 0x20usize, a);
        assert_eq!(a.max(b), b);
        assert_eq!(b.max(a), b);
        assert_eq!(a.min(b), a);
        assert_eq!(b.min(a), a);
        let mut c = a;
        c += 0x10;
        assert_eq!(c, SeqNumber(0));
        assert_eq!(b.distance_from(a), 0x20);
    }

    #[test]
    fn add_takes_usize_modulo() {
        let a = SeqNumber(5);
        #[cfg(target_pointer_width = "64")]
        assert_eq!(a + (1usize << 32) + 1, SeqNumber(6));
        assert_eq!(a.wrapping_add(u32::MAX), SeqNumber(4));
        assert_eq!(a.wrapping_sub(6), SeqNumber(u32::MAX));
    }

    #[test]
    fn equal_compares_equal() {
        let a = SeqNumber(77);
        assert_eq!(a.partial_cmp(&a), Some(Ordering::Equal));
        let b = a;
        assert!(a <= b);
        assert!(a >= b);
    }

    #[test]
    fn half_space_apart_is_the_caveat() {
        // Exactly 2^31 apart: the signed distance is i32::MIN both ways, so
        // each is "before" the other. Documented, not a bug.
        let a = SeqNumber(0);
        let b = SeqNumber(0x8000_0000);
        assert!(a < b);
        assert!(b < a);
    }

    #[test]
    fn ranges() {
        let s = SeqNumber(0xffff_fffe);
        let e = s + 4; // 2
        assert!(s.in_range(s, e));
        assert!(SeqNumber(0xffff_ffff).in_range(s, e));
        assert!(SeqNumber(0).in_range(s, e));
        assert!(SeqNumber(1).in_range(s, e));
        assert!(!SeqNumber(2).in_range(s, e));
        assert!(!SeqNumber(0xffff_fffd).in_range(s, e));
        assert!(SeqNumber(2).in_window_inclusive(s, e));
        assert!(!SeqNumber(3).in_window_inclusive(s, e));
        // Empty range holds nothing; the inclusive form holds its one point.
        assert!(!s.in_range(s, s));
        assert!(s.in_window_inclusive(s, s));
    }

    #[test]
    fn formatting() {
        assert_eq!(format!("{}", SeqNumber(42)), "42");
        assert_eq!(format!("{:?}", SeqNumber(4_000_000_000)), "4000000000");
    }

    proptest! {
        #[test]
        fn forward_moves_are_later(a in any::<u32>(), d in 0u32..0x7fff_ffff) {
            let a = SeqNumber(a);
            let b = a + d as usize;
            prop_assert!(b >= a);
            prop_assert_eq!(b - a, d as i32);
            prop_assert_eq!(b.distance_from(a), d);
            prop_assert_eq!(b - d as usize, a);
            if d > 0 {
                prop_assert!(b > a);
                prop_assert!(a < b);
                prop_assert!(a.in_range(a, b));
                prop_assert!(!b.in_range(a, b));
            }
            prop_assert!(b.in_window_inclusive(a, b));
            prop_assert_eq!(a.max(b), b);
            prop_assert_eq!(a.min(b), a);
        }

        #[test]
        fn order_is_antisymmetric_off_the_half(a in any::<u32>(), b in any::<u32>()) {
            let (a, b) = (SeqNumber(a), SeqNumber(b));
            prop_assume!(a.0.wrapping_sub(b.0) != 0x8000_0000);
            prop_assert_eq!(a < b, b > a);
            prop_assert_eq!(a == b, a.partial_cmp(&b) == Some(Ordering::Equal));
        }
    }
}
