//! The dense collapse: all levels upsampled to full size and summed, as a
//! candle op with its adjoint, so that [`super::Pyramid::texture`] sits on
//! candle's autograd tape. Also the bilinear ×2 upsampling it is made of,
//! whose weights the sparse passes repeat site by site
//! ([`super::sites::parents`]).

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::Levels;

/// Flat levels → `[planes, height, width]`: the sum of every level upsampled.
pub(super) struct Collapse {
    pub(super) planes: usize,
    pub(super) height: usize,
    pub(super) width: usize,
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
    fn levels(&self) -> Levels {
        Levels::new(self.planes, self.height, self.width)
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
        let levels = self.levels();
        if theta.len() != levels.total() {
            candle_core::bail!(
                "pyramid: {} parameters, expected {}",
                theta.len(),
                levels.total()
            );
        }
        let Levels { sizes, offs } = levels;
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
        let levels = self.levels();
        let mut grad = vec![0.0f32; levels.total()];
        grad[..g.len()].copy_from_slice(&g);
        let Levels { sizes, offs } = levels;
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
    use candle_core::Device;

    use super::super::{random, Pyramid};
    use super::*;

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
