//! The weight-memory layout of docs/protocol.md §3, and a weight-memory allocator.
//!
//! A K×N int8 matrix stored at `base` (a multiple of `cols`) is cut into
//! `KT = ceil(K/R)` × `NT = ceil(N/C)` tiles of R×C and laid out tile after
//! tile, N-tile major:
//!
//! ```text
//! addr(k, n) = base + ((nt*KT + kt)*R + r)*C + c     k = kt*R + r, n = nt*C + c
//! ```
//!
//! Padding positions (`k >= K` or `n >= N`) hold 0.

use std::fmt;

/// Errors from packing or allocating.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The matrix slice does not have K×N elements.
    #[error("matrix has {got} elements, expected K*N = {k}*{n} = {}", k * n)]
    WrongLength { k: usize, n: usize, got: usize },
    /// A zero dimension.
    #[error("matrix dimensions must be non-zero (K={k}, N={n}, array {rows}x{cols})")]
    ZeroDim { k: usize, n: usize, rows: usize, cols: usize },
    /// The weight memory has no room for the matrix.
    #[error(
        "weight memory full: matrix '{label}' ({k}x{n}) needs {need} bytes, \
         only {free} of {wmem} bytes are free (next base {next})"
    )]
    Full { label: String, k: usize, n: usize, need: usize, free: usize, wmem: usize, next: usize },
    /// A packed buffer of the wrong size was given to `unpack`.
    #[error("packed matrix has {got} bytes, the layout needs {expected}")]
    PackedLength { expected: usize, got: usize },
}

/// Where and how one K×N matrix lies in weight memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatrixLayout {
    /// Byte address of the first tile (a multiple of `cols`).
    pub base: usize,
    pub k: usize,
    pub n: usize,
    /// Array rows R.
    pub rows: usize,
    /// Array cols C.
    pub cols: usize,
}

/// Number of tiles `(KT, NT)` of a K×N matrix on an R×C array.
pub fn tiles(k: usize, n: usize, rows: usize, cols: usize) -> (usize, usize) {
    (k.div_ceil(rows), n.div_ceil(cols))
}

/// Bytes a K×N matrix occupies in weight memory: `KT*NT*R*C`.
pub fn packed_len(k: usize, n: usize, rows: usize, cols: usize) -> usize {
    let (kt, nt) = tiles(k, n, rows, cols);
    kt * nt * rows * cols
}

/// Pack a K×N row-major int8 matrix into the device layout (relative to its
/// base), padding included.
pub fn pack(
    w: &[i8],
    k: usize,
    n: usize,
    rows: usize,
    cols: usize,
) -> Result<Vec<u8>, LayoutError> {
    MatrixLayout::new(0, k, n, rows, cols)?.pack(w)
}

impl MatrixLayout {
    /// A layout; fails on a zero dimension.
    pub fn new(
        base: usize,
        k: usize,
        n: usize,
        rows: usize,
        cols: usize,
    ) -> Result<Self, LayoutError> {
        if k == 0 || n == 0 || rows == 0 || cols == 0 {
            return Err(LayoutError::ZeroDim { k, n, rows, cols });
        }
        Ok(MatrixLayout { base, k, n, rows, cols })
    }

    /// `(KT, NT)`.
    pub fn tiles(&self) -> (usize, usize) {
        tiles(self.k, self.n, self.rows, self.cols)
    }

    /// Bytes occupied, padding included.
    pub fn len(&self) -> usize {
        packed_len(self.k, self.n, self.rows, self.cols)
    }

    /// Never true for a valid layout (dimensions are non-zero).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One past the last byte.
    pub fn end(&self) -> usize {
        self.base + self.len()
    }

    /// Absolute weight-memory address of element `W[k_idx][n_idx]`
    /// (panics if the index is outside K×N).
    pub fn addr_of(&self, k_idx: usize, n_idx: usize) -> usize {
        assert!(
            k_idx < self.k && n_idx < self.n,
            "W[{k_idx}][{n_idx}] outside {}x{}",
            self.k,
            self.n
        );
        self.offset_of(k_idx, n_idx)
    }

    /// Address of a position in the padded matrix (no bounds check against K×N).
    fn offset_of(&self, k_idx: usize, n_idx: usize) -> usize {
        let (kt_n, _) = self.tiles();
        let (kt, r) = (k_idx / self.rows, k_idx % self.rows);
        let (nt, c) = (n_idx / self.cols, n_idx % self.cols);
        self.base + ((nt * kt_n + kt) * self.rows + r) * self.cols + c
    }

