//! Fleet planning end to end on `model:4x4`: the grouped plan, sharded runs
//! and their merge, member verification and the leave-and-retrain path.
mod util;

use std::path::Path;

use faultloop_proto::faultmap::{FaultMap, RandomOptions};
use trainer::checkpoint;
use trainer::fleet::{self, Chip, FleetPlan, JobContext, Shard};
use trainer::mitigate::Mitigation;
use trainer::resilience::{Cell, ResilienceMap};
use trainer::retrain::RetrainConfig;

const DEVICE: &str = "model:4x4";

/// Rates up to 4/16 need 64 sample-steps, up to 8/16 need 128: the cells
/// claim perfect accuracy except (8/16, 64) at 0.001, so for any floor in
/// (0.001, 1] the least amounts and the grouping are the same.
fn resilience() -> ResilienceMap {
    let rates = vec![4.0 / 16.0, 8.0 / 16.0];
    let amounts = vec![64, 128];
    let cells = vec![
        Cell { rate: rates[0], amount: 64, samples: vec![1.0] },
        Cell { rate: rates[0], amount: 128, samples: vec![1.0] },
        Cell { rate: rates[1], amount: 64, samples: vec![0.001] },
        Cell { rate: rates[1], amount: 128, samples: vec![1.0] },
    ];
    let mut m = ResilienceMap {
        model: "pretrained".into(),
        device: DEVICE.into(),
        mitigation: "fat".into(),
        clean_accuracy: 1.0,
        accuracy: 0.5,
        percentile: 10.0,
        epoch_samples: 400,
        rates,
        amounts,
        cells,
        least: Vec::new(),
    };
    m.update_least();
    m
}

/// Five chips with 1–3 faulty PEs (several stuck bits each, so they hurt).
fn chips() -> Vec<Chip> {
    let opts = RandomOptions { bits: Some((2, 4)), ..Default::default() };
    [1.0, 2.0, 1.0, 3.0, 2.0]
        .iter()
        .enumerate()
        .map(|(i, &n)| Chip {
            name: format!("chip{i}"),
            map: FaultMap::random(4, 4, n / 16.0, 100 + i as u64, &opts).unwrap(),
        })
        .collect()
}

fn config() -> RetrainConfig {
    RetrainConfig {
        batch_size: 32,
        lr: 5e-3,
        eval_batch: 200,
        checkpoint_every: 0,
        seed: 3,
        ..Default::default()
    }
}

fn run_all(ctx: &JobContext, chips: &[Chip], floor: f64, dir: &Path, shards: usize) -> FleetPlan {
    let g = fleet::plan(chips, &resilience(), floor);
    for index in 0..shards {
        fleet::run_shard(ctx, &g, dir, Shard { index, count: shards }, &mut |_, _, _| {}).unwrap();
    }
    fleet::merge(dir).unwrap()
}

