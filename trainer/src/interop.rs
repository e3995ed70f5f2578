//! PyTorch in and out: a model as a safetensors file that
//! `safetensors.torch.load_file` reads, and such a file (for instance from a
//! model trained in PyTorch) back into a faultloop model. docs/pytorch.md is
//! the user's documentation, `scripts/torch_reference.py` the reference
//! forward pass in PyTorch.
//!
//! Tensors, per layer `L` (`fc0`, `fc1`, ... for an MLP; `conv0`, `conv1`,
//! ..., `fc0` for a CNN), in PyTorch's layouts so that a `torch.nn.Linear` /
//! `torch.nn.Conv2d` named `L` loads them with `load_state_dict`:
//!
//! | name            | dtype | shape                                   |
//! |-----------------|-------|-----------------------------------------|
//! | `L.weight`      | F32   | linear `[N, K]`, conv `[C_out, C_in, k, k]` |
//! | `L.bias`        | F32   | `[N]`                                    |
//! | `L.weight_q`    | I8    | as `L.weight`: the int8 weights the DLA holds |
//! | `L.w_scale`     | F32   | `[]`: the effective weight scale         |
//! | `L.in_max`      | F32   | `[]`: the observer's max \|input\|        |
//! | `L.in_scale`    | F32   | `[]`: `in_max / 127` (1/127 if unobserved) |
//!
//! plus `__metadata__` strings `format` ([`FORMAT`]), `version`, `spec` (the
//! [`ModelSpec`] as JSON) and `layers` (a JSON list of [`LayerInfo`]).
//!
//! Import needs only `L.weight` and `L.bias` (F32). It takes `L.in_max` and
//! `L.w_scale` when the file has them (a faultloop export) and otherwise, or
//! with [`ImportOptions::calibrate`], chooses the scales as pretraining
//! does: weight scales follow `max|W| / 127`, and the activation ranges are
//! the observer's EMA (momentum [`crate::model::OBSERVER_MOMENTUM`]) of the
//! batch max |input| over calibration batches of training images on the
//! quantisation-aware float path.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use tch::nn;
use tch::{Kind, Tensor};

use crate::checkpoint;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::mitigate;
use crate::model::{ConvGeom, Model, ModelSpec, PostOps, QLayer};

/// `__metadata__["format"]` of an export.
pub const FORMAT: &str = "faultloop-export";
/// `__metadata__["version"]` of an export.
pub const VERSION: &str = "1";

pub use crate::error::InteropError;

/// One layer as the `layers` metadata lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerInfo {
    pub name: String,
    /// `linear` or `conv2d`.
    pub kind: String,
    pub k: usize,
    pub n: usize,
    pub conv: Option<ConvGeom>,
    pub post: PostOps,
    pub in_scale: f32,
    pub w_scale: f32,
    pub w_scale_frozen: bool,
}

/// What [`export`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportSummary {
    pub path: PathBuf,
    pub spec: ModelSpec,
    pub tensors: usize,
    pub bytes: u64,
    pub layers: Vec<LayerInfo>,
}

/// PyTorch's shape of a layer's weight.
fn torch_weight_shape(l: &QLayer) -> Vec<usize> {
    match &l.conv {
        None => vec![l.n, l.k],
        Some(g) => vec![l.n, g.in_ch, g.kernel, g.kernel],
    }
}

/// `[K, N]` row-major to `[N, K]` row-major (PyTorch's `[out, in]`; for a conv,
/// `K` ordered (channel, kernel row, kernel col) is exactly `[C_in, k, k]`).
fn transpose<T: Copy + Default>(x: &[T], k: usize, n: usize) -> Vec<T> {
    let mut out = vec![T::default(); x.len()];
    for r in 0..k {
        for c in 0..n {
            out[c * k + r] = x[r * n + c];
        }
    }
    out
}

fn f32_vec(t: &Tensor) -> Vec<f32> {
    let flat = t.detach().to_kind(Kind::Float).contiguous().view([-1]);
    Vec::<f32>::try_from(&flat).expect("f32 tensor to Vec<f32>")
}

fn layer_info(l: &QLayer) -> LayerInfo {
    LayerInfo {
        name: l.name.clone(),
        kind: if l.conv.is_some() { "conv2d" } else { "linear" }.into(),
        k: l.k,
        n: l.n,
        conv: l.conv,
        post: l.post,
        in_scale: l.in_scale(),
        w_scale: l.w_scale(),
        w_scale_frozen: l.w_scale_frozen(),
    }
}

