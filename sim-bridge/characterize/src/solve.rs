//! Inferring one PE's stuck bits from what it computed.
//!
//! A PE that is alone in its column computes `out = P(s + x * W(w))` (32-bit
//! wrapping), where `s` is the partial sum arriving from above (0, or the
//! known output of a driver PE above it), `x` the activation it sees, `w` the
//! weight written to it, `W` its weight mask and `P` its psum mask
//! (`mask(v) = (v | sa1) & !sa0`, docs/protocol.md §4). Stuck bits act bit
//! by bit, so the solver enumerates the weight masks (3^8 = 6561: each bit
//! free, stuck at 0 or stuck at 1) and, for each, reads the psum mask off the
//! samples: a bit seen 1 where the sum had 0 is stuck at 1, a bit seen 0
//! where the sum had 1 is stuck at 0, both is a contradiction. Among the
//! consistent hypotheses the one with the fewest stuck bits wins; a bit whose
//! state differs between consistent hypotheses, or that the samples never
//! drove both ways, is reported as undetermined instead of being guessed.
//!
//! The act register is solved the same way through an observer PE to its
//! right, whose own masks are known by then ([`solve_act`]).

/// One measurement of a PE alone in its column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Partial sum arriving from above.
    pub s: i32,
    /// Activation the PE multiplies.
    pub x: i8,
    /// Weight written to it.
    pub w: i8,
    /// What left the bottom of its column.
    pub out: i32,
}

/// Stuck-at masks of one register: `(v | sa1) & !sa0`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Masks {
    pub sa0: u32,
    pub sa1: u32,
}

impl Masks {
    /// Apply to `v`.
    pub fn apply(self, v: u32) -> u32 {
        (v | self.sa1) & !self.sa0
    }
    /// Number of stuck bits.
    pub fn stuck(self) -> u32 {
        (self.sa0 | self.sa1).count_ones()
    }
    /// No stuck bit.
    pub fn is_clean(self) -> bool {
        self.sa0 | self.sa1 == 0
    }
}

/// What the solver knows about a PE's psum and weight registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeModel {
    pub psum: Masks,
    pub weight: Masks,
}

impl PeModel {
    /// The PE's output for partial sum `s`, activation `x`, weight `w`.
    pub fn eval(&self, s: i32, x: i8, w: i8) -> i32 {
        let wq = self.weight.apply(w as u8 as u32) as u8 as i8;
        self.psum.apply(s.wrapping_add(x as i32 * wq as i32) as u32) as i32
    }
}

/// A PE's solution: the model and the bits the samples cannot pin down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeSolution {
    pub model: PeModel,
    /// Psum bits that may be stuck but were never seen either way.
    pub psum_undetermined: u32,
    /// Weight bits whose state the samples leave open.
    pub weight_undetermined: u32,
    /// No hypothesis explains every sample (a transient, or a fault outside
    /// the model); the model is the one with the fewest contradicting bits.
    pub inconsistent: bool,
}

/// Every (sa0, sa1) pair of disjoint 8-bit masks, fewest stuck bits first.
fn mask_hypotheses() -> Vec<Masks> {
    let mut v = Vec::with_capacity(6561);
    for code in 0..6561u32 {
        let (mut c, mut sa0, mut sa1) = (code, 0u32, 0u32);
        for bit in 0..8 {
            match c % 3 {
                1 => sa0 |= 1 << bit,
                2 => sa1 |= 1 << bit,
                _ => {}
            }
            c /= 3;
        }
        v.push(Masks { sa0, sa1 });
    }
    v.sort_by_key(|m| (m.stuck(), *m));
    v
}

/// Per-bit (sum bit, output bit) pairs seen: 00, 01, 10, 11.
#[derive(Clone, Copy, Default)]
struct Pairs([u32; 4]);

impl Pairs {
    fn add(&mut self, v: u32, out: u32) {
        self.0[0] |= !v & !out;
        self.0[1] |= !v & out;
        self.0[2] |= v & !out;
        self.0[3] |= v & out;
    }
    /// Bits no single mask explains.
    fn contradictions(&self) -> u32 {
        let [p00, p01, p10, p11] = self.0;
        (p01 & (p00 | p10)) | (p10 & (p01 | p11))
    }
    /// The psum masks the pairs imply, and the bits never driven both ways.
    fn masks(&self) -> (Masks, u32) {
        let [p00, p01, p10, p11] = self.0;
        let sa1 = p01 & !p10;
        let sa0 = p10 & !p01;
        let seen_both = (p00 | p01) & (p10 | p11);
        // A bit seen only as 0 in the sum may be stuck at 0; only as 1, at 1.
        (Masks { sa0, sa1 }, !seen_both & !(sa0 | sa1))
    }
}

