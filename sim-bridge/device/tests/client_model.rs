//! The device client against the golden model (`model` device): every request,
//! splitting of large transfers, errors, fault maps and the layout helpers.

use faultloop_device::client::{ApplyError, Cause, Device};
use faultloop_model::ModelLink;
use faultloop_proto::faultmap::{FaultMap, FaultMapError, RandomOptions};
use faultloop_proto::layout::WeightAllocator;
use faultloop_proto::rng::Rng;
use faultloop_proto::Info;
use faultloop_proto::{Counters, Site, Status, SEU_RATE_ONE};

/// Plain y = a·W, wrapping like the device.
fn reference(a: &[i8], w: &[i8], m: usize, k: usize, n: usize) -> Vec<i32> {
    let mut y = vec![0i32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0i32;
            for kk in 0..k {
                s = s.wrapping_add(a[i * k + kk] as i32 * w[kk * n + j] as i32);
            }
            y[i * n + j] = s;
        }
    }
    y
}

fn small_device(rows: usize, cols: usize, buf_bytes: usize, acc_words: usize) -> Device {
    let cfg = Info { buf_bytes, acc_words, ..Info::sim(rows, cols) };
    Device::new(Box::new(ModelLink::new(cfg)))
}

#[test]
fn info_matches_the_sim_configuration() {
    let mut dev = Device::open("model:8x4").unwrap();
    assert_eq!(dev.name(), "model:8x4");
    let info = dev.info().unwrap();
    let cfg = Info::sim(8, 4);
    assert_eq!(
        info,
        Info {
            proto: 2,
            rtl: 1,
            rows: 8,
            cols: 4,
            wmem_bytes: cfg.wmem_bytes,
            buf_bytes: cfg.buf_bytes,
            acc_words: cfg.acc_words,
            features: cfg.features,
        }
    );
    // Cached: a second call sends nothing.
    let sent = dev.bytes_sent();
    assert_eq!(dev.info().unwrap(), info);
    assert_eq!(dev.bytes_sent(), sent);
    assert_eq!(dev.refresh_info().unwrap(), info);
    assert!(dev.bytes_sent() > sent);
}

#[test]
fn matmul_matches_reference_with_padding_and_rotation() {
    let mut dev = Device::open("model:4x4").unwrap();
    let mut rng = Rng::new(42);
    for &(m, k, n) in &[(1, 1, 1), (3, 4, 4), (5, 7, 9), (17, 33, 6)] {
        let w = rng.vec_i8(k * n);
        let a = rng.vec_i8(m * k);
        let l = dev.load_matrix(64, k, n, &w).unwrap();
        for rot in [(0, 0), (1, 3), (3, 2)] {
            let y = dev.matmul(l.base as u32, m, k, n, rot, &a).unwrap();
            assert_eq!(y, reference(&a, &w, m, k, n), "{m}x{k}x{n} rot {rot:?}");
        }
    }
}

#[test]
fn large_matmul_is_split_to_fit_buffer_and_accumulators() {
    // buf 64 bytes: 14 + mc*k <= 64 → mc <= 5 for k = 10; acc 12 words: mc*n <= 12 → mc <= 4 for n = 3.
    let mut dev = small_device(4, 4, 64, 12);
    let (m, k, n) = (23, 10, 3);
    let mut rng = Rng::new(7);
    let w = rng.vec_i8(k * n);
    let a = rng.vec_i8(m * k);
    dev.load_matrix(0, k, n, &w).unwrap();
    let before = dev.counters().unwrap();
    let y = dev.matmul(0, m, k, n, (0, 0), &a).unwrap();
    assert_eq!(y, reference(&a, &w, m, k, n));
    let c = dev.counters().unwrap().since(&before);
    assert_eq!(c.macs, (m * k * n) as u64);
    // ceil(23 / 4) = 6 frames; cycles count per frame: KT*NT*(mc + 2R + C).
    let frames = [4, 4, 4, 4, 4, 3];
    let (kt, nt) = (3, 1);
    let cycles: usize = frames.iter().map(|mc| kt * nt * (mc + 2 * 4 + 4)).sum();
    assert_eq!(c.cycles, cycles as u64);
}

