//! int8 symmetric per-tensor quantization.
//!
//! * scale `s = max|x| / 127` (f32); an all-zero tensor gets `s = 1`.
//! * `q = clamp(round_half_to_even(x * (1/s)), -127, 127)`, with `1/s`
//!   computed once in f32. -128 is never produced (symmetric range).
//! * dequantized value `q * s`.
//!
//! Rounding is **half to even** (banker's rounding), the rounding of
//! `torch.round` and of Rust's `f32::round_ties_even`, so the tensor path and
//! the plain-Rust reference path agree bit for bit. The multiply by the f32
//! reciprocal (rather than a division) is part of the definition for the same
//! reason.
//!
//! [`fake_quant`] is the quantization-aware-training op: its value is exactly
//! `q * s`, its gradient is the identity (straight-through estimator, no
//! clipping: gradients flow as if the op were absent).
use tch::{Kind, Tensor};

/// Largest int8 magnitude used (symmetric range [-127, 127]).
pub const QMAX: f32 = 127.0;

/// The scale for a tensor whose largest magnitude is `max_abs`.
pub fn scale_from_max(max_abs: f32) -> f32 {
    if max_abs > 0.0 && max_abs.is_finite() {
        max_abs / QMAX
    } else {
        1.0
    }
}

/// `1/scale` in f32: the factor every quantization multiplies by.
pub fn inv_scale(scale: f32) -> f32 {
    1.0 / scale
}

/// Quantize one value with a precomputed `inv = inv_scale(scale)`.
pub fn quantize_value(x: f32, inv: f32) -> i8 {
    let r = (x * inv).round_ties_even();
    r.clamp(-QMAX, QMAX) as i8
}

pub fn quantize_slice(xs: &[f32], scale: f32) -> Vec<i8> {
    let inv = inv_scale(scale);
    xs.iter().map(|&x| quantize_value(x, inv)).collect()
}

pub fn dequantize_slice(q: &[i8], scale: f32) -> Vec<f32> {
    q.iter().map(|&v| v as f32 * scale).collect()
}

/// `max |t|` as f32 (0 for an empty tensor).
pub fn max_abs(t: &Tensor) -> f32 {
    if t.numel() == 0 {
        return 0.0;
    }
    tch::no_grad(|| t.abs().max().to_kind(Kind::Float).double_value(&[]) as f32)
}

/// The per-tensor scale of `t`: `max|t| / 127`.
pub fn tensor_scale(t: &Tensor) -> f32 {
    scale_from_max(max_abs(t))
}

/// Quantize a float tensor: an integer-valued float32 tensor of the same
/// shape, detached from the graph. (Float rather than int8 so it can feed a
/// float matmul that is exact for integer data, see `exec`.)
pub fn quantize_tensor(t: &Tensor, scale: f32) -> Tensor {
    let inv = inv_scale(scale) as f64; // an f32 value: exact as f64 and back
    tch::no_grad(|| (t.to_kind(Kind::Float) * inv).round().clamp(-QMAX as f64, QMAX as f64))
}

/// The int8 values of an integer-valued tensor (as made by [`quantize_tensor`]).
pub fn to_i8_vec(q: &Tensor) -> Vec<i8> {
    let flat = q.detach().to_kind(Kind::Int8).contiguous().view([-1]);
    Vec::<i8>::try_from(&flat).expect("int8 tensor to Vec<i8>")
}

/// Fake quantization with a straight-through estimator: value `q * scale`
/// (bit-exact), gradient identity.
pub fn fake_quant(t: &Tensor, scale: f32) -> Tensor {
    let q = quantize_tensor(t, scale);
    straight_through(&(q * scale as f64), t)
}

/// `value` in the forward pass, `grad_source`'s gradient in the backward
/// pass: `value.detach() + (g - g.detach())`. Equivalent to the textbook
/// `g + (value - g).detach()` but the forward value is exactly `value` (adding
/// an exact zero), which the bit-exactness of the int8 path relies on.
pub fn straight_through(value: &Tensor, grad_source: &Tensor) -> Tensor {
    if grad_source.requires_grad() {
        value.detach() + (grad_source - grad_source.detach())
    } else {
        value.detach()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_and_rounding() {
        assert_eq!(scale_from_max(127.0), 1.0);
        assert_eq!(scale_from_max(0.0), 1.0);
        // Half to even, clamp to +-127, never -128.
        let q =
            quantize_slice(&[0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.6, 300.0, -300.0, -127.5], 1.0);
        assert_eq!(q, vec![0, 2, 2, 0, -2, -2, 127, 127, -127, -127]);
    }

    #[test]
    fn round_trip_error_at_most_half_a_step() {
        let xs: Vec<f32> = (0..1000).map(|i| ((i as f32) * 0.37).sin() * 3.0).collect();
        let t = Tensor::from_slice(&xs);
        let s = tensor_scale(&t);
        let m = xs.iter().fold(0f32, |a, &x| a.max(x.abs()));
        assert_eq!(s, m / 127.0);
        let q = quantize_slice(&xs, s);
        assert!(q.iter().any(|&v| v.abs() == 127));
        let back = dequantize_slice(&q, s);
        for (x, y) in xs.iter().zip(&back) {
            assert!((x - y).abs() <= s / 2.0 * 1.0001, "{x} -> {y}");
        }
        // Re-quantizing the dequantized values is the identity.
        assert_eq!(quantize_slice(&back, s), q);
    }

    #[test]
    fn tensor_and_slice_paths_agree_bitwise() {
        let xs: Vec<f32> =
            (0..4096).map(|i| ((i as f32) * 0.731).cos() * 0.9 + (i as f32) * 1e-4).collect();
        let t = Tensor::from_slice(&xs);
        let s = tensor_scale(&t);
        assert_eq!(to_i8_vec(&quantize_tensor(&t, s)), quantize_slice(&xs, s));
        // Exact halves in the tensor path too.
        let h = Tensor::from_slice(&[0.5f32, 1.5, 2.5, -2.5]);
        assert_eq!(to_i8_vec(&quantize_tensor(&h, 1.0)), vec![0, 2, 2, -2]);
        // fake_quant's value is exactly q * s.
        let fq = Vec::<f32>::try_from(&fake_quant(&t, s)).unwrap();
        assert_eq!(fq, dequantize_slice(&quantize_slice(&xs, s), s));
    }

    #[test]
    fn straight_through_gradient_is_identity() {
        let x = Tensor::from_slice(&[0.3f32, -1.2, 2.9, 0.01]).set_requires_grad(true);
        let w = Tensor::from_slice(&[1.0f32, 2.0, -3.0, 4.0]);
        let y = (fake_quant(&x, 0.1) * &w).sum(Kind::Float);
        y.backward();
        let g = Vec::<f32>::try_from(&x.grad()).unwrap();
        assert_eq!(g, vec![1.0, 2.0, -3.0, 4.0]);
    }
}
