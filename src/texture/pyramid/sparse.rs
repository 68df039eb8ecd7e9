//! The optimization step's way through the pyramid: [`Pyramid::view`]
//! evaluates the texture at only the sites a view needs (coarse to fine),
//! the backward takes the loss gradient back to θ at exactly those sites
//! (fine to coarse), and [`Pyramid::descend`] runs it and Adam's lazy step
//! there. [`super::sites`] says which sites and walks them;
//! [`super::kernels`] does the colour and sigmoid arithmetic.

use std::sync::Arc;

use candle_core::{CpuStorage, Device, Result, Storage, Tensor, Var};
use rayon::prelude::*;

use super::kernels::{color_sigmoid, color_sigmoid_adjoint};
use super::sites::{at, children, for_blocks, is_set, of_material, parents, runs, Block, Sites, BLOCK, SITES_PER_TASK};
use super::{Levels, Pyramid};
use crate::adam::Adam;
use crate::disjoint::Disjoint;
use crate::lookup::LookupTable;

/// The sparse step's buffers, reused from view to view. Every level-sized
/// buffer is θ-shaped (laid out as [`Levels`] says).
pub(super) struct Work {
    levels: Levels,
    sites: Sites,
    /// The collapsed levels at the needed sites, then (in `descend`) dL/dθ
    /// there. Other entries are stale.
    acc: Vec<f32>,
    /// The texture of each level (colour, sigmoid) at the needed sites
    /// (the view reads it at the direct ones).
    tex: Vec<f32>,
    /// dL/d`tex` at the needed sites (zeroed by `view`; zero but at the direct ones).
    dtex: Vec<f32>,
}

/// The next coarser level's collapsed values (all planes) and its size, as
/// a finer level's sites read them through the upsampling.
#[derive(Clone, Copy)]
struct Coarser<'a> {
    acc: &'a [f32],
    h: usize,
    w: usize,
}

/// The collapsed values `θ_k + up(acc_{k+1})` of `block`'s sites into `v`,
/// channel by channel: `th` is level k's θ (`hw` texels per plane),
/// `coarser` the level above (none at the coarsest level, where the
/// collapsed values are θ's).
#[inline]
fn collapse_block(v: &mut [[f32; BLOCK]; 3], block: Block, th: &[f32], hw: usize, coarser: Option<Coarser>) {
    for (c, v) in v.iter_mut().enumerate() {
        let (th, v) = (&th[at(block.site, c, hw)..][..block.len], &mut v[..block.len]);
        let Some(Coarser { acc, h: ch, w: cw }) = coarser else {
            v.copy_from_slice(th);
            continue;
        };
        let ((y0, y1), chw) = (parents(block.y, ch), ch * cw);
        let plane = &acc[(3 * block.material + c) * chw..][..chw];
        let (r0, r1) = (&plane[y0 * cw..][..cw], &plane[y1 * cw..][..cw]);
        for (j, v) in v.iter_mut().enumerate() {
            let (p0, p1) = parents(block.x + j, cw);
            // The same operations, in the same order, as upsample_add.
            let (a, b) = (0.75 * r0[p0] + 0.25 * r0[p1], 0.75 * r1[p0] + 0.25 * r1[p1]);
            *v = th[j] + (0.75 * a + 0.25 * b);
        }
    }
}

/// Runs `f` on θ's values, read in place (f32, contiguous, on the CPU).
fn with_values<R>(theta: &Var, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = theta.as_tensor().storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(data)) = &*storage else {
        candle_core::bail!("pyramid: expected f32 parameters on the CPU")
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("pyramid: parameters must be contiguous")
    };
    Ok(f(&data[start..end]))
}

impl Work {
    fn new(planes: usize, height: usize, width: usize) -> Work {
        let levels = Levels::new(planes, height, width);
        let n = levels.total();
        Work {
            sites: Sites::new(planes / 3, &levels.sizes),
            acc: crate::hugepages::zeroed(n),
            tex: crate::hugepages::zeroed(n),
            dtex: crate::hugepages::zeroed(n),
            levels,
        }
    }