    /// The physical PE `(pr, pc)` that multiplies `W[k_idx][n_idx]` in a
    /// MATMUL under rotation `(rot_r, rot_c)` (docs/protocol.md §4): the
    /// element's position `(r, c)` inside its tile, from its address, moved
    /// by the rotation, `((r + rot_r) mod R, (c + rot_c) mod C)`. Every tile
    /// passes over the same PEs, so a PE holds all `W[k][n]` with
    /// `k ≡ pr − rot_r (mod R)` and `n ≡ pc − rot_c (mod C)`. Panics if the
    /// index is outside K×N.
    pub fn pe_of(&self, k_idx: usize, n_idx: usize, rot: (u8, u8)) -> (usize, usize) {
        let in_tile = (self.addr_of(k_idx, n_idx) - self.base) % (self.rows * self.cols);
        let (r, c) = (in_tile / self.cols, in_tile % self.cols);
        ((r + rot.0 as usize) % self.rows, (c + rot.1 as usize) % self.cols)
    }

    /// Pack a K×N row-major matrix into `len()` bytes (for writing at `base`).
    pub fn pack(&self, w: &[i8]) -> Result<Vec<u8>, LayoutError> {
        if w.len() != self.k * self.n {
            return Err(LayoutError::WrongLength { k: self.k, n: self.n, got: w.len() });
        }
        let mut out = vec![0u8; self.len()];
        for ki in 0..self.k {
            for ni in 0..self.n {
                out[self.offset_of(ki, ni) - self.base] = w[ki * self.n + ni] as u8;
            }
        }
        Ok(out)
    }

    /// Inverse of [`MatrixLayout::pack`]: the K×N row-major matrix (padding dropped).
    pub fn unpack(&self, packed: &[u8]) -> Result<Vec<i8>, LayoutError> {
        if packed.len() != self.len() {
            return Err(LayoutError::PackedLength { expected: self.len(), got: packed.len() });
        }
        let mut w = vec![0i8; self.k * self.n];
        for ki in 0..self.k {
            for ni in 0..self.n {
                w[ki * self.n + ni] = packed[self.offset_of(ki, ni) - self.base] as i8;
            }
        }
        Ok(w)
    }

    /// PATCH_WEIGHTS entries that turn matrix `old` into `new` (both K×N
    /// row-major): one `(addr, value)` per changed element.
    pub fn diff(&self, old: &[i8], new: &[i8]) -> Result<Vec<(u32, i8)>, LayoutError> {
        for w in [old, new] {
            if w.len() != self.k * self.n {
                return Err(LayoutError::WrongLength { k: self.k, n: self.n, got: w.len() });
            }
        }
        Ok(old
            .iter()
            .zip(new)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, (_, &b))| (self.addr_of(i / self.n, i % self.n) as u32, b))
            .collect())
    }
}

impl fmt::Display for MatrixLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kt, nt) = self.tiles();
        write!(
            f,
            "{}x{} at {:#x}..{:#x} ({}x{} tiles of {}x{})",
            self.k,
            self.n,
            self.base,
            self.end(),
            kt,
            nt,
            self.rows,
            self.cols
        )
    }
}

/// A bump allocator for several matrices in one weight memory: hands out
/// `cols`-aligned bases in order and fails clearly when the memory is full.
#[derive(Clone, Debug)]
pub struct WeightAllocator {
    wmem_bytes: usize,
    rows: usize,
    cols: usize,
    next: usize,
    allocated: Vec<(String, MatrixLayout)>,
}

impl WeightAllocator {
    /// An empty allocator for a `rows`x`cols` array with `wmem_bytes` of weight memory.
    pub fn new(wmem_bytes: usize, rows: usize, cols: usize) -> WeightAllocator {
        WeightAllocator { wmem_bytes, rows, cols, next: 0, allocated: Vec::new() }
    }

    /// An allocator sized from a device's INFO.
    pub fn for_info(info: &crate::frame::Info) -> WeightAllocator {
        WeightAllocator::new(info.wmem_bytes, info.rows, info.cols)
    }

    /// Reserve room for a K×N matrix called `label` (used in errors).
    pub fn alloc(&mut self, label: &str, k: usize, n: usize) -> Result<MatrixLayout, LayoutError> {
        let base = self.next.div_ceil(self.cols) * self.cols;
        let layout = MatrixLayout::new(base, k, n, self.rows, self.cols)?;
        if layout.end() > self.wmem_bytes {
            return Err(LayoutError::Full {
                label: label.to_string(),
                k,
                n,
                need: layout.len(),
                free: self.free_bytes(),
                wmem: self.wmem_bytes,
                next: base,
            });
        }
        self.next = layout.end();
        self.allocated.push((label.to_string(), layout));
        Ok(layout)
    }

    /// Bytes handed out so far.
    pub fn used_bytes(&self) -> usize {
        self.next
    }

    /// Bytes still free.
    pub fn free_bytes(&self) -> usize {
        self.wmem_bytes.saturating_sub(self.next)
    }

    /// Everything allocated, in order.
    pub fn allocations(&self) -> &[(String, MatrixLayout)] {
        &self.allocated
    }

