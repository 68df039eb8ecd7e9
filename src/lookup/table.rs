//! Building a view's [`LookupTable`]: per covered sample of a frame, the
//! output pixel, the four texels a bilinear read taps and their weights (the
//! 1/k² box filter folded in), and, mip-mapped, the level those texels lie
//! on. Built once per view; the forward gather and the backward scatter
//! (`gather.rs`) both read it.

use crate::raster::RasterFrame;

use super::sample::bilinear_taps;

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
    pub(super) pixel: Vec<u32>,
    /// …the flat index of each tap in channel 0 of the texture stack…
    pub(super) texel: Vec<[u32; 4]>,
    /// …and each tap's weight, including the 1/k² box filter.
    pub(super) weight: Vec<[f32; 4]>,
    /// Per entry, the mip level its taps index (its own `[materials, 3,
    /// tex_height >> level, tex_width >> level]` layout); empty: all level 0.
    level: Vec<u8>,
    /// Where each row of output pixels starts in the entries, plus the end:
    /// entries are built row by row, so whole rows are disjoint pixels.
    pub(super) row_start: Vec<u32>,
    /// Per pixel, the fraction of its samples that see background.
    pub(super) background: Vec<f32>,
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
    /// sample spans, from [`super::triangle_lods`]), trilinearly between levels
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

    /// The mip level entry `e`'s taps index (0 in a table without mips).
    #[inline]
    pub(super) fn level_of(&self, e: usize) -> usize {
        self.level.get(e).copied().unwrap_or(0) as usize
    }

    /// Sets `seen[texel]` for every texel (channel 0 of the stack, so
    /// `materials · tex_height · tex_width` flags, index `m·3·plane` skipped
    /// down to `m·plane`) this view reads with a non-zero weight.
    /// A coarser level's texel counts all the finest texels it covers.
    pub fn mark_seen(&self, seen: &mut [bool]) {
        let (tw, th) = (self.tex_width as usize, self.tex_height as usize);
        for (e, (taps, w)) in self.texel.iter().zip(&self.weight).enumerate() {
            let k = self.level_of(e);
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
        self.texel.iter().enumerate().map(|(e, t)| (self.level_of(e), t))
    }

    /// Whether some entry reads a level other than 0.
    pub fn has_mips(&self) -> bool {
        self.level.iter().any(|&l| l > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lookup::fixtures::frame;

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
}
