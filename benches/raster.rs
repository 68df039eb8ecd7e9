//! Raster benchmark: milliseconds per view, wgpu (whatever adapter is found;
//! lavapipe on CPU-only machines) against the CPU reference, in the same run.
//!
//!     cargo bench --bench raster
//!
//! Prints one line per (mesh, size, path): median and min over the timed
//! views, end to end (camera upload, dispatches, copy back, map), plus the
//! one-time setup (device, shader compilation, mesh upload).
//!
//! Meshes: the plain Stanford bunny (`meshes/bunny.obj`, 69,451 triangles)
//! and a closed bumpy sphere of 128,000 triangles generated into a temporary
//! folder (the tests' fixture). `RASTER_BENCH_MESHES` (OBJ paths, separated
//! by spaces) replaces them.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Instant;

use texstyle::camera::{CameraRange, ViewSampler};
use texstyle::gpu::Gpu;
use texstyle::mesh::Mesh;
use texstyle::raster::{cpu, gpu::Rasterizer, RasterMesh, ViewSize};

const VIEWS: usize = 20;
const WARMUP: usize = 3;

fn stats(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[0])
}

fn main() {
    let generated = tempfile::tempdir().expect("a temporary folder");
    let meshes: Vec<PathBuf> = match std::env::var("RASTER_BENCH_MESHES") {
        Ok(list) => list.split_whitespace().map(PathBuf::from).collect(),
        Err(_) => vec![common::repo("meshes/bunny.obj"), common::write_bumpy_sphere(generated.path(), 256, 251)],
    };
    let t0 = Instant::now();
    let gpu = Gpu::new().expect("the raster benchmark needs a wgpu adapter (lavapipe is enough)");
    let device_ms = t0.elapsed().as_secs_f64() * 1e3;
    println!("adapter: {}", gpu.describe());
    println!("threads: {} (rayon, CPU reference)", rayon::current_num_threads());
    println!("setup: device {device_ms:.1} ms");
    for path in &meshes {
        let name = path.file_stem().unwrap_or_default().to_string_lossy();
        let mesh = Mesh::load(path).unwrap_or_else(|e| panic!("{e}"));
        let rm = RasterMesh::from_mesh(&mesh);
        let t = Instant::now();
        let mut r = Rasterizer::new(&gpu, &rm).expect("rasterizer");
        let setup_ms = t.elapsed().as_secs_f64() * 1e3;
        println!("{name}: {} triangles, setup (shaders + upload) {setup_ms:.1} ms", rm.triangles.len());
        for size in [512, 1024] {
            let mut views = ViewSampler::new(1, CameraRange::default());
            let cams: Vec<_> = (0..WARMUP + VIEWS).map(|_| views.next_camera().view_proj(1.0)).collect();
            let (mut g, mut c) = (Vec::new(), Vec::new());
            for (i, vp) in cams.iter().enumerate() {
                let t = Instant::now();
                let frame = r.rasterize(*vp, ViewSize::square(size)).expect("raster");
                let gm = t.elapsed().as_secs_f64() * 1e3;
                let t = Instant::now();
                let reference = cpu::rasterize(&rm, *vp, ViewSize::square(size));
                let cm = t.elapsed().as_secs_f64() * 1e3;
                std::hint::black_box((frame, reference));
                if i >= WARMUP {
                    g.push(gm);
                    c.push(cm);
                }
            }
            let ((gmed, gmin), (cmed, cmin)) = (stats(g), stats(c));
            println!(
                "{name} {size}x{size}: wgpu median {gmed:.1} ms (min {gmin:.1}) | cpu reference median {cmed:.1} ms (min {cmin:.1}) | wgpu/cpu {:.2}",
                gmed / cmed
            );
        }
    }
}
