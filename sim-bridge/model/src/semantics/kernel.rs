//! The fast MATMUL kernel (protocol §4), bit-exact to the literal reference.
//!
//! Why it is fast, and why that is still exact:
//! * Everything is computed in *physical* coordinates, one tile pass at a
//!   time, but lanes are ordered by *logical* column `c` (lane `c` holds
//!   physical column `(c+ρc) mod C`). Columns of the array never interact —
//!   activations move along rows, partial sums down columns — so any lane
//!   order is legal, and this one makes the weight loads and output stores
//!   contiguous.
//! * Stuck-at masks are fixed for the whole MATMUL, so they are folded into
//!   tables once: per PE the *composed* activation transform of every
//!   non-bypassed PE to its left (a composition of `(v|s1)&!s0` maps is again
//!   of that form), the psum masks (identity for a bypassed PE), and per pass
//!   the masked, sign-extended weight (0 for a bypassed PE, which makes its
//!   MAC a no-op). The inner loop is then branch-free:
//!   `x = (a|S1)&!S0; v = psum + x*w; psum = (v|P1)&!P0` on a fixed-size
//!   lane array. On x86-64 with AVX2 (detected at run time, so the crate
//!   needs no build flags) explicit intrinsics run it in groups of 8 lanes and
//!   skip the mask ops on rows where every mask is the identity; elsewhere a
//!   portable `[i32; L]` loop does the same arithmetic. Tests run both.
//! * 8-bit masks are stored sign-extended to 32 bits, so
//!   `(sext(a)|sext(S1))&!sext(S0) == sext((a|S1)&!S0)`: bits 8..31 are copies
//!   of bit 7 on both sides, and bit 7 goes through the same map.
//! * Pass numbers are `p0 + nt*KT + kt`, fixed by the request, so threads
//!   (taking blocks of activation rows `m` from a queue) never interact and the flip count is a
//!   plain sum. With SEU off (the FAT case) the hash is never evaluated; with
//!   SEU on a second instantiation of the same loop evaluates it per MAC.
//! * The outer-array accumulators are fault-free wrapping adds, so summing a
//!   row's K passes in registers before one store is the same value as the
//!   RTL's per-pass read-modify-write.

use super::{seu_alpha, seu_base, seu_index_term, seu_mix, PeFaults};

/// One validated MATMUL and the device state it reads.
pub(crate) struct MatmulArgs<'a> {
    pub rows: usize,
    pub cols: usize,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub rot_r: usize,
    pub rot_c: usize,
    pub base: usize,
    pub wmem: &'a [u8],
    /// `m*k` int8 activations, row-major.
    pub a: &'a [u8],
    /// Per physical PE, row-major.
    pub faults: &'a [PeFaults],
    pub seu_rate: u32,
    pub seed: u32,
    /// Pass number of the first pass.
    pub p0: u32,
    /// Force the portable (non-SIMD-intrinsics) tiles; for tests.
    pub portable: bool,
}

/// Below this many padded MACs, spawning threads costs more than it saves.
/// (Lower under test so the small random cases exercise the threaded path.)
const PAR_MIN_MACS: usize = if cfg!(test) { 1 << 12 } else { 1 << 18 };

/// Runs the MATMUL; returns the `m*n` results (row-major) and the number of
/// transient flips injected.
pub(crate) fn matmul(args: &MatmulArgs, threads: usize) -> (Vec<i32>, u64) {
    // Lane width: the smallest vector-friendly width that holds a PE row;
    // wider arrays are cut into independent column chunks of 32 lanes.
    if args.cols <= 8 {
        matmul_l::<8>(args, threads)
    } else if args.cols <= 16 {
        matmul_l::<16>(args, threads)
    } else {
        matmul_l::<32>(args, threads)
    }
}

/// Per (column chunk, physical row) constants of one MATMUL, lane = logical column.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct RowTab<const L: usize> {
    /// Composed act transform of the non-bypassed PEs left of this PE, sign-extended.
    s1: [i32; L],
    s0: [i32; L],
    /// This PE's psum masks; 0 (identity) for a bypassed PE or a padding lane.
    p1: [i32; L],
    p0: [i32; L],
}

/// Per (column chunk, physical row) constants used only when SEU is on.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct SeuTab<const L: usize> {
    /// -1 where the PE performs a MAC (exists and is not bypassed), else 0:
    /// bypassed PEs and padding lanes never flip and are never counted.
    active: [i32; L],
    /// `seu_index_term(pc)` of the PE's column in this lane (the same in every
    /// row of a chunk).
    col: [u32; L],
    /// `seu_index_term(pr)` of this physical row.
    row: u32,
}

