//! Checkpoints: a directory (conventionally `NAME.ckpt/`) holding
//!
//! * `weights.safetensors`: `VarStore::save` of the whole model — the float
//!   master weights `<layer>.weight` \[K, N\] and `<layer>.bias` \[N\], and the
//!   quantization state `<layer>.in_max` (running max |input|, scalar) and
//!   `<layer>.w_scale` (frozen weight scale, 0 = dynamic);
//! * `meta.json`: [`CheckpointMeta`] — format tag and version, the
//!   [`ModelSpec`] to rebuild the model, the layer map (device order, names,
//!   variable names, K, N, effective scales, conv geometry, host post-ops)
//!   and free-form `info` (training config, accuracy, ...), and for a
//!   checkpoint retrained under a mitigation, `mitigation`: the
//!   [`MitigationRecord`] (mitigation, array size, bypassed PEs) that
//!   evaluation and the device executor apply.
//!
//! Every file is written atomically (a temporary beside it, then a rename),
//! and `meta.json` records the SHA-256 of `weights.safetensors`
//! (`weights_sha256`): a truncated or corrupted weights file is refused with
//! an error naming the file, instead of loading garbage (a checkpoint
//! without the field, from before it existed, is loaded unchecked).
//!
//! Loading rebuilds the model from the spec on a fresh `VarStore` and loads
//! the weights into it; the layer map is checked against the rebuilt model.
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::nn;

use crate::error::{Error, Result};
pub use crate::mitigate::MitigationRecord;
use crate::model::{ConvGeom, Model, ModelSpec, PostOps};

pub const FORMAT: &str = "faultloop-trainer-checkpoint";
pub const VERSION: u32 = 1;
pub const WEIGHTS_FILE: &str = "weights.safetensors";
pub const META_FILE: &str = "meta.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerMeta {
    pub index: usize,
    pub name: String,
    pub weight_var: String,
    pub bias_var: String,
    pub in_max_var: String,
    pub w_scale_var: String,
    pub k: usize,
    pub n: usize,
    pub in_scale: f32,
    pub w_scale: f32,
    pub w_scale_frozen: bool,
    pub conv: Option<ConvGeom>,
    pub post: PostOps,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub format: String,
    pub version: u32,
    pub spec: ModelSpec,
    pub layers: Vec<LayerMeta>,
    #[serde(default)]
    pub info: serde_json::Value,
    /// SHA-256 (hex) of `weights.safetensors` as written (absent in older
    /// checkpoints: not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
    /// The bypass list the weights were trained for (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mitigation: Option<MitigationRecord>,
}

fn layer_map(model: &Model) -> Vec<LayerMeta> {
    model
        .layers()
        .iter()
        .map(|l| LayerMeta {
            index: l.index,
            name: l.name.clone(),
            weight_var: format!("{}.weight", l.name),
            bias_var: format!("{}.bias", l.name),
            in_max_var: format!("{}.in_max", l.name),
            w_scale_var: format!("{}.w_scale", l.name),
            k: l.k,
            n: l.n,
            in_scale: l.in_scale(),
            w_scale: l.w_scale(),
            w_scale_frozen: l.w_scale_frozen(),
            conv: l.conv,
            post: l.post,
        })
        .collect()
}

/// Save `model` (built at `vs.root()`) to the directory `dir` (created).
pub fn save(dir: &Path, vs: &nn::VarStore, model: &Model, info: serde_json::Value) -> Result<()> {
    save_with(dir, vs, model, info, None)
}

