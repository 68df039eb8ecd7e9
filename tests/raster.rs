//! The wgpu rasterizer against the CPU reference, and the cases a rasterizer
//! gets wrong: near plane, off-screen, degenerate triangles, windings,
//! watertightness, big meshes and big views.

mod common;

use glam::{DVec3, Mat4, Vec3, Vec4};
use texstyle::camera::{Camera, CameraRange, ViewSampler};
use texstyle::image_io::Image;
use texstyle::lookup;
use texstyle::raster::{cpu, gpu::Rasterizer, RasterFrame, RasterMesh, ViewSize};

/// How two frames of the same view differ.
#[derive(Debug)]
struct Diff {
    /// Samples where GPU and CPU pick the same triangle (both background counts).
    same_tri: f64,
    /// Samples covered by exactly one of the two.
    coverage_mismatch: usize,
    /// Largest |Δu|, |Δv| where both pick the same triangle.
    max_uv_err: f32,
    covered: usize,
}

fn diff(a: &RasterFrame, b: &RasterFrame) -> Diff {
    assert_eq!((a.width, a.height, a.samples), (b.width, b.height, b.samples));
    let mut same = 0;
    let mut mismatch = 0;
    let mut max_uv_err = 0.0f32;
    for (p, q) in a.pixels.iter().zip(&b.pixels) {
        if p.tri == q.tri {
            same += 1;
            if p.covered() {
                max_uv_err = max_uv_err.max((p.u - q.u).abs()).max((p.v - q.v).abs());
            }
        }
        mismatch += (p.covered() != q.covered()) as usize;
    }
    Diff {
        same_tri: same as f64 / a.pixels.len() as f64,
        coverage_mismatch: mismatch,
        max_uv_err,
        covered: a.pixels.iter().filter(|p| p.covered()).count(),
    }
}

/// Whether some triangle strictly contains the centre of sample `(x, y)`,
/// in front of the camera: homogeneous barycentrics in f64, brute force.
fn covered_exactly(mesh: &RasterMesh, vp: Mat4, f: &RasterFrame, x: u32, y: u32) -> bool {
    let p = texstyle::conventions::pixel_center_ndc(x, y, f.grid_width(), f.grid_height());
    let p = DVec3::new(p.x as f64, p.y as f64, 1.0);
    mesh.triangles.iter().any(|tri| {
        let c: Vec<DVec3> = (0..3)
            .map(|k| {
                let c = vp * Vec4::from_array(mesh.positions[tri[k] as usize]);
                DVec3::new(c.x as f64, c.y as f64, c.w as f64)
            })
            .collect();
        let det = c[0].dot(c[1].cross(c[2]));
        let l = [c[1].cross(c[2]).dot(p) / det, c[2].cross(c[0]).dot(p) / det, c[0].cross(c[1]).dot(p) / det];
        det != 0.0 && l.iter().all(|&v| v > 1e-7)
    })
}

/// Uncovered samples that a triangle does cover (checked exactly), among
/// those whose four neighbours are covered — where cracks between
/// triangles would show. Real background gaps of the shape are not holes.
fn pinholes(mesh: &RasterMesh, vp: Mat4, f: &RasterFrame) -> Vec<(u32, u32)> {
    let (w, h) = (f.grid_width(), f.grid_height());
    let mut holes = Vec::new();
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            if !f.at(x, y).covered()
                && f.at(x - 1, y).covered()
                && f.at(x + 1, y).covered()
                && f.at(x, y - 1).covered()
                && f.at(x, y + 1).covered()
                && covered_exactly(mesh, vp, f, x, y)
            {
                holes.push((x, y));
            }
        }
    }
    holes
}

fn views(seed: u64, n: usize) -> Vec<Camera> {
    let mut s = ViewSampler::new(seed, CameraRange::default());
    (0..n).map(|_| s.next_camera()).collect()
}

fn compare_with_reference(name: &str, size: u32, n_views: usize) {
    compare_mesh_with_reference(name, &common::load(name), size, n_views);
}