/// Write `model` to `out` as safetensors (module docs).
pub fn export(model: &Model, out: &Path) -> Result<ExportSummary> {
    // Owned little-endian bytes per tensor first; the views borrow them.
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    for l in model.layers() {
        let shape = torch_weight_shape(l);
        let w = transpose(&f32_vec(&l.weight), l.k, l.n);
        let q = transpose(&l.int8_weights(), l.k, l.n);
        let info = layer_info(l);
        let in_max = l.in_max();
        owned.push((format!("{}.weight", l.name), Dtype::F32, shape.clone(), le(&w)));
        owned.push((format!("{}.bias", l.name), Dtype::F32, vec![l.n], le(&f32_vec(&l.bias))));
        owned.push((
            format!("{}.weight_q", l.name),
            Dtype::I8,
            shape,
            q.iter().map(|&v| v as u8).collect(),
        ));
        for (what, v) in
            [("w_scale", info.w_scale), ("in_max", in_max), ("in_scale", info.in_scale)]
        {
            owned.push((format!("{}.{what}", l.name), Dtype::F32, vec![], le(&[v])));
        }
    }
    let layers: Vec<LayerInfo> = model.layers().iter().map(layer_info).collect();
    let meta: HashMap<String, String> = [
        ("format".to_string(), FORMAT.to_string()),
        ("version".to_string(), VERSION.to_string()),
        ("spec".to_string(), json(&model.spec)),
        ("layers".to_string(), json(&layers)),
    ]
    .into_iter()
    .collect();
    let views = owned
        .iter()
        .map(|(name, dt, shape, bytes)| {
            TensorView::new(*dt, shape.clone(), bytes).map(|v| (name.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|source| InteropError::Format { path: out.to_path_buf(), source })?;
    let bytes = safetensors::tensor::serialize(views, &Some(meta))
        .map_err(|source| InteropError::Format { path: out.to_path_buf(), source })?;
    // Atomic: a sibling, then rename, so a reader never sees half a file.
    let tmp = out.with_extension("safetensors.tmp");
    std::fs::write(&tmp, &bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))?;
    Ok(ExportSummary {
        path: out.to_path_buf(),
        spec: model.spec.clone(),
        tensors: owned.len(),
        bytes: bytes.len() as u64,
        layers,
    })
}

/// [`export`] the checkpoint directory `ckpt`.
pub fn export_checkpoint(ckpt: &Path, out: &Path) -> Result<ExportSummary> {
    let (_vs, model, _meta) = checkpoint::load(ckpt)?;
    export(&model, out)
}

/// A metadata value: safetensors metadata values are strings.
fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("metadata serializes")
}

/// How [`import`] picks the quantisation scales.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportOptions {
    /// Ignore the file's `in_max` / `w_scale` and choose the scales afresh
    /// (after the weights were changed in PyTorch, say).
    pub calibrate: bool,
    /// Training images of the calibration (a seeded draw).
    pub calib_samples: usize,
    /// Images per calibration batch (pretraining's batch size).
    pub calib_batch: usize,
    /// Seed of the calibration draw.
    pub seed: u64,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions { calibrate: false, calib_samples: 2000, calib_batch: 128, seed: 1 }
    }
}

/// Where one layer's activation scale came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScaleSource {
    /// The file's `in_max` (and `w_scale`).
    File,
    /// Calibrated on training images.
    Calibrated,
}

/// One imported layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportedLayer {
    pub name: String,
    pub in_scale: f32,
    pub w_scale: f32,
    pub scales: ScaleSource,
}

/// What [`import`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportSummary {
    pub from: PathBuf,
    pub spec: ModelSpec,
    /// Calibration images used (0: all scales from the file).
    pub calib_samples: usize,
    pub layers: Vec<ImportedLayer>,
}

/// A parsed safetensors file: its bytes and where it came from.
pub struct TensorFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl TensorFile {
    pub fn read(path: &Path) -> Result<TensorFile, InteropError> {
        let bytes = std::fs::read(path)
            .map_err(|source| InteropError::Io { path: path.to_path_buf(), source })?;
        let f = TensorFile { path: path.to_path_buf(), bytes };
        f.parse()?;
        Ok(f)
    }

