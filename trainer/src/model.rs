//! Quantized models whose every layer is one `int8 A (M×K) @ int8 W (K×N) ->
//! int32` matmul, followed on the host by `y = acc * (s_in * s_w) + bias`,
//! ReLU (and, in the CNN, 2×2 max pooling); the next layer quantizes `y` with
//! its own input scale (requantization).
//!
//! Weights are stored K×N (input features × output features) so the export
//! is the device's matrix as is. Convolutions are lowered to matmuls with
//! im2col (`Tensor::im2col`, i.e. unfold): K = C_in·kh·kw ordered
//! (channel, kernel row, kernel col), M = batch · output pixels, N = C_out.
//!
//! One forward pass serves all modes ([`Model::forward_exec`]):
//! * `exec = None`: quantization-aware float path (fake-quant of inputs and
//!   weights, straight-through estimator). Pretraining uses this.
//! * `exec = Some(e)`: every matmul runs as int8 on `e` (the host reference
//!   [`crate::exec::HostMatmul`] or a DLA); with `train` the result is
//!   combined straight-through, `y = y_dev + (y_float - y_float.detach())`
//!   (value exactly the device's, gradient as if float), so the same code
//!   path evaluates on and trains through a device.
//!
//! Variables (named by `nn::Path`, which is the checkpoint and export map):
//! `<layer>.weight` \[K, N\], `<layer>.bias` \[N\], and the non-trainable
//! `<layer>.in_max` (running max |input|, an EMA updated in training on the
//! float path while observing is on) and `<layer>.w_scale` (0 = weight scale
//! follows max|W|/127; > 0 = frozen scale).
use std::cell::Cell;

use serde::{Deserialize, Serialize};
use tch::nn::{self, Init, ModuleT};
use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::exec::Int8Matmul;
use crate::quant;

/// EMA momentum of the activation-range observers.
pub const OBSERVER_MOMENTUM: f32 = 0.9;

/// Architecture, serializable (it is part of checkpoints and exports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ModelSpec {
    /// Fully connected: `widths[0]` inputs (the flattened image), ReLU
    /// between layers, `widths.last()` logits. Default 784-256-128-10.
    Mlp { widths: Vec<usize> },
    /// `channels.len()` conv layers (k×k, stride 1, same padding, ReLU, 2×2
    /// max pool), then one linear layer to `classes` logits. Input
    /// `[in_ch, height, width]`.
    Cnn { input: [usize; 3], channels: Vec<usize>, kernel: usize, classes: usize },
}

/// A model name other than `mlp` or `cnn`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown model `{0}` (mlp, mlp:784-256-128-10 style widths, or cnn)")]
pub struct ParseModelSpecError(pub String);

/// `mlp` ([`ModelSpec::mlp_default`]), `mlp:W0-W1-...-Wn` (those widths,
/// e.g. `mlp:784-256-128-10`) or `cnn` ([`ModelSpec::cnn_default`]).
impl std::str::FromStr for ModelSpec {
    type Err = ParseModelSpecError;
    fn from_str(s: &str) -> std::result::Result<ModelSpec, ParseModelSpecError> {
        match s {
            "mlp" => Ok(ModelSpec::mlp_default()),
            "cnn" => Ok(ModelSpec::cnn_default()),
            _ => {
                let bad = || ParseModelSpecError(s.to_string());
                let widths = s.strip_prefix("mlp:").ok_or_else(bad)?;
                let widths: Vec<usize> = widths
                    .split('-')
                    .map(|w| w.parse().ok().filter(|&w| w > 0).ok_or_else(bad))
                    .collect::<std::result::Result<_, _>>()?;
                if widths.len() < 2 {
                    return Err(bad());
                }
                Ok(ModelSpec::Mlp { widths })
            }
        }
    }
}

impl ModelSpec {
    pub fn mlp_default() -> Self {
        ModelSpec::Mlp { widths: vec![784, 256, 128, 10] }
    }

    /// A small CNN for 28×28 grey images: conv 1→8, conv 8→16 (3×3), linear 784→10.
    pub fn cnn_default() -> Self {
        ModelSpec::Cnn { input: [1, 28, 28], channels: vec![8, 16], kernel: 3, classes: 10 }
    }

