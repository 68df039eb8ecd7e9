//! Step 4 of the data path: an image seen through a UV frame.
//!
//! Bilinear, wrapping (repeat), v flipped and half-texel centred, exactly as
//! [`crate::conventions`] states. With a supersampled frame each output pixel
//! is the box-filtered mean of its k×k samples.
//!
//! Two forms: [`render`] draws `Image`s for previews; [`lookup`] is the
//! differentiable op of the optimization — forward gathers 4 texels per
//! sample, backward scatters the image gradient into the same texels with the
//! same weights, through a per-view [`LookupTable`].

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use glam::Vec2;

use crate::conventions::uv_to_texel;
use crate::disjoint::Disjoint;
use crate::image_io::Image;
use crate::raster::RasterFrame;

/// The four texels `(x, y)` a bilinear lookup at `uv` reads from a
/// `width × height` texture (wrapping), and their weights.
#[inline]
pub fn bilinear_taps(uv: Vec2, width: u32, height: u32) -> ([(u32, u32); 4], [f32; 4]) {
    let p = uv_to_texel(uv, width, height);
    let (x0, y0) = (p.x.floor(), p.y.floor());
    let (fx, fy) = (p.x - x0, p.y - y0);
    let wrap = |i: f32, n: u32| (i as i64).rem_euclid(n as i64) as u32;
    let (xa, xb) = (wrap(x0, width), wrap(x0 + 1.0, width));
    let (ya, yb) = (wrap(y0, height), wrap(y0 + 1.0, height));
    (
        [(xa, ya), (xb, ya), (xa, yb), (xb, yb)],
        [
            (1.0 - fx) * (1.0 - fy),
            fx * (1.0 - fy),
            (1.0 - fx) * fy,
            fx * fy,
        ],
    )
}

/// Bilinear lookup of `image` at `uv`, wrapping at the edges.
pub fn sample_bilinear(image: &Image, uv: Vec2) -> [f32; 3] {
    let (taps, w) = bilinear_taps(uv, image.width, image.height);
    let mut out = [0.0f32; 3];
    for (&(x, y), &wt) in taps.iter().zip(&w) {
        let px = image.pixel(x, y);
        for k in 0..3 {
            out[k] += wt * px[k];
        }
    }
    out
}

/// Which texels each pixel of one view reads, with what weight: built once
/// per view, used by the forward gather and the backward scatter alike.
#[derive(Debug)]
pub struct LookupTable {
    /// Output image size, in pixels.
    pub width: u32,
    pub height: u32,
    /// Texture stack size: `[materials, 3, tex_height, tex_width]`.
    pub materials: usize,
    pub tex_width: u32,
    pub tex_height: u32,
    /// Per covered sample: the output pixel it belongs to…
    pixel: Vec<u32>,
    /// …the flat index of each tap in channel 0 of the texture stack…
    texel: Vec<[u32; 4]>,
    /// …and each tap's weight, including the 1/k² box filter.
    weight: Vec<[f32; 4]>,
    /// Per entry, the mip level its taps index (its own `[materials, 3,
    /// tex_height >> level, tex_width >> level]` layout); empty: all level 0.
    level: Vec<u8>,
    /// Where each row of output pixels starts in the entries, plus the end:
    /// entries are built row by row, so whole rows are disjoint pixels.
    row_start: Vec<u32>,
    /// Per pixel, the fraction of its samples that see background.
    background: Vec<f32>,
}

impl LookupTable {
    /// Builds the table for `frame`, reading material `tri_material[t]`'s
    /// texture for triangle `t`, from a stack of `materials` textures of
    /// `tex_width × tex_height`.
    pub fn new(
        frame: &RasterFrame,
        tri_material: &[u32],
        materials: usize,
        tex_width: u32,
        tex_height: u32,
    ) -> Self {
        Self::build(frame, tri_material, materials, tex_width, tex_height, None)
    }