/// `alpha * u(pc)` of the lanes of a chunk, the column half of the hash:
/// computed once per (row m, pass), shared by the chunk's rows.
#[inline(always)]
fn seu_cols<const L: usize>(seu: &[SeuTab<L>], base: u32) -> [u32; L] {
    let mut hc = [0u32; L];
    if let Some(s) = seu.first() {
        for (h, &col) in hc.iter_mut().zip(&s.col) {
            *h = seu_alpha(seu_mix(base ^ col));
        }
    }
    hc
}

/// Everything the worker threads share, read-only.
struct Ctx<const L: usize> {
    r: usize,
    c: usize,
    n: usize,
    kt_n: usize,
    nt_n: usize,
    chunks: usize,
    /// Logical tile row `r` that physical row `pr` carries: `(pr-ρr) mod R`.
    rr: Vec<usize>,
    /// Activations zero-padded to `KT*R` per row, so the padding rows need no branch.
    apad: Vec<u8>,
    kp: usize,
    tabs: Vec<RowTab<L>>,
    /// Per (chunk, row): bit 0 = some lane has a non-identity act transform,
    /// bit 1 = some lane has psum masks. With a few % of PEs faulty most rows
    /// are clean, and skipping identity masks halves the vector work there.
    row_flags: Vec<u8>,
    seu: Vec<SeuTab<L>>,
    /// Effective weights, index `((nt*KT + kt)*chunks + chunk)*R + pr`.
    w: Vec<[i32; L]>,
    rate: u32,
    seed: u32,
    p0: u32,
    /// Use the portable tiles even where AVX2 exists (tests cover both).
    portable: bool,
}

