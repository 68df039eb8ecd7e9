//! Auto-UV benchmark: the automatic atlas of the plain Stanford bunny
//! (`meshes/bunny.obj`, 69,451 triangles, no UVs) as `texstyle` makes it by
//! default (one 512² page, padding 2), and of spot without its UVs.
//!
//!     cargo bench --bench unwrap
//!
//! Prints, per mesh: median and min seconds over the runs, charts, atlas
//! coverage and the texel-density spread between charts. Loading is not timed.

use std::time::Instant;

use texstyle::mesh::{Mesh, UvChoice};

const RUNS: usize = 5;

fn main() {
    println!("threads: {} (rayon)", rayon::current_num_threads());
    for (name, rel) in [("bunny", "meshes/bunny.obj"), ("spot", "meshes/spot/spot.obj")] {
        let mesh = Mesh::load(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).expect("mesh loads");
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..RUNS {
            let mut m = mesh.clone();
            let t = Instant::now();
            let report = m.prepare_uvs(Some(UvChoice::Auto), 512).expect("unwraps").expect("report");
            times.push(t.elapsed().as_secs_f64());
            last = Some(report);
        }
        times.sort_by(f64::total_cmp);
        let r = last.unwrap();
        println!(
            "{name}: {} triangles, unwrap median {:.2} s, min {:.2} s over {RUNS} runs; {} charts, coverage {:.1} %, density spread {:.3}×",
            mesh.triangles.len(),
            times[RUNS / 2],
            times[0],
            r.charts,
            100.0 * r.coverage,
            r.density_spread
        );
    }
}
