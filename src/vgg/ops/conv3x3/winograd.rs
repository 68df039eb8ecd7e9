//! [`WinogradConv`]: a 3×3 conv whose weights are pre-transformed for Winograd F(2,3) or F(4,3)
//! and packed for the GEMM kernel level (f32 at a level, or bf16), with its constructors (forward
//! and input-gradient directions) and its forward passes.

use super::transform::{transform_weights, Packed, Tile};
use super::{flip_swap, CH};
use crate::simd::{self, Isa};
use crate::vgg::ops::Act;

/// A 3×3 conv with its weights pre-transformed for Winograd.
#[derive(Debug, Clone)]
pub struct WinogradConv {
    pub tile: Tile,
    pub cin: usize,
    pub cout: usize,
    /// Kernel level of the transforms (and of `u`'s f32 panels).
    pub(super) isa: Isa,
    pub(super) u: Packed,
    pub(super) bias: Option<Vec<f32>>,
}

impl WinogradConv {
    /// `weight` OIHW `[cout, cin, 3, 3]`; `bias` `[cout]` or none. Channel counts must be multiples of 16.
    pub fn new(tile: Tile, weight: &[f32], bias: Option<&[f32]>, cout: usize, cin: usize) -> Self {
        Self::with_isa(simd::isa(), tile, weight, bias, cout, cin)
    }

    /// Like [`WinogradConv::new`], for a given kernel level (tests compare levels).
    pub fn with_isa(isa: Isa, tile: Tile, weight: &[f32], bias: Option<&[f32]>, cout: usize, cin: usize) -> Self {
        assert!(cin.is_multiple_of(CH) && cout.is_multiple_of(CH), "winograd conv needs channels multiple of {CH}, got {cin}->{cout}");
        assert_eq!(weight.len(), cout * cin * 9);
        let bias = bias.map(|b| b.to_vec());
        let u = transform_weights(tile.g(), weight, cout, cin, isa);
        WinogradConv { tile, cin, cout, isa, u: Packed::F32(u), bias }
    }

    /// A conv whose GEMMs take bf16 operands (the CPU must have AVX512-BF16:
    /// [`simd::bf16_supported`]); tests compare it with the f32 levels.
    pub fn with_bf16(tile: Tile, weight: &[f32], bias: Option<&[f32]>, cout: usize, cin: usize) -> Self {
        assert!(simd::bf16_supported(), "this CPU has no AVX512-BF16");
        Self::bf16(tile, weight, bias.map(|b| b.to_vec()), cout, cin)
    }

    fn bf16(tile: Tile, weight: &[f32], bias: Option<Vec<f32>>, cout: usize, cin: usize) -> Self {
        // Unpacked f32 first (the portable level's layout is plain [cin, cout]), then packed in bf16.
        let u = transform_weights(tile.g(), weight, cout, cin, Isa::Portable);
        let ub = u.chunks_exact(cin * cout).flat_map(|x| simd::pack_panels_bf16(x, cin, cout)).collect();
        WinogradConv { tile, cin, cout, isa: Isa::Avx512, u: Packed::Bf16(ub), bias }
    }

    /// The input gradient's conv: kernel flipped, channels swapped, no bias.
    pub fn backward_of(tile: Tile, weight: &[f32], cout: usize, cin: usize) -> Self {
        Self::new(tile, &flip_swap(weight, cout, cin), None, cin, cout)
    }

    /// [`WinogradConv::backward_of`] with bf16 GEMMs.
    pub fn backward_of_bf16(tile: Tile, weight: &[f32], cout: usize, cin: usize) -> Self {
        Self::with_bf16(tile, &flip_swap(weight, cout, cin), None, cin, cout)
    }

    /// `out = conv(input) + bias`, then ReLU if `relu`. `out` must have the input's height and
    /// width and `cout` channels; only its image region is written.
    pub fn forward(&self, input: &Act, out: &mut Act, relu: bool) {
        self.forward_masked(input, out, relu, None)
    }

