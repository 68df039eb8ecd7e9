//! The sparse step's bookkeeping: which texels of each level a view needs,
//! and how the passes walk them. No values here, only indices.
//!
//! A site is a texel with all three channels, named by its channel-0 index
//! in its level's `[materials, 3, h, w]` layout (`material · 3hw + y · w +
//! x`). A view needs the sites it reads (at the levels it reads them) and,
//! level by level, the coarser sites those read through the upsampling
//! (their [`parents`]). [`Sites`] keeps them as bit sets and as ascending
//! lists. A view's sites come in long runs along texel rows, so the passes
//! walk a list as [`runs`] of consecutive sites, split into row
//! [`segments`] and, in parallel, into blocks ([`for_blocks`]): index
//! arithmetic once per segment, memory in order.

use std::ops::Range;

use candle_core::Result;
use rayon::prelude::*;

use crate::lookup::LookupTable;

/// Sites per parallel task.
pub(super) const SITES_PER_TASK: usize = 4096;

/// Sites per block of the forward's vectorized colour and sigmoid.
pub(super) const BLOCK: usize = 64;

/// Per level, the sites one view needs.
pub(super) struct Sites {
    materials: usize,
    sizes: Vec<(usize, usize)>,
    /// Per level, the sites this view needs, ascending, each once: read by
    /// the view or by a finer needed site.
    pub(super) need: Vec<Vec<u32>>,
    /// Per level, one bit per channel-0 index: in `need`, read by the view
    /// directly, and read by a finer needed site (a parent). Only the words
    /// of the channel-0 planes are ever set, cleared or scanned.
    pub(super) need_bits: Vec<Vec<u64>>,
    direct_bits: Vec<Vec<u64>>,
    pub(super) parent_bits: Vec<Vec<u64>>,
}

/// The coarse texel a fine coordinate `i` reads first (weight 3/4) and
/// second (1/4), on a coarse axis of `n` (see `collapse::upsample_add`).
#[inline]
pub(super) fn parents(i: usize, n: usize) -> (usize, usize) {
    let c = i / 2;
    // Wrapping without `%`: this runs per site in every pass.
    let other = if i % 2 == 1 {
        if c + 1 == n { 0 } else { c + 1 }
    } else if c == 0 {
        n - 1
    } else {
        c - 1
    };
    (c, other)
}

/// The fine coordinates (on an axis of `2n`) that read coarse coordinate
/// `c` (on an axis of `n`), with the weights [`parents`] gives them: the
/// transpose of the upsampling, as a gather.
#[inline]
pub(super) fn children(c: usize, n: usize) -> [(usize, f32); 4] {
    let f = 2 * n;
    [
        (if c == 0 { f - 1 } else { 2 * c - 1 }, 0.25),
        (2 * c, 0.75),
        (2 * c + 1, 0.75),
        (if 2 * c + 2 == f { 0 } else { 2 * c + 2 }, 0.25),
    ]
}

/// The ascending site list `sites` as runs of consecutive sites
/// `(first, count)`. A view's sites come in long runs along texel rows, so
/// the passes do their index arithmetic once per run and step through
/// a run's texels, and memory, in order.
pub(super) fn runs(sites: &[u32]) -> impl Iterator<Item = (u32, usize)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let first = *sites.get(i)?;
        let mut n = 1;
        while i + n < sites.len() && sites[i + n] == first + n as u32 {
            n += 1;
        }
        i += n;
        Some((first, n))
    })
}

/// Splits a run of `count` sites from `first`, on a level of `h × w`
/// texels per plane, into its pieces on one texel row: `f(first site,
/// material, y, x, count)`, the coordinates without a division per site. (A
/// run never leaves its material's channel-0 plane: the next index is a
/// channel-1 texel.)
#[inline]
fn segments(first: u32, count: usize, h: usize, w: usize, mut f: impl FnMut(u32, usize, usize, usize, usize)) {
    let hw = h * w;
    let (m, local) = (first as usize / (3 * hw), first as usize % (3 * hw));
    let (mut y, mut x) = (local / w, local % w);
    let (mut site, mut left) = (first, count);
    while left > 0 {
        let n = left.min(w - x);
        f(site, m, y, x, n);
        (site, left, x, y) = (site + n as u32, left - n, 0, y + 1);
    }
}