#[test]
fn sharded_plan_merges_to_the_unsharded_one_and_no_member_stays_below_the_floor() {
    let _g = util::lock();
    let f = util::data(400, 200);
    let (vs, model) = util::pretrained(&f, 5);
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("pretrained");
    checkpoint::save(&ck, &vs, &model, serde_json::json!({})).unwrap();
    let ctx =
        JobContext { model: &ck, device: DEVICE, train: &f.train, test: &f.test, config: config() };
    let chips = chips();

    // Floor 0.01 (any model beats it): nobody leaves; the grouping merges
    // chips up to a fused rate of 4/16 (64), beyond that 128.
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let pa = run_all(&ctx, &chips, 0.01, &a, 1);
    assert!(pa.groups.len() < chips.len(), "some chips are grouped: {:?}", pa.groups);
    assert!(pa.grouped_cost < pa.per_chip_cost, "{} vs {}", pa.grouped_cost, pa.per_chip_cost);
    assert_eq!(pa.chips_meeting_floor, chips.len());
    // Every member of a group computes what the fused map computes: the
    // same accuracy with the group's model on each member's own map.
    for g in &pa.groups {
        let accs: Vec<f64> =
            pa.chips.iter().filter(|c| c.group == g.id).map(|c| c.accuracy_after).collect();
        assert!(accs.windows(2).all(|w| w[0] == w[1]), "{}: {accs:?}", g.id);
        // The group's checkpoint records the group's bypass list.
        let meta = checkpoint::read_meta(&a.join(&g.checkpoint)).unwrap();
        assert_eq!(meta.mitigation.unwrap().bypass, g.bypass, "{}", g.id);
    }

    // Two shards into one directory, then merge: byte-identical plan.json.
    let pb = run_all(&ctx, &chips, 0.01, &b, 2);
    assert_eq!(pb, pa);
    assert_eq!(
        std::fs::read(a.join("plan.json")).unwrap(),
        std::fs::read(b.join("plan.json")).unwrap()
    );
    // A rerun skips finished jobs.
    let g = fleet::plan(&chips, &resilience(), 0.01);
    let rep = fleet::run_shard(&ctx, &g, &b, Shard::ALL, &mut |_, _, _| {}).unwrap();
    assert!(rep.ran.is_empty());
    assert_eq!(rep.skipped.len(), g.groups.len());
    // A rerun with other options in the same directory refuses the old
    // results rather than reuse them.
    let other = JobContext { config: RetrainConfig { lr: 1e-3, ..config() }, ..ctx };
    let e = fleet::run_shard(&other, &g, &b, Shard::ALL, &mut |_, _, _| {}).unwrap_err();
    assert!(e.to_string().contains("other options"), "{e}");
    let ctx = JobContext { config: config(), ..other };
    // Merging before every shard is done names the missing jobs.
    let c = tmp.path().join("c");
    fleet::run_shard(&ctx, &g, &c, Shard { index: 1, count: 2 }, &mut |_, _, _| {}).unwrap();
    let e = fleet::merge(&c).unwrap_err().to_string();
    assert!(e.contains("not done") && e.contains(&g.groups[0].id), "{e}");

    // A floor just above the weakest shared model: its members must leave
    // and be retrained alone; no chip stays in a group below the floor.
    let weakest = pa
        .groups
        .iter()
        .filter(|g| g.members.len() > 1)
        .map(|g| pa.chips.iter().find(|c| c.group == g.id).unwrap().accuracy_after)
        .fold(f64::INFINITY, f64::min);
    assert!(weakest.is_finite() && weakest < 1.0, "a group to leave: {weakest}");
    let floor = weakest + 1e-9;
    let d = tmp.path().join("d");
    let pd = run_all(&ctx, &chips, floor, &d, 1);
    assert_eq!(pd.groups, pa.groups, "the grouping does not depend on the floor here");
    let leavers: Vec<_> = pd.chips.iter().filter(|c| c.left_group).collect();
    assert!(!leavers.is_empty());
    let mut cost = pd.groups.iter().map(|g| g.amount).sum::<u64>();
    for c in &pd.chips {
        assert_eq!(c.meets_floor, c.accuracy_after >= floor, "{}", c.name);
        let size = pd.groups.iter().find(|g| g.id == c.group).unwrap().members.len();
        if c.left_group {
            assert!(size > 1);
            assert_eq!(c.checkpoint, format!("chips/{}", c.name));
            // Alone: its own map, no group bypass list.
            let meta = checkpoint::read_meta(&d.join(&c.checkpoint)).unwrap();
            assert!(meta.mitigation.unwrap().bypass.is_empty());
            cost += c.amount;
        } else if size > 1 {
            assert!(c.accuracy_after >= floor, "{} stayed below the floor", c.name);
        }
    }
    assert_eq!(pd.grouped_cost, cost);
}

#[test]
fn fap_groups_bypass_every_faulty_pe_and_amount_zero_retrains_nothing() {
    let _g = util::lock();
    let f = util::data(400, 200);
    let (vs, model) = util::pretrained(&f, 5);
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("pretrained");
    checkpoint::save(&ck, &vs, &model, serde_json::json!({})).unwrap();
    let chips = chips();
    for amount in [64, 0] {
        let mut res = resilience();
        for c in &mut res.cells {
            c.amount = if c.amount == 64 { amount } else { c.amount };
        }
        res.amounts[0] = amount;
        res.update_least();
        let ctx = JobContext {
            model: &ck,
            device: DEVICE,
            train: &f.train,
            test: &f.test,
            config: RetrainConfig { mitigation: Mitigation::Fap, ..config() },
        };
        let dir = tmp.path().join(format!("fap{amount}"));
        let g = fleet::plan(&chips, &res, 0.01);
        fleet::run_shard(&ctx, &g, &dir, Shard::ALL, &mut |_, _, _| {}).unwrap();
        let p = fleet::merge(&dir).unwrap();
        for (pg, planned) in p.groups.iter().zip(&g.groups) {
            // fap: the fused map's bypass list plus every PE still faulty in it.
            let mut want = planned.fused.bypass.clone();
            want.extend(trainer::mitigate::faulty_pes(&planned.fused.map));
            want.sort_unstable();
            want.dedup();
            assert_eq!(pg.bypass, want, "{}", pg.id);
            let meta = checkpoint::read_meta(&dir.join(&pg.checkpoint)).unwrap();
            let rec = meta.mitigation.unwrap();
            assert_eq!((rec.mitigation, &rec.bypass), (Mitigation::Fap, &want));
            let accs: Vec<f64> =
                p.chips.iter().filter(|c| c.group == pg.id).map(|c| c.accuracy_after).collect();
            assert!(accs.windows(2).all(|w| w[0] == w[1]), "{}: {accs:?}", pg.id);
            if amount == 0 {
                // No retraining: the pretrained weights themselves.
                let (gvs, _, _) = checkpoint::load(&dir.join(&pg.checkpoint)).unwrap();
                let (a, b) = (gvs.variables(), vs.variables());
                assert!(a.iter().all(|(k, t)| t.equal(&b[k])), "{}", pg.id);
            }
        }
    }
}