    fn parse(&self) -> Result<SafeTensors<'_>, InteropError> {
        SafeTensors::deserialize(&self.bytes)
            .map_err(|source| InteropError::Format { path: self.path.clone(), source })
    }

    /// `__metadata__`, empty if absent.
    pub fn metadata(&self) -> Result<HashMap<String, String>, InteropError> {
        let (_, m) = SafeTensors::read_metadata(&self.bytes)
            .map_err(|source| InteropError::Format { path: self.path.clone(), source })?;
        Ok(m.metadata().clone().unwrap_or_default())
    }

    /// The architecture recorded by a faultloop export (`None`: not one).
    pub fn spec(&self) -> Result<Option<ModelSpec>, InteropError> {
        let m = self.metadata()?;
        if m.get("format").map(String::as_str) != Some(FORMAT) {
            return Ok(None);
        }
        let bad = |msg: String| InteropError::Metadata { path: self.path.clone(), msg };
        if m.get("version").map(String::as_str) != Some(VERSION) {
            return Err(bad(format!(
                "{FORMAT} version {:?}, this faultloop reads version {VERSION}",
                m.get("version")
            )));
        }
        let s = m.get("spec").ok_or_else(|| bad("metadata without `spec`".into()))?;
        serde_json::from_str(s).map(Some).map_err(|e| bad(format!("metadata `spec`: {e}")))
    }

    /// The per-layer metadata of a faultloop export (empty if none).
    fn layer_infos(&self) -> Result<Vec<LayerInfo>, InteropError> {
        match self.metadata()?.get("layers") {
            None => Ok(Vec::new()),
            Some(s) => serde_json::from_str(s).map_err(|e| InteropError::Metadata {
                path: self.path.clone(),
                msg: format!("metadata `layers`: {e}"),
            }),
        }
    }

    fn has(&self, name: &str) -> Result<bool, InteropError> {
        Ok(self.parse()?.names().iter().any(|n| n.as_str() == name))
    }

    /// The F32 tensor `name` of shape `want`, checked finite.
    pub fn f32_tensor(
        &self,
        name: &str,
        want: &[usize],
        spec: &ModelSpec,
    ) -> Result<Vec<f32>, InteropError> {
        let st = self.parse()?;
        let v = st.tensor(name).map_err(|e| match e {
            SafeTensorError::TensorNotFound(_) => InteropError::Missing {
                path: self.path.clone(),
                tensor: name.to_string(),
                spec: spec_name(spec),
            },
            source => InteropError::Format { path: self.path.clone(), source },
        })?;
        if v.dtype() != Dtype::F32 {
            return Err(InteropError::Dtype {
                path: self.path.clone(),
                tensor: name.to_string(),
                got: format!("{:?}", v.dtype()),
                want: "F32 (torch.float32; convert with .float())",
            });
        }
        if v.shape() != want {
            return Err(InteropError::Shape {
                path: self.path.clone(),
                tensor: name.to_string(),
                got: v.shape().to_vec(),
                want: want.to_vec(),
            });
        }
        let out: Vec<f32> = v
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(at) = out.iter().position(|x| !x.is_finite()) {
            return Err(InteropError::NotFinite {
                path: self.path.clone(),
                tensor: name.to_string(),
                at,
            });
        }
        Ok(out)
    }
}

/// `mlp:784-256-128-10`-style name of a spec, for messages.
pub fn spec_name(spec: &ModelSpec) -> String {
    match spec {
        ModelSpec::Mlp { widths } => {
            format!("mlp:{}", widths.iter().map(usize::to_string).collect::<Vec<_>>().join("-"))
        }
        ModelSpec::Cnn { .. } => format!("cnn {}", serde_json::to_string(spec).unwrap_or_default()),
    }
}

fn copy_into(var: &Tensor, data: &[f32], shape: &[i64]) {
    let src = Tensor::from_slice(data).view(shape);
    let mut dst = var.shallow_clone();
    tch::no_grad(|| {
        dst.copy_(&src);
    });
}