fn matmul_l<const L: usize>(args: &MatmulArgs, threads: usize) -> (Vec<i32>, u64) {
    let ctx = build_ctx::<L>(args);
    let mut out = vec![0i32; args.m * args.n];
    let padded_macs = args.m * ctx.kt_n * ctx.nt_n * ctx.r * ctx.chunks * L;
    let t = if padded_macs < PAR_MIN_MACS { 1 } else { threads.clamp(1, args.m) };
    if t == 1 {
        let flips = run_rows(&ctx, 0, &mut out);
        return (out, flips);
    }
    // Rows are handed out in blocks from a shared queue rather than one fixed
    // share per thread: the machine is usually shared, and with fixed shares
    // one descheduled thread holds up the whole MATMUL. ~8 blocks per thread
    // keeps the queue cheap and the tail short. Which thread computes a row
    // cannot change its value (pass numbers are fixed per request).
    let block = args.m.div_ceil(t * 8).max(1);
    let queue = std::sync::Mutex::new(out.chunks_mut(block * args.n).enumerate());
    let (ctx, queue) = (&ctx, &queue);
    let flips = std::thread::scope(|s| {
        let handles: Vec<_> = (0..t)
            .map(|_| {
                s.spawn(move || {
                    let mut flips = 0;
                    loop {
                        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                        let Some((i, rows)) = next else { return flips };
                        flips += run_rows(ctx, i * block, rows);
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("model worker panicked")).sum::<u64>()
    });
    (out, flips)
}

/// Folds the fault state, rotation and weights into the lane tables.
fn build_ctx<const L: usize>(a: &MatmulArgs) -> Ctx<L> {
    let (r, c) = (a.rows, a.cols);
    let kt_n = a.k.div_ceil(r);
    let nt_n = a.n.div_ceil(c);
    let chunks = c.div_ceil(L);
    let rr: Vec<usize> = (0..r).map(|pr| (pr + r - a.rot_r) % r).collect();
    let pe = |pr: usize, pc: usize| &a.faults[pr * c + pc];
    // Physical column carried by logical column `lc`, or None for a padding lane.
    let phys_col = |lc: usize| (lc < c).then(|| (lc + a.rot_c) % c);

    // Composed act transform before each physical PE, walking each row left to right.
    let mut pre = vec![(0u8, 0u8); r * c];
    for pr in 0..r {
        let (mut t1, mut t0) = (0u8, 0u8);
        for pc in 0..c {
            pre[pr * c + pc] = (t1, t0);
            let f = pe(pr, pc);
            if !f.bypass {
                // (t1,t0) then (b1,b0):  S0 = b0 | (t0 & !b1),  S1 = (b1 | t1) & !S0.
                let [b0, b1] = f.act;
                let s0 = b0 | (t0 & !b1);
                t1 = (b1 | t1) & !s0;
                t0 = s0;
            }
        }
    }

    let zero_row = RowTab { s1: [0; L], s0: [0; L], p1: [0; L], p0: [0; L] };
    let mut tabs = vec![zero_row; chunks * r];
    let mut seu = vec![SeuTab { active: [0; L], col: [0; L], row: 0 }; chunks * r];
    for ch in 0..chunks {
        for pr in 0..r {
            let (t, s) = (&mut tabs[ch * r + pr], &mut seu[ch * r + pr]);
            s.row = seu_index_term(pr as u32);
            for l in 0..L {
                let Some(pc) = phys_col(ch * L + l) else { continue };
                let f = pe(pr, pc);
                let (s1, s0) = pre[pr * c + pc];
                t.s1[l] = s1 as i8 as i32;
                t.s0[l] = s0 as i8 as i32;
                if !f.bypass {
                    t.p0[l] = f.psum[0] as i32;
                    t.p1[l] = f.psum[1] as i32;
                    s.active[l] = -1;
                }
                s.col[l] = seu_index_term(pc as u32);
            }
        }
    }

    let row_flags: Vec<u8> = tabs
        .iter()
        .map(|t| {
            let act = t.s1.iter().chain(&t.s0).any(|&v| v != 0);
            let psum = t.p1.iter().chain(&t.p0).any(|&v| v != 0);
            act as u8 | (psum as u8) << 1
        })
        .collect();

    let mut w = vec![[0i32; L]; nt_n * kt_n * chunks * r];
    for nt in 0..nt_n {
        for kt in 0..kt_n {
            for ch in 0..chunks {
                for pr in 0..r {
                    let row = &mut w[((nt * kt_n + kt) * chunks + ch) * r + pr];
                    let word = a.base + ((nt * kt_n + kt) * r + rr[pr]) * c;
                    for (l, wl) in row.iter_mut().enumerate() {
                        let lc = ch * L + l;
                        let Some(pc) = phys_col(lc) else { continue };
                        let f = pe(pr, pc);
                        if !f.bypass {
                            let [w0, w1] = f.weight;
                            *wl = ((a.wmem[word + lc] | w1) & !w0) as i8 as i32;
                        }
                    }
                }
            }
        }
    }

    let kp = kt_n * r;
    let mut apad = vec![0u8; a.m * kp];
    for (dst, src) in apad.chunks_exact_mut(kp).zip(a.a.chunks_exact(a.k)) {
        dst[..a.k].copy_from_slice(src);
    }

    Ctx {
        r,
        c,
        n: a.n,
        kt_n,
        nt_n,
        chunks,
        rr,
        apad,
        kp,
        tabs,
        row_flags,
        seu,
        w,
        rate: a.seu_rate,
        seed: a.seed,
        p0: a.p0,
        portable: a.portable,
    }
}

/// Computes output rows `m_lo..m_lo + out.len()/N`; returns the flips injected.
/// Dispatches to explicit AVX2 tiles when the CPU has AVX2 (checked at run
/// time, so the crate needs no build flags); the portable tiles otherwise.
fn run_rows<const L: usize>(ctx: &Ctx<L>, m_lo: usize, out: &mut [i32]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if !ctx.portable && std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe {
                if ctx.rate != 0 {
                    avx2::rows::<L, true>(ctx, m_lo, out)
                } else {
                    avx2::rows::<L, false>(ctx, m_lo, out)
                }
            };
        }
    }
    if ctx.rate != 0 {
        rows::<L, true, false>(ctx, m_lo, out)
    } else {
        rows::<L, false, false>(ctx, m_lo, out)
    }
}

/// The row loop shared by both builds; `AVX` selects the explicit AVX2 tiles
/// (only ever true inside [`avx2::rows`], which is compiled with AVX2).
#[inline(always)]
fn rows<const L: usize, const SEU: bool, const AVX: bool>(
    ctx: &Ctx<L>,
    m_lo: usize,
    out: &mut [i32],
) -> u64 {
    let (r, c, n) = (ctx.r, ctx.c, ctx.n);
    let mut flips = 0u64;
    for nt in 0..ctx.nt_n {
        let ncols = c.min(n - nt * c);
        for ch in 0..ctx.chunks {
            let lo = ch * L;
            // A chunk wholly in the padding columns only matters for its flips.
            if lo >= ncols && !SEU {
                break;
            }
            let tabs = &ctx.tabs[ch * r..(ch + 1) * r];
            let flags = &ctx.row_flags[ch * r..(ch + 1) * r];
            let seu = &ctx.seu[ch * r..(ch + 1) * r];
            for (i, orow) in out.chunks_exact_mut(n).enumerate() {
                let m = m_lo + i;
                let arow = &ctx.apad[m * ctx.kp..(m + 1) * ctx.kp];
                let mut acc = [0i32; L];
                let mut hits = [0i32; L];
                for kt in 0..ctx.kt_n {
                    let pass = nt * ctx.kt_n + kt;
                    let w = &ctx.w[(pass * ctx.chunks + ch) * r..][..r];
                    let ain = &arow[kt * r..(kt + 1) * r];
                    let ps = if SEU {
                        let base = seu_base(ctx.seed, ctx.p0.wrapping_add(pass as u32), m as u32);
                        #[cfg(target_arch = "x86_64")]
                        if AVX {
                            // SAFETY: AVX is only set inside avx2::rows, reached after detection.
                            unsafe {
                                avx2::tile_seu(
                                    ain, &ctx.rr, w, tabs, seu, base, ctx.rate, &mut hits,
                                )
                            }
                        } else {
                            tile_seu(ain, &ctx.rr, w, tabs, seu, base, ctx.rate, &mut hits)
                        }
                        #[cfg(not(target_arch = "x86_64"))]
                        tile_seu(ain, &ctx.rr, w, tabs, seu, base, ctx.rate, &mut hits)
                    } else {
                        #[cfg(target_arch = "x86_64")]
                        if AVX {
                            // SAFETY: as above.
                            unsafe { avx2::tile(ain, &ctx.rr, w, tabs, flags) }
                        } else {
                            tile(ain, &ctx.rr, w, tabs)
                        }
                        #[cfg(not(target_arch = "x86_64"))]
                        tile(ain, &ctx.rr, w, tabs)
                    };
                    for l in 0..L {
                        acc[l] = acc[l].wrapping_add(ps[l]);
                    }
                }
                if SEU {
                    flips += hits.iter().map(|&h| h as u64).sum::<u64>();
                }
                if lo < ncols {
                    let hi = (lo + L).min(ncols);
                    orow[nt * c + lo..nt * c + hi].copy_from_slice(&acc[..hi - lo]);
                }
            }
        }
    }
    flips
}

/// One pass of one activation row through the array, no transient faults:
/// returns the psums leaving the bottom of each lane's column.
#[inline(always)]
fn tile<const L: usize>(ain: &[u8], rr: &[usize], w: &[[i32; L]], tabs: &[RowTab<L>]) -> [i32; L] {
    let mut ps = [0i32; L];
    for ((&r, wr), t) in rr.iter().zip(w).zip(tabs) {
        let a = ain[r] as i8 as i32;
        for l in 0..L {
            let x = (a | t.s1[l]) & !t.s0[l];
            let v = ps[l].wrapping_add(x.wrapping_mul(wr[l]));
            ps[l] = (v | t.p1[l]) & !t.p0[l];
        }
    }
    ps
}

/// As [`tile`], with the transient flip of protocol §4 between the add and
/// the psum mask; `hits` counts flips per lane.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tile_seu<const L: usize>(
    ain: &[u8],
    rr: &[usize],
    w: &[[i32; L]],
    tabs: &[RowTab<L>],
    seu: &[SeuTab<L>],
    base: u32,
    rate: u32,
    hits: &mut [i32; L],
) -> [i32; L] {
    let mut ps = [0i32; L];
    // rate <= 2^27 and h >> 5 < 2^27, so a signed compare is exact (and vectorises).
    let rate = rate as i32;
    let hc = seu_cols(seu, base);
    for (((&r, wr), t), s) in rr.iter().zip(w).zip(tabs).zip(seu) {
        let a = ain[r] as i8 as i32;
        let hr = seu_mix(base ^ s.row);
        for l in 0..L {
            let x = (a | t.s1[l]) & !t.s0[l];
            let mut v = ps[l].wrapping_add(x.wrapping_mul(wr[l]));
            let h = hr ^ hc[l];
            let hit = -((((h >> 5) as i32) < rate) as i32) & s.active[l];
            v ^= hit & (1u32 << (h & 31)) as i32;
            hits[l] += hit & 1;
            ps[l] = (v | t.p1[l]) & !t.p0[l];
        }
    }
    ps
}

/// Explicit AVX2 versions of the tiles. The portable `[i32; L]` loops above
/// are what these compute; LLVM's vectoriser turned them into a half-scalar
/// mix (xmm + scalar lanes, ~1e9 MAC/s), so the hot path is spelled out:
/// lanes in groups of 8 (one ymm), `L/8` independent psum chains per row.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{seu_cols, seu_mix, Ctx, RowTab, SeuTab};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn rows<const L: usize, const SEU: bool>(
        ctx: &Ctx<L>,
        m_lo: usize,
        out: &mut [i32],
    ) -> u64 {
        super::rows::<L, SEU, true>(ctx, m_lo, out)
    }

    /// Lanes `8g..8g+8` of a lane array.
    #[inline(always)]
    unsafe fn ld<const L: usize, T>(a: &[T; L], g: usize) -> __m256i {
        debug_assert!(std::mem::size_of::<T>() == 4 && 8 * g + 8 <= L);
        _mm256_loadu_si256(a.as_ptr().add(8 * g) as *const __m256i)
    }

    /// At most 32 lanes (4 groups): the widest `L` the kernel instantiates.
    const MAX_G: usize = 4;

    #[inline(always)]
    unsafe fn store<const L: usize>(ps: &[__m256i; MAX_G]) -> [i32; L] {
        let mut out = [0i32; L];
        for (g, v) in ps.iter().enumerate().take(L / 8) {
            _mm256_storeu_si256(out.as_mut_ptr().add(8 * g) as *mut __m256i, *v);
        }
        out
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn tile<const L: usize>(
        ain: &[u8],
        rr: &[usize],
        w: &[[i32; L]],
        tabs: &[RowTab<L>],
        flags: &[u8],
    ) -> [i32; L] {
        let mut ps = [_mm256_setzero_si256(); MAX_G];
        for (((&r, wr), t), &f) in rr.iter().zip(w).zip(tabs).zip(flags) {
            let a = _mm256_set1_epi32(*ain.get_unchecked(r) as i8 as i32);
            // The same branch pattern repeats for every m, so it predicts well.
            for (g, p) in ps.iter_mut().enumerate().take(L / 8) {
                let x = if f & 1 != 0 {
                    _mm256_andnot_si256(ld(&t.s0, g), _mm256_or_si256(a, ld(&t.s1, g)))
                } else {
                    a
                };
                let v = _mm256_add_epi32(*p, _mm256_mullo_epi32(x, ld(wr, g)));
                *p = if f & 2 != 0 {
                    _mm256_andnot_si256(ld(&t.p0, g), _mm256_or_si256(v, ld(&t.p1, g)))
                } else {
                    v
                };
            }
        }
        store(&ps)
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn tile_seu<const L: usize>(
        ain: &[u8],
        rr: &[usize],
        w: &[[i32; L]],
        tabs: &[RowTab<L>],
        seu: &[SeuTab<L>],
        base: u32,
        rate: u32,
        hits: &mut [i32; L],
    ) -> [i32; L] {
        let mut ps = [_mm256_setzero_si256(); MAX_G];
        let mut hv = [_mm256_setzero_si256(); MAX_G];
        // The column halves once per call, the row half once per row.
        let hc = seu_cols(seu, base);
        // rate <= 2^27 and h >> 5 < 2^27: a signed compare is exact.
        let rate = _mm256_set1_epi32(rate as i32);
        let one = _mm256_set1_epi32(1);
        let low5 = _mm256_set1_epi32(31);
        for (((&r, wr), t), s) in rr.iter().zip(w).zip(tabs).zip(seu) {
            let a = _mm256_set1_epi32(*ain.get_unchecked(r) as i8 as i32);
            let hr = _mm256_set1_epi32(seu_mix(base ^ s.row) as i32);
            for g in 0..L / 8 {
                let x = _mm256_andnot_si256(ld(&t.s0, g), _mm256_or_si256(a, ld(&t.s1, g)));
                let mut v = _mm256_add_epi32(ps[g], _mm256_mullo_epi32(x, ld(wr, g)));
                // u(pr) ^ alpha * u(pc), lane-wise.
                let h = _mm256_xor_si256(hr, ld(&hc, g));
                let hit = _mm256_and_si256(
                    _mm256_cmpgt_epi32(rate, _mm256_srli_epi32(h, 5)),
                    ld(&s.active, g),
                );
                let bit = _mm256_sllv_epi32(one, _mm256_and_si256(h, low5));
                v = _mm256_xor_si256(v, _mm256_and_si256(hit, bit));
                hv[g] = _mm256_sub_epi32(hv[g], hit); // hit is -1 or 0
                ps[g] = _mm256_andnot_si256(ld(&t.p0, g), _mm256_or_si256(v, ld(&t.p1, g)));
            }
        }
        let h: [i32; L] = store(&hv);
        for l in 0..L {
            hits[l] += h[l];
        }
        store(&ps)
    }
}