    /// Forget every allocation.
    pub fn reset(&mut self) {
        self.next = 0;
        self.allocated.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_formula_small_example() {
        // K=3, N=5 on 2x2: KT=2, NT=3.
        let l = MatrixLayout::new(8, 3, 5, 2, 2).unwrap();
        assert_eq!(l.tiles(), (2, 3));
        assert_eq!(l.len(), 24);
        // addr(k, n) = base + ((nt*KT + kt)*R + r)*C + c
        for k in 0..3 {
            for n in 0..5 {
                let (kt, r, nt, c) = (k / 2, k % 2, n / 2, n % 2);
                assert_eq!(l.addr_of(k, n), 8 + ((nt * 2 + kt) * 2 + r) * 2 + c);
            }
        }
        let w: Vec<i8> = (1..=15).collect();
        let p = l.pack(&w).unwrap();
        // Tile (nt=0, kt=0): rows k=0,1 cols n=0,1.
        assert_eq!(&p[0..4], &[1, 2, 6, 7]);
        // Tile (nt=0, kt=1): k=2 then padding row.
        assert_eq!(&p[4..8], &[11, 12, 0, 0]);
        // Tile (nt=2, kt=0): n=4 then padding col.
        assert_eq!(&p[16..20], &[5, 0, 10, 0]);
        assert_eq!(&p[20..24], &[15, 0, 0, 0]);
        assert_eq!(l.unpack(&p).unwrap(), w);
    }

    #[test]
    fn pack_unpack_round_trip_and_padding_zero() {
        for (k, n, r, c) in [(1, 1, 4, 4), (16, 16, 16, 16), (17, 33, 16, 16), (100, 7, 8, 4)] {
            let w: Vec<i8> = (0..k * n).map(|i| (i as i32 * 37 % 255 - 127) as i8).collect();
            let p = pack(&w, k, n, r, c).unwrap();
            assert_eq!(p.len(), packed_len(k, n, r, c));
            let l = MatrixLayout::new(0, k, n, r, c).unwrap();
            assert_eq!(l.unpack(&p).unwrap(), w);
            // Every non-addressed byte is padding = 0.
            let mut used = vec![false; p.len()];
            for ki in 0..k {
                for ni in 0..n {
                    used[l.addr_of(ki, ni)] = true;
                }
            }
            assert!(p.iter().zip(&used).all(|(&b, &u)| u || b == 0));
            assert_eq!(used.iter().filter(|&&u| u).count(), k * n);
        }
    }

    #[test]
    fn errors() {
        assert_eq!(pack(&[1, 2], 1, 3, 4, 4), Err(LayoutError::WrongLength { k: 1, n: 3, got: 2 }));
        assert!(matches!(pack(&[], 0, 3, 4, 4), Err(LayoutError::ZeroDim { .. })));
        let l = MatrixLayout::new(0, 2, 2, 4, 4).unwrap();
        assert!(l.unpack(&[0; 3]).is_err());
    }

    #[test]
    fn diff_gives_patch_entries() {
        let l = MatrixLayout::new(32, 5, 6, 4, 4).unwrap();
        let old = vec![0i8; 30];
        let mut new = old.clone();
        new[7] = -3; // k=1, n=1
        new[29] = 9; // k=4, n=5
        let d = l.diff(&old, &new).unwrap();
        assert_eq!(d, vec![(l.addr_of(1, 1) as u32, -3), (l.addr_of(4, 5) as u32, 9)]);
    }

    #[test]
    fn pe_of_follows_the_address_and_the_rotation() {
        // K=10, N=7 on 4x3 at base 12: the PE is the element's row and column
        // inside its tile (k mod R, n mod C), shifted by the rotation.
        let l = MatrixLayout::new(12, 10, 7, 4, 3).unwrap();
        for rot in [(0u8, 0u8), (1, 2), (3, 1)] {
            let mut per_pe = [0usize; 12];
            for k in 0..10 {
                for n in 0..7 {
                    let (pr, pc) = l.pe_of(k, n, rot);
                    assert_eq!(
                        (pr, pc),
                        ((k % 4 + rot.0 as usize) % 4, (n % 3 + rot.1 as usize) % 3)
                    );
                    per_pe[pr * 3 + pc] += 1;
                }
            }
            // Every element lands on exactly one PE.
            assert_eq!(per_pe.iter().sum::<usize>(), 70);
        }
    }

    #[test]
    fn allocator_aligns_and_reports_full() {
        let mut a = WeightAllocator::new(1024, 4, 8);
        let l1 = a.alloc("fc1", 5, 9).unwrap(); // 2x2 tiles of 32 = 128
        assert_eq!((l1.base, l1.len()), (0, 128));
        let l2 = a.alloc("fc2", 3, 3).unwrap();
        assert_eq!(l2.base, 128);
        assert_eq!(l2.base % 8, 0);
        assert_eq!(a.used_bytes(), 160);
        let e = a.alloc("fc3", 40, 24).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("'fc3'") && s.contains("needs 960 bytes") && s.contains("864 of 1024"),
            "{s}"
        );
        // A failed alloc leaves the allocator unchanged.
        assert_eq!(a.used_bytes(), 160);
        let l3 = a.alloc("fc3", 4, 8).unwrap();
        assert_eq!(l3.base, 160);
        assert_eq!(a.allocations().len(), 3);
        a.reset();
        assert_eq!(a.free_bytes(), 1024);
    }
}