fn compare_mesh_with_reference(name: &str, mesh: &texstyle::mesh::Mesh, size: u32, n_views: usize) {
    let mesh = RasterMesh::from_mesh(mesh);
    let gpu = common::gpu();
    let mut r = Rasterizer::new(&gpu, &mesh).unwrap();
    for (i, cam) in views(42, n_views).iter().enumerate() {
        let vp = cam.view_proj(1.0);
        let size = ViewSize::square(size);
        let g = r.rasterize(vp, size).unwrap();
        let c = cpu::rasterize(&mesh, vp, size);
        let d = diff(&g, &c);
        eprintln!("{name} view {i}: {d:?}");
        assert!(d.covered > (size.width * size.height / 20) as usize, "{name} view {i}: mesh barely visible");
        assert!(d.same_tri >= 0.995, "{name} view {i}: only {:.4} of pixels agree on the triangle", d.same_tri);
        // Coverage may differ only where a sample centre lies on a silhouette
        // edge to within rounding: a few samples per view at most.
        assert!(d.coverage_mismatch <= 8, "{name} view {i}: coverage differs on {} pixels", d.coverage_mismatch);
        assert!(d.max_uv_err < 1e-3, "{name} view {i}: UVs differ by {}", d.max_uv_err);
    }
}

#[test]
fn gpu_matches_cpu_reference_on_spot() {
    compare_with_reference("spot", 512, 4);
}

#[test]
fn gpu_matches_cpu_reference_on_the_bunny_with_its_automatic_atlas() {
    let mut bunny = common::load("bunny");
    bunny.prepare_uvs(None, 512).unwrap();
    compare_mesh_with_reference("bunny", &bunny, 512, 4);
}

#[test]
fn big_mesh_at_1024_matches_reference() {
    // 128,000 triangles, generated (a bumpy sphere with UVs).
    let dir = tempfile::tempdir().unwrap();
    let sphere = texstyle::mesh::Mesh::load(common::write_bumpy_sphere(dir.path(), 256, 251)).unwrap();
    assert_eq!(sphere.triangles.len(), 128_000);
    compare_mesh_with_reference("sphere_128k", &sphere, 1024, 1);
}

#[test]
fn closed_meshes_have_no_pinholes() {
    let gpu = common::gpu();
    let dir = tempfile::tempdir().unwrap();
    let sphere = texstyle::mesh::Mesh::load(common::write_bumpy_sphere(dir.path(), 96, 48)).unwrap();
    for (name, mesh) in [("spot", common::load("spot")), ("sphere", sphere)] {
        let mesh = RasterMesh::from_mesh(&mesh);
        let mut r = Rasterizer::new(&gpu, &mesh).unwrap();
        for (i, cam) in views(7, 12).iter().enumerate() {
            let vp = cam.view_proj(1.0);
            let f = r.rasterize(vp, ViewSize::square(512)).unwrap();
            let holes = pinholes(&mesh, vp, &f);
            assert!(holes.is_empty(), "{name} view {i}: pinholes at {:?}", &holes[..holes.len().min(10)]);
        }
    }
}

#[test]
fn gpu_raster_is_deterministic() {
    let mesh = RasterMesh::from_mesh(&common::load("spot"));
    let gpu = common::gpu();
    let mut r = Rasterizer::new(&gpu, &mesh).unwrap();
    let vp = views(3, 1)[0].view_proj(1.0);
    let a = r.rasterize(vp, ViewSize::square(256)).unwrap();
    let b = r.rasterize(vp, ViewSize::square(256)).unwrap();
    assert_eq!(a, b);
}

