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
//!
//! How the pieces fit:
//! - this file: the [`Pyramid`] (θ, the colour matrix, the sparse step's
//!   buffers) and the level layout every other file uses ([`level_sizes`],
//!   `Levels`: where each level starts in θ and in every θ-shaped buffer).
//! - `collapse`: the dense way, a candle op that sums the upsampled levels,
//!   with its adjoint ([`Pyramid::texture`] applies colour and sigmoid).
//! - `sites`: the sparse step's bookkeeping, independent of values: which
//!   texels ("sites") of each level a view needs (what it reads, and the
//!   parents those read through the upsampling), as bit sets and ascending
//!   lists, and the walk over them in runs, row segments and parallel
//!   blocks.
//! - `kernels`: the per-block arithmetic, vectorized: colour and sigmoid
//!   (with a polynomial `exp`) and their adjoint.
//! - `sparse`: [`Pyramid::view`], [`Pyramid::descend`] and the backward
//!   between them: `sites` says where, `kernels` computes, level by level.

mod collapse;
mod kernels;
mod sites;
mod sparse;

use candle_core::{Device, Result, Tensor, Var};

use super::fft::color_matrix;
use collapse::Collapse;
use sparse::Work;

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

/// The levels of a pyramid of `planes` planes (materials · 3) and where
/// they lie in θ and in every θ-shaped buffer: level-major, finest first,
/// then `[planes, h, w]` per level.
struct Levels {
    sizes: Vec<(usize, usize)>,
    /// Level k is `offs[k]..offs[k + 1]`; the last entry is the total.
    offs: Vec<usize>,
}

impl Levels {
    fn new(planes: usize, height: usize, width: usize) -> Levels {
        let sizes = level_sizes(height, width);
        let mut offs = vec![0];
        for (h, w) in &sizes {
            offs.push(offs[offs.len() - 1] + planes * h * w);
        }
        Levels { sizes, offs }
    }

    fn len(&self) -> usize {
        self.sizes.len()
    }

    /// Values in all levels together.
    fn total(&self) -> usize {
        self.offs[self.sizes.len()]
    }

    /// The layout as [`crate::lookup::LookupTable::gather`] takes it: each
    /// level's start and texels per plane.
    fn layout(&self) -> Vec<(usize, usize)> {
        self.sizes
            .iter()
            .zip(&self.offs)
            .map(|(&(h, w), &o)| (o, h * w))
            .collect()
    }
}

pub struct Pyramid {
    materials: usize,
    height: usize,
    width: usize,
    /// All levels of all materials and channels, flat, as [`Levels`] lays
    /// them out.
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
        let n = Levels::new(materials * 3, height, width).total();
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

/// `n` test values, uniform in [−0.5, 0.5).
#[cfg(test)]
fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut r = crate::rng::SplitMix(seed);
    (0..n).map(|_| r.uniform() - 0.5).collect()
}