    /// Level `k` of the forward, once the coarser levels are done:
    /// acc_k = θ_k + up(acc_{k+1}) at the needed sites (kept where a finer
    /// level reads it), the level's texture there, and its gradient zeroed.
    fn forward_level(&mut self, k: usize, theta: &[f32], color: &[[f32; 3]; 3]) {
        let Work { levels: Levels { sizes, offs }, sites, acc, tex, dtex } = self;
        let last = sizes.len() - 1;
        let (h, w) = sizes[k];
        let hw = h * w;
        let r = offs[k]..offs[k + 1];
        let (this, coarser) = acc[offs[k]..].split_at_mut(r.len());
        let (th, coarser): (_, &[f32]) = (&theta[r.clone()], coarser);
        let coarser = (k < last).then(|| {
            let (h, w) = sizes[k + 1];
            Coarser { acc: &coarser[..offs[k + 2] - offs[k + 1]], h, w }
        });
        let parent = &sites.parent_bits[k];
        let (acc_k, tex_k, dtex_k) = (
            Disjoint::new(this),
            Disjoint::new(&mut tex[r.clone()]),
            Disjoint::new(&mut dtex[r]),
        );
        for_blocks(&sites.need[k], h, w, |v, b| {
            collapse_block(v, b, th, hw, coarser);
            let (s0, len) = (b.site, b.len);
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
                    color,
                    [&v[0][..len], &v[1][..len], &v[2][..len]],
                    i.map(|i| tex_k.slice(i, len)),
                );
            }
        });
    }

    /// Level `k` of the backward, once the finer levels are done:
    /// dL/dacc_k at the needed sites, into `acc` (see [`Pyramid::backward`]).
    fn backward_level(&mut self, k: usize, color: &[[f32; 3]; 3]) {
        let Work { levels: Levels { sizes, offs }, sites, acc, tex, dtex } = self;
        let (h, w) = sizes[k];
        let hw = h * w;
        let r = offs[k]..offs[k + 1];
        let (t, dt) = (&tex[r.clone()], &dtex[r.clone()]);
        let (finer, this) = acc[..offs[k + 1]].split_at_mut(offs[k]);
        let fine = if k > 0 { &finer[offs[k - 1]..] } else { &finer[..0] };
        let (fh, fw) = if k > 0 { sizes[k - 1] } else { (0, 0) };
        let fhw = fh * fw;
        let (fine_bits, parent) = (&sites.need_bits[k.saturating_sub(1)], &sites.parent_bits[k]);
        let out = Disjoint::new(this);
        for_blocks(&sites.need[k], h, w, |below, b| {
            let (s0, m, y, len) = (b.site, b.material, b.y, b.len);
            for (j, x) in (b.x..b.x + len).enumerate() {
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
                    color,
                    i.map(|i| &t[i..i + len]),
                    i.map(|i| &dt[i..i + len]),
                    [&below[0][..len], &below[1][..len], &below[2][..len]],
                    i.map(|i| out.slice(i, len)),
                );
            }
        });
    }
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
        work.sites.mark(table)?;
        let color = self.color3;
        // Coarse to fine: each level reads the collapsed values of the one above.
        with_values(&self.theta, |theta| {
            for k in (0..work.levels.len()).rev() {
                work.forward_level(k, theta, &color);
            }
        })?;
        let image = table.gather(&work.tex, &work.levels.layout(), background);
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
            levels: Levels { sizes, offs },
            sites,
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
                        of_material(&sites.need[k], p / 3, hw)
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
        let g = grad_image
            .to_device(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        // dL/dtex at the direct sites (zeroed by `view`): the lookup's scatter.
        table.scatter(&g, &mut work.dtex, &work.levels.layout());
        // Fine to coarse, level by level: dL/dacc_k at the needed sites is
        // the level's own share (dL/dtex back through its sigmoid and
        // colour matrix; zero where the view does not read the level, as
        // `view` zeroed dtex at every needed site) plus, for k > 0, Uᵀ
        // dL/dacc_{k−1}: a gather (each coarse site sums the up to 16
        // needed fine sites that read it, so tasks never write the same
        // entry). At the finest level it is dL/dθ_0.
        for k in 0..work.levels.len() {
            work.backward_level(k, &self.color3);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::collapse::Collapse;
    use super::super::random;
    use super::*;

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
        let levels = Levels::new(planes, p.height, p.width);
        levels
            .sizes
            .iter()
            .zip(&levels.offs)
            .map(|(&(h, w), &start)| {
                let rest =
                    Tensor::from_slice(&theta[start..], theta.len() - start, &Device::Cpu).unwrap();
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
        let levels = Levels::new(m * 3, h, w);
        let offs = &levels.offs[..levels.len()];
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

    /// Two materials of 16 × 32 texels seen by a random 5 × 5 view, with
    /// random loss weights: L = Σ view ⊙ `weights`, and its gradient in θ
    /// (seed 8) by the dense path, candle's autograd through `texture()`
    /// and `lookup()`.
    struct DenseCase {
        materials: usize,
        height: usize,
        width: usize,
        table: Arc<LookupTable>,
        weights: Tensor,
        dense: Vec<f32>,
    }

    fn dense_case() -> DenseCase {
        let (m, h, w) = (2, 16, 32);
        let table = view_table(5, m, h, w, 3);
        let weights = Tensor::from_vec(random(3 * 25, 7), (1, 3, 5, 5), &Device::Cpu).unwrap();
        let p = Pyramid::new(m, h, w, 8).unwrap();
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
        DenseCase { materials: m, height: h, width: w, table, weights, dense }
    }

    #[test]
    fn a_views_gradient_matches_the_dense_path_and_finite_differences() {
        let DenseCase { materials: m, height: h, width: w, table, weights, dense } = dense_case();
        // Sparse: one descend from the same θ; read the gradient off the step.
        let mut q = Pyramid::new(m, h, w, 8).unwrap();
        let (base, sparse, after) = sparse_gradient(&mut q, &table, &weights);
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
        let probes: Vec<usize> = (0..base.len())
            .filter(|&i| dense[i].abs() > 1e-3)
            .step_by(37)
            .collect();
        assert!(probes.iter().any(|&i| i >= fine) && probes.iter().any(|&i| i < fine));
        for i in probes {
            let fd = finite_difference(&mut r, &table, &weights, &base, i);
            assert!(
                (fd - sparse[i] as f64).abs() < 1e-3 + 2e-3 * fd.abs(),
                "θ[{i}]: fd {fd} vs sparse {}",
                sparse[i]
            );
        }
    }
}