/// A K×K supersampled view samples the K-times finer grid (checked against the CPU reference at
/// that grid), and each rendered pixel is the mean of its K×K samples: silhouette pixels blend
/// mesh and background, which one sample per pixel cannot.
#[test]
fn supersampled_frame_is_the_finer_grid() {
    let spot = common::load("spot");
    let mesh = RasterMesh::from_mesh(&spot);
    let gpu = common::gpu();
    let mut r = Rasterizer::new(&gpu, &mesh).unwrap();
    let vp = views(5, 1)[0].view_proj(1.0);
    let ss = r.rasterize(vp, ViewSize { width: 64, height: 64, samples: 3 }).unwrap();
    assert_eq!((ss.grid_width(), ss.grid_height()), (192, 192));
    let as_grid = RasterFrame { width: 192, height: 192, samples: 1, pixels: ss.pixels.clone() };
    let d = diff(&as_grid, &cpu::rasterize(&mesh, vp, ViewSize::square(192)));
    assert!(d.same_tri >= 0.995 && d.coverage_mismatch <= 8 && d.covered > 192 * 192 / 20, "{d:?}");

    let textures: Vec<Option<&Image>> = spot.materials.iter().map(|m| m.texture.as_ref()).collect();
    let flat: Vec<[f32; 3]> = spot.materials.iter().map(|m| m.diffuse).collect();
    let render = |f: &RasterFrame| lookup::render(f, &spot.tri_material, &textures, &flat, [0.0; 3]);
    let (img, fine) = (render(&ss), render(&as_grid));
    let mut max_err = 0.0f32;
    for y in 0..64 {
        for x in 0..64 {
            let mut mean = [0.0f32; 3];
            for k in 0..9 {
                let p = fine.pixel(3 * x + k % 3, 3 * y + k / 3);
                (0..3).for_each(|c| mean[c] += p[c] / 9.0);
            }
            let got = img.pixel(x, y);
            (0..3).for_each(|c| max_err = max_err.max((got[c] - mean[c]).abs()));
        }
    }
    assert!(max_err < 1e-5, "supersampled pixel vs mean of its samples: {max_err}");
    let partial = (0..64 * 64)
        .filter(|&i| {
            let n = (0..9).filter(|k| ss.at(3 * (i % 64) + k % 3, 3 * (i / 64) + k / 3).covered()).count();
            n > 0 && n < 9
        })
        .count();
    assert!(partial > 20, "only {partial} silhouette pixels mix mesh and background");
}

// --- Synthetic scenes: each builds its mesh in code. --------------------------

fn mesh_of(positions: &[[f32; 3]], triangles: &[[u32; 3]]) -> RasterMesh {
    RasterMesh {
        positions: positions.iter().map(|p| [p[0], p[1], p[2], 1.0]).collect(),
        triangles: triangles.iter().map(|t| [t[0], t[1], t[2], 0]).collect(),
        uvs: triangles.iter().flat_map(|t| t.map(|i| [positions[i as usize][0], positions[i as usize][1]])).collect(),
    }
}

/// Rasterizes on both paths and checks they agree exactly on coverage and
/// triangle ids (the scenes avoid sample centres on edges).
fn both(mesh: &RasterMesh, vp: Mat4, size: u32) -> RasterFrame {
    let gpu = common::gpu();
    let g = Rasterizer::new(&gpu, mesh).unwrap().rasterize(vp, ViewSize::square(size)).unwrap();
    let c = cpu::rasterize(mesh, vp, ViewSize::square(size));
    let d = diff(&g, &c);
    assert_eq!(d.same_tri, 1.0, "GPU and CPU disagree: {d:?}");
    assert!(d.max_uv_err < 1e-4, "{d:?}");
    g
}

fn camera(eye: Vec3, target: Vec3, fov: f32) -> Mat4 {
    Camera::look_at(eye, target, fov, 0.1, 100.0).view_proj(1.0)
}

