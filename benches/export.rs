//! Export benchmark: seconds and bytes per format on a textured mesh, as the
//! default run exports it (512² texture, budget 1 M triangles, 80 mm print).
//!
//!     cargo bench --bench export                       # spot (meshes/spot)
//!     cargo bench --bench export -- out/bunny/bunny_textured.obj   # a styled result
//!
//! Reads the in-repo spot unless given a mesh (an OBJ with its texture,
//! e.g. the output of a style run). The texture is
//! resized to the default 512² when it is not that size. Times are wall
//! clock, best of 2, and include the turntable previews of the colour
//! exports (rendered with the wgpu rasterizer when an adapter exists).

use std::path::PathBuf;

use texstyle::export::{write_all, Format, Plan, Request, DEFAULT_MAX_TRIANGLES};
use texstyle::image_io::Image;
use texstyle::mesh::Mesh;

const TEXTURE: u32 = 512;
const ROUNDS: usize = 2;

fn main() {
    let path = std::env::args().skip(1).find(|a| !a.starts_with("--")).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("meshes/spot/spot.obj")
    });
    let mesh = Mesh::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let textures: Vec<Image> = mesh
        .materials
        .iter()
        .map(|m| {
            let t = m.texture.as_ref().expect("the bench needs a textured mesh");
            if (t.width, t.height) == (TEXTURE, TEXTURE) {
                t.clone()
            } else {
                let rgb = image::imageops::resize(&t.to_rgb8(), TEXTURE, TEXTURE, image::imageops::FilterType::Triangle);
                Image::from_rgb8(&rgb)
            }
        })
        .collect();
    println!("mesh: {} ({} triangles), texture {TEXTURE}², threads: {}", path.display(), mesh.triangles.len(), rayon::current_num_threads());
    let formats = [Format::Obj, Format::ObjZip, Format::ThreeMf, Format::Glb, Format::VertexColors, Format::Palette(4), Format::Palette(8)];
    let t = std::time::Instant::now();
    let request = Request { formats: formats.to_vec(), print_size_mm: Some(80.0), max_triangles: DEFAULT_MAX_TRIANGLES, close_holes: false };
    let plan = Plan::new(&mesh, request, (TEXTURE, TEXTURE)).unwrap();
    let split = plan.split.as_ref().unwrap();
    println!(
        "plan (subdivision, once for the colour exports): {:.2} s → {} triangles, longest edge {:.2} texels{}",
        t.elapsed().as_secs_f64(),
        split.mesh.triangles.len(),
        split.longest_edge_texels,
        if split.budget_bound { " (budget bound)" } else { "" }
    );
    let mut best: Vec<(f64, u64, String)> = vec![(f64::INFINITY, 0, String::new()); formats.len()];
    for _ in 0..ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let made = write_all(&plan, &mesh, &textures, dir.path(), "bench", &[], &mut |m| {
            Ok(texstyle::cli::open_raster(false, m)?)
        })
        .unwrap();
        for (b, m) in best.iter_mut().zip(&made) {
            if m.seconds < b.0 {
                *b = (m.seconds, m.bytes, m.notes.join("; "));
            }
        }
    }
    println!("| export | time | size | notes |\n|---|---|---|---|");
    for (f, (s, bytes, notes)) in formats.iter().zip(&best) {
        println!("| `{f}` | {s:.2} s | {:.1} MB | {notes} |", *bytes as f64 / 1e6);
    }
}