/// [`save`], recording the bypass list the weights were trained for.
pub fn save_with(
    dir: &Path,
    vs: &nn::VarStore,
    model: &Model,
    info: serde_json::Value,
    mitigation: Option<&MitigationRecord>,
) -> Result<()> {
    let vars = vs.variables();
    let layers = layer_map(model);
    for l in &layers {
        for v in [&l.weight_var, &l.bias_var, &l.in_max_var, &l.w_scale_var] {
            if !vars.contains_key(v) {
                return Err(Error::Checkpoint {
                    path: dir.to_path_buf(),
                    msg: format!("variable {v} not in the VarStore (build the model at vs.root())"),
                });
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let wpath = dir.join(WEIGHTS_FILE);
    // libtorch writes to a path: a temporary beside the target, then a rename.
    // It picks the format from the extension, so the temporary keeps it.
    let wtmp = dir.join(format!(".tmp-{}-{WEIGHTS_FILE}", std::process::id()));
    vs.save(&wtmp).map_err(|e| Error::Checkpoint { path: wpath.clone(), msg: e.to_string() })?;
    let weights_sha256 = Some(file_sha256(&wtmp)?);
    faultloop_proto::atomic::commit(&wtmp, &wpath).map_err(|e| Error::io(&wpath, e))?;
    let meta = CheckpointMeta {
        format: FORMAT.into(),
        version: VERSION,
        spec: model.spec.clone(),
        layers,
        info,
        weights_sha256,
        mitigation: mitigation.cloned(),
    };
    let mpath = dir.join(META_FILE);
    let text = serde_json::to_string_pretty(&meta)
        .map_err(|source| Error::Json { path: mpath.clone(), source })?;
    faultloop_proto::atomic::write_atomic(&mpath, text.as_bytes()).map_err(|e| Error::io(&mpath, e))
}

/// SHA-256 (lower-case hex) of a file's bytes.
pub fn file_sha256(path: &Path) -> Result<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

/// Refuse a weights file whose hash differs from the one `meta` recorded.
pub fn verify_weights(dir: &Path, meta: &CheckpointMeta) -> Result<()> {
    let Some(want) = &meta.weights_sha256 else { return Ok(()) };
    let wpath = dir.join(WEIGHTS_FILE);
    let got = file_sha256(&wpath)?;
    if &got != want {
        return Err(Error::Checkpoint {
            path: wpath,
            msg: format!(
                "truncated or corrupted: its SHA-256 is {got}, {META_FILE} recorded {want}"
            ),
        });
    }
    Ok(())
}

/// Read only `meta.json`.
pub fn read_meta(dir: &Path) -> Result<CheckpointMeta> {
    let mpath = dir.join(META_FILE);
    let text = std::fs::read(&mpath).map_err(|e| Error::io(&mpath, e))?;
    parse_meta(&text, &mpath)
}

/// Parse and check `meta.json` bytes read from `mpath` (named in errors).
pub fn parse_meta(text: &[u8], mpath: &Path) -> Result<CheckpointMeta> {
    let meta: CheckpointMeta = serde_json::from_slice(text)
        .map_err(|source| Error::Json { path: mpath.to_path_buf(), source })?;
    if meta.format != FORMAT || meta.version != VERSION {
        return Err(Error::Checkpoint {
            path: mpath.to_path_buf(),
            msg: format!(
                "format {:?} version {}, expected {FORMAT:?} version {VERSION}",
                meta.format, meta.version
            ),
        });
    }
    Ok(meta)
}

/// Load a checkpoint: a fresh CPU `VarStore`, the model built at its root with
/// the saved weights and scales, and the metadata.
pub fn load(dir: &Path) -> Result<(nn::VarStore, Model, CheckpointMeta)> {
    let meta = read_meta(dir)?;
    let mut vs = nn::VarStore::new(tch::Device::Cpu);
    let model = Model::new(&vs.root(), &meta.spec)?;
    verify_weights(dir, &meta)?;
    let wpath = dir.join(WEIGHTS_FILE);
    vs.load(&wpath).map_err(|e| Error::Checkpoint { path: wpath.clone(), msg: e.to_string() })?;
    let rebuilt = layer_map(&model);
    let same_map = rebuilt.len() == meta.layers.len()
        && rebuilt.iter().zip(&meta.layers).all(|(a, b)| {
            (a.index, &a.name, a.k, a.n, a.conv, a.post)
                == (b.index, &b.name, b.k, b.n, b.conv, b.post)
        });
    if !same_map {
        return Err(Error::Checkpoint {
            path: dir.join(META_FILE),
            msg: "layer map does not match the model rebuilt from its spec".into(),
        });
    }
    Ok((vs, model, meta))
}