#[test]
fn triangle_crossing_the_near_plane_is_clipped_not_dropped() {
    // A long floor under the camera, reaching behind it.
    let floor = mesh_of(
        &[[-3.0, -0.5, 20.0], [3.0, -0.5, 20.0], [3.0, -0.5, -20.0], [-3.0, -0.5, -20.0]],
        &[[0, 1, 2], [0, 2, 3]],
    );
    let f = both(&floor, camera(Vec3::new(0.0, 0.0, 0.0), Vec3::new(0.0, 0.0, -1.0), 90.0), 64);
    assert!(f.at(32, 63).covered(), "floor right under the camera is visible");
    assert!(!f.at(32, 0).covered(), "sky is empty");
    // Perspective: the floor's far edge is at the horizon, so about half the view is covered.
    let covered = f.pixels.iter().filter(|p| p.covered()).count();
    assert!((1700..2100).contains(&covered), "covered {covered}");
}

#[test]
fn triangle_behind_the_camera_is_invisible() {
    let t = mesh_of(&[[-1.0, -1.0, 5.0], [1.0, -1.0, 5.0], [0.0, 1.0, 5.0]], &[[0, 1, 2]]);
    let f = both(&t, camera(Vec3::ZERO, Vec3::new(0.0, 0.0, -1.0), 60.0), 32);
    assert!(f.pixels.iter().all(|p| !p.covered()));
}

#[test]
fn partly_off_screen_triangle_covers_its_visible_part() {
    // A huge triangle much larger than the view, and one wholly off-screen.
    let t = mesh_of(
        &[[-50.0, -50.0, -5.0], [50.0, -50.0, -5.0], [0.0, 80.0, -5.0], [40.0, 40.0, -5.0], [41.0, 40.0, -5.0], [40.0, 41.0, -5.0]],
        &[[0, 1, 2], [3, 4, 5]],
    );
    let f = both(&t, camera(Vec3::ZERO, Vec3::new(0.0, 0.0, -1.0), 60.0), 32);
    assert!(f.pixels.iter().all(|p| p.tri == 1), "the big triangle fills the view");
}

#[test]
fn degenerate_triangles_cover_nothing() {
    let t = mesh_of(
        &[[-1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.3, 0.2, 0.0]],
        // Collinear corners, a repeated vertex, and all three the same.
        &[[0, 1, 2], [0, 0, 3], [3, 3, 3]],
    );
    let f = both(&t, camera(Vec3::new(0.0, 0.0, 5.0), Vec3::ZERO, 40.0), 32);
    assert!(f.pixels.iter().all(|p| !p.covered()));
}

#[test]
fn both_windings_are_seen() {
    let ccw = mesh_of(&[[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.0, 0.0]], &[[0, 1, 2]]);
    let cw = mesh_of(&[[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.0, 0.0]], &[[0, 2, 1]]);
    let front = camera(Vec3::new(0.0, 0.0, 5.0), Vec3::ZERO, 40.0);
    let back = camera(Vec3::new(0.0, 0.0, -5.0), Vec3::ZERO, 40.0);
    let a = both(&ccw, front, 32);
    let b = both(&cw, front, 32);
    let c = both(&ccw, back, 32);
    let n = a.pixels.iter().filter(|p| p.covered()).count();
    assert!(n > 100);
    assert_eq!(b.pixels.iter().filter(|p| p.covered()).count(), n);
    assert_eq!(c.pixels.iter().filter(|p| p.covered()).count(), n);
    // The same point of the surface has the same UV from either winding.
    assert!((a.at(16, 20).u - b.at(16, 20).u).abs() < 1e-6);
}

#[test]
fn nearer_triangle_wins_and_depth_is_in_range() {
    let t = mesh_of(
        &[[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.0, 0.0], [-1.0, -1.0, 1.0], [1.0, -1.0, 1.0], [0.0, 1.0, 1.0]],
        &[[0, 1, 2], [3, 4, 5]],
    );
    let f = both(&t, camera(Vec3::new(0.0, 0.0, 5.0), Vec3::ZERO, 40.0), 32);
    let centre = f.at(16, 18);
    assert_eq!(centre.tri, 2, "the triangle at z = 1 is nearer to a camera at z = 5");
    assert!(centre.depth > 0.0 && centre.depth < 1.0);
}