    /// [`WinogradConv::forward`], then zero where `mask` (shaped as `out`, e.g. the ReLU output
    /// that `out` is the gradient of) is not positive: a ReLU backward fused into the output pass.
    pub fn forward_masked(&self, input: &Act, out: &mut Act, relu: bool, mask: Option<&Act>) {
        assert_eq!(input.c, self.cin);
        assert!(out.c == self.cout && out.h == input.h && out.w == input.w && out.hp == input.hp);
        if let Some(m) = mask {
            assert!(m.same_shape(out) && m.wp == out.wp, "mask shape");
        }
        let mask = mask.map_or(std::ptr::null(), |m| m.data.as_ptr());
        match self.tile {
            Tile::F2 => self.run::<2, 4>(input, out, relu, mask),
            Tile::F4 => self.run::<4, 6>(input, out, relu, mask),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{max_rel_err, rand_act};
    use super::*;
    use crate::rng::SplitMix;
    use crate::vgg::ops::conv3x3::conv3x3_slow;

    fn rms_rel_err(a: &Act, b: &Act) -> f32 {
        let d: f64 = a.data.iter().zip(&b.data).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
        let s: f64 = b.data.iter().map(|y| (*y as f64).powi(2)).sum();
        (d / s.max(1e-30)).sqrt() as f32
    }

    /// The kernel levels this CPU runs (the portable one always).
    fn levels() -> Vec<Isa> {
        let mut l = vec![Isa::Portable];
        if simd::isa() != Isa::Portable {
            l.push(Isa::Avx2);
        }
        if simd::isa() == Isa::Avx512 {
            l.push(Isa::Avx512);
        }
        l
    }

    /// Forward (bias, ReLU or not) against the direct loops, at every kernel level; sizes with
    /// partial tiles, GEMM row remainders (tile counts not multiples of 12 or 6), a 48-channel
    /// output (narrow last panel) and several tile blocks (F(2,3) at 40×36: 360 tiles).
    #[test]
    fn winograd_matches_slow() {
        let mut rng = SplitMix(1);
        let cases = [
            (Tile::F2, 7, 5, 16, 32),
            (Tile::F4, 9, 6, 32, 16),
            (Tile::F4, 8, 8, 64, 64),
            (Tile::F4, 13, 22, 16, 48),
            (Tile::F2, 40, 36, 16, 16),
        ];
        for &(tile, h, w, cin, cout) in &cases {
            let x = rand_act(&mut rng, h, w, cin);
            let wt: Vec<f32> = (0..cout * cin * 9).map(|_| rng.normal() * 0.1).collect();
            let b: Vec<f32> = (0..cout).map(|_| rng.normal()).collect();
            for isa in levels() {
                let conv = WinogradConv::with_isa(isa, tile, &wt, Some(&b), cout, cin);
                for relu in [false, true] {
                    let mut out = Act::zeros(h, w, cout);
                    conv.forward(&x, &mut out, relu);
                    let want = conv3x3_slow(&x, &wt, Some(&b), cout, relu);
                    let e = max_rel_err(&out, &want);
                    assert!(e < 1e-5, "{isa:?} {tile:?} {h}x{w} {cin}->{cout} relu {relu}: {e}");
                }
            }
        }
    }

    /// The input gradient (flipped, swapped kernel) at every level and both tiles against the
    /// direct loops on the flipped kernel, and against the adjoint identity.
    #[test]
    fn winograd_input_gradient_matches_slow() {
        let mut rng = SplitMix(4);
        let (h, w, cin, cout) = (10, 11, 32, 48);
        let x = rand_act(&mut rng, h, w, cin);
        let g = rand_act(&mut rng, h, w, cout);
        let wt: Vec<f32> = (0..cout * cin * 9).map(|_| rng.normal()).collect();
        let want = conv3x3_slow(&g, &flip_swap(&wt, cout, cin), None, cin, false);
        let y = conv3x3_slow(&x, &wt, None, cout, false);
        let dot = |a: &Act, b: &Act| a.data.iter().zip(&b.data).map(|(p, q)| (*p as f64) * (*q as f64)).sum::<f64>();
        for isa in levels() {
            for tile in [Tile::F2, Tile::F4] {
                let mut dx = Act::zeros(h, w, cin);
                WinogradConv::with_isa(isa, tile, &flip_swap(&wt, cout, cin), None, cin, cout).forward(&g, &mut dx, false);
                let e = max_rel_err(&dx, &want);
                assert!(e < 1e-5, "{isa:?} {tile:?}: {e}");
                let (lhs, rhs) = (dot(&y, &g), dot(&x, &dx));
                assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "{isa:?} {tile:?}: {lhs} vs {rhs}");
            }
        }
    }

    /// The fused ReLU backward: zero exactly where the mask is not positive (zeros and
    /// negatives in the mask), the plain conv elsewhere.
    #[test]
    fn winograd_masked_output_matches_conv_then_mask() {
        let mut rng = SplitMix(8);
        let (h, w, cin, cout) = (9, 7, 16, 32);
        let x = rand_act(&mut rng, h, w, cin);
        let mask = rand_act(&mut rng, h, w, cout);
        let wt: Vec<f32> = (0..cout * cin * 9).map(|_| rng.normal()).collect();
        let mut want = conv3x3_slow(&x, &wt, None, cout, false);
        want.data.iter_mut().zip(&mask.data).for_each(|(g, m)| *g = if *m > 0.0 { *g } else { 0.0 });
        for isa in levels() {
            let mut out = Act::zeros(h, w, cout);
            WinogradConv::with_isa(isa, Tile::F4, &wt, None, cout, cin).forward_masked(&x, &mut out, false, Some(&mask));
            assert!(max_rel_err(&out, &want) < 1e-5, "{isa:?}: {}", max_rel_err(&out, &want));
            let zeros = out.data.iter().zip(&want.data).filter(|(o, w)| **w == 0.0 && **o == 0.0).count();
            assert_eq!(zeros, want.data.iter().filter(|w| **w == 0.0).count(), "{isa:?}: masked outputs must be exactly zero");
        }
    }

    /// bf16 GEMM operands: each conv's output within ~2 % RMS of the exact one (measured 2.0 %
    /// here; bounded at twice that), forward and input gradient, and not bit-equal to f32 (the
    /// bf16 kernel did run). The network-level effect is tested in tests/vgg.rs.
    #[test]
    fn winograd_bf16_stays_near_f32() {
        if !simd::bf16_supported() {
            // Refused at both levels: the conv's constructors assert, the network (which
            // builds them) returns its typed error before it gets there.
            let wt = vec![0.5f32; 16 * 16 * 9];
            let panic_message = |build: &(dyn Fn() + std::panic::RefUnwindSafe)| {
                let p = std::panic::catch_unwind(build).expect_err("a bf16 conv was built without AVX512-BF16");
                p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default()
            };
            let forward = panic_message(&|| drop(WinogradConv::with_bf16(Tile::F4, &wt, None, 16, 16)));
            let backward = panic_message(&|| drop(WinogradConv::backward_of_bf16(Tile::F4, &wt, 16, 16)));
            for msg in [forward, backward] {
                assert!(msg.contains("no AVX512-BF16"), "panicked with {msg:?}");
            }
            use crate::vgg::weights::{Arch, Preprocess, VggWeights};
            use crate::vgg::{Backend, Precision, Vgg, VggError};
            let w = VggWeights::random(Arch::Vgg16, Preprocess::TorchvisionRgb, 1);
            match Vgg::from_weights_with(&w, &candle_core::Device::Cpu, Backend::Fast, Precision::Bf16) {
                Err(VggError::Bf16Unsupported) => {}
                Err(e) => panic!("bf16 refused with the wrong error: {e}"),
                Ok(_) => panic!("a bf16 network was built on a CPU without AVX512-BF16"),
            }
            return;
        }
        let mut rng = SplitMix(12);
        for &(h, w, cin, cout) in &[(13, 22, 64, 48), (32, 32, 256, 64), (9, 6, 512, 32)] {
            // ReLU outputs, He-scaled weights: what a VGG layer sees.
            let mut x = rand_act(&mut rng, h, w, cin);
            x.data.iter_mut().for_each(|v| *v = v.max(0.0));
            let wt: Vec<f32> = (0..cout * cin * 9).map(|_| rng.normal() * (2.0 / (cin * 9) as f32).sqrt()).collect();
            let b: Vec<f32> = (0..cout).map(|_| rng.normal() * 0.1).collect();
            let want = conv3x3_slow(&x, &wt, Some(&b), cout, false);
            let mut out = Act::zeros(h, w, cout);
            WinogradConv::with_bf16(Tile::F4, &wt, Some(&b), cout, cin).forward(&x, &mut out, false);
            let (max, rms) = (max_rel_err(&out, &want), rms_rel_err(&out, &want));
            assert!(max < 0.12 && rms < 0.04 && max > 1e-6, "{h}x{w} {cin}->{cout}: max {max:.2e}, rms {rms:.2e}");
            let g = rand_act(&mut rng, h, w, cout);
            let want = conv3x3_slow(&g, &flip_swap(&wt, cout, cin), None, cin, false);
            let mut dx = Act::zeros(h, w, cin);
            WinogradConv::backward_of_bf16(Tile::F4, &wt, cout, cin).forward(&g, &mut dx, false);
            let (max, rms) = (max_rel_err(&dx, &want), rms_rel_err(&dx, &want));
            assert!(max < 0.12 && rms < 0.04 && max > 1e-6, "input gradient {h}x{w} {cin}->{cout}: max {max:.2e}, rms {rms:.2e}");
        }
    }


    /// <conv(x), g> = <x, conv_flipped(g)>: the input gradient is the flipped, swapped conv.
    #[test]
    fn backward_is_adjoint() {
        let mut rng = SplitMix(3);
        let (h, w, cin, cout) = (6, 5, 16, 32);
        let x = rand_act(&mut rng, h, w, cin);
        let g = rand_act(&mut rng, h, w, cout);
        let wt: Vec<f32> = (0..cout * cin * 9).map(|_| rng.normal()).collect();
        let y = conv3x3_slow(&x, &wt, None, cout, false);
        let mut dx = Act::zeros(h, w, cin);
        WinogradConv::backward_of(Tile::F4, &wt, cout, cin).forward(&g, &mut dx, false);
        let dot = |a: &Act, b: &Act| a.data.iter().zip(&b.data).map(|(p, q)| (*p as f64) * (*q as f64)).sum::<f64>();
        let (lhs, rhs) = (dot(&y, &g), dot(&x, &dx));
        assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "{lhs} vs {rhs}");
    }
}