/// Read `path` into a fresh model (built at the returned `VarStore`'s root).
/// `spec`: the architecture (required unless the file is a faultloop export,
/// whose recorded spec it must then equal). `calib` loads the training
/// images of the calibration; it is called only when scales are calibrated.
pub fn import(
    path: &Path,
    spec: Option<&ModelSpec>,
    calib: impl FnOnce() -> Result<Dataset>,
    opts: &ImportOptions,
) -> Result<(nn::VarStore, Model, ImportSummary)> {
    let file = TensorFile::read(path)?;
    let recorded = file.spec()?;
    let spec = match (spec, &recorded) {
        (Some(s), Some(r)) if s != r => {
            return Err(InteropError::Metadata {
                path: path.to_path_buf(),
                msg: format!(
                    "the file records the architecture {}, not the given {}",
                    spec_name(r),
                    spec_name(s)
                ),
            }
            .into())
        }
        (Some(s), _) => s.clone(),
        (None, Some(r)) => r.clone(),
        (None, None) => return Err(InteropError::NoSpec { path: path.to_path_buf() }.into()),
    };
    let infos = file.layer_infos()?;
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let model = Model::new(&vs.root(), &spec)?;
    let mut from_file = !opts.calibrate;
    for l in model.layers() {
        let wshape = torch_weight_shape(l);
        let w = file.f32_tensor(&format!("{}.weight", l.name), &wshape, &spec)?;
        copy_into(&l.weight, &transpose(&w, l.n, l.k), &[l.k as i64, l.n as i64]);
        let b = file.f32_tensor(&format!("{}.bias", l.name), &[l.n], &spec)?;
        copy_into(&l.bias, &b, &[l.n as i64]);
        from_file &= file.has(&format!("{}.in_max", l.name))?;
    }
    let mut calib_samples = 0;
    if from_file {
        for l in model.layers() {
            let in_max = file.f32_tensor(&format!("{}.in_max", l.name), &[], &spec)?[0];
            l.set_in_max(in_max);
            let frozen = infos.iter().find(|i| i.name == l.name).is_some_and(|i| i.w_scale_frozen);
            if frozen {
                let s = file.f32_tensor(&format!("{}.w_scale", l.name), &[], &spec)?[0];
                l.freeze_w_scale(Some(s));
            }
        }
    } else {
        calib_samples = calibrate(&model, &calib()?, opts)?;
    }
    let scales = if from_file { ScaleSource::File } else { ScaleSource::Calibrated };
    let layers = model
        .layers()
        .iter()
        .map(|l| ImportedLayer {
            name: l.name.clone(),
            in_scale: l.in_scale(),
            w_scale: l.w_scale(),
            scales,
        })
        .collect();
    Ok((vs, model, ImportSummary { from: path.to_path_buf(), spec, calib_samples, layers }))
}

/// Set every layer's activation range as pretraining does: the observer's
/// EMA of the batch max |input| on the quantisation-aware float path, over
/// `opts.calib_samples` training images (seeded draw) in batches of
/// `opts.calib_batch`. Weight scales stay dynamic (`max|W| / 127`). Returns
/// the images used.
pub fn calibrate(model: &Model, train: &Dataset, opts: &ImportOptions) -> Result<usize> {
    if opts.calib_samples == 0 || opts.calib_batch == 0 || train.is_empty() {
        return Err(Error::Config(format!(
            "calibration needs images: {} samples in batches of {} from {} training images",
            opts.calib_samples,
            opts.calib_batch,
            train.len()
        )));
    }
    let data = mitigate::calibration_subset(train, &[], opts.calib_samples, opts.seed);
    for l in model.layers() {
        l.set_in_max(0.0); // 0: the first batch's max starts the EMA
        l.freeze_w_scale(None);
    }
    model.set_observe(true);
    tch::no_grad(|| -> Result<()> {
        for (xs, _) in data.batches(opts.calib_batch, false) {
            // train = true: the observers update (no optimizer, no gradient).
            let _ = model.forward_exec(&xs, true, None)?;
        }
        Ok(())
    })?;
    Ok(data.len())
}

/// [`import`], then save the model as a checkpoint directory `out` whose
/// `info` records the import.
pub fn import_to_checkpoint(
    path: &Path,
    spec: Option<&ModelSpec>,
    calib: impl FnOnce() -> Result<Dataset>,
    opts: &ImportOptions,
    out: &Path,
) -> Result<ImportSummary> {
    let (vs, model, summary) = import(path, spec, calib, opts)?;
    let info = serde_json::json!({ "imported_from": path, "import": summary });
    checkpoint::save(out, &vs, &model, info)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant;

    #[test]
    fn transpose_is_kn_to_nk() {
        // K = 2, N = 3: [[1, 2, 3], [4, 5, 6]] -> [[1, 4], [2, 5], [3, 6]]
        assert_eq!(transpose(&[1, 2, 3, 4, 5, 6], 2, 3), vec![1, 4, 2, 5, 3, 6]);
        assert_eq!(transpose(&transpose(&[1, 2, 3, 4, 5, 6], 2, 3), 3, 2), vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn quant_of_exported_scale_is_the_int8_weights() {
        // weight_q = quantize(weight, w_scale) elementwise, so a reader can
        // recompute it from the float tensors.
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let m = Model::new(&vs.root(), &ModelSpec::Mlp { widths: vec![6, 5, 3] }).unwrap();
        for l in m.layers() {
            let w = f32_vec(&l.weight);
            assert_eq!(quant::quantize_slice(&w, l.w_scale()), l.int8_weights());
        }
    }
}