/// Solve a PE's psum and weight masks from its samples.
pub fn solve_pe(samples: &[Sample]) -> PeSolution {
    thread_local! {
        static HYP: Vec<Masks> = mask_hypotheses();
    }
    HYP.with(|hyp| solve_with(hyp, samples))
}

fn solve_with(hyp: &[Masks], samples: &[Sample]) -> PeSolution {
    // Distinct weights, so W(w) is computed once per hypothesis.
    let mut ws: Vec<i8> = samples.iter().map(|s| s.w).collect();
    ws.sort_unstable();
    ws.dedup();
    let widx: Vec<usize> = samples.iter().map(|s| ws.binary_search(&s.w).unwrap()).collect();
    let mut best: Option<(u32, u32, PeSolution)> = None; // (score, undetermined, sol)
    let mut consistent: Vec<PeModel> = Vec::new();
    let mut least_bad: Option<(u32, PeSolution)> = None;
    let mut wq = vec![0i32; ws.len()];
    for &h in hyp {
        for (q, &w) in wq.iter_mut().zip(&ws) {
            *q = h.apply(w as u8 as u32) as u8 as i8 as i32;
        }
        let mut pairs = Pairs::default();
        for (s, &wi) in samples.iter().zip(&widx) {
            let v = s.s.wrapping_add(s.x as i32 * wq[wi]) as u32;
            pairs.add(v, s.out as u32);
        }
        let bad = pairs.contradictions();
        let (psum, undet) = pairs.masks();
        let model = PeModel { psum, weight: h };
        let sol = PeSolution { model, psum_undetermined: undet, ..Default::default() };
        if bad != 0 {
            let n = bad.count_ones();
            if least_bad.as_ref().map_or(true, |(b, _)| n < *b) {
                least_bad = Some((n, PeSolution { inconsistent: true, ..sol }));
            }
            continue;
        }
        consistent.push(model);
        let score = h.stuck() + psum.stuck();
        let key = (score, undet.count_ones());
        if best.as_ref().map_or(true, |(s, u, _)| key < (*s, *u)) {
            best = Some((key.0, key.1, sol));
        }
    }
    let Some((_, _, mut sol)) = best else {
        return least_bad.map(|(_, s)| s).unwrap_or_default();
    };
    // A weight bit is open when consistent hypotheses disagree on it.
    let w = sol.model.weight;
    for m in &consistent {
        sol.weight_undetermined |= (m.weight.sa0 ^ w.sa0) | (m.weight.sa1 ^ w.sa1);
    }
    sol
}

/// An act register's solution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActSolution {
    pub masks: Masks,
    /// Bits the observer cannot tell apart.
    pub undetermined: u32,
    /// No mask explains every sample.
    pub inconsistent: bool,
}

/// Solve an act register from `(x injected, observer output)` samples, the
/// observer (to its right, alone in its column) having `obs` and weight `w`.
pub fn solve_act(samples: &[(i8, i32)], obs: &PeModel, w: i8) -> ActSolution {
    thread_local! {
        static HYP: Vec<Masks> = mask_hypotheses();
    }
    HYP.with(|hyp| {
        let mut best: Option<Masks> = None;
        let mut undetermined = 0u32;
        // Observer output for each of the 256 activations it may see.
        let table: Vec<i32> = (0..256u32).map(|x| obs.eval(0, x as u8 as i8, w)).collect();
        let mut fewest_wrong: Option<(usize, Masks)> = None;
        for &h in hyp {
            let wrong = samples
                .iter()
                .filter(|&&(x, out)| table[h.apply(x as u8 as u32) as usize & 0xFF] != out)
                .count();
            if wrong == 0 {
                match best {
                    None => best = Some(h),
                    Some(b) => undetermined |= (b.sa0 ^ h.sa0) | (b.sa1 ^ h.sa1),
                }
            } else if fewest_wrong.map_or(true, |(n, _)| wrong < n) {
                fewest_wrong = Some((wrong, h));
            }
        }
        match best {
            Some(masks) => ActSolution { masks, undetermined, inconsistent: false },
            None => ActSolution {
                masks: fewest_wrong.map(|(_, h)| h).unwrap_or_default(),
                undetermined: 0,
                inconsistent: true,
            },
        }
    })
}

