//! The matmul executor: where a quantized layer's `int8 A (M×K) @ int8 W (K×N)
//! -> int32 (M×N)` runs. The host reference runs it in Rust; a DLA-backed
//! executor (over `faultloop_device::client::Device`) implements the same trait.
//!
//! Contract: the model calls [`Int8Matmul::set_weights`] for a layer before
//! that layer's first [`Int8Matmul::matmul`] and again whenever its int8
//! weights change (see `Model::sync_weights`); `layer` is the layer's index in
//! device order (`Model::layers`). All matrices are row-major. Accumulation
//! is two's-complement wrapping 32-bit, as in the DLA.
use tch::{Kind, Tensor};

use crate::error::{ExecError, ShapeError};

pub trait Int8Matmul {
    /// Install `layer`'s weights: `w` is K×N row-major int8.
    fn set_weights(&mut self, layer: usize, w: &[i8], k: usize, n: usize) -> Result<(), ExecError>;

    /// `a` (M×K int8, row-major) times `layer`'s weights (K×N) -> M×N int32.
    fn matmul(
        &mut self,
        layer: usize,
        a: &[i8],
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<Vec<i32>, ExecError>;
}

/// Plain integer matmul, the reference every executor must equal on a
/// fault-free device: `out[i][j] = sum_k a[i][k] * w[k][j]` with wrapping i32.
pub fn matmul_i8_ref(a: &[i8], w: &[i8], m: usize, k: usize, n: usize) -> Vec<i32> {
    assert_eq!(a.len(), m * k, "A is not M×K");
    assert_eq!(w.len(), k * n, "W is not K×N");
    let mut out = vec![0i32; m * n];
    matmul_rows(a, w, k, n, &mut out);
    out
}

/// Rows of `a` times `w` into `out` (rows × n). The inner loop runs over a
/// contiguous weight row so it vectorizes; zero activations are skipped.
fn matmul_rows(a: &[i8], w: &[i8], k: usize, n: usize, out: &mut [i32]) {
    for (arow, orow) in a.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
        for (kk, &av) in arow.iter().enumerate() {
            if av == 0 {
                continue;
            }
            let av = av as i32;
            let wrow = &w[kk * n..(kk + 1) * n];
            for (o, &wv) in orow.iter_mut().zip(wrow) {
                *o = o.wrapping_add(av * wv as i32);
            }
        }
    }
}

/// The shape check of [`Int8Matmul::set_weights`]: `len` values for K×N.
pub fn check_weights(layer: usize, len: usize, k: usize, n: usize) -> Result<(), ShapeError> {
    if len != k * n {
        return Err(ShapeError::WeightCount { layer, len, k, n });
    }
    Ok(())
}

/// The shape check of [`Int8Matmul::matmul`]: `held` is the K×N of the
/// weights installed for `layer` (`None`: none), `len` the number of
/// activations, which must be M×K with the held K and N.
pub fn check_matmul(
    layer: usize,
    held: Option<(usize, usize)>,
    len: usize,
    m: usize,
    k: usize,
    n: usize,
) -> Result<(), ShapeError> {
    let (held_k, held_n) = held.ok_or(ShapeError::NoWeights { layer })?;
    if (held_k, held_n) != (k, n) || len != m * k {
        return Err(ShapeError::Matmul { layer, m, k, n, len, held_k, held_n });
    }
    Ok(())
}

/// Host reference executor: the integer matmul in Rust, split over threads.
#[derive(Debug, Default, Clone)]
pub struct HostMatmul {
    weights: Vec<Option<(Vec<i8>, usize, usize)>>,
    threads: usize,
}

impl HostMatmul {
    pub fn new() -> Self {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        HostMatmul { weights: Vec::new(), threads }
    }

    /// The weights installed for `layer`, if any: (K×N values, K, N).
    pub fn weights(&self, layer: usize) -> Option<(&[i8], usize, usize)> {
        self.weights.get(layer)?.as_ref().map(|(w, k, n)| (&w[..], *k, *n))
    }
}

impl Int8Matmul for HostMatmul {
    fn set_weights(&mut self, layer: usize, w: &[i8], k: usize, n: usize) -> Result<(), ExecError> {
        check_weights(layer, w.len(), k, n)?;
        if self.weights.len() <= layer {
            self.weights.resize(layer + 1, None);
        }
        self.weights[layer] = Some((w.to_vec(), k, n));
        Ok(())
    }

