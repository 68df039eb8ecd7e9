//! Laplacian-pyramid parameterization (as StyleMesh uses): θ holds one image
//! per level, full size down to a few texels, and the texture is their sum,
//! each level upsampled bilinearly to full size (wrapping, half-texel
//! centred), then mixed by the decorrelated colour matrix and a sigmoid
//! (as [`super::fft`]).
//!
//! Why: Adam moves every parameter by about the learning rate, so a coarse
//! level's step changes a whole region coherently. Large strokes form early
//! and cheaply, and a view that minifies a part (ears) updates its coarse
//! levels rather than sprinkling noise over single texels.
//!
//! Two ways through it:
//! - [`Pyramid::texture`]: the whole texture, on candle's autograd tape
//!   (previews, export, held-out views). The collapse (sum of upsampled
//!   levels) and its adjoint are hand-written loops, O(texels · 4/3).
//! - [`Pyramid::view`] / [`Pyramid::descend`]: the optimization step. Only
//!   the texels one view reads are evaluated (with the coarser texels they
//!   depend on), the gradient flows back to exactly those, and Adam updates
//!   only them (lazily). With mip-mapped tables (coarse levels for minified
//!   samples) a step's texture side grows with the view far more than with
//!   the texel count: `cargo bench --bench texture` measured 8 ms at 512²,
//!   25–36 ms at 2048² and 38–48 ms at 4096² for spot's 256² views (dense:
//!   ~650 ms at 2048²). The sites a view needs come in long runs along texel
//!   rows, so every pass walks row segments: index arithmetic once per
//!   segment, memory in order, the colour and sigmoid (and their adjoint)
//!   vectorized over blocks of sites.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Result, Shape, Storage, Tensor, Var};
use rayon::prelude::*;

use super::fft::color_matrix;
use crate::adam::Adam;
use crate::disjoint::Disjoint;
use crate::lookup::LookupTable;

/// Coarsest level side: stop halving below this many texels.
const MIN_SIDE: usize = 8;

/// The level sizes `(height, width)` of a `height × width` texture, finest first.
pub fn level_sizes(height: usize, width: usize) -> Vec<(usize, usize)> {
    let mut sizes = vec![(height, width)];
    let (mut h, mut w) = (height, width);
    while h % 2 == 0 && w % 2 == 0 && h / 2 >= MIN_SIDE && w / 2 >= MIN_SIDE {
        (h, w) = (h / 2, w / 2);
        sizes.push((h, w));
    }
    sizes
}

pub struct Pyramid {
    materials: usize,
    height: usize,
    width: usize,
    /// All levels of all materials and channels, flat: level-major, then
    /// `[materials · 3, h, w]` per level.
    theta: Var,
    /// Normalized colour matrix `[3, 3]`.
    color: Tensor,
    /// The same, as numbers: `rgb[c] = Σ_d color[c][d] · x[d]`.
    color3: [[f32; 3]; 3],
    /// Buffers of the sparse step, allocated on the first [`Pyramid::view`].
    work: Option<Work>,
}

impl Pyramid {
    pub fn new(materials: usize, height: usize, width: usize, seed: u64) -> Result<Pyramid> {
        let planes = materials * 3;
        let n: usize = level_sizes(height, width)
            .iter()
            .map(|(h, w)| planes * h * w)
            .sum();
        let theta = Var::from_vec(super::normal(n, super::INIT_SIGMA, seed), n, &Device::Cpu)?;
        let color = color_matrix()?;
        let c = color.to_vec2::<f32>()?;
        let color3 = [0, 1, 2].map(|r| [c[r][0], c[r][1], c[r][2]]);
        Ok(Pyramid {
            materials,
            height,
            width,
            theta,
            color,
            color3,
            work: None,
        })
    }

    pub fn vars(&self) -> Vec<Var> {
        vec![self.theta.clone()]
    }

    pub fn texture(&self) -> Result<Tensor> {
        let (m, h, w) = (self.materials, self.height, self.width);
        let op = Collapse {
            planes: m * 3,
            height: h,
            width: w,
        };
        let img = self.theta.as_tensor().apply_op1(op)?;
        let t = img.reshape((m, 3, h * w))?;
        let color = self.color.unsqueeze(0)?.broadcast_as((m, 3, 3))?;
        candle_nn::ops::sigmoid(&color.matmul(&t)?.reshape((m, 3, h, w))?)
    }
}

/// The sparse step's buffers, reused from view to view. Every level-sized
/// buffer is θ-shaped: level k's `[materials, 3, h_k, w_k]` at `offs[k]`.
struct Work {
    materials: usize,
    sizes: Vec<(usize, usize)>,
    /// Start of each level in θ and in the buffers below.
    offs: Vec<usize>,
    /// Per level, the sites this view needs, ascending, each once: read by
    /// the view or by a finer needed site. A site is a texel with all three
    /// channels, named by its channel-0 index in the level's layout
    /// (`material · 3hw + y · w + x`).
    need: Vec<Vec<u32>>,
    /// Per level, one bit per channel-0 index: in `need`, read by the view
    /// directly, and read by a finer needed site (a parent). Only the words
    /// of the channel-0 planes are ever set, cleared or scanned.
    need_bits: Vec<Vec<u64>>,
    direct_bits: Vec<Vec<u64>>,
    parent_bits: Vec<Vec<u64>>,
    /// The collapsed levels at the needed sites, then (in `descend`) dL/dθ
    /// there. Other entries are stale.
    acc: Vec<f32>,
    /// The texture of each level (colour, sigmoid) at the needed sites
    /// (the view reads it at the direct ones).
    tex: Vec<f32>,
    /// dL/d`tex` at the needed sites (zeroed by `view`; zero but at the direct ones).
    dtex: Vec<f32>,
}

