//! Int8 inference in plain Rust from a [`ModelExport`]: no libtorch, only
//! integer matmuls ([`crate::exec::matmul_i8_ref`]) and the host steps
//! (bias, requantization, ReLU, max pool) in f32 in the same operation order
//! as the tensor path, so the two agree bit for bit. It is the definition of
//! "the int8 model" that a fault-free device run must reproduce.
use crate::error::{Error, Result};
use crate::exec::matmul_i8_ref;
use crate::model::{LayerExport, ModelExport};
use crate::quant;

/// Logits `[batch, classes]` (row-major) for `input`, `batch` examples each
/// laid out as the model's input (`[C, H, W]` row-major for a CNN, the
/// flattened image for an MLP), values as in [`crate::data::Dataset::images`].
pub fn forward(export: &ModelExport, input: &[f32], batch: usize) -> Result<Vec<f32>> {
    let mut x = input.to_vec();
    for l in &export.layers {
        x = layer(l, &x, batch)?;
    }
    Ok(x)
}

/// Predicted classes (argmax of the logits; first maximum on ties).
pub fn predict(export: &ModelExport, input: &[f32], batch: usize) -> Result<Vec<usize>> {
    let logits = forward(export, input, batch)?;
    let classes = logits.len() / batch.max(1);
    Ok(logits
        .chunks(classes.max(1))
        .map(|row| {
            row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
        })
        .collect())
}

/// One layer: quantize, (im2col,) int8 matmul, `acc * m + bias`, ReLU, pool.
pub fn layer(l: &LayerExport, x: &[f32], batch: usize) -> Result<Vec<f32>> {
    let per = x.len() / batch.max(1);
    let inv = quant::inv_scale(l.in_scale);
    let q: Vec<i8> = x.iter().map(|&v| quant::quantize_value(v, inv)).collect();
    let mult = l.multiplier();
    match &l.conv {
        None => {
            if per != l.k || x.len() != batch * l.k {
                return Err(Error::Shape(format!(
                    "{}: {} inputs for batch {batch}, K = {}",
                    l.name,
                    x.len(),
                    l.k
                )));
            }
            let acc = matmul_i8_ref(&q, &l.weights, batch, l.k, l.n);
            let mut y: Vec<f32> =
                acc.iter().enumerate().map(|(i, &a)| a as f32 * mult + l.bias[i % l.n]).collect();
            if l.post.relu {
                y.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            Ok(y)
        }
        Some(g) => {
            if per != g.in_ch * g.in_h * g.in_w || x.len() != batch * per {
                return Err(Error::Shape(format!(
                    "{}: {} inputs for batch {batch}, geometry {g:?}",
                    l.name,
                    x.len()
                )));
            }
            let (oh, ow, kk) = (g.out_h(), g.out_w(), g.kernel);
            let lpix = oh * ow;
            // im2col: row (b, oy, ox), column (c, i, j); zero padding.
            let mut a = vec![0i8; batch * lpix * l.k];
            for b in 0..batch {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let row = &mut a[((b * lpix) + oy * ow + ox) * l.k..][..l.k];
                        for c in 0..g.in_ch {
                            for i in 0..kk {
                                for j in 0..kk {
                                    let iy = (oy * g.stride + i) as isize - g.padding as isize;
                                    let ix = (ox * g.stride + j) as isize - g.padding as isize;
                                    if iy >= 0
                                        && ix >= 0
                                        && (iy as usize) < g.in_h
                                        && (ix as usize) < g.in_w
                                    {
                                        row[c * kk * kk + i * kk + j] = q[b * per
                                            + (c * g.in_h + iy as usize) * g.in_w
                                            + ix as usize];
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let acc = matmul_i8_ref(&a, &l.weights, batch * lpix, l.k, l.n);
            // Back to [B, N, oh, ow], with bias and ReLU.
            let mut y = vec![0f32; batch * l.n * lpix];
            for b in 0..batch {
                for p in 0..lpix {
                    for n in 0..l.n {
                        let mut v = acc[(b * lpix + p) * l.n + n] as f32 * mult + l.bias[n];
                        if l.post.relu {
                            v = v.max(0.0);
                        }
                        y[(b * l.n + n) * lpix + p] = v;
                    }
                }
            }
            match l.post.pool {
                None => Ok(y),
                Some(pw) => {
                    let (ph, pwid) = (oh / pw, ow / pw);
                    let mut out = vec![0f32; batch * l.n * ph * pwid];
                    for bc in 0..batch * l.n {
                        for py in 0..ph {
                            for px in 0..pwid {
                                let mut m = f32::NEG_INFINITY;
                                for i in 0..pw {
                                    for j in 0..pw {
                                        m = m.max(y[bc * lpix + (py * pw + i) * ow + px * pw + j]);
                                    }
                                }
                                out[(bc * ph + py) * pwid + px] = m;
                            }
                        }
                    }
                    Ok(out)
                }
            }
        }
    }
}
