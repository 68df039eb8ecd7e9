//! Nearest-neighbour feature matching (NNFM, Zhang et al. 2022, "ARF: Artistic Radiance
//! Fields"): each feature vector of the view is pulled towards the painting's feature vector at
//! the smallest cosine distance. Where a Gram matrix only matches statistics (and paints soft,
//! smeared strokes), this asks every place of the view to look like some place of the painting.
//!
//! Per layer `l` and image, with `f_p` the view's feature at position `p` (`P` positions) and
//! `s_j` the painting's (the `N` kept positions, [`NnfmTerm::painting`]):
//! `weight · (1/P) Σ_p (1 − cos(f_p, s_{j*(p)}))`, `j*(p) = argmax_j cos(f_p, s_j)`.
//! The gradient treats `j*` as a constant, as ARF does (the minimum of smooth functions has
//! this gradient wherever the nearest neighbour is unique):
//! `d(1 − cos)/df = −(ŝ − cos · f̂) / ‖f‖`. A position whose feature is zero (every channel
//! off) has no direction: distance 1, no gradient.
//!
//! The search is one product of unit rows, view `[P, C]` against painting `[N, C]`, by the fast
//! path's GEMM with the painting packed once, in blocks of view rows (each thread keeps one
//! `[block, N]` tile and its argmax, never the whole `[P, N]`). It runs on the CPU whatever the
//! network's device.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::vgg::{self, Layer, Vgg};

/// ARF's layers: VGG16's third block.
pub const NNFM_LAYERS: [&str; 3] = ["relu3_1", "relu3_2", "relu3_3"];

/// The most painting positions kept per layer: beyond, positions are taken evenly (in raster
/// order). The search costs `2·P·N·C` flops per layer: with all three layers, 4096 positions
/// took ~1.2–2 s of a ~4.5 s dev-profile step at 256² views (bunny × Starry Night, loaded
/// 2-core machine); 1024 is a quarter of that.
pub const MAX_PAINTING_POSITIONS: usize = 1024;

/// View rows per block of the search.
const BLOCK: usize = 64;

/// Below this norm a feature counts as zero (ReLU features are 0 or clearly positive).
const ZERO_NORM: f32 = 1e-12;

/// One NNFM term: the painting's unit feature rows at `layer`, `[positions, channels]`.
#[derive(Clone)]
pub struct NnfmTerm {
    pub layer: Layer,
    pub painting: Arc<[f32]>,
    pub channels: usize,
    pub weight: f32,
    /// The same rows transposed to `[channels, padded]` (zero columns up to a multiple of 32),
    /// packed for the GEMM ([`crate::simd::gemm_packed`]).
    packed: Arc<[f32]>,
    padded: usize,
}

impl NnfmTerm {
    /// The term of unit rows `painting` (`[positions, channels]`) at `layer`.
    pub fn new(layer: Layer, painting: Vec<f32>, channels: usize, weight: f32) -> NnfmTerm {
        let n = painting.len() / channels;
        let padded = n.div_ceil(32) * 32;
        let mut bt = vec![0.0f32; channels * padded];
        for (j, row) in painting.chunks(channels).enumerate() {
            row.iter().enumerate().for_each(|(k, &v)| bt[k * padded + j] = v);
        }
        let nr = crate::simd::isa().nr();
        let packed = crate::simd::pack_panels(&bt, channels, padded, nr).into();
        NnfmTerm { layer, painting: painting.into(), channels, weight, packed, padded }
    }
}

impl std::fmt::Debug for NnfmTerm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.painting.len() / self.channels.max(1);
        write!(f, "NnfmTerm({}, {n}×{}, weight {})", self.layer, self.channels, self.weight)
    }
}

/// The NNFM terms of a painting, computed once per run.
#[derive(Debug, Clone, Default)]
pub struct NnfmTargets {
    pub terms: Vec<NnfmTerm>,
}