#[test]
fn row_that_cannot_fit_is_an_error_naming_the_limit() {
    let mut dev = small_device(4, 4, 64, 12);
    let e = dev.matmul(0, 1, 51, 1, (0, 0), &[0; 51]).unwrap_err();
    let s = e.to_string();
    assert!(matches!(e.cause, Cause::Invalid(_)), "{s}");
    assert!(s.starts_with("model:4x4: MATMUL") && s.contains("buffer bytes"), "{s}");
    let e = dev.matmul(0, 1, 4, 13, (0, 0), &[0; 4]).unwrap_err();
    assert!(e.to_string().contains("accumulator words"), "{e}");
    // Wrong activation length: nothing is sent.
    let sent = dev.bytes_sent();
    let e = dev.matmul(0, 2, 4, 4, (0, 0), &[0; 7]).unwrap_err();
    assert!(e.to_string().contains("7 elements"), "{e}");
    assert_eq!(dev.bytes_sent(), sent);
}

#[test]
fn device_refusals_name_device_request_seq_and_status() {
    let mut dev = Device::open("model:4x4").unwrap();
    // base not a multiple of cols.
    let e = dev.matmul(2, 1, 4, 4, (0, 0), &[1; 4]).unwrap_err();
    assert!(e.is_status(Status::OutOfRange));
    let s = e.to_string();
    assert!(s.starts_with("model:4x4: MATMUL (seq "), "{s}");
    assert!(s.contains("OUT_OF_RANGE"), "{s}");
    // m = 0 goes to the device, which refuses it.
    let e = dev.matmul(0, 0, 4, 4, (0, 0), &[]).unwrap_err();
    assert!(e.is_status(Status::OutOfRange), "{e}");
    // PE outside the array.
    let e = dev.set_fault(4, 0, Site::Psum, 0, 1).unwrap_err();
    assert!(e.is_status(Status::OutOfRange) && e.to_string().contains("SET_FAULT"), "{e}");
    // Over-wide mask for an 8-bit site.
    assert!(dev.set_fault(0, 0, Site::Act, 0x100, 0).unwrap_err().is_status(Status::OutOfRange));
    // Beyond the u8 field: refused locally.
    let e = dev.set_bypass(300, 0, true).unwrap_err();
    assert!(matches!(e.cause, Cause::Invalid(_)) && e.to_string().contains("SET_BYPASS"), "{e}");
    // SEU rate above 2^27.
    assert!(dev.set_seu(SEU_RATE_ONE + 1, 0).unwrap_err().is_status(Status::OutOfRange));
    // Write past the weight memory.
    let wmem = dev.info().unwrap().wmem_bytes as u32;
    let e = dev.write_weights(wmem - 2, &[1, 2, 3]).unwrap_err();
    assert!(e.is_status(Status::OutOfRange) && e.to_string().contains("WRITE_WEIGHTS"), "{e}");
    // A raw unknown opcode.
    let f = dev.request_raw(0x42, &[]).unwrap();
    assert_eq!(f.status(), Some(Status::BadOpcode));
    // Sequence numbers increase per frame.
    let f2 = dev.request_raw(0x42, &[]).unwrap();
    assert_eq!(f2.seq, f.seq.wrapping_add(1));
}

