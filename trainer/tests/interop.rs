//! PyTorch in and out (`trainer::interop`): bad files are refused with the
//! file and tensor named; export then import evaluates identically; and,
//! against the real PyTorch from PyPI (the venv of scripts/setup), the
//! exported model's int8 logits in PyTorch (scripts/torch_reference.py)
//! equal the device's bit for bit, and a model trained in PyTorch imports
//! to the accuracy PyTorch reports.
//!
//! The PyTorch tests report themselves ignored (and pass) when the venv's
//! python cannot import torch and safetensors, or Fashion-MNIST is missing.
mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use tch::{nn, Tensor};
use trainer::data::{Dataset, Split, DEFAULT_DIR};
use trainer::interop::{self, ImportOptions};
use trainer::train::{self, TrainConfig};
use trainer::{DeviceMatmul, HostMatmul, Int8Matmul, Model, ModelSpec};

fn f32s(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.contiguous().view([-1])).unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Logits on the int8 path with every matmul on `exec` (what `faultloop
/// eval --device ...` computes per batch).
fn logits_on(model: &Model, images: &Tensor, exec: &mut dyn Int8Matmul) -> Vec<f32> {
    model.sync_weights(exec).unwrap();
    tch::no_grad(|| f32s(&model.forward_exec(images, false, Some(exec)).unwrap()))
}

/// Logits with every matmul on the golden-model DLA (`model:16x16`).
fn device_logits(model: &Model, images: &Tensor) -> Vec<f32> {
    let mut dev = DeviceMatmul::open("model:16x16", None).unwrap();
    dev.install_model(model).unwrap();
    tch::no_grad(|| f32s(&model.forward_exec(images, false, Some(&mut dev)).unwrap()))
}

fn argmax_rows(v: &[f32], classes: usize) -> Vec<usize> {
    v.chunks(classes)
        .map(|r| r.iter().enumerate().fold(0, |b, (i, &x)| if x > r[b] { i } else { b }))
        .collect()
}

/// Tensors as (name, dtype, shape, little-endian bytes).
type Raw = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

// ---- bad input --------------------------------------------------------------

/// Write tensors (name, dtype, shape, bytes) as safetensors, optionally with metadata.
fn write_raw(path: &Path, tensors: &Raw) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::tensor::serialize(views, &None).unwrap()).unwrap();
}

