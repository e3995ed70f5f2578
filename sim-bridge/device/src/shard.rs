//! `--shard i/n`: split numbered jobs across CI runners or the tasks of a
//! Slurm job array. Job `k` belongs to shard `k mod n`, so the shards of one
//! run are disjoint and their union is the unsharded run. Used by
//! `faultloop verify` (cases) and by the trainer's resilience maps (chips)
//! and fleets (groups).

use serde::{Deserialize, Serialize};

/// One shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// A `--shard` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad --shard `{input}`: {msg}")]
pub struct ShardError {
    pub input: String,
    pub msg: String,
}

impl Shard {
    /// Every job: an unsharded run.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether job `k` is this shard's.
    pub fn owns(self, k: usize) -> bool {
        k % self.count == self.index
    }
}

impl std::str::FromStr for Shard {
    type Err = ShardError;
    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let bad = |msg: &str| ShardError { input: s.into(), msg: msg.into() };
        let (i, n) = s.split_once('/').ok_or_else(|| bad("expected INDEX/COUNT, e.g. 0/4"))?;
        let index = i.trim().parse().map_err(|_| bad("the index is not a whole number"))?;
        let count: usize = n.trim().parse().map_err(|_| bad("the count is not a whole number"))?;
        if count == 0 {
            return Err(bad("the count must be at least 1"));
        }
        if index >= count {
            return Err(bad("the index must be below the count (shards are 0-based)"));
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}
