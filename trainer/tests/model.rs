//! Model-level tests on tiny synthetic data: the int8 path against the plain
//! integer reference, straight-through gradients, conv lowering, checkpoints.
use faultloop_proto::rng::Rng;
use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Kind, Tensor};
use trainer::exec::{matmul_i8_ref, Int8Matmul};
use trainer::model::ModelSpec;
use trainer::{checkpoint, quant, reference, ExecError, HostMatmul, Model, TorchMatmul};

/// libtorch's RNG is process-global and tests run on parallel threads.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn tiny_mlp() -> ModelSpec {
    ModelSpec::Mlp { widths: vec![20, 12, 7, 4] }
}

fn tiny_cnn() -> ModelSpec {
    ModelSpec::Cnn { input: [2, 9, 8], channels: vec![3, 5], kernel: 3, classes: 4 }
}

/// A tensor of uniform values in [lo, lo + 1) from a seed. Test inputs
/// come from here, not from libtorch's process-global RNG: a draw in one
/// test would shift the weights another test initialises from a seed.
fn seeded(shape: &[i64], seed: u64, lo: f32) -> Tensor {
    let mut r = Rng::new(seed);
    let n: i64 = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| lo + r.f64() as f32).collect();
    Tensor::from_slice(&v).view(shape)
}

fn input_for(spec: &ModelSpec, b: i64) -> Tensor {
    match spec {
        ModelSpec::Mlp { widths } => seeded(&[b, widths[0] as i64], b as u64, 0.0),
        ModelSpec::Cnn { input, .. } => {
            seeded(&[b, input[0] as i64, input[1] as i64, input[2] as i64], b as u64, 0.0)
        }
    }
}

fn warmed(spec: &ModelSpec, seed: i64) -> (nn::VarStore, Model) {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let model = Model::new(&vs.root(), spec).unwrap();
    for _ in 0..3 {
        let _ = model.forward_t(&input_for(spec, 16), true);
    }
    (vs, model)
}

fn to_vec(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.detach().contiguous().view([-1])).unwrap()
}