#[test]
fn write_and_patch_are_split_into_frames() {
    // buf 32: WRITE carries 28 data bytes per frame, PATCH 8 entries.
    let mut dev = small_device(4, 4, 32, 64);
    let info = dev.info().unwrap();
    assert_eq!(info.buf_bytes, 32);
    let (k, n) = (12, 8); // packed 96 bytes → 4 frames
    let mut rng = Rng::new(3);
    let w = rng.vec_i8(k * n);
    let sent = dev.bytes_sent();
    let l = dev.load_matrix(16, k, n, &w).unwrap();
    assert_eq!(l.len(), 96);
    // 4 frames of (10 + 4 + data) bytes.
    assert_eq!(dev.bytes_sent() - sent, 96 + 4 * 14);
    let a = rng.vec_i8(2 * k);
    assert_eq!(dev.matmul(16, 2, k, n, (0, 0), &a).unwrap(), reference(&a, &w, 2, k, n));
    // Patch 20 weights (3 frames) and check the result follows.
    let mut w2 = w.clone();
    for i in 0..20 {
        w2[i * 4] = rng.range_i8(-128, 127);
    }
    let patch = l.diff(&w, &w2).unwrap();
    dev.patch_weights(&patch).unwrap();
    assert_eq!(dev.matmul(16, 2, k, n, (0, 0), &a).unwrap(), reference(&a, &w2, 2, k, n));
    // A 24-bit overflow is refused before sending.
    let e = dev.patch_weights(&[(1 << 24, 1)]).unwrap_err();
    assert!(e.to_string().contains("24-bit"), "{e}");
    // Empty transfers send nothing.
    let sent = dev.bytes_sent();
    dev.write_weights(0, &[]).unwrap();
    dev.patch_weights(&[]).unwrap();
    assert_eq!(dev.bytes_sent(), sent);
}

#[test]
fn counters_reset_and_seu() {
    let mut dev = Device::open("model:4x4").unwrap();
    let (m, k, n) = (3, 5, 6);
    let mut rng = Rng::new(9);
    let w = rng.vec_i8(k * n);
    let a = rng.vec_i8(m * k);
    dev.load_matrix(0, k, n, &w).unwrap();
    assert_eq!(dev.counters().unwrap(), Counters::default());
    let clean = dev.matmul(0, m, k, n, (0, 0), &a).unwrap();
    let c = dev.counters().unwrap();
    assert_eq!(c.macs, 90);
    assert_eq!(c.cycles, (2 * 2 * (3 + 8 + 4)) as u64);
    assert_eq!(c.flips, 0);
    // Flip on every MAC: every pass flips every PE, padding included.
    dev.set_seu(SEU_RATE_ONE, 1234).unwrap();
    let noisy = dev.matmul(0, m, k, n, (0, 0), &a).unwrap();
    assert_ne!(noisy, clean);
    let c2 = dev.counters().unwrap().since(&c);
    assert_eq!(c2.flips, (2 * 2 * m * 16) as u64);
    // SET_SEU resets the pass counter: the same run again is identical.
    dev.set_seu(SEU_RATE_ONE, 1234).unwrap();
    assert_eq!(dev.matmul(0, m, k, n, (0, 0), &a).unwrap(), noisy);
    // RESET clears SEU and counters but not the weights.
    dev.reset().unwrap();
    assert_eq!(dev.counters().unwrap(), Counters::default());
    assert_eq!(dev.matmul(0, m, k, n, (0, 0), &a).unwrap(), clean);
}

#[test]
fn bypass_and_clear_faults() {
    let mut dev = Device::open("model:4x4").unwrap();
    let (m, k, n) = (2, 4, 4);
    let w: Vec<i8> = (0..16).map(|i| i as i8 - 8).collect();
    let a: Vec<i8> = vec![1, 2, 3, 4, -1, -2, -3, -4];
    dev.load_matrix(0, k, n, &w).unwrap();
    // Bypassing PE (2, 1) drops W[2][1]'s product from column 1.
    dev.set_bypass(2, 1, true).unwrap();
    let y = dev.matmul(0, m, k, n, (0, 0), &a).unwrap();
    let mut want = reference(&a, &w, m, k, n);
    for i in 0..m {
        want[i * n + 1] -= a[i * k + 2] as i32 * w[2 * n + 1] as i32;
    }
    assert_eq!(y, want);
    dev.set_bypass(2, 1, false).unwrap();
    assert_eq!(dev.matmul(0, m, k, n, (0, 0), &a).unwrap(), reference(&a, &w, m, k, n));
    dev.set_bypass(0, 0, true).unwrap();
    dev.set_fault(3, 3, Site::Psum, 0, 1 << 20).unwrap();
    assert_ne!(dev.matmul(0, m, k, n, (0, 0), &a).unwrap(), reference(&a, &w, m, k, n));
    dev.clear_faults().unwrap();
    assert_eq!(dev.matmul(0, m, k, n, (0, 0), &a).unwrap(), reference(&a, &w, m, k, n));
}

