//! The pretraining loop end to end on a tiny synthetic idx data set.
use std::path::Path;
use std::sync::Mutex;

use tch::nn;
use trainer::data::{encode_idx, Dataset, Split};
use trainer::train::{self, TrainConfig};
use trainer::{checkpoint, reference, HostMatmul, Model, ModelSpec};

/// libtorch's RNG is process-global and tests run on parallel threads: every
/// test that seeds and then draws holds this lock.
static TORCH_RNG: Mutex<()> = Mutex::new(());

/// 8×8 images, 4 classes: class c lights quadrant c; plus deterministic noise.
fn write_split(dir: &Path, stem: &str, n: usize, seed: u64) {
    let mut s = seed;
    let mut rnd = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 33) as u32
    };
    let mut px = Vec::with_capacity(n * 64);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let c = (rnd() % 4) as usize;
        labels.push(c as u8);
        for y in 0..8 {
            for x in 0..8 {
                let q = (y / 4) * 2 + x / 4;
                let base = if q == c { 150 } else { 30 };
                px.push((base + rnd() % 100) as u8);
            }
        }
    }
    std::fs::write(dir.join(format!("{stem}-images-idx3-ubyte")), encode_idx(&[n, 8, 8], &px))
        .unwrap();
    std::fs::write(dir.join(format!("{stem}-labels-idx1-ubyte")), encode_idx(&[n], &labels))
        .unwrap();
}

#[test]
fn pretrain_checkpoint_and_reference_on_tiny_data() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    write_split(dir.path(), "train", 512, 1);
    write_split(dir.path(), "t10k", 200, 2);
    let train_set = Dataset::load(dir.path(), Split::Train).unwrap();
    let test_set = Dataset::load(dir.path(), Split::Test).unwrap();

    for spec in [
        ModelSpec::Mlp { widths: vec![64, 32, 4] },
        ModelSpec::Cnn { input: [1, 8, 8], channels: vec![4, 8], kernel: 3, classes: 4 },
    ] {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let model = Model::new(&vs.root(), &spec).unwrap();
        let cfg = TrainConfig {
            epochs: 4,
            batch_size: 32,
            lr: 1e-2,
            eval_batch: 64,
            ..Default::default()
        };
        let mut host = HostMatmul::new();
        let stats =
            train::pretrain(&model, &vs, &train_set, &test_set, &cfg, &mut host, |_| {}).unwrap();
        assert_eq!(stats.len(), 4);
        let last = stats.last().unwrap();
        assert!(last.test_accuracy_int8 > 0.9, "{spec:?}: {stats:?}");
        assert!(stats[3].lr < stats[0].lr);

        // The int8 accuracy is the plain reference's accuracy.
        let exp = model.export();
        let input = Vec::<f32>::try_from(&test_set.images.view([-1])).unwrap();
        let pred = reference::predict(&exp, &input, test_set.len()).unwrap();
        let labels = Vec::<i64>::try_from(&test_set.labels).unwrap();
        let acc = pred.iter().zip(&labels).filter(|(p, l)| **p as i64 == **l).count() as f64
            / labels.len() as f64;
        assert_eq!(acc, last.test_accuracy_int8);

        // Checkpoint: the loaded model evaluates identically.
        let ck = dir.path().join("m.ckpt");
        checkpoint::save(&ck, &vs, &model, serde_json::json!({})).unwrap();
        let (_vs2, model2, _) = checkpoint::load(&ck).unwrap();
        let acc2 = train::evaluate(&model2, &test_set, 64, Some(&mut HostMatmul::new())).unwrap();
        assert_eq!(acc2, last.test_accuracy_int8);
    }
}

#[test]
fn same_seed_same_training() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    write_split(dir.path(), "train", 128, 5);
    let data = Dataset::load(dir.path(), Split::Train).unwrap();
    let run = || {
        tch::manual_seed(9);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let model = Model::new(&vs.root(), &ModelSpec::Mlp { widths: vec![64, 8, 4] }).unwrap();
        let cfg = TrainConfig { epochs: 2, batch_size: 16, ..Default::default() };
        train::pretrain(&model, &vs, &data, &data, &cfg, &mut HostMatmul::new(), |_| {}).unwrap();
        model.export()
    };
    assert_eq!(run(), run());
}