/// The tensors of `path` as (name, dtype, shape, bytes), sorted by name.
fn read_raw(path: &Path) -> Raw {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn import_err(path: &Path, spec: &str) -> String {
    let spec: ModelSpec = spec.parse().unwrap();
    let e = interop::import(path, Some(&spec), || panic!("no calibration"), &Default::default());
    match e {
        Ok(_) => panic!("import of {} must fail", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_files_name_the_file_and_the_tensor() {
    let _g = util::lock();
    let dir = tempfile::tempdir().unwrap();
    let spec: ModelSpec = "mlp:6-5-3".parse().unwrap();
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let model = Model::new(&vs.root(), &spec).unwrap();
    let good = dir.path().join("good.safetensors");
    interop::export(&model, &good).unwrap();
    // Only the PyTorch state_dict tensors: no metadata, no scales.
    let plain: Vec<_> = read_raw(&good)
        .into_iter()
        .filter(|t| t.0.ends_with(".weight") || t.0.ends_with(".bias"))
        .collect();
    assert_eq!(plain.len(), 4);

    let case = |name: &str, edit: &dyn Fn(&mut Raw)| {
        let p = dir.path().join(name);
        let mut t = plain.clone();
        edit(&mut t);
        write_raw(&p, &t);
        (import_err(&p, "mlp:6-5-3"), p.display().to_string())
    };

    let (e, p) = case("missing.safetensors", &|t| t.retain(|x| x.0 != "fc1.bias"));
    assert_eq!(e, format!("{p}: no tensor `fc1.bias` (the mlp:6-5-3 model needs it)"));

    let (e, p) = case("shape.safetensors", &|t| {
        let w = t.iter_mut().find(|x| x.0 == "fc0.weight").unwrap();
        w.2 = vec![6, 5]; // [K, N] instead of PyTorch's [N, K]
    });
    assert_eq!(e, format!("{p}: tensor `fc0.weight` has shape [6, 5], expected [5, 6]"));

    let (e, p) = case("dtype.safetensors", &|t| {
        let b = t.iter_mut().find(|x| x.0 == "fc1.bias").unwrap();
        b.1 = Dtype::I32; // same byte count
    });
    assert_eq!(
        e,
        format!(
            "{p}: tensor `fc1.bias` is I32, expected F32 (torch.float32; convert with .float())"
        )
    );

    let (e, p) = case("nan.safetensors", &|t| {
        let b = t.iter_mut().find(|x| x.0 == "fc0.bias").unwrap();
        b.3[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    assert_eq!(e, format!("{p}: tensor `fc0.bias` holds a non-finite value at element 2"));

    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a safetensors file").unwrap();
    let e = import_err(&junk, "mlp:6-5-3");
    assert!(e.starts_with(&format!("{}: not a readable safetensors file", junk.display())), "{e}");

    let none = dir.path().join("absent.safetensors");
    let e = import_err(&none, "mlp:6-5-3");
    assert!(e.starts_with(&format!("{}: ", none.display())), "{e}");

    // A faultloop export records its architecture: another one is refused,
    // and a plain state_dict needs one.
    let e = import_err(&good, "mlp:6-4-3");
    assert_eq!(
        e,
        format!(
            "{}: the file records the architecture mlp:6-5-3, not the given mlp:6-4-3",
            good.display()
        )
    );
    let p = dir.path().join("plain.safetensors");
    write_raw(&p, &plain);
    let e = interop::import(&p, None, || panic!("no calibration"), &Default::default())
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}: no faultloop metadata in the file; give the architecture (--spec)",
            p.display()
        )
    );
}

// ---- export, import ---------------------------------------------------------

/// Export then import: the same tensors, scales and logits (int8 path and
/// float path), for the MLP and the CNN; and the exported int8 weights are
/// the model's, in PyTorch's layout.
#[test]
fn export_then_import_is_the_same_model() {
    let _g = util::lock();
    let f = util::data(400, 100);
    let dir = tempfile::tempdir().unwrap();
    let cnn = ModelSpec::Cnn { input: [1, 8, 8], channels: vec![4], kernel: 3, classes: 4 };
    let mlp = ModelSpec::Mlp { widths: vec![64, 32, 16, 4] };
    for (i, spec) in [mlp, cnn].into_iter().enumerate() {
        tch::manual_seed(5);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let model = Model::new(&vs.root(), &spec).unwrap();
        let cfg = TrainConfig { epochs: 2, batch_size: 32, lr: 1e-2, ..Default::default() };
        train::pretrain(&model, &vs, &f.train, &f.test, &cfg, &mut HostMatmul::new(), |_| {})
            .unwrap();
        if i == 1 {
            model.freeze_weight_scales(); // a frozen scale survives the trip too
        }
        let file = dir.path().join(format!("m{i}.safetensors"));
        let s = interop::export(&model, &file).unwrap();
        assert_eq!(s.layers.len(), model.layers().len());

        // The int8 tensor is the device's K×N matrix, transposed.
        let raw = read_raw(&file);
        for l in model.layers() {
            let q = &raw.iter().find(|t| t.0 == format!("{}.weight_q", l.name)).unwrap().3;
            let dev = l.int8_weights();
            for r in 0..l.k {
                for c in 0..l.n {
                    assert_eq!(q[c * l.k + r] as i8, dev[r * l.n + c], "{} [{r},{c}]", l.name);
                }
            }
        }

        let (_vs2, back, sum) =
            interop::import(&file, None, || panic!("no calibration"), &Default::default()).unwrap();
        assert_eq!(back.spec, spec);
        assert!(sum.layers.iter().all(|l| l.scales == interop::ScaleSource::File));
        for (a, b) in model.layers().iter().zip(back.layers()) {
            assert!(a.weight.equal(&b.weight) && a.bias.equal(&b.bias), "{}", a.name);
            assert_eq!(a.in_max().to_bits(), b.in_max().to_bits(), "{}", a.name);
            assert_eq!(a.in_scale().to_bits(), b.in_scale().to_bits(), "{}", a.name);
            assert_eq!(a.w_scale().to_bits(), b.w_scale().to_bits(), "{}", a.name);
            assert_eq!(a.w_scale_frozen(), b.w_scale_frozen(), "{}", a.name);
            assert_eq!(a.int8_weights(), b.int8_weights(), "{}", a.name);
        }
        let x = &f.test.images;
        let (l1, l2) = (
            logits_on(&model, x, &mut HostMatmul::new()),
            logits_on(&back, x, &mut HostMatmul::new()),
        );
        assert_eq!(bits(&l1), bits(&l2));
        let fl = |m: &Model| tch::no_grad(|| f32s(&m.forward_exec(x, false, None).unwrap()));
        assert_eq!(bits(&fl(&model)), bits(&fl(&back)));
        // Through a checkpoint on disk, on the device.
        let ckpt = dir.path().join(format!("m{i}.ckpt"));
        interop::import_to_checkpoint(
            &file,
            None,
            || panic!("no calibration"),
            &Default::default(),
            &ckpt,
        )
        .unwrap();
        let (_vs4, loaded, _) = trainer::checkpoint::load(&ckpt).unwrap();
        assert_eq!(bits(&device_logits(&loaded, x)), bits(&l1));

        // --calibrate: the same weights, scales chosen afresh (dynamic weight scales).
        let opts = ImportOptions { calibrate: true, calib_samples: 200, ..Default::default() };
        let (_vs3, cal, sum) =
            interop::import(&file, Some(&spec), || Ok(f.train.take(f.train.len())), &opts).unwrap();
        assert_eq!(sum.calib_samples, 200);
        for (a, b) in model.layers().iter().zip(cal.layers()) {
            assert!(a.weight.equal(&b.weight));
            assert!(!b.w_scale_frozen() && b.in_max() > 0.0);
        }
    }
}

/// Calibration is the trainer's observer: the EMA of the batch max |input|,
/// here checked for the first layer, whose input is the images themselves.
#[test]
fn calibration_is_the_observer_ema() {
    let _g = util::lock();
    let f = util::data(300, 10);
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let model = Model::new(&vs.root(), &ModelSpec::Mlp { widths: vec![64, 8, 4] }).unwrap();
    let opts = ImportOptions { calibrate: true, calib_samples: 250, calib_batch: 100, seed: 3 };
    assert_eq!(interop::calibrate(&model, &f.train, &opts).unwrap(), 250);
    let data = trainer::mitigate::calibration_subset(&f.train, &[], 250, 3);
    let mut ema = 0f32;
    for (xs, _) in data.batches(100, false) {
        let m = trainer::quant::max_abs(&xs);
        ema = if ema > 0.0 { 0.9 * ema + 0.1 * m } else { m };
    }
    assert_eq!(model.layers()[0].in_max().to_bits(), ema.to_bits());
    assert!(model.layers()[1].in_max() > 0.0);
}

// ---- against PyTorch ----------------------------------------------------------

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The venv's python if it imports torch and safetensors and Fashion-MNIST
/// is installed; otherwise report the test ignored, with the reason.
fn python(test: &str) -> Option<PathBuf> {
    let py = std::env::var_os("FAULTLOOP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"));
    let why = match Command::new(&py).args(["-c", "import torch, safetensors.torch"]).output() {
        Ok(o) if o.status.success() => {
            if Path::new(DEFAULT_DIR).join("t10k-labels-idx1-ubyte.gz").exists()
                || Path::new(DEFAULT_DIR).join("t10k-labels-idx1-ubyte").exists()
            {
                return Some(py);
            }
            format!("no Fashion-MNIST in {DEFAULT_DIR} (scripts/setup installs it)")
        }
        Ok(o) => format!(
            "{} cannot import torch and safetensors (scripts/setup installs them): {}",
            py.display(),
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
        ),
        Err(e) => format!("{}: {e} (scripts/setup makes the venv)", py.display()),
    };
    eprintln!("test {test} ... ignored: {why}");
    None
}

/// Run scripts/torch_reference.py; its JSON line.
fn torch_ref(py: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(py)
        .arg(root().join("scripts/torch_reference.py"))
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "torch_reference.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(text.lines().last().unwrap()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The F32 tensor `name` of a safetensors file written by PyTorch.
fn read_f32(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = read_raw(path).into_iter().find(|t| t.0 == name).unwrap();
    assert_eq!(t.1, Dtype::F32);
    (t.2, t.3.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

const TEST_IMAGES: usize = 500;

/// Pretrained on the first 3000 Fashion-MNIST training images (seeded).
fn pretrained(spec: &ModelSpec, epochs: usize) -> (nn::VarStore, Model) {
    let train_set = Dataset::load(DEFAULT_DIR, Split::Train).unwrap().take(3000);
    let test = Dataset::load(DEFAULT_DIR, Split::Test).unwrap().take(200);
    tch::manual_seed(7);
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let model = Model::new(&vs.root(), spec).unwrap();
    let cfg = TrainConfig { epochs, seed: 7, ..Default::default() };
    train::pretrain(&model, &vs, &train_set, &test, &cfg, &mut HostMatmul::new(), |_| {}).unwrap();
    (vs, model)
}

/// The exported model's int8 logits in PyTorch equal the golden-model DLA's
/// (and the host reference's) bit for bit on 500 Fashion-MNIST test images,
/// MLP and CNN.
#[test]
fn pytorch_int8_logits_equal_the_device_logits() {
    let Some(py) = python("pytorch_int8_logits_equal_the_device_logits") else { return };
    let _g = util::lock();
    let dir = tempfile::tempdir().unwrap();
    let test = Dataset::load(DEFAULT_DIR, Split::Test).unwrap().take(TEST_IMAGES);
    for (name, spec, epochs) in
        [("mlp", ModelSpec::mlp_default(), 2), ("cnn", ModelSpec::cnn_default(), 1)]
    {
        let (_vs, model) = pretrained(&spec, epochs);
        let file = dir.path().join(format!("{name}.safetensors"));
        interop::export(&model, &file).unwrap();
        let out = dir.path().join(format!("{name}.logits.safetensors"));
        let r = torch_ref(
            &py,
            &[
                "logits",
                file.to_str().unwrap(),
                "--limit",
                &TEST_IMAGES.to_string(),
                "-o",
                out.to_str().unwrap(),
            ],
        );
        let (shape, torch_logits) = read_f32(&out, "logits");
        assert_eq!(shape, vec![TEST_IMAGES, 10]);
        let dev = device_logits(&model, &test.images);
        let host = logits_on(&model, &test.images, &mut HostMatmul::new());
        assert_eq!(bits(&dev), bits(&host), "{name}: device vs host int8 path");
        let differ = bits(&dev).iter().zip(bits(&torch_logits)).filter(|(a, b)| **a != *b).count();
        let acc = argmax_rows(&dev, 10)
            .iter()
            .zip(Vec::<i64>::try_from(&test.labels).unwrap())
            .filter(|(p, y)| **p as i64 == *y)
            .count() as f64
            / TEST_IMAGES as f64;
        eprintln!(
            "{name}: {differ} of {} logits differ between PyTorch and model:16x16; \
             accuracy {acc} (PyTorch {})",
            dev.len(),
            r["accuracy"]
        );
        assert_eq!(differ, 0, "{name}: PyTorch int8 logits differ from the device's");
        assert_eq!(r["accuracy"].as_f64().unwrap(), acc);
    }
}

/// A float MLP trained in PyTorch (300 seeded Adam steps on 5000 images)
/// imports, with calibrated scales, to PyTorch's float accuracy on 500 test
/// images within 2 points: int8 per-tensor quantization of a model that was
/// not trained for it moves a few borderline predictions (measured: see
/// docs/pytorch.md), and 2 points is 10 images.
#[test]
fn pytorch_trained_mlp_imports_to_its_accuracy() {
    let Some(py) = python("pytorch_trained_mlp_imports_to_its_accuracy") else { return };
    let _g = util::lock();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("torch_mlp.safetensors");
    let r = torch_ref(
        &py,
        &[
            "train",
            "--widths",
            "784-128-10",
            "--steps",
            "300",
            "--seed",
            "1",
            "--train-samples",
            "5000",
            "--limit",
            &TEST_IMAGES.to_string(),
            "-o",
            file.to_str().unwrap(),
        ],
    );
    let torch_acc = r["accuracy"].as_f64().unwrap();
    let spec: ModelSpec = "mlp:784-128-10".parse().unwrap();
    let opts = ImportOptions::default();
    let ckpt = dir.path().join("imported.ckpt");
    let sum = interop::import_to_checkpoint(
        &file,
        Some(&spec),
        || Dataset::load(DEFAULT_DIR, Split::Train),
        &opts,
        &ckpt,
    )
    .unwrap();
    assert_eq!(sum.calib_samples, opts.calib_samples);
    assert!(sum.layers.iter().all(|l| l.scales == interop::ScaleSource::Calibrated));
    let (_vs, model, _meta) = trainer::checkpoint::load(&ckpt).unwrap();
    let test = Dataset::load(DEFAULT_DIR, Split::Test).unwrap().take(TEST_IMAGES);
    let labels = Vec::<i64>::try_from(&test.labels).unwrap();
    let dev = argmax_rows(&device_logits(&model, &test.images), 10);
    let correct = dev.iter().zip(&labels).filter(|(p, y)| **p as i64 == **y).count();
    let acc = correct as f64 / TEST_IMAGES as f64;
    // The imported float weights are PyTorch's exactly.
    let (_, w) = read_f32(&file, "fc0.weight");
    let ours = f32s(&model.layers()[0].weight.transpose(0, 1));
    assert_eq!(bits(&w), bits(&ours));
    eprintln!(
        "PyTorch float accuracy {torch_acc}, imported int8 on model:16x16 {acc} \
         ({:+.1} points)",
        100.0 * (acc - torch_acc)
    );
    assert!(torch_acc > 0.7, "PyTorch training failed: {r}");
    assert!((acc - torch_acc).abs() <= 0.02, "int8 {acc} vs PyTorch float {torch_acc}");
}