#[test]
fn allocator_places_several_matrices() {
    let mut dev = Device::open("model:4x4").unwrap();
    let info = dev.info().unwrap();
    let mut alloc = WeightAllocator::for_info(&info);
    let mut rng = Rng::new(1);
    let dims = [(10, 7), (7, 5), (5, 3)];
    let mut mats = Vec::new();
    for (i, &(k, n)) in dims.iter().enumerate() {
        let l = alloc.alloc(&format!("layer{i}"), k, n).unwrap();
        let w = rng.vec_i8(k * n);
        dev.load_layout(&l, &w).unwrap();
        mats.push((l, w));
    }
    for (l, w) in &mats {
        let a = rng.vec_i8(3 * l.k);
        let y = dev.matmul(l.base as u32, 3, l.k, l.n, (0, 0), &a).unwrap();
        assert_eq!(y, reference(&a, w, 3, l.k, l.n));
    }
    let e = alloc.alloc("huge", 1024, 1024).unwrap_err();
    assert!(e.to_string().contains("'huge'"), "{e}");
}

#[test]
fn fault_map_apply_and_array_mismatch() {
    let mut dev = Device::open("model:4x4").unwrap();
    let (m, k, n) = (3, 4, 4);
    let mut rng = Rng::new(5);
    let w = rng.vec_i8(k * n);
    let a = rng.vec_i8(m * k);
    dev.load_matrix(0, k, n, &w).unwrap();
    let clean = reference(&a, &w, m, k, n);
    // A map with a bypass of PE (1, 2): its product drops out of column 2.
    let map = FaultMap::from_json_str(
        r#"{"array": {"rows": 4, "cols": 4}, "bypass": [[1, 2]], "seu": {"rate": 1.0, "seed": 3}}"#,
    )
    .unwrap();
    dev.apply_fault_map(&map).unwrap();
    let c0 = dev.counters().unwrap();
    let _ = dev.matmul(0, m, k, n, (0, 0), &a).unwrap();
    // rate 1.0 → register 2^27 → every non-bypassed MAC flips.
    assert_eq!(dev.counters().unwrap().since(&c0).flips, (m * 15) as u64);
    // Applying an empty map clears faults, bypass and SEU.
    dev.apply_fault_map(&FaultMap::empty(4, 4)).unwrap();
    assert_eq!(dev.matmul(0, m, k, n, (0, 0), &a).unwrap(), clean);
    // A random map applies and is reproducible on a second device.
    let r = FaultMap::random(4, 4, 0.25, 11, &RandomOptions::default()).unwrap();
    dev.apply_fault_map(&r).unwrap();
    let y1 = dev.matmul(0, m, k, n, (0, 0), &a).unwrap();
    let mut dev2 = Device::open("model:4x4").unwrap();
    dev2.load_matrix(0, k, n, &w).unwrap();
    dev2.apply_fault_map(&FaultMap::random(4, 4, 0.25, 11, &RandomOptions::default()).unwrap())
        .unwrap();
    assert_eq!(dev2.matmul(0, m, k, n, (0, 0), &a).unwrap(), y1);
    // Wrong array size: refused, naming both sizes and the device.
    let e = dev.apply_fault_map(&FaultMap::empty(8, 8)).unwrap_err();
    assert!(matches!(e, ApplyError::Map(FaultMapError::ArrayMismatch { .. })));
    let s = e.to_string();
    assert!(s.contains("8x8") && s.contains("model:4x4 is 4x4"), "{s}");
}

#[test]
fn byte_counters_count_frames() {
    let mut dev = Device::open("model:4x4").unwrap();
    dev.info().unwrap();
    assert_eq!(dev.bytes_sent(), 10);
    assert_eq!(dev.bytes_received(), 30);
    dev.reset().unwrap();
    assert_eq!((dev.bytes_sent(), dev.bytes_received()), (20, 40));
    assert_eq!(dev.stats().frames_sent, 2);
    assert_eq!(dev.stats().retries, 0);
}