/// The word ranges of a level's bit sets that hold its channel-0 planes
/// (`hw` texels per plane): the only bits sites ever set. Ascending and
/// disjoint (neighbouring ranges merged where tiny planes share a word).
fn site_words(materials: usize, hw: usize) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::with_capacity(materials);
    for m in 0..materials {
        let r = 3 * m * hw / 64..((3 * m + 1) * hw).div_ceil(64);
        match out.last_mut() {
            Some(last) if last.end >= r.start => last.end = r.end,
            _ => out.push(r),
        }
    }
    out
}

impl Sites {
    /// Empty sets for `materials` materials on levels of `sizes`.
    pub(super) fn new(materials: usize, sizes: &[(usize, usize)]) -> Sites {
        let planes = 3 * materials;
        let bits = || {
            sizes
                .iter()
                .map(|(h, w)| vec![0; (planes * h * w).div_ceil(64)])
                .collect()
        };
        Sites {
            materials,
            sizes: sizes.to_vec(),
            need: sizes.iter().map(|_| Vec::new()).collect(),
            need_bits: bits(),
            direct_bits: bits(),
            parent_bits: bits(),
        }
    }

    /// Marks the sites `table` reads and, level by level, the coarser sites
    /// those depend on; lists them in ascending order (so that every later
    /// pass walks memory forwards).
    pub(super) fn mark(&mut self, table: &LookupTable) -> Result<()> {
        self.mark_direct(table)?;
        for k in 0..self.sizes.len() {
            let (h, w) = self.sizes[k];
            if k > 0 {
                self.mark_parents(k);
            }
            // Needed: read directly, or by a finer needed site.
            let words = site_words(self.materials, h * w);
            for j in words.iter().cloned().flatten() {
                self.need_bits[k][j] = self.direct_bits[k][j] | self.parent_bits[k][j];
            }
            list_marked(&self.need_bits[k], &words, &mut self.need[k]);
        }
        Ok(())
    }

    /// Clears the direct and parent bits, then sets the direct ones: the
    /// sites `table` reads.
    fn mark_direct(&mut self, table: &LookupTable) -> Result<()> {
        for (k, &(h, w)) in self.sizes.iter().enumerate() {
            for r in site_words(self.materials, h * w) {
                self.direct_bits[k][r.clone()].fill(0);
                self.parent_bits[k][r].fill(0);
            }
        }
        for (k, taps) in table.taps() {
            if k >= self.sizes.len() {
                candle_core::bail!(
                    "pyramid: the view reads mip level {k}, the pyramid has {}",
                    self.sizes.len()
                );
            }
            for &i in taps {
                set(&mut self.direct_bits[k], i as usize);
            }
        }
        Ok(())
    }

    /// Sets level `k`'s parent bits: the parents of level `k − 1`'s needed
    /// sites.
    fn mark_parents(&mut self, k: usize) {
        let (h, w) = self.sizes[k];
        let (fh, fw) = self.sizes[k - 1];
        let bits = &mut self.parent_bits[k];
        for (first, count) in runs(&self.need[k - 1]) {
            segments(first, count, fh, fw, |_, m, y, x, n| {
                // Fine texels x..x+n read the coarse columns
                // x/2 − [x even] ..= (x+n−1)/2 + [x+n−1 odd], wrapping.
                let last = x + n - 1;
                let lo = (x / 2) as isize - (x % 2 == 0) as isize;
                let hi = last / 2 + last % 2;
                let (y0, y1) = parents(y, h);
                for row in [y0, y1] {
                    let base = m * 3 * h * w + row * w;
                    set_range(bits, base + lo.max(0) as usize, base + hi.min(w - 1) + 1);
                    if lo < 0 {
                        set(bits, base + w - 1);
                    }
                    if hi == w {
                        set(bits, base);
                    }
                }
            });
        }
    }
}

