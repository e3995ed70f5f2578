//! The project's one random generator: SplitMix64 (Steele, Lea, Flood 2014).
//!
//! Small, fast, deterministic and platform-independent, so a seed produces the
//! same activations, weights and random fault maps on every device and every
//! machine. Not for cryptography.

/// SplitMix64 generator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose stream is fully determined by `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Next 32 random bits (the high half of [`Rng::next_u64`]).
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `0..n`, without modulo bias (Lemire's method). Panics if `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = (self.next_u64() as u128) * (n as u128);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// Uniform index in `0..n`. Panics if `n == 0`.
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `true` with probability `p` (clamped to [0, 1]).
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Fill with uniform int8 values (all 256 values equally likely), eight
    /// bytes per 64-bit draw, low byte first.
    pub fn fill_i8(&mut self, out: &mut [i8]) {
        let mut chunks = out.chunks_exact_mut(8);
        for c in &mut chunks {
            let b = self.next_u64().to_le_bytes();
            for (o, v) in c.iter_mut().zip(b) {
                *o = v as i8;
            }
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let b = self.next_u64().to_le_bytes();
            for (o, v) in rest.iter_mut().zip(b) {
                *o = v as i8;
            }
        }
    }

    /// A vector of `len` uniform int8 values (see [`Rng::fill_i8`]).
    pub fn vec_i8(&mut self, len: usize) -> Vec<i8> {
        let mut v = vec![0i8; len];
        self.fill_i8(&mut v);
        v
    }

    /// Uniform int8 in `lo..=hi`. Panics if `lo > hi`.
    pub fn range_i8(&mut self, lo: i8, hi: i8) -> i8 {
        assert!(lo <= hi, "Rng::range_i8({lo}, {hi})");
        (lo as i64 + self.below((hi as i64 - lo as i64 + 1) as u64) as i64) as i8
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.index(i + 1);
            v.swap(i, j);
        }
    }

    /// `k` distinct indices from `0..n` in random order (partial Fisher–Yates).
    /// Panics if `k > n`.
    pub fn sample_indices(&mut self, n: usize, k: usize) -> Vec<usize> {
        assert!(k <= n, "Rng::sample_indices: {k} of {n}");
        let mut idx: Vec<usize> = (0..n).collect();
        for i in 0..k {
            let j = i + self.index(n - i);
            idx.swap(i, j);
        }
        idx.truncate(k);
        idx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_vector() {
        // SplitMix64 reference outputs for seed 1234567.
        let mut r = Rng::new(1234567);
        let want = [
            6457827717110365317u64,
            3203168211198807973,
            9817491932198370423,
            4593380528125082431,
            16408922859458223821,
        ];
        for w in want {
            assert_eq!(r.next_u64(), w);
        }
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        let a: Vec<u64> = {
            let mut r = Rng::new(7);
            (0..10).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::new(7);
            (0..10).map(|_| r.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut r = Rng::new(8);
            (0..10).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn below_in_range_and_covers() {
        let mut r = Rng::new(1);
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            let v = r.below(7);
            assert!(v < 7);
            seen[v as usize] += 1;
        }
        for s in seen {
            assert!((800..1200).contains(&s), "{seen:?}");
        }
        assert_eq!(r.below(1), 0);
        let _ = r.below(u64::MAX);
    }

    #[test]
    fn f64_in_unit_interval() {
        let mut r = Rng::new(3);
        let mut sum = 0.0;
        for _ in 0..10000 {
            let x = r.f64();
            assert!((0.0..1.0).contains(&x));
            sum += x;
        }
        assert!((sum / 10000.0 - 0.5).abs() < 0.02);
    }

    #[test]
    fn fill_i8_uses_whole_range_and_is_prefix_stable() {
        let mut r = Rng::new(5);
        let mut v = vec![0i8; 4096];
        r.fill_i8(&mut v);
        assert!(v.contains(&-128) && v.contains(&127));
        // Bytes come from the draws in order: a length-13 fill is a prefix of a 16 fill.
        let a = Rng::new(9).vec_i8(13);
        let b = Rng::new(9).vec_i8(16);
        assert_eq!(a[..], b[..13]);
    }

    #[test]
    fn range_and_sampling() {
        let mut r = Rng::new(11);
        for _ in 0..1000 {
            let v = r.range_i8(-3, 4);
            assert!((-3..=4).contains(&v));
        }
        assert_eq!(r.range_i8(-128, -128), -128);
        let _ = r.range_i8(-128, 127);
        let s = r.sample_indices(100, 30);
        let mut d = s.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), 30);
        assert!(s.iter().all(|&i| i < 100));
        let mut p: Vec<usize> = (0..50).collect();
        r.shuffle(&mut p);
        let mut q = p.clone();
        q.sort();
        assert_eq!(q, (0..50).collect::<Vec<_>>());
    }
}
