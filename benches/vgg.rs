//! VGG16 style-loss step, fwd and fwd+bwd (gradient to the input), at 256² and 512², next to the
//! PyTorch baseline run in the same invocation so the ratios share the machine's conditions.
//! The baseline runs when `VGG_BENCH_TORCH` names its runner (a script that takes `--sizes`,
//! `--threads`, `--warmup`, `--iters` and prints a `torch-vgg16 …` line, e.g. the project
//! machines' `../shared/tools/torch-vgg-baseline/run`); without it, texstyle's side alone.
//!
//! `cargo bench --bench vgg`. Env: `VGG_BENCH_SIZES` (default "256 512"), `VGG_BENCH_ITERS`
//! (default 5), `VGG_BENCH_WARMUP` (default 2), `VGG_BENCH_ROUNDS` (default 2),
//! `VGG_BENCH_TORCH=PATH` for the baseline,
//! `VGG_BENCH_BACKEND=generic` for the candle-ops path, `VGG_BENCH_PRECISION=f32` for f32 conv
//! products where the default run would use bf16 (CPUs with AVX512-BF16).
//! What an AVX2-only machine runs, on an AVX-512 one: `TEXSTYLE_VGG_ISA=avx2
//! ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 cargo bench --bench vgg --no-default-features`
//! (the variables reach the baseline too; `--no-default-features` drops the gemm crate's
//! AVX-512; each line says the `isa` our kernels ran). Each size runs in its own child process
//! so that peak RSS is per size. Threads: `RAYON_NUM_THREADS` (default: all cores), the baseline
//! gets the same count.

use std::collections::HashMap;
use std::process::Command;

use texstyle::cli::bench::run as bench_cmd;
use texstyle::vgg::{Backend, Precision};

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

fn parse(line: &str) -> HashMap<String, String> {
    line.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn main() -> anyhow::Result<()> {
    // As the command line does, so the figures match a run's.
    texstyle::reuse_freed_large_blocks();
    let (warmup, iters) = (env_usize("VGG_BENCH_WARMUP", 2), env_usize("VGG_BENCH_ITERS", 5));
    let backend = match std::env::var("VGG_BENCH_BACKEND").as_deref() {
        Ok("generic") => Backend::Generic,
        _ => Backend::Fast,
    };
    if let Ok(size) = std::env::var("VGG_BENCH_CHILD") {
        let precision = match std::env::var("VGG_BENCH_PRECISION").as_deref() {
            Ok("f32") => Precision::F32,
            _ => Precision::best(),
        };
        bench_cmd(&[size.parse()?], warmup, iters, backend, precision)?;
        return Ok(());
    }
    let sizes: Vec<usize> = std::env::var("VGG_BENCH_SIZES")
        .unwrap_or_else(|_| "256 512".into())
        .split_whitespace()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "0".into());
    println!("machine: {} cores, RAYON_NUM_THREADS={threads}", std::thread::available_parallelism().map_or(0, |n| n.get()));
    let torch = std::env::var("VGG_BENCH_TORCH").ok().filter(|p| p != "0");
    if let Some(t) = torch.as_deref().filter(|t| !std::path::Path::new(t).exists()) {
        anyhow::bail!("VGG_BENCH_TORCH={t}: no such file");
    }
    // The machine is shared and noisy: alternate the two sides per size for a few rounds and keep
    // each side's best median, so both see similar conditions.
    let rounds = env_usize("VGG_BENCH_ROUNDS", 2);
    for &s in &sizes {
        let (mut ours, mut theirs): (Option<HashMap<String, String>>, Option<HashMap<String, String>>) = (None, None);
        for _ in 0..rounds {
            let out = Command::new(std::env::current_exe()?).env("VGG_BENCH_CHILD", s.to_string()).output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            print!("{text}");
            if !out.status.success() {
                anyhow::bail!("bench child for size {s} failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            if let Some(l) = text.lines().find(|l| l.starts_with("texstyle-vgg16")) {
                ours = Some(best(ours, parse(l)));
            }
            if let Some(torch) = &torch {
                let mut cmd = Command::new(torch);
                cmd.args(["--sizes", &s.to_string(), "--threads", &threads]);
                cmd.args(["--warmup", &warmup.to_string(), "--iters", &iters.to_string()]);
                let out = cmd.output()?;
                let text = String::from_utf8_lossy(&out.stdout);
                print!("{text}");
                if let Some(l) = text.lines().find(|l| l.starts_with("torch-vgg16")) {
                    theirs = Some(best(theirs, parse(l)));
                }
            }
        }
        let (Some(o), Some(t)) = (ours, theirs) else {
            println!("(torch baseline skipped or failed for size {s})");
            continue;
        };
        let ratio = |k: &str| -> String {
            match (o.get(k).and_then(|v| v.parse::<f64>().ok()), t.get(k).and_then(|v| v.parse::<f64>().ok())) {
                (Some(a), Some(b)) => format!("{a}/{b}={:.2}", a / b),
                _ => "?".into(),
            }
        };
        println!(
            "ratio size={s} fwd_ms {} fwdbwd_ms {} peak_rss_mb {} (texstyle/torch, best of {rounds} rounds; target <= 0.50)",
            ratio("fwd_ms"),
            ratio("fwdbwd_ms"),
            ratio("peak_rss_mb")
        );
    }
    Ok(())
}

/// Per timing key, the smaller value of two runs.
fn best(a: Option<HashMap<String, String>>, b: HashMap<String, String>) -> HashMap<String, String> {
    let Some(mut a) = a else { return b };
    for k in ["fwd_ms", "fwdbwd_ms"] {
        let (x, y) = (a.get(k).and_then(|v| v.parse::<f64>().ok()), b.get(k).and_then(|v| v.parse::<f64>().ok()));
        if let (Some(x), Some(y)) = (x, y) {
            a.insert(k.to_string(), x.min(y).to_string());
        }
    }
    a
}