    fn validate(&self) -> Result<()> {
        match self {
            ModelSpec::Mlp { widths } => {
                if widths.len() < 2 || widths.contains(&0) {
                    return Err(Error::Config(format!(
                        "MLP widths {widths:?}: need >= 2 widths, all > 0"
                    )));
                }
            }
            ModelSpec::Cnn { input, channels, kernel, classes } => {
                if input.contains(&0)
                    || channels.is_empty()
                    || channels.contains(&0)
                    || *classes == 0
                {
                    return Err(Error::Config(format!("CNN {self:?}: empty dimension")));
                }
                if kernel % 2 == 0 {
                    return Err(Error::Config(format!(
                        "CNN kernel {kernel}: must be odd (same padding)"
                    )));
                }
                let shrink = 1usize << channels.len().min(30);
                if input[1] / shrink == 0 || input[2] / shrink == 0 {
                    return Err(Error::Config(format!(
                        "CNN input {input:?} too small for {} pools",
                        channels.len()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Geometry of a convolution lowered to a matmul.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvGeom {
    pub in_ch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_ch: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl ConvGeom {
    pub fn out_h(&self) -> usize {
        (self.in_h + 2 * self.padding - self.kernel) / self.stride + 1
    }
    pub fn out_w(&self) -> usize {
        (self.in_w + 2 * self.padding - self.kernel) / self.stride + 1
    }
    /// K of the lowered matmul.
    pub fn k(&self) -> usize {
        self.in_ch * self.kernel * self.kernel
    }
}

/// What the host does after a layer's matmul + bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostOps {
    pub relu: bool,
    /// Max-pool window (= stride), conv layers only.
    pub pool: Option<usize>,
}

/// One quantized matmul layer.
#[derive(Debug)]
pub struct QLayer {
    /// Position in device order.
    pub index: usize,
    /// `nn::Path` name, e.g. `fc0`, `conv1`.
    pub name: String,
    pub k: usize,
    pub n: usize,
    /// Float master weights `[K, N]`.
    pub weight: Tensor,
    /// `[N]`.
    pub bias: Tensor,
    in_max: Tensor,
    w_scale: Tensor,
    pub conv: Option<ConvGeom>,
    pub post: PostOps,
}

impl QLayer {
    fn new(
        p: &nn::Path,
        index: usize,
        name: &str,
        k: usize,
        n: usize,
        conv: Option<ConvGeom>,
        post: PostOps,
    ) -> Self {
        let p = p / name;
        // torch.nn.Linear / Conv2d default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        let bound = 1.0 / (k as f64).sqrt();
        let weight =
            p.var("weight", &[k as i64, n as i64], Init::Uniform { lo: -bound, up: bound });
        let bias = p.var("bias", &[n as i64], Init::Uniform { lo: -bound, up: bound });
        let in_max = p.zeros_no_train("in_max", &[]);
        let w_scale = p.zeros_no_train("w_scale", &[]);
        QLayer { index, name: name.to_string(), k, n, weight, bias, in_max, w_scale, conv, post }
    }

    /// The observed input range, max |input| (0 before any observation).
    pub fn in_max(&self) -> f32 {
        self.in_max.double_value(&[]) as f32
    }

    /// Scale of this layer's int8 input (from the running max; 1/127 before
    /// any observation).
    pub fn in_scale(&self) -> f32 {
        let m = self.in_max.double_value(&[]) as f32;
        quant::scale_from_max(if m > 0.0 { m } else { 1.0 })
    }

    /// Set the input range (max |input|) explicitly.
    pub fn set_in_max(&self, max_abs: f32) {
        let mut t = self.in_max.shallow_clone();
        tch::no_grad(|| {
            let _ = t.fill_(max_abs as f64);
        });
    }

    /// Scale of this layer's int8 weights: frozen if set, else max|W|/127.
    pub fn w_scale(&self) -> f32 {
        let f = self.w_scale.double_value(&[]) as f32;
        if f > 0.0 {
            f
        } else {
            quant::tensor_scale(&self.weight)
        }
    }

    pub fn w_scale_frozen(&self) -> bool {
        self.w_scale.double_value(&[]) > 0.0
    }

    /// Freeze the weight scale at `scale` (`None`: unfreeze). With a frozen
    /// scale, weights beyond ±127·scale clamp, and an update changes only the
    /// int8 values that actually moved (what the device needs patched).
    pub fn freeze_w_scale(&self, scale: Option<f32>) {
        let mut t = self.w_scale.shallow_clone();
        tch::no_grad(|| {
            let _ = t.fill_(scale.unwrap_or(0.0) as f64);
        });
    }

    /// The int8 weights, K×N row-major.
    pub fn int8_weights(&self) -> Vec<i8> {
        quant::to_i8_vec(&quant::quantize_tensor(&self.weight, self.w_scale()))
    }

    /// The unrounded int8 values, K×N row-major: `weight / w_scale` clamped
    /// to ±127 (what [`QLayer::int8_weights`] rounds); they rank the changes
    /// under an update budget (`DeviceMatmul::update_layers`).
    pub fn scaled_weights(&self) -> Vec<f32> {
        let inv = quant::inv_scale(self.w_scale()) as f64;
        let t = tch::no_grad(|| {
            (self.weight.to_kind(Kind::Float) * inv).clamp(-quant::QMAX as f64, quant::QMAX as f64)
        });
        Vec::<f32>::try_from(&t.contiguous().view([-1])).expect("f32 tensor to Vec<f32>")
    }

    fn observe(&self, x: &Tensor) {
        let m = quant::max_abs(x);
        let old = self.in_max.double_value(&[]) as f32;
        let new =
            if old > 0.0 { OBSERVER_MOMENTUM * old + (1.0 - OBSERVER_MOMENTUM) * m } else { m };
        self.set_in_max(new);
    }

    /// The quantized matmul + bias on a row matrix `x` [M, K] (float) whose
    /// int8 version is `xq` (integer-valued), input scale `s_in`.
    fn matmul(
        &self,
        x_fq: &Tensor,
        xq: &Tensor,
        s_in: f32,
        train: bool,
        exec: Option<&mut dyn Int8Matmul>,
    ) -> Result<Tensor> {
        let s_w = self.w_scale();
        let float_path = || x_fq.matmul(&quant::fake_quant(&self.weight, s_w)) + &self.bias;
        let Some(exec) = exec else {
            return Ok(float_path());
        };
        let (m, k, n) = (xq.size()[0] as usize, self.k, self.n);
        let a = quant::to_i8_vec(xq);
        let acc = exec.matmul(self.index, &a, m, k, n).map_err(|source| Error::Exec {
            layer: self.index,
            name: self.name.clone(),
            source,
        })?;
        if acc.len() != m * n {
            return Err(Error::Exec {
                layer: self.index,
                name: self.name.clone(),
                source: format!("executor returned {} results for {m}×{n}", acc.len()).into(),
            });
        }
        let mult = s_in * s_w; // f32, the requantization multiplier
        let acc = Tensor::from_slice(&acc).view([m as i64, n as i64]).to_kind(Kind::Float);
        let y_dev = acc * (mult as f64) + self.bias.detach();
        if train {
            Ok(quant::straight_through(&y_dev, &float_path()))
        } else {
            Ok(y_dev)
        }
    }

    /// Layer forward on its natural input (`[B, K]` for linear, `[B, C, H, W]` for conv).
    fn forward(
        &self,
        x: &Tensor,
        train: bool,
        observe: bool,
        exec: Option<&mut dyn Int8Matmul>,
    ) -> Result<Tensor> {
        if train && observe && exec.is_none() {
            self.observe(x);
        }
        let s_in = self.in_scale();
        let xq = quant::quantize_tensor(x, s_in);
        let x_fq = quant::straight_through(&(&xq * s_in as f64), x);
        let y = match &self.conv {
            None => {
                if x.dim() != 2 || x.size()[1] as usize != self.k {
                    return Err(Error::Shape(format!(
                        "{}: input {:?}, expected [B, {}]",
                        self.name,
                        x.size(),
                        self.k
                    )));
                }
                self.matmul(&x_fq, &xq, s_in, train, exec)?
            }
            Some(g) => {
                let want = [g.in_ch as i64, g.in_h as i64, g.in_w as i64];
                if x.dim() != 4 || x.size()[1..] != want {
                    return Err(Error::Shape(format!(
                        "{}: input {:?}, expected [B, {want:?}]",
                        self.name,
                        x.size()
                    )));
                }
                let b = x.size()[0];
                let (oh, ow) = (g.out_h() as i64, g.out_w() as i64);
                let cols = |t: &Tensor| unfold(t, g).reshape([b * oh * ow, g.k() as i64]);
                let xq_cols = tch::no_grad(|| cols(&xq));
                let y = self.matmul(&cols(&x_fq), &xq_cols, s_in, train, exec)?;
                y.view([b, oh * ow, self.n as i64]).transpose(1, 2).reshape([
                    b,
                    self.n as i64,
                    oh,
                    ow,
                ])
            }
        };
        let mut y = if self.post.relu { y.relu() } else { y };
        if let Some(p) = self.post.pool {
            let p = p as i64;
            y = max_pool(&y, p);
        }
        Ok(y)
    }

    pub fn export(&self) -> LayerExport {
        let bias = Vec::<f32>::try_from(&self.bias.detach().to_kind(Kind::Float))
            .expect("bias to Vec<f32>");
        LayerExport {
            index: self.index,
            name: self.name.clone(),
            k: self.k,
            n: self.n,
            weights: self.int8_weights(),
            w_scale: self.w_scale(),
            in_scale: self.in_scale(),
            bias,
            conv: self.conv,
            post: self.post,
        }
    }
}

/// im2col ("unfold") of `x` [B, C, H, W] for `g`: `[B, out_h, out_w, C·k·k]`,
/// the last dim ordered (channel, kernel row, kernel col) as `Tensor::im2col`
/// orders it. Built from k² shifted strided views of the zero-padded input,
/// which autograd differentiates cheaply (the im2col/col2im kernels of
/// libtorch are several times slower on CPU).
pub fn unfold(x: &Tensor, g: &ConvGeom) -> Tensor {
    let (k, s, p) = (g.kernel as i64, g.stride as i64, g.padding as i64);
    let (oh, ow) = (g.out_h() as i64, g.out_w() as i64);
    let xp = if p > 0 { x.constant_pad_nd([p, p, p, p]) } else { x.shallow_clone() };
    let mut taps = Vec::with_capacity((k * k) as usize);
    for i in 0..k {
        for j in 0..k {
            // Rows i, i+s, ..., cols j, j+s, ...: [B, C, oh, ow]
            taps.push(xp.slice(2, i, i + (oh - 1) * s + 1, s).slice(3, j, j + (ow - 1) * s + 1, s));
        }
    }
    // [B, C, k·k, oh, ow] -> [B, oh, ow, C, k·k]
    let b = x.size()[0];
    Tensor::stack(&taps, 2).permute([0, 3, 4, 1, 2]).reshape([b, oh, ow, g.k() as i64])
}

/// `p`×`p` max pooling with stride `p` (floor), as a reshape + max, which is
/// faster than libtorch's CPU `max_pool2d` on these small maps.
pub fn max_pool(y: &Tensor, p: i64) -> Tensor {
    let sz = y.size();
    let (b, c, h, w) = (sz[0], sz[1], sz[2] / p, sz[3] / p);
    let y = if sz[2] != h * p || sz[3] != w * p {
        y.narrow(2, 0, h * p).narrow(3, 0, w * p)
    } else {
        y.shallow_clone()
    };
    y.reshape([b, c, h, p, w, p]).amax([3, 5], false)
}

/// A quantized model: its layers in device order and the spec they came from.
#[derive(Debug)]
pub struct Model {
    pub spec: ModelSpec,
    layers: Vec<QLayer>,
    observe: Cell<bool>,
}

impl Model {
    /// Build `spec`'s layers under `p` (variables `fc0.weight`, `conv0.bias`, ...).
    pub fn new(p: &nn::Path, spec: &ModelSpec) -> Result<Model> {
        spec.validate()?;
        let mut layers = Vec::new();
        match spec {
            ModelSpec::Mlp { widths } => {
                let last = widths.len() - 2;
                for (i, w) in widths.windows(2).enumerate() {
                    let post = PostOps { relu: i < last, pool: None };
                    layers.push(QLayer::new(p, i, &format!("fc{i}"), w[0], w[1], None, post));
                }
            }
            ModelSpec::Cnn { input, channels, kernel, classes } => {
                let [mut c, mut h, mut w] = *input;
                for (i, &oc) in channels.iter().enumerate() {
                    let g = ConvGeom {
                        in_ch: c,
                        in_h: h,
                        in_w: w,
                        out_ch: oc,
                        kernel: *kernel,
                        stride: 1,
                        padding: kernel / 2,
                    };
                    let post = PostOps { relu: true, pool: Some(2) };
                    layers.push(QLayer::new(p, i, &format!("conv{i}"), g.k(), oc, Some(g), post));
                    (c, h, w) = (oc, g.out_h() / 2, g.out_w() / 2);
                }
                let i = layers.len();
                let post = PostOps { relu: false, pool: None };
                layers.push(QLayer::new(p, i, "fc0", c * h * w, *classes, None, post));
            }
        }
        Ok(Model { spec: spec.clone(), layers, observe: Cell::new(true) })
    }

    /// The matmul layers, in the order the device runs them.
    pub fn layers(&self) -> &[QLayer] {
        &self.layers
    }

    /// Whether training on the float path updates the activation ranges
    /// (default on; turn off to keep input scales fixed, e.g. on a device).
    pub fn set_observe(&self, on: bool) {
        self.observe.set(on);
    }

    /// Freeze every layer's weight scale at its current value.
    pub fn freeze_weight_scales(&self) {
        for l in &self.layers {
            l.freeze_w_scale(Some(l.w_scale()));
        }
    }

    /// Install every layer's current int8 weights on `exec`. Call before
    /// running on an executor and after every optimizer step.
    pub fn sync_weights(&self, exec: &mut dyn Int8Matmul) -> Result<()> {
        for l in &self.layers {
            exec.set_weights(l.index, &l.int8_weights(), l.k, l.n)
                .map_err(|source| Error::Exec { layer: l.index, name: l.name.clone(), source })?;
        }
        Ok(())
    }

    /// Forward pass from images `[B, C, H, W]` (or already flat `[B, D]` for
    /// an MLP) to logits `[B, classes]`. `exec`: see the module docs.
    pub fn forward_exec(
        &self,
        xs: &Tensor,
        train: bool,
        mut exec: Option<&mut dyn Int8Matmul>,
    ) -> Result<Tensor> {
        let mut x = xs.shallow_clone();
        for l in &self.layers {
            if l.conv.is_none() && x.dim() != 2 {
                x = x.flatten(1, -1);
            }
            let e: Option<&mut dyn Int8Matmul> = match &mut exec {
                Some(e) => Some(&mut **e),
                None => None,
            };
            x = l.forward(&x, train, self.observe.get(), e)?;
        }
        Ok(x)
    }

    /// The int8 model for the device, in device order.
    pub fn export(&self) -> ModelExport {
        ModelExport {
            spec: self.spec.clone(),
            layers: self.layers.iter().map(QLayer::export).collect(),
        }
    }
}

impl ModuleT for Model {
    /// The quantization-aware float path (`forward_exec(xs, train, None)`).
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward_exec(xs, train, None).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// One layer as the device runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerExport {
    pub index: usize,
    pub name: String,
    pub k: usize,
    pub n: usize,
    /// K×N row-major int8 (`weights[k * n_cols + n]`).
    pub weights: Vec<i8>,
    pub w_scale: f32,
    /// Scale of the int8 activations fed to this layer.
    pub in_scale: f32,
    /// Float bias, added on the host after `acc * (in_scale * w_scale)`.
    pub bias: Vec<f32>,
    /// Present for convolutions (im2col lowering, K = in_ch·kernel²).
    pub conv: Option<ConvGeom>,
    pub post: PostOps,
}

impl LayerExport {
    /// The requantization multiplier `in_scale * w_scale` (f32).
    pub fn multiplier(&self) -> f32 {
        self.in_scale * self.w_scale
    }
}

/// The int8 model for a device: layers in device order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelExport {
    pub spec: ModelSpec,
    pub layers: Vec<LayerExport>,
}

impl ModelExport {
    pub fn save_json(&self, path: &std::path::Path) -> Result<()> {
        let s = serde_json::to_string(self)
            .map_err(|source| Error::Json { path: path.to_path_buf(), source })?;
        faultloop_proto::atomic::write_atomic(path, s.as_bytes()).map_err(|e| Error::io(path, e))
    }

    pub fn load_json(path: &std::path::Path) -> Result<ModelExport> {
        let s = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_slice(&s)
            .map_err(|source| Error::Json { path: path.to_path_buf(), source })
    }

    /// Install all layers' weights on an executor.
    pub fn install(&self, exec: &mut dyn Int8Matmul) -> Result<()> {
        for l in &self.layers {
            exec.set_weights(l.index, &l.weights, l.k, l.n).map_err(|source| Error::Exec {
                layer: l.index,
                name: l.name.clone(),
                source,
            })?;
        }
        Ok(())
    }
}