#[inline]
fn set(bits: &mut [u64], i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

/// Sets bits `from..to`, a word at a time.
#[inline]
fn set_range(bits: &mut [u64], from: usize, to: usize) {
    let mut i = from;
    while i < to {
        let (word, bit) = (i / 64, i % 64);
        let n = (64 - bit).min(to - i);
        bits[word] |= (u64::MAX >> (64 - n)) << bit;
        i += n;
    }
}

#[inline]
pub(super) fn is_set(bits: &[u64], i: usize) -> bool {
    bits[i / 64] >> (i % 64) & 1 == 1
}

/// The indices of the set bits in the words `ranges` (ascending), ascending, into `out`.
fn list_marked(bits: &[u64], ranges: &[Range<usize>], out: &mut Vec<u32>) {
    out.clear();
    for j in ranges.iter().cloned().flatten() {
        let word = bits[j];
        let mut w = word;
        while w != 0 {
            out.push((j * 64) as u32 + w.trailing_zeros());
            w &= w - 1;
        }
    }
}

/// Up to [`BLOCK`] consecutive sites on one texel row: the first site, its
/// material, row and column, and how many.
#[derive(Clone, Copy)]
pub(super) struct Block {
    pub(super) site: u32,
    pub(super) material: usize,
    pub(super) y: usize,
    pub(super) x: usize,
    pub(super) len: usize,
}

/// Runs `f(scratch, block)` in parallel over the ascending site list `need`
/// of a level of `h × w` texels per plane, in blocks of at most [`BLOCK`]
/// consecutive sites on one texel row; each task has its own scratch rows,
/// one per channel.
pub(super) fn for_blocks(need: &[u32], h: usize, w: usize, f: impl Fn(&mut [[f32; BLOCK]; 3], Block) + Sync) {
    need.par_chunks(SITES_PER_TASK).for_each(|sites| {
        let mut scratch = [[0.0f32; BLOCK]; 3];
        for (first, count) in runs(sites) {
            segments(first, count, h, w, |site, material, y, x, n| {
                for b in (0..n).step_by(BLOCK) {
                    let block = Block { site: site + b as u32, material, y, x: x + b, len: BLOCK.min(n - b) };
                    f(&mut scratch, block);
                }
            });
        }
    });
}

/// The part of the ascending site list `need` in material `m` (`hw` texels per plane).
#[inline]
pub(super) fn of_material(need: &[u32], m: usize, hw: usize) -> &[u32] {
    let (lo, hi) = ((3 * m * hw) as u32, ((3 * m + 1) * hw) as u32);
    let a = need.partition_point(|&s| s < lo);
    let b = need.partition_point(|&s| s < hi);
    &need[a..b]
}

/// Where channel `c` of `site` lies in a `[materials, 3, h, w]` buffer of
/// `hw = h · w` texels per plane.
#[inline]
pub(super) fn at(site: u32, c: usize, hw: usize) -> usize {
    site as usize + c * hw
}

#[cfg(test)]
mod tests {
    use super::super::level_sizes;
    use super::*;

    #[test]
    fn set_range_sets_exactly_the_range() {
        for (from, to) in [(0, 0), (3, 4), (0, 64), (5, 64), (63, 65), (10, 190), (64, 128)] {
            let mut bits = vec![0u64; 4];
            set_range(&mut bits, from, to);
            for i in 0..256 {
                assert_eq!(is_set(&bits, i), (from..to).contains(&i), "{from}..{to}: bit {i}");
            }
        }
    }

    #[test]
    fn runs_and_segments_cover_each_site_once_with_its_coordinates() {
        // Two materials of 4 × 6 texels per plane; channel-0 sites only.
        let (h, w) = (4, 6);
        let sites: Vec<u32> = [0, 1, 2, 5, 6, 7, 8, 17, 18, 19, 20, 23, 72, 73, 80, 95]
            .into_iter()
            .collect();
        let mut seen = Vec::new();
        for (first, count) in runs(&sites) {
            segments(first, count, h, w, |site, m, y, x, n| {
                assert!(x + n <= w, "a segment stays on its row");
                for j in 0..n {
                    seen.push((site + j as u32, m, y, x + j));
                }
            });
        }
        let want: Vec<_> = sites
            .iter()
            .map(|&s| {
                let (m, local) = (s as usize / (3 * h * w), s as usize % (3 * h * w));
                (s, m, local / w, local % w)
            })
            .collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn mark_needs_what_the_view_reads_and_every_parent_of_it() {
        // Smooth views (long runs, rows read end to end) of a two-material
        // mip-mapped texture, and thin strips at the edges whose parents
        // exist only by wrapping, against a per-site brute force.
        use crate::raster::{FramePixel, RasterFrame};
        let (m, h, w, px) = (2, 64, 128, 48u32);
        type Uv = fn(f32, f32) -> (f32, f32);
        let views: [(Uv, [f32; 2]); 3] = [
            (|x, y| (x * 1.3 - 0.15, y * 1.1 - 0.05), [0.3, 1.6]),
            // Fine columns 126–127 and rows 62–63 only.
            (|x, y| (0.9895 + 0.005 * x, 0.009 + 0.013 * y), [0.0, 0.0]),
            // Fine columns 0–1 and rows 0–1 only.
            (|x, y| (0.005 + 0.006 * x, 0.978 + 0.013 * y), [0.0, 0.0]),
        ];
        for (view, (uv, lods)) in views.into_iter().enumerate() {
            let pixels = (0..px * px * 4)
                .map(|i| {
                    let (x, y) = ((i % (2 * px)) as f32, (i / (2 * px)) as f32);
                    let (u, v) = uv(x / (2 * px) as f32, y / (2 * px) as f32);
                    FramePixel { u, v, depth: 0.5, tri: 1 + (x > y) as u32 }
                })
                .collect();
            let frame = RasterFrame { width: px, height: px, samples: 2, pixels };
            let table = LookupTable::with_mips(&frame, &[0, 1], m, w as u32, h as u32, &lods, 3);
            let sizes = level_sizes(h, w);
            let mut sites = Sites::new(m, &sizes);
            sites.mark(&table).unwrap();
            let mut want: Vec<std::collections::BTreeSet<u32>> = sizes.iter().map(|_| Default::default()).collect();
            for (k, taps) in table.taps() {
                want[k].extend(taps);
            }
            for k in 1..sizes.len() {
                let ((fh, fw), (ch, cw)) = (sizes[k - 1], sizes[k]);
                for site in want[k - 1].clone() {
                    let (mat, local) = (site as usize / (3 * fh * fw), site as usize % (3 * fh * fw));
                    let ((y0, y1), (x0, x1)) = (parents(local / fw, ch), parents(local % fw, cw));
                    for (y, x) in [(y0, x0), (y0, x1), (y1, x0), (y1, x1)] {
                        want[k].insert((mat * 3 * ch * cw + y * cw + x) as u32);
                    }
                }
            }
            for k in 0..sizes.len() {
                let want: Vec<u32> = want[k].iter().copied().collect();
                assert!(!want.is_empty());
                assert_eq!(sites.need[k], want, "view {view}, level {k}");
            }
        }
    }

    #[test]
    fn children_are_exactly_the_fine_texels_whose_parents_name_them() {
        // The gather-form adjoint must see every (fine, weight) pair the
        // forward's parents give a coarse texel, wrapping included.
        for n in [1, 2, 3, 8] {
            for c in 0..n {
                let mut want: Vec<(usize, f32)> = (0..2 * n)
                    .flat_map(|i| {
                        let (p0, p1) = parents(i, n);
                        [(p0, 0.75), (p1, 0.25)].into_iter().filter(|&(p, _)| p == c).map(move |(_, w)| (i, w))
                    })
                    .collect();
                let mut got = children(c, n).to_vec();
                // Merge duplicates (n = 1: one coarse texel is both parents).
                for v in [&mut want, &mut got] {
                    v.sort_by_key(|a| a.0);
                    v.dedup_by(|a, b| a.0 == b.0 && { b.1 += a.1; true });
                }
                assert_eq!(got, want, "n = {n}, c = {c}");
            }
        }
    }
}