    /// Like [`LookupTable::new`], but mip-mapped: each sample reads the
    /// texture at the level of detail `lod[triangle]` (log₂ of the texels one
    /// sample spans, from [`triangle_lods`]), trilinearly between levels
    /// `⌊lod⌋` and `⌊lod⌋ + 1`, up to `max_level`; level 0 (bilinear) where
    /// the texture is magnified. A minified sample then reads one averaged
    /// texel instead of four scattered ones, so the texture does not alias
    /// (speckle) and its gradient lands on coarse texels, not single ones.
    pub fn with_mips(
        frame: &RasterFrame,
        tri_material: &[u32],
        materials: usize,
        tex_width: u32,
        tex_height: u32,
        lod: &[f32],
        max_level: u32,
    ) -> Self {
        Self::build(frame, tri_material, materials, tex_width, tex_height, Some((lod, max_level)))
    }

    /// Both constructors: `mips` is the per-triangle level of detail and the
    /// coarsest level; without it every sample reads level 0.
    fn build(
        frame: &RasterFrame,
        tri_material: &[u32],
        materials: usize,
        tex_width: u32,
        tex_height: u32,
        mips: Option<(&[f32], u32)>,
    ) -> Self {
        let box_weight = 1.0 / (frame.samples * frame.samples) as f32;
        let mut t = LookupTable {
            width: frame.width,
            height: frame.height,
            materials,
            tex_width,
            tex_height,
            pixel: Vec::new(),
            texel: Vec::new(),
            weight: Vec::new(),
            level: Vec::new(),
            row_start: Vec::with_capacity(frame.height as usize + 1),
            background: vec![0.0; (frame.width * frame.height) as usize],
        };
        for y in 0..frame.grid_height() {
            if y % frame.samples == 0 {
                t.row_start.push(t.pixel.len() as u32);
            }
            for x in 0..frame.grid_width() {
                let s = frame.at(x, y);
                let p = (y / frame.samples) * frame.width + x / frame.samples;
                if !s.covered() {
                    t.background[p as usize] += box_weight;
                    continue;
                }
                let tri = s.tri as usize - 1;
                let m = tri_material[tri] as usize;
                let (k0, f, max_level) = match mips {
                    None => (0, 0.0, 0),
                    Some((lod, max_level)) => {
                        let l = lod[tri].clamp(0.0, max_level as f32);
                        let k0 = (l.floor() as u32).min(max_level);
                        (k0, l - k0 as f32, max_level)
                    }
                };
                for (k, share) in [(k0, 1.0 - f), (k0 + 1, f)] {
                    if share <= 0.0 || k > max_level {
                        continue;
                    }
                    let (w, h) = (tex_width >> k, tex_height >> k);
                    let (taps, wt) = bilinear_taps(s.uv(), w, h);
                    t.pixel.push(p);
                    t.texel
                        .push(taps.map(|(tx, ty)| (m * 3) as u32 * w * h + ty * w + tx));
                    t.weight.push(wt.map(|v| v * share * box_weight));
                    if mips.is_some() {
                        t.level.push(k as u8);
                    }
                }
            }
        }
        t.row_start.push(t.pixel.len() as u32);
        t
    }

    /// Sets `seen[texel]` for every texel (channel 0 of the stack, so
    /// `materials · tex_height · tex_width` flags, index `m·3·plane` skipped
    /// down to `m·plane`) this view reads with a non-zero weight.
    /// A coarser level's texel counts all the finest texels it covers.
    pub fn mark_seen(&self, seen: &mut [bool]) {
        let (tw, th) = (self.tex_width as usize, self.tex_height as usize);
        for (e, (taps, w)) in self.texel.iter().zip(&self.weight).enumerate() {
            let k = self.level.get(e).copied().unwrap_or(0) as usize;
            let (lw, lh) = (tw >> k, th >> k);
            for (&i, &wt) in taps.iter().zip(w) {
                if wt > 0.0 {
                    let i = i as usize;
                    let (m, local) = (i / (3 * lw * lh), i % (3 * lw * lh));
                    let (x, y) = (local % lw, local / lw);
                    for fy in y << k..(y + 1) << k {
                        let row = m * tw * th + fy * tw;
                        seen[row + (x << k)..row + ((x + 1) << k)].fill(true);
                    }
                }
            }
        }
    }