impl NnfmTargets {
    /// Unit feature rows of `painting` (`[1, 3, H, W]` RGB in [0, 1]) at `layers`, at most
    /// `max_positions` per layer, each term weighted `weight / layers`.
    pub fn new(vgg: &Vgg, painting: &Tensor, weight: f32, layers: &[Layer], max_positions: usize) -> vgg::Result<NnfmTargets> {
        let features = vgg.features(painting, layers)?;
        let n = layers.len().max(1) as f32;
        let mut terms = Vec::with_capacity(layers.len());
        for (layer, f) in layers.iter().zip(&features) {
            let (rows, _, p, c) = rows_of(&f.get(0)?.unsqueeze(0)?)?; // the one image
            let keep = p.min(max_positions.max(1));
            let mut kept = Vec::with_capacity(keep * c);
            for i in 0..keep {
                let row = &rows[(i * p / keep) * c..][..c];
                let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(ZERO_NORM);
                kept.extend(row.iter().map(|x| x / norm));
            }
            terms.push(NnfmTerm::new(*layer, kept, c, weight / n));
        }
        Ok(NnfmTargets { terms })
    }
}

/// Features `[batch, c, h, w]` as channels-last rows on the CPU: `(values, batch, h·w, c)`.
fn rows_of(f: &Tensor) -> candle_core::Result<(Vec<f32>, usize, usize, usize)> {
    let (b, c, h, w) = f.dims4()?;
    let x = f.to_device(&Device::Cpu)?.permute((0, 2, 3, 1))?.contiguous()?;
    Ok((x.flatten_all()?.to_vec1::<f32>()?, b, h * w, c))
}

/// For each row of `x` (`[rows, c]`, unit or zero rows), the index of the most similar painting
/// row of `term` and that cosine.
fn nearest(x: &[f32], term: &NnfmTerm) -> Vec<(usize, f32)> {
    let (c, n, np) = (term.channels, term.painting.len() / term.channels, term.padded);
    let isa = crate::simd::isa();
    x.par_chunks(BLOCK * c)
        .flat_map_iter(|block| {
            let m = block.len() / c;
            let mut dots = vec![0.0f32; m * np];
            // SAFETY: `block` is [m, c] row-major, `packed` [c, np] packed for `isa`, `dots` [m, np];
            // `np` is a multiple of 32 as the vector levels need.
            unsafe { crate::simd::gemm_packed(isa, m, np, c, block.as_ptr(), c, term.packed.as_ptr(), dots.as_mut_ptr(), np) };
            // The padding columns are no painting positions.
            dots.chunks(np)
                .map(|row| row[..n].iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (j, &d)| if d > best.1 { (j, d) } else { best }))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `(Σ_images weight · mean_p (1 − cos), dL/df)` of one term for features `f` `[batch, c, h,
/// w]`; the gradient in `f`'s shape on `f`'s device (channels-last underneath, as the fast
/// network reads its seeds in place).
pub fn nnfm(f: &Tensor, term: &NnfmTerm) -> vgg::Result<(f32, Tensor)> {
    let (b, c, h, w) = f.dims4()?;
    if c != term.channels {
        return Err(vgg::VggError::Shape {
            what: format!("NNFM features at {}", term.layer),
            expected: format!("{} channels (the painting's)", term.channels),
            got: f.dims().to_vec(),
        });
    }
    let (mut x, _, p, _) = rows_of(f)?;
    let norms: Vec<f32> = x.chunks(c).map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt()).collect();
    for (row, &n) in x.chunks_mut(c).zip(&norms) {
        let inv = if n > ZERO_NORM { 1.0 / n } else { 0.0 };
        row.iter_mut().for_each(|v| *v *= inv);
    }
    let near = nearest(&x, term);
    let scale = term.weight / p as f32;
    let mut value = 0.0f64;
    // x becomes the gradient in place: −scale · (ŝ − cos · f̂) / ‖f‖ per row.
    for ((row, &n), &(j, cos)) in x.chunks_mut(c).zip(&norms).zip(&near) {
        if n <= ZERO_NORM {
            value += 1.0;
            row.fill(0.0);
            continue;
        }
        value += (1.0 - cos) as f64;
        let s = &term.painting[j * c..][..c];
        let k = scale / n;
        row.iter_mut().zip(s).for_each(|(g, &sv)| *g = -k * (sv - cos * *g));
    }
    let grad = Tensor::from_vec(x, (b, h, w, c), f.device())?.permute((0, 3, 1, 2))?;
    Ok((term.weight * (value / p as f64) as f32, grad))
}