/// Does weight `w` make the observer's output tell all 256 activations apart?
pub fn reads_every_activation(obs: &PeModel, w: i8) -> bool {
    let mut outs: Vec<i32> = (0..256u32).map(|x| obs.eval(0, x as u8 as i8, w)).collect();
    outs.sort_unstable();
    outs.windows(2).all(|p| p[0] != p[1])
}

/// How many distinct outputs the observer gives over the 256 activations.
pub fn distinct_readings(obs: &PeModel, w: i8) -> usize {
    let mut outs: Vec<i32> = (0..256u32).map(|x| obs.eval(0, x as u8 as i8, w)).collect();
    outs.sort_unstable();
    outs.dedup();
    outs.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const XS: [i8; 16] = [0, 1, -1, 2, -2, 3, 4, 8, 16, 32, 64, -128, 127, 85, -86, 5];
    const WS: [i8; 8] = [0, -1, 1, 85, -86, 127, -128, 2];

    fn samples(pe: &PeModel, drives: &[i32]) -> Vec<Sample> {
        let mut v = Vec::new();
        for &s in drives {
            for &x in &XS {
                for &w in &WS {
                    v.push(Sample { s, x, w, out: pe.eval(s, x, w) });
                }
            }
        }
        v
    }

    #[test]
    fn finds_psum_and_weight_masks() {
        let pe = PeModel {
            psum: Masks { sa0: 1 << 30 | 1 << 3, sa1: 1 << 12 },
            weight: Masks { sa0: 0x81, sa1: 0x04 },
        };
        let sol = solve_pe(&samples(&pe, &[0, -1]));
        assert!(!sol.inconsistent);
        assert_eq!(sol.model, pe);
        assert_eq!(sol.weight_undetermined, 0);
        assert_eq!(sol.psum_undetermined, 0);
    }

    #[test]
    fn a_clean_pe_is_clean_and_determined() {
        let sol = solve_pe(&samples(&PeModel::default(), &[0, -1]));
        assert_eq!(sol.model, PeModel::default());
        assert_eq!((sol.psum_undetermined, sol.weight_undetermined), (0, 0));
    }

    #[test]
    fn without_a_driver_undriven_bits_are_undetermined_not_guessed() {
        // Weight bit 0 stuck at 0: products are even, so with s = 0 the psum
        // bit 0 is never 1 and its stuck-at-0 cannot be seen.
        let pe = PeModel { psum: Masks { sa0: 1, sa1: 0 }, weight: Masks { sa0: 1, sa1: 0 } };
        let sol = solve_pe(&samples(&pe, &[0]));
        assert_eq!(sol.model.weight, pe.weight);
        assert_eq!(sol.model.psum.sa0 & 1, 0, "not guessed");
        assert_eq!(sol.psum_undetermined & 1, 1, "reported open");
        // A driver that sends odd sums pins it down.
        let sol = solve_pe(&samples(&pe, &[0, -1]));
        assert_eq!(sol.model, pe);
    }

    #[test]
    fn a_contradiction_is_flagged() {
        let mut s = samples(&PeModel::default(), &[0]);
        s[5].out ^= 1 << 7;
        s[6].out ^= 1 << 9;
        assert!(solve_pe(&s).inconsistent);
    }

    #[test]
    fn act_masks_through_an_observer() {
        let obs = PeModel::default();
        assert!(reads_every_activation(&obs, 1));
        let act = Masks { sa0: 0x30, sa1: 0x81 };
        let s: Vec<(i8, i32)> = XS
            .iter()
            .map(|&x| (x, obs.eval(0, act.apply(x as u8 as u32) as u8 as i8, 1)))
            .collect();
        let sol = solve_act(&s, &obs, 1);
        assert_eq!(sol.masks, act);
        assert_eq!(sol.undetermined, 0);
        // An observer whose weight is stuck at 0 reads nothing.
        let blind = PeModel { weight: Masks { sa0: 0xFF, sa1: 0 }, ..Default::default() };
        assert!(!reads_every_activation(&blind, 1));
        assert_eq!(distinct_readings(&blind, 1), 1);
    }
}