    fn matmul(
        &mut self,
        layer: usize,
        a: &[i8],
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<Vec<i32>, ExecError> {
        let held = self.weights(layer);
        check_matmul(layer, held.map(|(_, k, n)| (k, n)), a.len(), m, k, n)?;
        let (w, _, _) = held.expect("checked");
        let mut out = vec![0i32; m * n];
        let threads = self.threads.max(1);
        let rows_per = m.div_ceil(threads).max(64);
        if threads == 1 || m <= rows_per {
            matmul_rows(a, w, k, n, &mut out);
        } else {
            std::thread::scope(|s| {
                for (a_chunk, o_chunk) in a.chunks(rows_per * k).zip(out.chunks_mut(rows_per * n)) {
                    s.spawn(move || matmul_rows(a_chunk, w, k, n, o_chunk));
                }
            });
        }
        Ok(out)
    }
}

/// Host executor on libtorch: integer-valued float matmul, exact because every
/// partial sum is an integer below 2^24 (f32, when K·127² < 2^24) or 2^53
/// (f64 otherwise). Same results as [`HostMatmul`] (up to i32 wrap-around,
/// which needs K > 133 000), much faster for big batches.
#[derive(Debug, Default)]
pub struct TorchMatmul {
    weights: Vec<Option<(Tensor, usize, usize)>>,
}

impl TorchMatmul {
    pub fn new() -> Self {
        Self::default()
    }

    fn kind_for(k: usize) -> Kind {
        if (k as u64) * 127 * 127 < (1 << 24) {
            Kind::Float
        } else {
            Kind::Double
        }
    }
}

impl Int8Matmul for TorchMatmul {
    fn set_weights(&mut self, layer: usize, w: &[i8], k: usize, n: usize) -> Result<(), ExecError> {
        check_weights(layer, w.len(), k, n)?;
        if self.weights.len() <= layer {
            self.weights.resize_with(layer + 1, || None);
        }
        let t = Tensor::from_slice(w).view([k as i64, n as i64]).to_kind(Self::kind_for(k));
        self.weights[layer] = Some((t, k, n));
        Ok(())
    }

    fn matmul(
        &mut self,
        layer: usize,
        a: &[i8],
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<Vec<i32>, ExecError> {
        let held = self.weights.get(layer).and_then(|x| x.as_ref());
        check_matmul(layer, held.map(|(_, k, n)| (*k, *n)), a.len(), m, k, n)?;
        let (w, _, _) = held.expect("checked");
        let at = Tensor::from_slice(a).view([m as i64, k as i64]).to_kind(w.kind());
        let out = tch::no_grad(|| at.matmul(w)).to_kind(Kind::Int).view([-1]);
        Ok(Vec::<i32>::try_from(&out)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: u64, len: usize) -> Vec<i8> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) % 255) as i64 as i8
            })
            .map(|v| v.wrapping_add(-127i8).max(-127))
            .collect()
    }

    #[test]
    fn executors_equal_the_reference() {
        for &(m, k, n) in &[(1, 1, 1), (3, 5, 7), (200, 33, 17), (130, 1100, 9)] {
            let a = lcg(1 + m as u64, m * k);
            let w = lcg(99 + k as u64, k * n);
            let want = matmul_i8_ref(&a, &w, m, k, n);
            // Spot-check the reference itself.
            let s: i32 = (0..k).map(|kk| a[kk] as i32 * w[kk * n] as i32).sum();
            assert_eq!(want[0], s);
            let mut h = HostMatmul::new();
            h.set_weights(2, &w, k, n).unwrap();
            assert_eq!(h.matmul(2, &a, m, k, n).unwrap(), want);
            let mut t = TorchMatmul::new();
            t.set_weights(2, &w, k, n).unwrap();
            assert_eq!(t.matmul(2, &a, m, k, n).unwrap(), want, "{m}x{k}x{n}");
        }
    }

    #[test]
    fn shape_errors() {
        let mut h = HostMatmul::new();
        assert!(h.matmul(0, &[1], 1, 1, 1).unwrap_err().to_string().contains("no weights"));
        h.set_weights(0, &[1, 2], 1, 2).unwrap();
        assert!(h.matmul(0, &[1, 2], 1, 2, 2).is_err());
        assert!(h.set_weights(1, &[1, 2, 3], 2, 2).is_err());
        assert_eq!(check_matmul(3, None, 1, 1, 1, 1), Err(ShapeError::NoWeights { layer: 3 }));
        assert!(check_matmul(0, Some((2, 2)), 4, 2, 2, 2).is_ok());
        let e = check_matmul(0, Some((2, 2)), 3, 2, 2, 2).unwrap_err();
        assert_eq!(e.to_string(), "layer 0: matmul 2×2×2 with 3 activations against weights 2×2");
    }
}
