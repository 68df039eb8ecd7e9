//! The texture side of a step (parameterization forward, the learned view's
//! gather, the gradient back to θ, Adam) against the texture size, next to
//! the VGG16 style step at 256² timed in the same run, so the share of a step
//! it takes is a ratio measured under one set of conditions.
//!
//!     cargo bench --bench texture
//!
//! Views: spot (`meshes/spot`, in the repository; `TEXTURE_BENCH_MESH` names
//! another OBJ, unwrapped at each texture size as the CLI does when it has no
//! UVs, e.g. `meshes/bunny.obj`), 256² with 2×2 samples,
//! rasterized by the CPU reference (untimed, as is the lookup table:
//! mip-mapped for the pyramid, as the default run's); the image gradient is
//! fixed random numbers. `TEXTURE_BENCH_PARAMS` (default "pyramid fft"),
//! `TEXTURE_BENCH_SIZES` (default
//! "512 1024 2048"), `TEXTURE_BENCH_STEPS` (default 12, the first 3 untimed).
//! The network runs with random weights (timing only).

use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor};
use texstyle::adam::{Adam, AdamParams};
use texstyle::camera::{CameraRange, ViewSampler};
use texstyle::cli::bench::run as vgg_bench;
use texstyle::lookup::{triangle_lods, LookupTable};
use texstyle::mesh::Mesh;
use texstyle::raster::{cpu, RasterMesh, ViewSize};
use texstyle::texture::pyramid::level_sizes;
use texstyle::texture::{ParamKind, TextureParam};
use texstyle::vgg::{Backend, Precision};

const WARMUP: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::var("TEXTURE_BENCH_SIZES")
        .unwrap_or_else(|_| "512 1024 2048".into())
        .split_whitespace()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    let steps: usize = std::env::var("TEXTURE_BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12)
        .max(WARMUP + 1);
    let path = std::env::var("TEXTURE_BENCH_MESH")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/meshes/spot/spot.obj").into());
    let loaded = Mesh::load(&path)?;
    let view = ViewSize {
        samples: 2,
        ..ViewSize::square(256)
    };
    let mut cams = ViewSampler::new(1, CameraRange::default());
    let cameras: Vec<_> = (0..steps).map(|_| cams.next_camera().view_proj(1.0)).collect();
    let mut rng = texstyle::rng::SplitMix(7);
    let grad: Vec<f32> = (0..3 * 256 * 256)
        .map(|_| (rng.uniform() - 0.5) * 1e-3)
        .collect();
    let grad = Tensor::from_vec(grad, (1, 3, 256, 256), &Device::Cpu)?;
    println!(
        "machine: {} cores; {path}, views 256² ×2×2 samples, median of {} steps",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        steps - WARMUP
    );
    let net = vgg_bench(&[256], 1, 5, Backend::Fast, Precision::best())?[0].fwdbwd_ms;
    println!("network: VGG16 style fwd+bwd at 256²: {net:.1} ms");
    let kinds: Vec<ParamKind> = std::env::var("TEXTURE_BENCH_PARAMS")
        .unwrap_or_else(|_| "pyramid fft".into())
        .split_whitespace()
        .map(|s| clap::ValueEnum::from_str(s, true).map_err(anyhow::Error::msg))
        .collect::<Result<_, _>>()?;
    for kind in kinds {
        for &size in &sizes {
            let mut mesh = loaded.clone();
            mesh.prepare_uvs(None, size as u32)?;
            let rm = RasterMesh::from_mesh(&mesh);
            let frames: Vec<_> = cameras.iter().map(|&vp| (vp, cpu::rasterize(&rm, vp, view))).collect();
            let mut param = TextureParam::new(kind, 1, size, size, 0)?;
            let mut adam = Adam::new(
                param.vars(),
                AdamParams {
                    lr: 0.05,
                    ..Default::default()
                },
            );
            let mut ms = Vec::new();
            let max_level = level_sizes(size, size).len() as u32 - 1;
            for (vp, frame) in &frames {
                let s = size as u32;
                let table = Arc::new(if kind == ParamKind::Pyramid {
                    let lods = triangle_lods(&rm, *vp, view, s, s);
                    LookupTable::with_mips(frame, &mesh.tri_material, 1, s, s, &lods, max_level)
                } else {
                    LookupTable::new(frame, &mesh.tri_material, 1, s, s)
                });
                let t = Instant::now();
                let learned = param.view(&table, [0.0; 3])?;
                param.descend(&learned, &grad, &mut adam)?;
                ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            let tex = median(ms[WARMUP..].to_vec());
            println!(
                "{kind:?} {size}²: texture side {tex:.1} ms = {:.1} % of texture side + network",
                100.0 * tex / (tex + net)
            );
        }
    }
    Ok(())
}