    /// Every entry's level and taps (flat indices in channel 0 of that
    /// level's texture stack), zero weights included.
    pub fn taps(&self) -> impl Iterator<Item = (usize, &[u32; 4])> + '_ {
        self.texel
            .iter()
            .enumerate()
            .map(|(e, t)| (self.level.get(e).copied().unwrap_or(0) as usize, t))
    }

    /// Whether some entry reads a level other than 0.
    pub fn has_mips(&self) -> bool {
        self.level.iter().any(|&l| l > 0)
    }

    /// The forward lookup: the image `[3, height, width]` (flat) that the
    /// texture stack `tex` shows through this view, over `background`.
    /// `levels[k]` says where level k's `[materials, 3, h, w]` stack starts in
    /// `tex` and its `h · w`; a table without mips needs only level 0. Reads
    /// only the tapped texels.
    pub fn gather(&self, tex: &[f32], levels: &[(usize, usize)], background: [f32; 3]) -> Vec<f32> {
        use rayon::prelude::*;
        let n = (self.width * self.height) as usize;
        let mut out = vec![0.0f32; 3 * n];
        for (c, dst) in out.chunks_mut(n).enumerate() {
            for (p, bg) in dst.iter_mut().zip(&self.background) {
                *p = bg * background[c];
            }
        }
        // Tasks of whole pixel rows (disjoint pixels), all three channels
        // per entry: balanced on any core count, taps read once.
        let rows = self.row_start.len() - 1;
        let per_task = rows.div_ceil(4 * rayon::current_num_threads()).max(1);
        let dst = Disjoint::new(&mut out);
        (0..rows).into_par_iter().step_by(per_task).for_each(|r0| {
            let r1 = (r0 + per_task).min(rows);
            let entries = self.row_start[r0] as usize..self.row_start[r1] as usize;
            for e in entries {
                let (p, taps, w) = (self.pixel[e] as usize, &self.texel[e], &self.weight[e]);
                let (start, hw) = levels[self.level.get(e).copied().unwrap_or(0) as usize];
                for c in 0..3 {
                    let off = start + c * hw;
                    let mut v = 0.0;
                    for i in 0..4 {
                        v += w[i] * tex[taps[i] as usize + off];
                    }
                    // SAFETY: pixel p lies in this task's rows, which no
                    // other task writes.
                    unsafe { dst.add(c * n + p, v) };
                }
            }
        });
        out
    }

    /// The adjoint of [`LookupTable::gather`]: adds the image gradient
    /// `grad_image` (`[3, height, width]`, flat) into `grad_tex` (laid out as
    /// `levels` says) at the tapped texels, with the same weights.
    pub fn scatter(&self, grad_image: &[f32], grad_tex: &mut [f32], levels: &[(usize, usize)]) {
        use rayon::prelude::*;
        let n = (self.width * self.height) as usize;
        // Entry e's level in `grad_tex`: where its channel 0 starts, texels per plane.
        let level = |e: usize| levels[self.level.get(e).copied().unwrap_or(0) as usize];
        // Tasks own ranges of channel-0 texels (all three channels of each):
        // a texel's sums stay in one task, in entry order, so the result
        // does not depend on the split. Every task reads the whole table
        // but adds only at its own texels, which balances any core count
        // (per-channel tasks left one of two cores idle a third of the
        // time). Bounds: quantiles of a sample of the taps.
        let tasks = rayon::current_num_threads().clamp(1, 8);
        let mut sample: Vec<usize> = (0..self.texel.len())
            .step_by((self.texel.len() / 4096).max(1))
            .map(|e| level(e).0 + self.texel[e][0] as usize)
            .collect();
        sample.sort_unstable();
        let bound = |t: usize| match t {
            0 => 0,
            t if t == tasks || sample.is_empty() => usize::MAX,
            t => sample[t * sample.len() / tasks],
        };
        let out = Disjoint::new(grad_tex);
        (0..tasks).into_par_iter().for_each(|t| {
            let (lo, hi) = (bound(t), bound(t + 1));
            for (e, ((&p, taps), w)) in self
                .pixel
                .iter()
                .zip(&self.texel)
                .zip(&self.weight)
                .enumerate()
            {
                let (first, hw) = level(e);
                let p = p as usize;
                let g = [grad_image[p], grad_image[n + p], grad_image[2 * n + p]];
                for i in 0..4 {
                    let at = first + taps[i] as usize;
                    if (lo..hi).contains(&at) {
                        for (c, g) in g.iter().enumerate() {
                            // SAFETY: channel-0 index `at` lies in this
                            // task's range; (level, material, channel,
                            // texel) ↦ index is one-to-one, so no other
                            // task writes `at + c · hw`.
                            unsafe { out.add(at + c * hw, w[i] * g) };
                        }
                    }
                }
            }
        });
    }

    fn check(&self, dims: &[usize]) -> candle_core::Result<()> {
        let want = [
            self.materials,
            3,
            self.tex_height as usize,
            self.tex_width as usize,
        ];
        if dims != want {
            candle_core::bail!("lookup: texture must have shape {want:?} [materials, 3, height, width], got {dims:?}")
        }
        if self.has_mips() {
            candle_core::bail!(
                "lookup: a mip-mapped table needs the texture's levels (the pyramid's sparse path)"
            )
        }
        Ok(())
    }
}

