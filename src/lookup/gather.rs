//! The lookup's two passes over a [`LookupTable`]: [`LookupTable::gather`]
//! (forward: the image a texture stack shows through the view) and its
//! adjoint [`LookupTable::scatter`] (backward: the image gradient added into
//! the tapped texels with the same weights). Both run in parallel tasks
//! whose writes are disjoint, so results do not depend on the thread count.

use rayon::prelude::*;

use crate::disjoint::Disjoint;

use super::LookupTable;

impl LookupTable {
    /// The forward lookup: the image `[3, height, width]` (flat) that the
    /// texture stack `tex` shows through this view, over `background`.
    /// `levels[k]` says where level k's `[materials, 3, h, w]` stack starts in
    /// `tex` and its `h · w`; a table without mips needs only level 0. Reads
    /// only the tapped texels.
    pub fn gather(&self, tex: &[f32], levels: &[(usize, usize)], background: [f32; 3]) -> Vec<f32> {
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
                let (start, hw) = levels[self.level_of(e)];
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
        let n = (self.width * self.height) as usize;
        // Entry e's level in `grad_tex`: where its channel 0 starts, texels per plane.
        let level = |e: usize| levels[self.level_of(e)];
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
}
