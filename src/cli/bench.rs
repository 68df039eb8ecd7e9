//! `texstyle bench vgg`: the network's style-loss step timed as the PyTorch baseline times it
//! (`benches/vgg.rs` runs it next to the baseline).

use std::time::Instant;

use candle_core::{Device, Tensor};

use super::report::peak_rss_mb;
use crate::loss::{gram, Objective, StyleTerm, STYLE_LAYERS};
use crate::rng::SplitMix;
use crate::vgg::weights::{Arch, Preprocess, VggWeights};
use crate::vgg::{layers, Backend, Precision, Vgg};

/// One size's timings.
#[derive(Debug, Clone)]
pub struct BenchResult {
    pub size: usize,
    pub fwd_ms: f64,
    pub fwdbwd_ms: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Times what the PyTorch baseline times (`shared/tools/torch-vgg-baseline/vgg_bench.py`):
/// VGG16 conv1_1..relu5_1 on a random `[1, 3, size, size]` image, style loss on relu1_1..relu5_1
/// against random target Grams, forward alone and forward + gradient to the input. Random
/// weights (cost does not depend on them). Medians over `iters` after `warmup`; prints one line
/// per size.
pub fn run(sizes: &[usize], warmup: usize, iters: usize, backend: Backend, precision: Precision) -> anyhow::Result<Vec<BenchResult>> {
    // A median needs at least one timed run (the command line's --iters range
    // says so first; this guards the benches that call in directly).
    anyhow::ensure!(iters >= 1, "bench vgg: {iters} timed runs: a median needs at least 1");
    let dev = Device::Cpu;
    let vgg = Vgg::from_weights_with(&VggWeights::random(Arch::Vgg16, Preprocess::TorchvisionRgb, 0), &dev, backend, precision)?;
    let style = layers(&STYLE_LAYERS)?;
    let mut out = Vec::new();
    for &s in sizes {
        let mut rng = SplitMix(s as u64);
        let img: Vec<f32> = (0..3 * s * s).map(|_| rng.uniform()).collect();
        let x = Tensor::from_vec(img, (1, 3, s, s), &dev)?;
        let grams = vgg.features(&x, &style)?.iter().map(gram).collect::<candle_core::Result<Vec<_>>>()?;
        let obj = Objective {
            style: style
                .iter()
                .zip(&grams)
                .map(|(l, g)| {
                    let c = g.dim(1)?;
                    let t: Vec<f32> = (0..c * c).map(|_| rng.uniform() * 0.01).collect();
                    Ok(StyleTerm { layer: *l, target: Tensor::from_vec(t, (c, c), &dev)?, weight: 1.0 })
                })
                .collect::<anyhow::Result<_>>()?,
            content: Vec::new(),
            nnfm: Vec::new(),
        };
        let time = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<f64> {
            let mut ts = Vec::new();
            for i in 0..warmup + iters {
                let t0 = Instant::now();
                f()?;
                if i >= warmup {
                    ts.push(t0.elapsed().as_secs_f64() * 1e3);
                }
            }
            Ok(median(ts))
        };
        let fwd_ms = time(&mut || {
            obj.loss(&vgg, &x)?;
            Ok(())
        })?;
        let fwdbwd_ms = time(&mut || {
            let (_, g) = obj.loss_and_grad(&vgg, &x)?;
            // Touch the result, as the baseline reduces its gradient.
            g.abs()?.sum_all()?.to_scalar::<f32>()?;
            Ok(())
        })?;
        println!(
            "texstyle-vgg16 size={s} threads={} backend={backend:?} isa={:?} precision={:?} fwd_ms={fwd_ms:.1} fwdbwd_ms={fwdbwd_ms:.1} peak_rss_mb={:.0}",
            rayon::current_num_threads(),
            crate::simd::isa(),
            vgg.precision(),
            peak_rss_mb()
        );
        out.push(BenchResult { size: s, fwd_ms, fwdbwd_ms });
    }
    Ok(out)
}