/// The level of detail of each triangle of `mesh` seen through `view_proj`
/// at `size`: log₂ of the texels (of a `tex_width × tex_height` texture) per
/// sample, from the ratio of the triangle's texture area to its screen area
/// (isotropic; triangles behind the camera get 0).
pub fn triangle_lods(
    mesh: &crate::raster::RasterMesh,
    view_proj: glam::Mat4,
    size: crate::raster::ViewSize,
    tex_width: u32,
    tex_height: u32,
) -> Vec<f32> {
    use rayon::prelude::*;
    let (sw, sh) = (
        (size.width * size.samples) as f32 * 0.5,
        (size.height * size.samples) as f32 * 0.5,
    );
    let (tw, th) = (tex_width as f32, tex_height as f32);
    mesh.triangles
        .par_iter()
        .enumerate()
        .map(|(t, tri)| {
            let mut p = [Vec2::ZERO; 3];
            for (i, &v) in tri[..3].iter().enumerate() {
                let c = view_proj * glam::Vec4::from_array(mesh.positions[v as usize]);
                if c.w <= 1e-6 {
                    return 0.0;
                }
                p[i] = Vec2::new(c.x / c.w * sw, c.y / c.w * sh);
            }
            let uv = [0, 1, 2].map(|i| Vec2::from_array(mesh.uvs[3 * t + i]) * Vec2::new(tw, th));
            let screen = (p[1] - p[0]).perp_dot(p[2] - p[0]).abs();
            let texels = (uv[1] - uv[0]).perp_dot(uv[2] - uv[0]).abs();
            if screen <= 0.0 {
                return if texels > 0.0 { f32::INFINITY } else { 0.0 };
            }
            0.5 * (texels / screen).log2()
        })
        .collect()
}

/// The differentiable lookup (see the module docs).
struct TextureLookup {
    table: Arc<LookupTable>,
    background: [f32; 3],
}

impl CustomOp1 for TextureLookup {
    fn name(&self) -> &'static str {
        "texture-lookup"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("lookup: expected an f32 texture")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("lookup: texture must be contiguous")
        };
        let t = &self.table;
        t.check(layout.shape().dims())?;
        let plane = (t.tex_width * t.tex_height) as usize;
        let out = t.gather(&data[start..end], &[(0, plane)], self.background);
        Ok((
            CpuStorage::F32(out),
            Shape::from((1, 3, t.height as usize, t.width as usize)),
        ))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let g = grad_res.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let mut grad = vec![0.0f32; arg.elem_count()];
        let plane = (self.table.tex_width * self.table.tex_height) as usize;
        self.table.scatter(&g, &mut grad, &[(0, plane)]);
        Ok(Some(Tensor::from_vec(grad, arg.shape(), arg.device())?))
    }
}

