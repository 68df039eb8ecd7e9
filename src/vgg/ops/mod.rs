//! CPU kernels of the fast path, one file per op, each with a `*_slow` twin (plain loops) that the
//! tests compare against. They work on [`Act`], a zero-padded channels-last image, so that a 3×3
//! conv reads its halo without bounds checks and one layer's output is the next one's input.

pub mod conv3x3;
pub mod elementwise;
pub mod maxpool;

/// Tile size the padding is rounded to: the largest Winograd output tile (F(4,3)).
pub const TILE_ROUND: usize = 4;

/// One image's activations `[height, width, channels]` (channels-last), stored inside a zero
/// border: row `y`, column `x` of the image is at padded `(y + 1, x + 1)`. The padded size is
/// `round_up(h, 4) + 2` × `round_up(w, 4) + 2` so that Winograd tiles never leave the buffer.
/// Invariant: everything outside the image is zero.
#[derive(Debug, Clone, PartialEq)]
pub struct Act {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub hp: usize,
    pub wp: usize,
    pub data: Vec<f32>,
}

impl Act {
    pub fn zeros(h: usize, w: usize, c: usize) -> Self {
        let hp = h.div_ceil(TILE_ROUND) * TILE_ROUND + 2;
        let wp = w.div_ceil(TILE_ROUND) * TILE_ROUND + 2;
        Act { h, w, c, hp, wp, data: vec![0.0; hp * wp * c] }
    }

    /// Offset of image pixel (y, x) (unpadded coordinates), channel 0.
    #[inline]
    pub fn at(&self, y: usize, x: usize) -> usize {
        ((y + 1) * self.wp + x + 1) * self.c
    }

    /// From `[c, h, w]` (channel-first) data.
    pub fn from_chw(c: usize, h: usize, w: usize, chw: &[f32]) -> Self {
        let mut a = Act::zeros(h, w, c);
        a.set_chw(chw);
        a
    }

    /// Overwrites the image region with `[c, h, w]` (channel-first) data.
    fn set_chw(&mut self, chw: &[f32]) {
        let (h, w, c) = (self.h, self.w, self.c);
        for y in 0..h {
            for x in 0..w {
                let o = self.at(y, x);
                for ch in 0..c {
                    self.data[o + ch] = chw[(ch * h + y) * w + x];
                }
            }
        }
    }

    /// To `[c, h, w]` (channel-first) data.
    pub fn to_chw(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.c * self.h * self.w];
        for y in 0..self.h {
            for x in 0..self.w {
                let o = self.at(y, x);
                for ch in 0..self.c {
                    out[(ch * self.h + y) * self.w + x] = self.data[o + ch];
                }
            }
        }
        out
    }

    /// To `[h, w, c]` (channels-last, unpadded) data: one copy per row.
    pub fn to_hwc(&self) -> Vec<f32> {
        let row = self.w * self.c;
        let mut out = Vec::with_capacity(self.h * row);
        (0..self.h).for_each(|y| out.extend_from_slice(&self.data[self.at(y, 0)..][..row]));
        out
    }

    /// Overwrites the image region with `[h, w, c]` (channels-last) data.
    pub fn set_hwc(&mut self, hwc: &[f32]) {
        let row = self.w * self.c;
        for y in 0..self.h {
            let o = self.at(y, 0);
            self.data[o..o + row].copy_from_slice(&hwc[y * row..][..row]);
        }
    }

    pub fn same_shape(&self, o: &Act) -> bool {
        (self.h, self.w, self.c) == (o.h, o.w, o.c)
    }
}

/// A raw pointer that may cross threads; users guarantee disjoint writes.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub *mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