/// The coarse texel a fine coordinate `i` reads first (weight 3/4) and
/// second (1/4), on a coarse axis of `n` (see [`upsample_add`]).
#[inline]
fn parents(i: usize, n: usize) -> (usize, usize) {
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
fn children(c: usize, n: usize) -> [(usize, f32); 4] {
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
/// the passes below do their index arithmetic once per run and step through
/// a run's texels, and memory, in order.
fn runs(sites: &[u32]) -> impl Iterator<Item = (u32, usize)> + '_ {
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
fn site_words(materials: usize, hw: usize) -> Vec<std::ops::Range<usize>> {
    let mut out: Vec<std::ops::Range<usize>> = Vec::with_capacity(materials);
    for m in 0..materials {
        let r = 3 * m * hw / 64..((3 * m + 1) * hw).div_ceil(64);
        match out.last_mut() {
            Some(last) if last.end >= r.start => last.end = r.end,
            _ => out.push(r),
        }
    }
    out
}

impl Work {
    fn new(planes: usize, height: usize, width: usize) -> Work {
        let sizes = level_sizes(height, width);
        let mut offs = vec![0];
        for (h, w) in &sizes {
            offs.push(offs.last().unwrap() + planes * h * w);
        }
        let bits = || {
            sizes
                .iter()
                .map(|(h, w)| vec![0; (planes * h * w).div_ceil(64)])
                .collect()
        };
        let n = *offs.last().unwrap();
        Work {
            need: sizes.iter().map(|_| Vec::new()).collect(),
            materials: planes / 3,
            need_bits: bits(),
            direct_bits: bits(),
            parent_bits: bits(),
            acc: crate::hugepages::zeroed(n),
            tex: crate::hugepages::zeroed(n),
            dtex: crate::hugepages::zeroed(n),
            sizes,
            offs,
        }
    }

    /// The layout of the level buffers, as [`LookupTable::gather`] takes it.
    fn layout(&self) -> Vec<(usize, usize)> {
        self.sizes
            .iter()
            .zip(&self.offs)
            .map(|(&(h, w), &o)| (o, h * w))
            .collect()
    }

    /// Marks the sites `table` reads and, level by level, the coarser sites
    /// those depend on; lists them in ascending order (so that every later
    /// pass walks memory forwards).
    fn mark(&mut self, table: &LookupTable) -> Result<()> {
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
        for k in 0..self.sizes.len() {
            let (h, w) = self.sizes[k];
            if k > 0 {
                // The parents of the finer level's needed sites.
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
            // Needed: read directly, or by a finer needed site.
            let words = site_words(self.materials, h * w);
            for j in words.iter().cloned().flatten() {
                self.need_bits[k][j] = self.direct_bits[k][j] | self.parent_bits[k][j];
            }
            list_marked(&self.need_bits[k], &words, &mut self.need[k]);
        }
        Ok(())
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

/// The indices of the set bits in the words `ranges` (ascending), ascending, into `out`.
fn list_marked(bits: &[u64], ranges: &[std::ops::Range<usize>], out: &mut Vec<u32>) {
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

/// Runs `f(scratch, first site, material, y, x, count)` in parallel over
/// the ascending site list `need` of a level of `h × w` texels per plane, in
/// blocks of at most [`BLOCK`] consecutive sites on one texel row; each task
/// has its own scratch rows, one per channel.
fn for_blocks(
    need: &[u32],
    h: usize,
    w: usize,
    f: impl Fn(&mut [[f32; BLOCK]; 3], u32, usize, usize, usize, usize) + Sync,
) {
    need.par_chunks(SITES_PER_TASK).for_each(|sites| {
        let mut scratch = [[0.0f32; BLOCK]; 3];
        for (first, count) in runs(sites) {
            segments(first, count, h, w, |site, m, y, x, n| {
                for b in (0..n).step_by(BLOCK) {
                    f(&mut scratch, site + b as u32, m, y, x + b, BLOCK.min(n - b));
                }
            });
        }
    });
}

/// The part of the ascending site list `need` in material `m` (`hw` texels per plane).
#[inline]
fn of_material(need: &[u32], m: usize, hw: usize) -> &[u32] {
    let (lo, hi) = ((3 * m * hw) as u32, ((3 * m + 1) * hw) as u32);
    let a = need.partition_point(|&s| s < lo);
    let b = need.partition_point(|&s| s < hi);
    &need[a..b]
}

/// Sites per parallel task.
const SITES_PER_TASK: usize = 4096;

/// Sites per block of the forward's vectorized colour and sigmoid.
const BLOCK: usize = 64;

/// `e^x` to within 2 ulp (Cephes' `expf`: `x = k·ln 2 + r`, a degree-5
/// polynomial for `e^r`), in plain arithmetic so that a loop over it
/// vectorizes; libm's `expf` is a call per element.
#[inline(always)]
fn exp(x: f32) -> f32 {
    // Bounds that keep 2^k a normal number; NaN passes through.
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest by the 1.5·2²³ shift (no SSE4.1 rounding needed).
    const SHIFT: f32 = 12_582_912.0;
    let k = (x * std::f32::consts::LOG2_E + SHIFT) - SHIFT;
    // ln 2 in two parts, so k·ln 2 is exact to f32.
    let r = (x - k * 0.693_359_4) - k * -2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    (p * r * r + r + 1.0) * f32::from_bits(((k as i32 + 127) << 23) as u32)
}

/// `out[c] = σ(Σ_d color[c][d] · v[d])` for each element: the texture of
/// collapsed values (the colour matrix, then the sigmoid).
#[inline(always)]
fn color_sigmoid_body(color: &[[f32; 3]; 3], v: [&[f32]; 3], out: [&mut [f32]; 3]) {
    let n = v[0].len();
    let (v0, v1, v2) = (&v[0][..n], &v[1][..n], &v[2][..n]);
    let [o0, o1, o2] = out;
    let (o0, o1, o2) = (&mut o0[..n], &mut o1[..n], &mut o2[..n]);
    for j in 0..n {
        let x = [v0[j], v1[j], v2[j]];
        let z = |c: usize| color[c][0] * x[0] + color[c][1] * x[1] + color[c][2] * x[2];
        o0[j] = 1.0 / (1.0 + exp(-z(0)));
        o1[j] = 1.0 / (1.0 + exp(-z(1)));
        o2[j] = 1.0 / (1.0 + exp(-z(2)));
    }
}

/// The adjoint of [`color_sigmoid_body`] at its output `t`, given the
/// output's gradient `dt`: `out[d] = Σ_c color[c][d] · dt[c] · t[c](1 − t[c])
/// + below[d]` for each element.
#[inline(always)]
fn color_sigmoid_adjoint_body(color: &[[f32; 3]; 3], t: [&[f32]; 3], dt: [&[f32]; 3], below: [&[f32]; 3], out: [&mut [f32]; 3]) {
    let n = t[0].len();
    let (t, dt, below) = (t.map(|s| &s[..n]), dt.map(|s| &s[..n]), below.map(|s| &s[..n]));
    let [o0, o1, o2] = out;
    let (o0, o1, o2) = (&mut o0[..n], &mut o1[..n], &mut o2[..n]);
    for j in 0..n {
        let u = [0, 1, 2].map(|c| dt[c][j] * (t[c][j] * (1.0 - t[c][j])));
        let own = |d: usize| color[0][d] * u[0] + color[1][d] * u[1] + color[2][d] * u[2];
        o0[j] = below[0][j] + own(0);
        o1[j] = below[1][j] + own(1);
        o2[j] = below[2][j] + own(2);
    }
}

crate::simd::multiversion!(fn color_sigmoid_adjoint(color: &[[f32; 3]; 3], t: [&[f32]; 3], dt: [&[f32]; 3], below: [&[f32]; 3], out: [&mut [f32]; 3]) => color_sigmoid_adjoint_body);

crate::simd::multiversion!(fn color_sigmoid(color: &[[f32; 3]; 3], v: [&[f32]; 3], out: [&mut [f32]; 3]) => color_sigmoid_body);

/// Where channel `c` of `site` lies in a `[materials, 3, h, w]` buffer of
/// `hw = h · w` texels per plane.
#[inline]
fn at(site: u32, c: usize, hw: usize) -> usize {
    site as usize + c * hw
}

#[inline]
fn is_set(bits: &[u64], i: usize) -> bool {
    bits[i / 64] >> (i % 64) & 1 == 1
}

impl Pyramid {
    /// The learned image `[1, 3, height, width]` of the view `table`
    /// describes, over `background`: the texture evaluated at only the texels
    /// the view reads (at the levels it reads them, for a mip-mapped table:
    /// level k's texture is the colour and sigmoid of the pyramid collapsed
    /// down to level k). Not on candle's tape: [`Pyramid::descend`] is its
    /// backward.
    pub fn view(&mut self, table: &Arc<LookupTable>, background: [f32; 3]) -> Result<Tensor> {
        let planes = self.materials * 3;
        let work = self
            .work
            .get_or_insert_with(|| Work::new(planes, self.height, self.width));
        work.mark(table)?;
        let layout = work.layout();
        let (storage, th_layout) = self.theta.as_tensor().storage_and_layout();
        let Storage::Cpu(CpuStorage::F32(data)) = &*storage else {
            candle_core::bail!("pyramid: expected f32 parameters on the CPU")
        };
        let Some((start, end)) = th_layout.contiguous_offsets() else {
            candle_core::bail!("pyramid: parameters must be contiguous")
        };
        let theta = &data[start..end];
        let Work {
            sizes,
            offs,
            need,
            parent_bits,
            acc,
            tex,
            dtex,
            ..
        } = work;
        let color = self.color3;
        // Coarse to fine: acc_k = θ_k + up(acc_{k+1}) at the needed sites,
        // and the level's texture there.
        let last = sizes.len() - 1;
        for k in (0..=last).rev() {
            let (h, w) = sizes[k];
            let hw = h * w;
            let r = offs[k]..offs[k + 1];
            let (this, coarser) = acc[offs[k]..].split_at_mut(r.len());
            let th = &theta[r.clone()];
            let coarse = &coarser[..offs[(k + 2).min(last + 1)] - offs[k + 1]];
            let (ch, cw) = sizes[(k + 1).min(last)];
            let parent = &parent_bits[k];
            let (acc_k, tex_k, dtex_k) = (
                Disjoint::new(this),
                Disjoint::new(&mut tex[r.clone()]),
                Disjoint::new(&mut dtex[r]),
            );
            for_blocks(&need[k], h, w, |v, s0, m, y, x0, len| {
                // The collapsed values of the block's sites.
                for (c, v) in v.iter_mut().enumerate() {
                    let (th, v) = (&th[at(s0, c, hw)..][..len], &mut v[..len]);
                    if k == last {
                        v.copy_from_slice(th);
                        continue;
                    }
                    let ((y0, y1), chw) = (parents(y, ch), ch * cw);
                    let plane = &coarse[(3 * m + c) * chw..][..chw];
                    let (r0, r1) = (&plane[y0 * cw..][..cw], &plane[y1 * cw..][..cw]);
                    for (j, v) in v.iter_mut().enumerate() {
                        let (p0, p1) = parents(x0 + j, cw);
                        // The same operations, in the same order, as upsample_add.
                        let (a, b) = (0.75 * r0[p0] + 0.25 * r0[p1], 0.75 * r1[p0] + 0.25 * r1[p1]);
                        *v = th[j] + (0.75 * a + 0.25 * b);
                    }
                }
                let i = [0, 1, 2].map(|c| at(s0, c, hw));
                // SAFETY: sites are distinct; each task writes only its own.
                unsafe {
                    // Only parents' collapsed values have a reader (the
                    // finer level): at level 1 about one needed site in ten.
                    if k > 0 {
                        for (c, &i) in i.iter().enumerate() {
                            let out = acc_k.slice(i, len);
                            for j in 0..len {
                                if is_set(parent, (s0 + j as u32) as usize) {
                                    out[j] = v[c][j];
                                }
                            }
                        }
                    }
                    // The texture and its zeroed gradient at every needed
                    // site (contiguous, so vectorized): entries the view
                    // does not read are harmless.
                    for &i in &i {
                        dtex_k.slice(i, len).fill(0.0);
                    }
                    color_sigmoid(
                        &color,
                        [&v[0][..len], &v[1][..len], &v[2][..len]],
                        i.map(|i| tex_k.slice(i, len)),
                    );
                }
            });
        }
        drop(storage);
        let image = table.gather(tex, &layout, background);
        Tensor::from_vec(
            image,
            (1, 3, table.height as usize, table.width as usize),
            &Device::Cpu,
        )
    }

    /// The backward of [`Pyramid::view`] for the same `table`: the gradient
    /// of the loss in the learned image, `grad_image` (`[1, 3, height, width]`),
    /// taken back to θ at the sites the view needed (exactly: nowhere else
    /// does it differ from zero), then one lazy Adam step there.
    pub fn descend(
        &mut self,
        table: &LookupTable,
        grad_image: &Tensor,
        adam: &mut Adam,
    ) -> Result<()> {
        self.backward(table, grad_image)?;
        let Some(Work {
            sizes,
            offs,
            need,
            acc,
            ..
        }) = &self.work
        else {
            candle_core::bail!("pyramid: descend before view")
        };
        let planes = 3 * self.materials;
        adam.step_lazy(0, |theta, m, v, update| {
            let (th, m, v) = (Disjoint::new(theta), Disjoint::new(m), Disjoint::new(v));
            for (k, &(h, w)) in sizes.iter().enumerate() {
                let hw = h * w;
                // Tasks of one plane's sites each: one task streams through
                // one plane's θ, moments and gradient (measured faster than
                // all three channels at once: fewer memory streams), and
                // chunks keep both cores busy (three planes would not).
                let tasks: Vec<(usize, &[u32])> = (0..planes)
                    .flat_map(|p| {
                        of_material(&need[k], p / 3, hw)
                            .chunks(SITES_PER_TASK)
                            .map(move |sites| (p, sites))
                    })
                    .collect();
                tasks.par_iter().for_each(|&(p, sites)| {
                    for (first, count) in runs(sites) {
                        let i = offs[k] + at(first, p % 3, hw);
                        // SAFETY: a (plane, site) pair belongs to one task.
                        let (th, m, v) = unsafe { (th.slice(i, count), m.slice(i, count), v.slice(i, count)) };
                        update.apply_all(th, m, v, &acc[i..i + count]);
                    }
                });
            }
        })
    }

    /// The gradient part of [`Pyramid::descend`]: fills `work.acc` with
    /// dL/dθ at every needed site (level by level).
    fn backward(&mut self, table: &LookupTable, grad_image: &Tensor) -> Result<()> {
        let Some(work) = &mut self.work else {
            candle_core::bail!("pyramid: descend before view")
        };
        let layout = work.layout();
        let g = grad_image
            .to_device(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let Work {
            sizes,
            offs,
            need,
            need_bits,
            parent_bits,
            acc,
            tex,
            dtex,
            ..
        } = work;
        // dL/dtex at the direct sites (zeroed by `view`): the lookup's scatter.
        table.scatter(&g, dtex, &layout);
        let color = self.color3;
        // Fine to coarse, level by level: dL/dacc_k at the needed sites is
        // the level's own share (dL/dtex back through its sigmoid and
        // colour matrix; zero where the view does not read the level, as
        // `view` zeroed dtex at every needed site) plus, for k > 0, Uᵀ
        // dL/dacc_{k−1}: a gather (each coarse site sums the up to 16
        // needed fine sites that read it, so tasks never write the same
        // entry). At the finest level it is dL/dθ_0.
        for k in 0..sizes.len() {
            let (h, w) = sizes[k];
            let hw = h * w;
            let r = offs[k]..offs[k + 1];
            let (t, dt) = (&tex[r.clone()], &dtex[r.clone()]);
            let (finer, this) = acc[..offs[k + 1]].split_at_mut(offs[k]);
            let fine = if k > 0 { &finer[offs[k - 1]..] } else { &finer[..0] };
            let (fh, fw) = if k > 0 { sizes[k - 1] } else { (0, 0) };
            let fhw = fh * fw;
            let (fine_bits, parent) = (&need_bits[k.saturating_sub(1)], &parent_bits[k]);
            let out = Disjoint::new(this);
            for_blocks(&need[k], h, w, |below, s0, m, y, x0, len| {
                for (j, x) in (x0..x0 + len).enumerate() {
                    let mut g = [0.0f32; 3];
                    // Sites no finer needed site reads get nothing from below.
                    if k > 0 && is_set(parent, (s0 + j as u32) as usize) {
                        for (fy, wy) in children(y, h) {
                            for (fx, wx) in children(x, w) {
                                let fsite = 3 * m * fhw + fy * fw + fx;
                                // Fine sites no one needs have no gradient (and stale entries).
                                if is_set(fine_bits, fsite) {
                                    for (c, g) in g.iter_mut().enumerate() {
                                        *g += (wy * wx) * fine[fsite + c * fhw];
                                    }
                                }
                            }
                        }
                    }
                    for c in 0..3 {
                        below[c][j] = g[c];
                    }
                }
                let i = [0, 1, 2].map(|c| at(s0, c, hw));
                // SAFETY: sites are distinct; each task writes only its own.
                unsafe {
                    color_sigmoid_adjoint(
                        &color,
                        i.map(|i| &t[i..i + len]),
                        i.map(|i| &dt[i..i + len]),
                        [&below[0][..len], &below[1][..len], &below[2][..len]],
                        i.map(|i| out.slice(i, len)),
                    );
                }
            });
        }
        Ok(())
    }
}

/// Flat levels → `[planes, height, width]`: the sum of every level upsampled.
struct Collapse {
    planes: usize,
    height: usize,
    width: usize,
}

/// Bilinear ×2 upsampling of `src` (`h × w`, wrapping) added into `dst` (`2h × 2w`).
/// A fine texel `i` sits at coarse coordinate `i/2 − 1/4`: weights 3/4 and 1/4.
fn upsample_add(src: &[f32], h: usize, w: usize, dst: &mut [f32]) {
    let w2 = 2 * w;
    let wrap = |i: isize, n: usize| i.rem_euclid(n as isize) as usize;
    // Horizontal pass once per coarse row, then the vertical mix of neighbouring rows.
    let mut rows = vec![0.0f32; h * w2];
    for (y, out) in rows.chunks_exact_mut(w2).enumerate() {
        let r = &src[y * w..(y + 1) * w];
        for j in 0..w {
            let (l, c, rt) = (r[wrap(j as isize - 1, w)], r[j], r[wrap(j as isize + 1, w)]);
            out[2 * j] = 0.75 * c + 0.25 * l;
            out[2 * j + 1] = 0.75 * c + 0.25 * rt;
        }
    }
    for j in 0..h {
        let row = &rows[j * w2..(j + 1) * w2];
        let above = &rows[wrap(j as isize - 1, h) * w2..][..w2];
        let below = &rows[wrap(j as isize + 1, h) * w2..][..w2];
        let (d0, d1) = dst[2 * j * w2..(2 * j + 2) * w2].split_at_mut(w2);
        for x in 0..w2 {
            d0[x] += 0.75 * row[x] + 0.25 * above[x];
            d1[x] += 0.75 * row[x] + 0.25 * below[x];
        }
    }
}

/// The adjoint of [`upsample_add`]: `dst` (`h × w`) = Uᵀ `src` (`2h × 2w`).
fn upsample_adjoint(src: &[f32], h: usize, w: usize, dst: &mut [f32]) {
    let w2 = 2 * w;
    let wrap = |i: isize, n: usize| i.rem_euclid(n as isize) as usize;
    // Vertical adjoint into a 2w-wide row per coarse row, then horizontal.
    let mut col = vec![0.0f32; h * w2];
    for j in 0..h {
        let r = &mut col[j * w2..(j + 1) * w2];
        let (a, b) = (2 * j, 2 * j + 1);
        let (up, down) = (wrap(2 * j as isize - 1, 2 * h), (2 * j + 2) % (2 * h));
        for x in 0..w2 {
            r[x] = 0.75 * (src[a * w2 + x] + src[b * w2 + x])
                + 0.25 * (src[up * w2 + x] + src[down * w2 + x]);
        }
    }
    for j in 0..h {
        let r = &col[j * w2..(j + 1) * w2];
        for i in 0..w {
            let (l, rt) = (wrap(2 * i as isize - 1, w2), (2 * i + 2) % w2);
            dst[j * w + i] = 0.75 * (r[2 * i] + r[2 * i + 1]) + 0.25 * (r[l] + r[rt]);
        }
    }
}

impl Collapse {
    fn offsets(&self) -> (Vec<(usize, usize)>, Vec<usize>) {
        let sizes = level_sizes(self.height, self.width);
        let mut offs = vec![0];
        for (h, w) in &sizes {
            offs.push(offs.last().unwrap() + self.planes * h * w);
        }
        (sizes, offs)
    }
}

impl CustomOp1 for Collapse {
    fn name(&self) -> &'static str {
        "pyramid-collapse"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("pyramid: expected f32 parameters")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("pyramid: parameters must be contiguous")
        };
        let theta = &data[start..end];
        let (sizes, offs) = self.offsets();
        if theta.len() != *offs.last().unwrap() {
            candle_core::bail!(
                "pyramid: {} parameters, expected {}",
                theta.len(),
                offs.last().unwrap()
            );
        }
        // Coarse to fine: acc_k = up(acc_{k+1}) + θ_k, per plane.
        let mut acc: Vec<f32> = Vec::new();
        for k in (0..sizes.len()).rev() {
            let (h, w) = sizes[k];
            let mut next = theta[offs[k]..offs[k + 1]].to_vec();
            if k + 1 < sizes.len() {
                let (ch, cw) = sizes[k + 1];
                for p in 0..self.planes {
                    upsample_add(
                        &acc[p * ch * cw..(p + 1) * ch * cw],
                        ch,
                        cw,
                        &mut next[p * h * w..(p + 1) * h * w],
                    );
                }
            }
            acc = next;
        }
        Ok((
            CpuStorage::F32(acc),
            Shape::from((self.planes, self.height, self.width)),
        ))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let g = grad_res.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let (sizes, offs) = self.offsets();
        let mut grad = vec![0.0f32; *offs.last().unwrap()];
        grad[..g.len()].copy_from_slice(&g);
        // Fine to coarse: g_{k+1} = Uᵀ g_k.
        for k in 0..sizes.len() - 1 {
            let (h, w) = sizes[k + 1];
            let (fine, coarse) = grad[offs[k]..offs[k + 2]].split_at_mut(offs[k + 1] - offs[k]);
            let fp = 4 * h * w;
            for p in 0..self.planes {
                upsample_adjoint(
                    &fine[p * fp..(p + 1) * fp],
                    h,
                    w,
                    &mut coarse[p * h * w..(p + 1) * h * w],
                );
            }
        }
        Ok(Some(Tensor::from_vec(grad, arg.shape(), arg.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut r = crate::rng::SplitMix(seed);
        (0..n).map(|_| r.uniform() - 0.5).collect()
    }

    #[test]
    fn exp_is_within_a_few_ulp_of_libm() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f32 / 200_000.0;
            let want = (x as f64).exp();
            worst = worst.max(((exp(x) as f64 - want) / want).abs());
        }
        assert!(worst < 4e-7, "worst relative error {worst:e}");
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(-1e4) >= 0.0 && exp(1e4).is_finite());
    }

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
            let mut work = Work::new(3 * m, h, w);
            work.mark(&table).unwrap();
            let sizes = level_sizes(h, w);
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
                assert_eq!(work.need[k], want, "view {view}, level {k}");
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
                    v.sort_by(|a, b| a.0.cmp(&b.0));
                    v.dedup_by(|a, b| a.0 == b.0 && { b.1 += a.1; true });
                }
                assert_eq!(got, want, "n = {n}, c = {c}");
            }
        }
    }

    #[test]
    fn upsampling_adjoint_is_the_transpose() {
        // ⟨U x, y⟩ = ⟨x, Uᵀ y⟩ for random x, y, on a non-square grid.
        let (h, w) = (3, 5);
        let (x, y) = (random(h * w, 1), random(4 * h * w, 2));
        let mut ux = vec![0.0; 4 * h * w];
        upsample_add(&x, h, w, &mut ux);
        let mut uty = vec![0.0; h * w];
        upsample_adjoint(&y, h, w, &mut uty);
        let a: f64 = ux.iter().zip(&y).map(|(a, b)| (a * b) as f64).sum();
        let b: f64 = x.iter().zip(&uty).map(|(a, b)| (a * b) as f64).sum();
        assert!((a - b).abs() < 1e-5 * a.abs().max(1.0), "{a} vs {b}");
    }

    #[test]
    fn upsampling_keeps_constants_and_ramps() {
        // A constant stays constant; a wrapped ramp's interior is interpolated linearly.
        let (h, w) = (4, 4);
        let mut out = vec![0.0; 64];
        upsample_add(&[2.0; 16], h, w, &mut out);
        assert!(out.iter().all(|&v| (v - 2.0).abs() < 1e-6));
        let ramp: Vec<f32> = (0..16).map(|i| (i % 4) as f32).collect();
        let mut out = vec![0.0; 64];
        upsample_add(&ramp, h, w, &mut out);
        // Fine x = 3 lies at coarse 1.25: 0.75·1 + 0.25·2.
        assert!((out[3] - 1.25).abs() < 1e-6, "{}", out[3]);
    }

    /// A view of `px × px` pixels, 2×2 samples, of which about two thirds
    /// cover one of two triangles (materials 0 and 1) at random UVs, some
    /// outside [0, 1] to wrap.
    fn view_table(px: u32, materials: usize, h: usize, w: usize, seed: u64) -> Arc<LookupTable> {
        let frame = view_frame(px, seed);
        Arc::new(LookupTable::new(
            &frame,
            &[0, (materials > 1) as u32],
            materials,
            w as u32,
            h as u32,
        ))
    }

    fn view_frame(px: u32, seed: u64) -> crate::raster::RasterFrame {
        use crate::raster::{FramePixel, RasterFrame};
        let mut r = crate::rng::SplitMix(seed);
        let pixels = (0..px * px * 4)
            .map(|_| {
                let (u, v, pick) = (
                    r.uniform() * 1.2 - 0.1,
                    r.uniform() * 1.2 - 0.1,
                    r.uniform(),
                );
                if pick < 0.33 {
                    FramePixel::default()
                } else {
                    FramePixel {
                        u,
                        v,
                        depth: 0.5,
                        tri: 1 + (pick > 0.66) as u32,
                    }
                }
            })
            .collect();
        RasterFrame {
            width: px,
            height: px,
            samples: 2,
            pixels,
        }
    }

    /// Level k's texture of each material, computed densely by the
    /// collapse op from level k down and candle's colour and sigmoid.
    fn level_images(p: &Pyramid) -> Vec<Vec<crate::image_io::Image>> {
        let theta = p.theta.as_tensor().to_vec1::<f32>().unwrap();
        let (m, planes) = (p.materials, p.materials * 3);
        let mut start = 0;
        level_sizes(p.height, p.width)
            .into_iter()
            .map(|(h, w)| {
                let rest =
                    Tensor::from_slice(&theta[start..], theta.len() - start, &Device::Cpu).unwrap();
                start += planes * h * w;
                let acc = rest
                    .apply_op1(Collapse {
                        planes,
                        height: h,
                        width: w,
                    })
                    .unwrap();
                let color = p
                    .color
                    .unsqueeze(0)
                    .unwrap()
                    .broadcast_as((m, 3, 3))
                    .unwrap();
                let t = color.matmul(&acc.reshape((m, 3, h * w)).unwrap()).unwrap();
                let t = candle_nn::ops::sigmoid(&t.reshape((m, 3, h, w)).unwrap()).unwrap();
                (0..m)
                    .map(|i| crate::image_io::tensor_to_image(&t.get(i).unwrap()).unwrap())
                    .collect()
            })
            .collect()
    }

    /// dL/dθ from one sparse step (see [`gradient_adam`]) for L = Σ view ⊙ `weights`,
    /// with θ before and after.
    fn sparse_gradient(
        p: &mut Pyramid,
        table: &Arc<LookupTable>,
        weights: &Tensor,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let base = p.theta.as_tensor().to_vec1::<f32>().unwrap();
        let mut adam = gradient_adam(p);
        p.view(table, [0.0; 3]).unwrap();
        p.descend(table, weights, &mut adam).unwrap();
        let after = p.theta.as_tensor().to_vec1::<f32>().unwrap();
        let grad = after
            .iter()
            .zip(&base)
            .map(|(a, b)| (b - a) * 1e3)
            .collect();
        (base, grad, after)
    }

    /// Central differences of L = Σ view ⊙ `weights` at θ = `base`, entry `i`.
    fn finite_difference(
        p: &mut Pyramid,
        table: &Arc<LookupTable>,
        weights: &Tensor,
        base: &[f32],
        i: usize,
    ) -> f64 {
        let eps = 1e-2;
        let mut f = |d: f32| -> f64 {
            let mut theta = base.to_vec();
            theta[i] += d;
            p.theta
                .set(&Tensor::from_slice(&theta, theta.len(), &Device::Cpu).unwrap())
                .unwrap();
            (p.view(table, [0.0; 3]).unwrap() * weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap() as f64
        };
        (f(eps) - f(-eps)) / (2.0 * eps as f64)
    }

    #[test]
    fn a_mip_mapped_view_reads_each_level_trilinearly() {
        let (m, h, w) = (2, 32, 64);
        let mut p = Pyramid::new(m, h, w, 5).unwrap();
        let n = p.theta.elem_count();
        p.theta
            .set(&Tensor::from_vec(random(n, 9), n, &Device::Cpu).unwrap())
            .unwrap();
        let frame = view_frame(6, 4);
        // Triangle 1 between levels 1 and 2, triangle 2 between 0 and 1.
        let lods = [1.3f32, 0.4];
        let table = Arc::new(LookupTable::with_mips(
            &frame,
            &[0, 1],
            m,
            w as u32,
            h as u32,
            &lods,
            2,
        ));
        assert!(table.has_mips());
        let bg = [0.1, 0.2, 0.3];
        let got =
            crate::texture::tensor_to_image(&p.view(&table, bg).unwrap().get(0).unwrap()).unwrap();
        // The reference: per sample, the two levels' images blended, the samples averaged.
        let levels = level_images(&p);
        for y in 0..6 {
            for x in 0..6 {
                let mut want = [0.0f32; 3];
                for (sx, sy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let s = frame.at(2 * x + sx, 2 * y + sy);
                    let rgb = if !s.covered() {
                        bg
                    } else {
                        let (mat, l) = (s.tri as usize - 1, lods[s.tri as usize - 1]);
                        let (k, f) = (l.floor() as usize, l.fract());
                        let a = crate::lookup::sample_bilinear(&levels[k][mat], s.uv());
                        let b = crate::lookup::sample_bilinear(&levels[k + 1][mat], s.uv());
                        [0, 1, 2].map(|c| (1.0 - f) * a[c] + f * b[c])
                    };
                    for c in 0..3 {
                        want[c] += rgb[c] / 4.0;
                    }
                }
                let px = got.pixel(x, y);
                for c in 0..3 {
                    assert!(
                        (px[c] - want[c]).abs() < 1e-5,
                        "pixel ({x}, {y}) channel {c}: {} vs {}",
                        px[c],
                        want[c]
                    );
                }
            }
        }
    }

    #[test]
    fn a_mip_mapped_views_gradient_matches_finite_differences() {
        let (m, h, w) = (2, 32, 64);
        let frame = view_frame(5, 11);
        let table = Arc::new(LookupTable::with_mips(
            &frame,
            &[0, 1],
            m,
            w as u32,
            h as u32,
            &[2.5, 0.7],
            2,
        ));
        let weights = Tensor::from_vec(random(3 * 25, 12), (1, 3, 5, 5), &Device::Cpu).unwrap();
        let mut p = Pyramid::new(m, h, w, 13).unwrap();
        let (base, grad, _) = sparse_gradient(&mut p, &table, &weights);
        let mut q = Pyramid::new(m, h, w, 13).unwrap();
        let offs: Vec<usize> = level_sizes(h, w)
            .iter()
            .scan(0, |o, (lh, lw)| {
                let s = *o;
                *o += m * 3 * lh * lw;
                Some(s)
            })
            .collect();
        // Probes where the gradient lives (every level), and some where it is zero.
        let live: Vec<usize> = (0..base.len())
            .filter(|&i| grad[i].abs() > 1e-3)
            .step_by(29)
            .collect();
        assert!(
            offs.iter().all(|&o| live.iter().any(|&i| i >= o)),
            "probes in every level"
        );
        let dead: Vec<usize> = (0..base.len())
            .filter(|&i| grad[i] == 0.0)
            .step_by(97)
            .take(20)
            .collect();
        assert!(!dead.is_empty());
        for i in live.into_iter().chain(dead) {
            let fd = finite_difference(&mut q, &table, &weights, &base, i);
            assert!(
                (fd - grad[i] as f64).abs() < 1e-3 + 2e-3 * fd.abs(),
                "θ[{i}]: fd {fd} vs sparse {}",
                grad[i]
            );
        }
    }

    /// Adam's first step with a huge ε moves θ by −lr·g/(|g| + ε) ≈ −g/1000:
    /// the step shows the gradient.
    fn gradient_adam(p: &Pyramid) -> Adam {
        Adam::new(
            p.vars(),
            crate::adam::AdamParams {
                lr: 100.0,
                eps: 1e5,
                ..Default::default()
            },
        )
    }

    #[test]
    fn a_view_reads_the_same_texture_as_the_dense_path() {
        let mut p = Pyramid::new(2, 16, 32, 5).unwrap();
        // Give every level visible structure.
        let n = p.theta.elem_count();
        p.theta
            .set(&Tensor::from_vec(random(n, 6), n, &Device::Cpu).unwrap())
            .unwrap();
        for seed in [1, 2] {
            let table = view_table(6, 2, 16, 32, seed);
            let sparse = p
                .view(&table, [0.1, 0.2, 0.3])
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let dense =
                crate::lookup::lookup(&p.texture().unwrap(), &table, [0.1, 0.2, 0.3]).unwrap();
            let dense = dense.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for (a, b) in sparse.iter().zip(&dense) {
                assert!((a - b).abs() < 1e-6, "view {seed}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn a_views_gradient_matches_the_dense_path_and_finite_differences() {
        let (m, h, w) = (2, 16, 32);
        let table = view_table(5, m, h, w, 3);
        let weights = Tensor::from_vec(random(3 * 25, 7), (1, 3, 5, 5), &Device::Cpu).unwrap();
        // Dense: candle's autograd through texture() and lookup().
        let p = Pyramid::new(m, h, w, 8).unwrap();
        let base = p.theta.as_tensor().to_vec1::<f32>().unwrap();
        let loss = |t: &Tensor| {
            (crate::lookup::lookup(t, &table, [0.0; 3]).unwrap() * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let dense = loss(&p.texture().unwrap())
            .backward()
            .unwrap()
            .get(&p.theta)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        // Sparse: one descend; read the gradient off the step.
        let mut q = Pyramid::new(m, h, w, 8).unwrap();
        let mut adam = gradient_adam(&q);
        q.view(&table, [0.0; 3]).unwrap();
        q.descend(&table, &weights, &mut adam).unwrap();
        let after = q.theta.as_tensor().to_vec1::<f32>().unwrap();
        let sparse: Vec<f32> = after
            .iter()
            .zip(&base)
            .map(|(a, b)| (b - a) * 1e3)
            .collect();
        let (mut touched, mut coarse_touched) = (0, 0);
        let fine = m * 3 * h * w;
        for i in 0..base.len() {
            assert!(
                (sparse[i] - dense[i]).abs() < 2e-4 + 1e-3 * dense[i].abs(),
                "θ[{i}]: sparse {} vs dense {}",
                sparse[i],
                dense[i]
            );
            if dense[i] == 0.0 {
                assert_eq!(
                    after[i], base[i],
                    "θ[{i}] has no gradient and must not move"
                );
            } else {
                touched += 1;
                coarse_touched += (i >= fine) as usize;
            }
        }
        assert!(
            touched > 100 && coarse_touched > 20 && touched < base.len(),
            "{touched} touched, {coarse_touched} coarse"
        );
        // Finite differences of the view itself, in the fine and the coarse level.
        let mut r = Pyramid::new(m, h, w, 8).unwrap();
        let mut f = |theta: &[f32]| -> f64 {
            r.theta
                .set(&Tensor::from_slice(theta, theta.len(), &Device::Cpu).unwrap())
                .unwrap();
            (r.view(&table, [0.0; 3]).unwrap() * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap() as f64
        };
        let probes: Vec<usize> = (0..base.len())
            .filter(|&i| dense[i].abs() > 1e-3)
            .step_by(37)
            .collect();
        assert!(probes.iter().any(|&i| i >= fine) && probes.iter().any(|&i| i < fine));
        for i in probes {
            let eps = 1e-2;
            let (mut plus, mut minus) = (base.clone(), base.clone());
            plus[i] += eps;
            minus[i] -= eps;
            let fd = (f(&plus) - f(&minus)) / (2.0 * eps as f64);
            assert!(
                (fd - sparse[i] as f64).abs() < 1e-3 + 2e-3 * fd.abs(),
                "θ[{i}]: fd {fd} vs sparse {}",
                sparse[i]
            );
        }
    }

    #[test]
    fn collapse_gradient_matches_finite_differences() {
        let p = Pyramid::new(1, 16, 32, 3).unwrap();
        let n = p.theta.elem_count();
        assert_eq!(n, 3 * (16 * 32 + 8 * 16));
        let w = Tensor::from_vec(random(3 * 16 * 32, 4), (1, 3, 16, 32), &Device::Cpu).unwrap();
        let f = |p: &Pyramid| (p.texture().unwrap() * &w).unwrap().sum_all().unwrap();
        let grads = f(&p).backward().unwrap();
        let g = grads.get(&p.theta).unwrap().to_vec1::<f32>().unwrap();
        let base = p.theta.as_tensor().to_vec1::<f32>().unwrap();
        // Probe texels in the fine and the coarse level.
        for &i in &[0usize, 77, 3 * 16 * 32 - 1, 3 * 16 * 32 + 5, n - 1] {
            let eps = 1e-2;
            let mut plus = base.clone();
            plus[i] += eps;
            p.theta
                .set(&Tensor::from_vec(plus, n, &Device::Cpu).unwrap())
                .unwrap();
            let fp = f(&p).to_scalar::<f32>().unwrap();
            let mut minus = base.clone();
            minus[i] -= eps;
            p.theta
                .set(&Tensor::from_vec(minus, n, &Device::Cpu).unwrap())
                .unwrap();
            let fm = f(&p).to_scalar::<f32>().unwrap();
            p.theta
                .set(&Tensor::from_vec(base.clone(), n, &Device::Cpu).unwrap())
                .unwrap();
            let fd = (fp - fm) / (2.0 * eps);
            assert!(
                (fd - g[i]).abs() < 2e-3 * g[i].abs().max(0.05),
                "θ[{i}]: fd {fd} vs {}",
                g[i]
            );
        }
    }
}