/// The image `[1, 3, height, width]` (RGB, the texture's range) that
/// `texture` (`[materials, 3, tex_height, tex_width]`, f32, CPU) shows through
/// `table`'s view, over `background`. Differentiable in `texture`.
pub fn lookup(
    texture: &Tensor,
    table: &Arc<LookupTable>,
    background: [f32; 3],
) -> candle_core::Result<Tensor> {
    table.check(texture.dims())?;
    texture.contiguous()?.apply_op1(TextureLookup {
        table: table.clone(),
        background,
    })
}

/// Renders `frame` with one texture per material (`textures[material]`;
/// `None` draws the material's flat colour) over `background`.
pub fn render(
    frame: &RasterFrame,
    tri_material: &[u32],
    textures: &[Option<&Image>],
    flat: &[[f32; 3]],
    background: [f32; 3],
) -> Image {
    let k = frame.samples;
    let mut out = Image::filled(frame.width, frame.height, background);
    let norm = 1.0 / (k * k) as f32;
    for y in 0..frame.height {
        for x in 0..frame.width {
            let mut acc = [0.0f32; 3];
            for sy in 0..k {
                for sx in 0..k {
                    let s = frame.at(x * k + sx, y * k + sy);
                    let rgb = if s.covered() {
                        let m = tri_material[s.tri as usize - 1] as usize;
                        match textures.get(m).copied().flatten() {
                            Some(tex) => sample_bilinear(tex, s.uv()),
                            None => flat.get(m).copied().unwrap_or([1.0; 3]),
                        }
                    } else {
                        background
                    };
                    for c in 0..3 {
                        acc[c] += rgb[c];
                    }
                }
            }
            out.set_pixel(x, y, acc.map(|v| v * norm));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raster::FramePixel;
    use candle_core::{Device, Var};

    /// A 2×2-pixel frame with 2×2 samples: background, two materials, UVs off-centre.
    fn frame() -> RasterFrame {
        let px = |u: f32, v: f32, tri: u32| FramePixel {
            u,
            v,
            depth: 0.5,
            tri,
        };
        let mut pixels = vec![FramePixel::default(); 16];
        let uvs = [
            (0.1, 0.2),
            (0.37, 0.91),
            (0.8, 0.45),
            (0.02, 0.98),
            (0.5, 0.5),
            (0.66, 0.13),
        ];
        for (i, &(u, v)) in uvs.iter().enumerate() {
            pixels[2 + 2 * i] = px(u, v, 1 + (i as u32 % 2));
        }
        RasterFrame {
            width: 2,
            height: 2,
            samples: 2,
            pixels,
        }
    }

    fn pseudo_random(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2654435761) % 997) as f32 / 997.0)
            .collect()
    }

    #[test]
    fn differentiable_lookup_matches_the_preview_renderer() {
        let (f, tri_material) = (frame(), [0u32, 1]);
        let data = pseudo_random(2 * 3 * 3 * 5);
        let tex = Tensor::from_vec(data.clone(), (2, 3, 3, 5), &Device::Cpu).unwrap();
        let table = Arc::new(LookupTable::new(&f, &tri_material, 2, 5, 3));
        let out = lookup(&tex, &table, [0.2, 0.4, 0.6]).unwrap();
        let images: Vec<Image> = (0..2)
            .map(|m| crate::texture::tensor_to_image(&tex.get(m).unwrap()).unwrap())
            .collect();
        let expected = render(
            &f,
            &tri_material,
            &[Some(&images[0]), Some(&images[1])],
            &[],
            [0.2, 0.4, 0.6],
        );
        let got = crate::texture::tensor_to_image(&out.get(0).unwrap()).unwrap();
        for (a, b) in got.data.iter().zip(&expected.data) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn lookup_gradient_matches_finite_differences() {
        let (f, tri_material) = (frame(), [0u32, 1]);
        let table = Arc::new(LookupTable::new(&f, &tri_material, 2, 5, 3));
        let base = pseudo_random(2 * 3 * 3 * 5);
        let weights = Tensor::from_vec(
            pseudo_random(12)
                .iter()
                .map(|v| v - 0.3)
                .collect::<Vec<_>>(),
            (1, 3, 2, 2),
            &Device::Cpu,
        )
        .unwrap();
        let loss = |t: &Tensor| {
            (lookup(t, &table, [0.1; 3]).unwrap() * &weights)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let var = Var::from_vec(base.clone(), (2, 3, 3, 5), &Device::Cpu).unwrap();
        let g = loss(var.as_tensor())
            .backward()
            .unwrap()
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let eps = 1e-2;
        let mut nonzero = 0;
        for i in 0..base.len() {
            let f = |d: f32| {
                let mut v = base.clone();
                v[i] += d;
                loss(&Tensor::from_vec(v, (2, 3, 3, 5), &Device::Cpu).unwrap())
                    .to_scalar::<f32>()
                    .unwrap() as f64
            };
            let fd = (f(eps) - f(-eps)) / (2.0 * eps as f64);
            assert!(
                (fd - g[i] as f64).abs() < 1e-4 + 1e-3 * fd.abs(),
                "texel {i}: fd {fd} vs {}",
                g[i]
            );
            nonzero += (g[i] != 0.0) as usize;
        }
        assert!(
            nonzero > 10,
            "the check must exercise real gradients ({nonzero} non-zero)"
        );
    }

    #[test]
    fn level_of_detail_is_half_the_log_of_the_area_ratio() {
        use crate::raster::{RasterMesh, ViewSize};
        // Identity camera: NDC = xy. Legs of 1 NDC unit = 32 samples at 64 px;
        // UV legs of 1 = 128 texels: 16× the area, 2 levels.
        let mesh = RasterMesh {
            positions: vec![
                [-0.5, -0.5, 0.5, 1.0],
                [0.5, -0.5, 0.5, 1.0],
                [-0.5, 0.5, 0.5, 1.0],
                [0.0, 0.0, 0.5, -1.0],
            ],
            triangles: vec![[0, 1, 2, 0], [0, 1, 3, 0]],
            uvs: vec![
                [0.0, 0.0],
                [1.0, 0.0],
                [0.0, 1.0],
                [0.0, 0.0],
                [0.5, 0.0],
                [0.0, 0.5],
            ],
        };
        let lods = triangle_lods(&mesh, glam::Mat4::IDENTITY, ViewSize::square(64), 128, 128);
        assert!((lods[0] - 2.0).abs() < 1e-5, "{}", lods[0]);
        // Behind the camera: no level.
        assert_eq!(lods[1], 0.0);
        // 2×2 samples per pixel: each sample spans half as many texels per axis.
        let ss = triangle_lods(
            &mesh,
            glam::Mat4::IDENTITY,
            ViewSize {
                samples: 2,
                ..ViewSize::square(64)
            },
            128,
            128,
        );
        assert!((ss[0] - 1.0).abs() < 1e-5, "{}", ss[0]);
    }

    #[test]
    fn a_coarse_read_sees_the_fine_texels_it_covers() {
        // Every sample at exactly level 1 of a 8×4 texture (4×2 at level 1).
        let f = frame();
        let table = LookupTable::with_mips(&f, &[0, 1], 2, 8, 4, &[1.0, 1.0], 1);
        assert!(table.has_mips() && table.taps().all(|(k, _)| k == 1));
        let mut seen = vec![false; 2 * 32];
        table.mark_seen(&mut seen);
        let mut expected = vec![false; 2 * 32];
        for s in f.pixels.iter().filter(|s| s.covered()) {
            let m = s.tri as usize - 1;
            let (x, y) = (s.u as f64 * 4.0 - 0.5, (1.0 - s.v as f64) * 2.0 - 0.5);
            for (cx, cy) in [
                (x.floor(), y.floor()),
                (x.floor() + 1.0, y.floor()),
                (x.floor(), y.floor() + 1.0),
                (x.floor() + 1.0, y.floor() + 1.0),
            ] {
                let (cx, cy) = (cx.rem_euclid(4.0) as usize, cy.rem_euclid(2.0) as usize);
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    expected[m * 32 + (2 * cy + dy) * 8 + 2 * cx + dx] = true;
                }
            }
        }
        assert_eq!(seen, expected);
    }

    /// Exactly the texels some sample reads with a non-zero weight, worked out here from the
    /// conventions (texel = (u·W − ½, (1 − v)·H − ½), wrap) rather than through `bilinear_taps`.
    #[test]
    fn seen_texels_are_the_tapped_ones() {
        let (f, tri_material, (w, h)) = (frame(), [0u32, 1], (5u32, 3u32));
        let table = LookupTable::new(&f, &tri_material, 2, w, h);
        let mut seen = vec![false; 2 * 15];
        table.mark_seen(&mut seen);
        let mut expected = vec![false; 2 * 15];
        for s in f.pixels.iter().filter(|s| s.covered()) {
            let m = tri_material[s.tri as usize - 1] as usize;
            let (x, y) = (
                s.u as f64 * w as f64 - 0.5,
                (1.0 - s.v as f64) * h as f64 - 0.5,
            );
            let (x0, y0) = (x.floor(), y.floor());
            for (dx, wx) in [(0.0, 1.0 - (x - x0)), (1.0, x - x0)] {
                for (dy, wy) in [(0.0, 1.0 - (y - y0)), (1.0, y - y0)] {
                    if wx * wy > 1e-6 {
                        let tx = (x0 + dx).rem_euclid(w as f64) as usize;
                        let ty = (y0 + dy).rem_euclid(h as f64) as usize;
                        expected[m * 15 + ty * w as usize + tx] = true;
                    }
                }
            }
        }
        assert_eq!(seen, expected);
        // The frame's UVs reach both materials and wrap around the edges.
        assert!(expected[..15].iter().any(|&s| s) && expected[15..].iter().any(|&s| s));
    }

    /// 2×2 texture: red top-left, green top-right, blue bottom-left, white bottom-right.
    fn checker() -> Image {
        let mut img = Image::filled(2, 2, [1.0; 3]);
        img.set_pixel(0, 0, [1.0, 0.0, 0.0]);
        img.set_pixel(1, 0, [0.0, 1.0, 0.0]);
        img.set_pixel(0, 1, [0.0, 0.0, 1.0]);
        img
    }

    #[test]
    fn texel_centres_return_texels_and_v_points_up() {
        let t = checker();
        // v near 1 is the TOP row of the image (OBJ convention).
        assert_eq!(sample_bilinear(&t, Vec2::new(0.25, 0.75)), [1.0, 0.0, 0.0]);
        assert_eq!(sample_bilinear(&t, Vec2::new(0.75, 0.75)), [0.0, 1.0, 0.0]);
        assert_eq!(sample_bilinear(&t, Vec2::new(0.25, 0.25)), [0.0, 0.0, 1.0]);
    }

    #[test]
    fn halfway_blends_and_edges_wrap() {
        let t = checker();
        // Midway between red and green texel centres.
        assert_eq!(sample_bilinear(&t, Vec2::new(0.5, 0.75)), [0.5, 0.5, 0.0]);
        // u = 0 is midway between the last column (green) and the first (red): wraps.
        assert_eq!(sample_bilinear(&t, Vec2::new(0.0, 0.75)), [0.5, 0.5, 0.0]);
        assert_eq!(sample_bilinear(&t, Vec2::new(1.0, 0.75)), [0.5, 0.5, 0.0]);
    }
}
