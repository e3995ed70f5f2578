//! Shared by the trainer's integration tests: the libtorch RNG lock, a tiny
//! synthetic idx dataset and a small pretrained MLP.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;
use std::sync::Mutex;

use faultloop_proto::rng::Rng;
use tch::nn;
use trainer::data::{encode_idx, Dataset, Split};
use trainer::device::DeviceMatmul;
use trainer::retrain::{self, RetrainConfig, RetrainReport, RetrainRun};
use trainer::train::{self, TrainConfig};
use trainer::{HostMatmul, Model, ModelSpec};

/// libtorch's RNG is process-global; tests that seed it hold this lock.
static TORCH_RNG: Mutex<()> = Mutex::new(());

pub fn lock() -> std::sync::MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// 8×8 images, 4 classes: class c lights quadrant c, plus deterministic noise.
pub fn write_split(dir: &Path, stem: &str, n: usize, seed: u64) {
    let mut r = Rng::new(seed);
    let mut px = Vec::with_capacity(n * 64);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let c = r.index(4);
        labels.push(c as u8);
        for y in 0..8 {
            for x in 0..8 {
                let q = (y / 4) * 2 + x / 4;
                let base = if q == c { 120 } else { 40 };
                px.push((base + r.below(110)) as u8);
            }
        }
    }
    std::fs::write(dir.join(format!("{stem}-images-idx3-ubyte")), encode_idx(&[n, 8, 8], &px))
        .unwrap();
    std::fs::write(dir.join(format!("{stem}-labels-idx1-ubyte")), encode_idx(&[n], &labels))
        .unwrap();
}

pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub train: Dataset,
    pub test: Dataset,
}

pub fn data(n_train: usize, n_test: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    write_split(dir.path(), "train", n_train, 11);
    write_split(dir.path(), "t10k", n_test, 12);
    let train = Dataset::load(dir.path(), Split::Train).unwrap();
    let test = Dataset::load(dir.path(), Split::Test).unwrap();
    Fixture { _dir: dir, train, test }
}

/// A small pretrained MLP 64-32-16-4 (host QAT), caller holds the lock.
pub fn pretrained(f: &Fixture, seed: i64) -> (nn::VarStore, Model) {
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let model = Model::new(&vs.root(), &ModelSpec::Mlp { widths: vec![64, 32, 16, 4] }).unwrap();
    let cfg =
        TrainConfig { epochs: 3, batch_size: 32, lr: 1e-2, eval_batch: 128, ..Default::default() };
    train::pretrain(&model, &vs, &f.train, &f.test, &cfg, &mut HostMatmul::new(), |_| {}).unwrap();
    (vs, model)
}

/// One retraining run without a checkpoint, on the fixture's data.
pub fn retrain_plain(
    model: &Model,
    vs: &mut nn::VarStore,
    exec: &mut DeviceMatmul,
    f: &Fixture,
    config: RetrainConfig,
) -> RetrainReport {
    let job = RetrainRun {
        model,
        vs,
        exec,
        train: &f.train,
        test: &f.test,
        config,
        checkpoint: None,
        resume: false,
    };
    retrain::retrain(job, &mut |_| {}).unwrap()
}