#[test]
fn host_int8_path_equals_plain_integer_reference() {
    for spec in [tiny_mlp(), tiny_cnn(), ModelSpec::Mlp { widths: vec![9, 3] }] {
        let (_vs, model) = warmed(&spec, 7);
        let x = input_for(&spec, 11);
        let exp = model.export();
        let want = reference::forward(&exp, &to_vec(&x), 11).unwrap();

        let mut host = HostMatmul::new();
        model.sync_weights(&mut host).unwrap();
        let got = tch::no_grad(|| model.forward_exec(&x, false, Some(&mut host))).unwrap();
        assert_eq!(to_vec(&got), want, "{spec:?}: tensor int8 path vs plain reference");

        // Same value in training mode (straight-through keeps the device value).
        let got_t = model.forward_exec(&x, true, Some(&mut host)).unwrap();
        assert_eq!(to_vec(&got_t), want, "{spec:?}: train-mode value");

        let mut torch_exec = TorchMatmul::new();
        exp.install(&mut torch_exec).unwrap();
        let got2 = tch::no_grad(|| model.forward_exec(&x, false, Some(&mut torch_exec))).unwrap();
        assert_eq!(to_vec(&got2), want, "{spec:?}: TorchMatmul");

        // The int8 path is close to the fake-quant float path.
        let fq = to_vec(&tch::no_grad(|| model.forward_t(&x, false)));
        for (a, b) in fq.iter().zip(&want) {
            assert!((a - b).abs() < 1e-3 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
}

#[test]
fn export_is_k_by_n_row_major_with_scales() {
    let (_vs, model) = warmed(&tiny_cnn(), 3);
    let exp = model.export();
    assert_eq!(exp.layers.len(), 3);
    let dims: Vec<(usize, usize)> = exp.layers.iter().map(|l| (l.k, l.n)).collect();
    // conv0: K = 2·3·3, N = 3; conv1: K = 3·3·3, N = 5; fc0: K = 5·(9/2/2)·(8/2/2) = 5·2·2.
    assert_eq!(dims, vec![(18, 3), (27, 5), (20, 4)]);
    for (l, ql) in exp.layers.iter().zip(model.layers()) {
        assert_eq!(l.weights.len(), l.k * l.n);
        let w = to_vec(&ql.weight);
        assert_eq!(l.w_scale, quant::tensor_scale(&ql.weight));
        let inv = quant::inv_scale(l.w_scale);
        for k in 0..l.k {
            for n in 0..l.n {
                assert_eq!(l.weights[k * l.n + n], quant::quantize_value(w[k * l.n + n], inv));
            }
        }
        assert!(l.in_scale > 0.0);
        assert!(l.weights.iter().any(|&v| v.abs() == 127), "scale = max|W|/127");
    }
    // JSON round trip.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("e.json");
    exp.save_json(&p).unwrap();
    assert_eq!(trainer::ModelExport::load_json(&p).unwrap(), exp);
}

#[test]
fn conv_lowering_matches_torch_conv2d() {
    let (_vs, model) = warmed(&tiny_cnn(), 5);
    let l = &model.layers()[0];
    let g = l.conv.unwrap();
    let x = input_for(&tiny_cnn(), 4);
    // conv0 on the fake-quant float path, before ReLU/pool: recompute by hand.
    let xs = quant::fake_quant(&x, l.in_scale());
    let w = quant::fake_quant(&l.weight, l.w_scale()); // [C·kh·kw, N]
    let w_oihw = w.transpose(0, 1).reshape([g.out_ch as i64, g.in_ch as i64, 3, 3]);
    let conv = xs.conv2d(&w_oihw, Some(&l.bias), [1, 1], [1, 1], [1, 1], 1);
    let want = conv.relu().max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
    // Model up to and including conv0 = one layer of a 1-conv model sharing weights.
    let exp = model.export();
    let mut one = exp.clone();
    one.layers.truncate(1);
    let int8 = reference::forward(&one, &to_vec(&x), 4).unwrap();
    let want_v = to_vec(&want);
    assert_eq!(int8.len(), want_v.len());
    for (a, b) in int8.iter().zip(&want_v) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
}

/// An executor that adds a constant to every result: a "faulty device".
struct Offset(HostMatmul, i32);
impl Int8Matmul for Offset {
    fn set_weights(&mut self, layer: usize, w: &[i8], k: usize, n: usize) -> Result<(), ExecError> {
        self.0.set_weights(layer, w, k, n)
    }
    fn matmul(
        &mut self,
        layer: usize,
        a: &[i8],
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<Vec<i32>, ExecError> {
        Ok(self.0.matmul(layer, a, m, k, n)?.into_iter().map(|v| v + self.1).collect())
    }
}

#[test]
fn straight_through_gradient_flows_as_if_float() {
    // One linear layer, a linear loss: dL/dy = c whatever the forward values,
    // so the device path's gradients must equal the float path's exactly,
    // while its forward value is the (faulty) device's.
    let spec = ModelSpec::Mlp { widths: vec![6, 4] };
    let (vs, model) = warmed(&spec, 11);
    let x = input_for(&spec, 5);
    let c = seeded(&[5, 4], 7, -0.5);
    let grads = |exec: Option<&mut dyn Int8Matmul>| {
        for v in vs.trainable_variables() {
            let mut g = v.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        let y = model.forward_exec(&x, true, exec).unwrap();
        (y.shallow_clone() * &c).sum(Kind::Float).backward();
        let l = &model.layers()[0];
        (to_vec(&y), to_vec(&l.weight.grad()), to_vec(&l.bias.grad()))
    };
    model.set_observe(false);
    let (y_f, gw_f, gb_f) = grads(None);
    let mut dev = Offset(HostMatmul::new(), 1000);
    model.sync_weights(&mut dev).unwrap();
    let (y_d, gw_d, gb_d) = grads(Some(&mut dev));
    assert_eq!(gw_d, gw_f);
    assert_eq!(gb_d, gb_f);
    // The float-path gradient is x_q^T c (straight through the weight quantizer).
    let l = &model.layers()[0];
    let xq = quant::fake_quant(&x, l.in_scale());
    let want = to_vec(&xq.transpose(0, 1).matmul(&c));
    for (a, b) in gw_f.iter().zip(&want) {
        assert!((a - b).abs() < 1e-5);
    }
    // Forward value: the device's, offset by 1000·s_in·s_w.
    let off = 1000.0 * l.in_scale() * l.w_scale();
    for (d, f) in y_d.iter().zip(&y_f) {
        assert!((d - f - off).abs() < 1e-3 * off.max(1.0), "{d} {f} {off}");
    }
    // And it is exactly the reference applied to the offset accumulators.
    let exp = model.export();
    let l0 = &exp.layers[0];
    let xi = quant::quantize_slice(&to_vec(&x), l0.in_scale);
    let acc = matmul_i8_ref(&xi, &l0.weights, 5, 6, 4);
    let m = l0.multiplier();
    let want: Vec<f32> =
        acc.iter().enumerate().map(|(i, &a)| (a + 1000) as f32 * m + l0.bias[i % 4]).collect();
    assert_eq!(y_d, want);
}

#[test]
fn device_mode_training_reduces_loss() {
    // Training through an executor (HostMatmul) with the straight-through trick.
    let spec = ModelSpec::Mlp { widths: vec![8, 16, 2] };
    let (vs, model) = warmed(&spec, 2);
    let x = seeded(&[64, 8], 8, 0.0);
    let y = x.narrow(1, 0, 1).gt(0.5).squeeze_dim(1).to_kind(Kind::Int64);
    let mut opt = nn::Adam::default().build(&vs, 1e-2).unwrap();
    let mut host = HostMatmul::new();
    let mut losses = vec![];
    for _ in 0..60 {
        model.sync_weights(&mut host).unwrap();
        let loss =
            model.forward_exec(&x, true, Some(&mut host)).unwrap().cross_entropy_for_logits(&y);
        opt.backward_step(&loss);
        losses.push(loss.double_value(&[]));
    }
    assert!(losses.last().unwrap() < &(losses[0] * 0.6), "{losses:?}");
}

#[test]
fn checkpoint_round_trip() {
    for spec in [tiny_mlp(), tiny_cnn()] {
        let (vs, model) = warmed(&spec, 13);
        model.layers()[1].freeze_w_scale(Some(0.0123));
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join("m.ckpt");
        checkpoint::save(&ck, &vs, &model, serde_json::json!({"note": "test"})).unwrap();
        let (vs2, model2, meta) = checkpoint::load(&ck).unwrap();
        assert_eq!(meta.spec, spec);
        assert_eq!(meta.info["note"], "test");
        assert!(meta.layers[1].w_scale_frozen && meta.layers[1].w_scale == 0.0123);
        let (a, b) = (vs.variables(), vs2.variables());
        assert_eq!(a.len(), b.len());
        for (name, t) in &a {
            assert!(t.equal(&b[name]), "{name} differs after load");
        }
        assert_eq!(model2.export(), model.export());
        let x = input_for(&spec, 3);
        assert!(tch::no_grad(|| model.forward_t(&x, false).equal(&model2.forward_t(&x, false))));
        // Meta is checked.
        std::fs::write(ck.join("meta.json"), b"{\"format\":\"x\"}").unwrap();
        assert!(checkpoint::load(&ck).is_err());
    }
}

#[test]
fn seeded_init_is_reproducible() {
    let (_a, m1) = warmed(&tiny_cnn(), 42);
    let (_b, m2) = warmed(&tiny_cnn(), 42);
    assert_eq!(m1.export(), m2.export());
}

#[test]
fn shape_errors_are_typed() {
    let (_vs, model) = warmed(&tiny_mlp(), 1);
    let bad = Tensor::zeros([2, 19], (Kind::Float, tch::Device::Cpu));
    let e = model.forward_exec(&bad, false, None).unwrap_err().to_string();
    assert!(e.contains("fc0") && e.contains("expected [B, 20]"), "{e}");
    let mut host = HostMatmul::new(); // no weights installed
    let x = input_for(&tiny_mlp(), 2);
    let e = model.forward_exec(&x, false, Some(&mut host)).unwrap_err().to_string();
    assert!(e.contains("layer 0 (fc0): matmul executor") && e.contains("no weights"), "{e}");
    assert!(Model::new(
        &nn::VarStore::new(tch::Device::Cpu).root(),
        &ModelSpec::Mlp { widths: vec![3] }
    )
    .is_err());
}

#[test]
fn unfold_and_pool_match_libtorch() {
    use trainer::model::{max_pool, unfold, ConvGeom};
    for (c, h, w, k, s, p) in
        [(2, 9, 8, 3, 1, 1), (3, 7, 7, 3, 2, 1), (1, 6, 5, 1, 1, 0), (2, 8, 8, 5, 1, 2)]
    {
        let g =
            ConvGeom { in_ch: c, in_h: h, in_w: w, out_ch: 1, kernel: k, stride: s, padding: p };
        let x = seeded(&[3, c as i64, h as i64, w as i64], 9, -0.5);
        let (k, s, p) = (k as i64, s as i64, p as i64);
        let want = x.im2col([k, k], [1, 1], [p, p], [s, s]).transpose(1, 2);
        let got = unfold(&x, &g).reshape([3, -1, g.k() as i64]);
        assert!(got.equal(&want), "unfold {g:?}");
    }
    for (h, w) in [(8, 8), (7, 7), (9, 6)] {
        let y = seeded(&[2, 3, h, w], 10, -0.5);
        assert!(max_pool(&y, 2).equal(&y.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)));
    }
}

#[test]
fn model_specs_parse_by_name() {
    assert_eq!("mlp".parse::<ModelSpec>().unwrap(), ModelSpec::mlp_default());
    assert_eq!("cnn".parse::<ModelSpec>().unwrap(), ModelSpec::cnn_default());
    assert_eq!(
        "mlp:784-64-10".parse::<ModelSpec>().unwrap(),
        ModelSpec::Mlp { widths: vec![784, 64, 10] }
    );
    for bad in ["resnet", "mlp:", "mlp:784", "mlp:784-0-10", "mlp:784-x-10"] {
        let e = bad.parse::<ModelSpec>().unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("unknown model `{bad}` (mlp, mlp:784-256-128-10 style widths, or cnn)")
        );
    }
}
