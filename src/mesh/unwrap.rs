//! Automatic UV atlas for meshes without texture coordinates (`--uv auto`),
//! with the `uvunwrap` crate (pure Rust: xatlas-style chart growing, LSCM +
//! ARAP flattening, shape packing with padding, never overlapping charts).
//!
//! One atlas page per material, square, `atlas_size²` texels. The positions
//! and triangles stay exactly as loaded; only new texture coordinates (one
//! per unwrapped vertex, seams duplicated) are added. Vertex colours, when
//! the mesh has them and its material no texture, are painted into the new
//! atlas (barycentric per texel, then every unpainted texel takes the nearest
//! painted colour, which pads the charts) and become the content texture.

use std::time::Instant;

use glam::Vec2;

use super::{Mesh, MeshError, MeshErrorKind, UvCoverage};
use crate::image_io::Image;

/// What the unwrap made, for the run's report and the README.
#[derive(Clone, Debug)]
pub struct AtlasReport {
    pub charts: u32,
    /// Fraction of the square atlas covered by charts (mean over materials).
    pub coverage: f32,
    /// Texel density (texels per unit length) of the densest chart over the
    /// sparsest, 5th to 95th percentile by surface area: 1 is perfectly even.
    pub density_spread: f32,
    /// Whether vertex colours were baked into the atlas as the content texture.
    pub baked_colors: bool,
    /// Whether existing textures were carried over from the old UVs to the new atlas.
    pub moved_textures: bool,
    pub seconds: f64,
}

impl std::fmt::Display for AtlasReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} charts covering {:.0} % of the atlas, texel density within {:.2}× between charts (5–95th percentile), {:.1} s{}",
            self.charts,
            100.0 * self.coverage,
            self.density_spread,
            self.seconds,
            match (self.baked_colors, self.moved_textures) {
                (true, _) => "; vertex colours baked in as the content texture",
                (false, true) => "; the file's textures carried over to the new atlas",
                _ => "",
            }
        )
    }
}

/// Padding between charts in texels: bilinear lookups and the unseen-texel
/// fill need a texel or two; more at larger sizes where mip levels blur more.
fn padding(atlas_size: u32) -> u32 {
    (atlas_size / 256).clamp(2, 8)
}

/// Replaces the mesh's UVs by a new atlas per material (see the module docs).
pub fn unwrap(mesh: &mut Mesh, atlas_size: u32) -> Result<AtlasReport, MeshError> {
    let start = Instant::now();
    let positions: Vec<[f32; 3]> = mesh.positions.iter().map(|p| p.to_array()).collect();
    let options = uvunwrap::Options {
        density: uvunwrap::Density::Auto { page_size: atlas_size },
        padding: padding(atlas_size),
        ..Default::default()
    };
    // `--uv auto` on a textured mesh: its textures are re-sampled into the new atlas below.
    let old = (mesh.uv_coverage == UvCoverage::All).then(|| mesh.clone());
    mesh.texcoords.clear();
    mesh.tri_texcoords = vec![[0; 3]; mesh.triangles.len()];
    let mut tally = Tally::default();
    for mat in 0..mesh.materials.len() {
        let tris: Vec<usize> = (0..mesh.triangles.len()).filter(|&t| mesh.tri_material[t] as usize == mat).collect();
        if tris.is_empty() {
            continue;
        }
        let atlas = generate(mesh, &positions, &tris, &options, atlas_size)?;
        place(mesh, &tris, &atlas, atlas_size, &mut tally);
        repaint(mesh, mat, &tris, old.as_ref(), atlas_size, &mut tally);
    }
    mesh.uv_coverage = UvCoverage::All;
    let used = mesh.materials.iter().enumerate().filter(|(m, _)| mesh.tri_material.contains(&(*m as u32))).count().max(1);
    Ok(AtlasReport {
        charts: tally.charts,
        coverage: tally.coverage / used as f32,
        density_spread: density_spread(&tally.chart_areas),
        baked_colors: tally.baked_colors,
        moved_textures: tally.moved_textures,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// What the materials' atlases add up to, for the [`AtlasReport`].
#[derive(Default)]
struct Tally {
    /// Per chart: (3D area, UV area in texels²), to measure the density spread.
    chart_areas: Vec<(f32, f32)>,
    /// Sum over materials of the fraction of the atlas covered.
    coverage: f32,
    charts: u32,
    baked_colors: bool,
    moved_textures: bool,
}

/// The one-page atlas of triangles `tris` (one material's).
fn generate(mesh: &Mesh, positions: &[[f32; 3]], tris: &[usize], options: &uvunwrap::Options, atlas_size: u32) -> Result<uvunwrap::Atlas, MeshError> {
    let indices: Vec<u32> = tris.iter().flat_map(|&t| mesh.triangles[t]).collect();
    let polygons: Vec<u32> = tris.iter().map(|&t| mesh.tri_polygon[t]).collect();
    let input = uvunwrap::MeshInput { polygons: Some(&polygons), ..uvunwrap::MeshInput::new(positions, &indices) };
    let atlas = uvunwrap::generate(&[input], options).map_err(|e| {
        MeshError::new(MeshErrorKind::Unwrap, &mesh.path, format!("the automatic UV unwrap failed: {e}"), "unwrap the mesh in your modeller and pass --uv keep")
    })?;
    if atlas.page_count != 1 {
        return Err(MeshError::new(
            MeshErrorKind::Unwrap,
            &mesh.path,
            format!("the automatic UV atlas needs {} pages of {atlas_size}²", atlas.page_count),
            "use a larger --texture-size, or unwrap the mesh in your modeller",
        ));
    }
    Ok(atlas)
}

/// Gives triangles `tris` their texture coordinates in `atlas` and adds
/// its charts' areas and coverage to `tally`.
fn place(mesh: &mut Mesh, tris: &[usize], atlas: &uvunwrap::Atlas, atlas_size: u32, tally: &mut Tally) {
    let size = atlas_size as f32;
    let out = &atlas.meshes[0];
    let base = mesh.texcoords.len() as u32;
    // uvunwrap: (0, 0) is the corner of texel row 0 of a width × height
    // page; ours: OBJ convention, v = 0 at the bottom row of a square atlas.
    let (w, h) = (atlas.width as f32, atlas.height as f32);
    mesh.texcoords.extend(out.vertices.iter().map(|v| Vec2::new(v.uv[0] * w / size, 1.0 - v.uv[1] * h / size)));
    let chart_base = tally.chart_areas.len();
    tally.chart_areas.resize(chart_base + atlas.chart_count as usize, (0.0, 0.0));
    let mut covered = 0.0;
    for (k, &t) in tris.iter().enumerate() {
        let ids = [out.indices[3 * k], out.indices[3 * k + 1], out.indices[3 * k + 2]];
        mesh.tri_texcoords[t] = ids.map(|i| base + i);
        let p = mesh.triangles[t].map(|i| mesh.positions[i as usize]);
        let area3 = 0.5 * (p[1] - p[0]).cross(p[2] - p[0]).length();
        let uv = ids.map(|i| Vec2::from(out.vertices[i as usize].uv) * Vec2::new(w, h));
        let area_uv = 0.5 * (uv[1] - uv[0]).perp_dot(uv[2] - uv[0]).abs();
        covered += area_uv;
        if let Some(c) = out.vertices[ids[0] as usize].chart {
            // Chart ids are global across the meshes of one generate call.
            let e = &mut tally.chart_areas[chart_base + c as usize];
            e.0 += area3;
            e.1 += area_uv;
        }
    }
    tally.coverage += covered / (size * size);
    tally.charts += atlas.chart_count;
}

/// Gives material `mat` a texture in its new atlas: the `old` mesh's
/// texture moved over, or else the vertex colours baked in (when it has no texture).
fn repaint(mesh: &mut Mesh, mat: usize, tris: &[usize], old: Option<&Mesh>, atlas_size: u32, tally: &mut Tally) {
    if let Some((old, old_tex)) = old.and_then(|o| Some((o, o.materials[mat].texture.as_ref()?))) {
        // Each new texel reads the old texture at the same surface point.
        let moved = bake(mesh, tris, atlas_size, |t, w| {
            let uv = old.triangle_uvs(t);
            let p = uv[0] * w[0] + uv[1] * w[1] + uv[2] * w[2];
            let (x, y) = (p.x.rem_euclid(1.0) * old_tex.width as f32, (1.0 - p.y.rem_euclid(1.0)) * old_tex.height as f32);
            glam::Vec3::from(old_tex.pixel((x as u32).min(old_tex.width - 1), (y as u32).min(old_tex.height - 1)))
        });
        mesh.materials[mat].texture = Some(moved);
        mesh.materials[mat].texture_path = None;
        tally.moved_textures = true;
    } else if !mesh.vertex_colors.is_empty() && mesh.materials[mat].texture.is_none() {
        let colors = &mesh.vertex_colors;
        let tris_pos = &mesh.triangles;
        let baked = bake(mesh, tris, atlas_size, |t, w| {
            let c = tris_pos[t].map(|i| glam::Vec3::from(colors[i as usize]));
            c[0] * w[0] + c[1] * w[1] + c[2] * w[2]
        });
        mesh.materials[mat].texture = Some(baked);
        tally.baked_colors = true;
    }
}

/// 95th over 5th percentile (by surface area) of the charts' texel densities.
fn density_spread(charts: &[(f32, f32)]) -> f32 {
    let mut d: Vec<(f32, f32)> = charts.iter().filter(|c| c.0 > 0.0 && c.1 > 0.0).map(|&(a3, auv)| ((auv / a3).sqrt(), a3)).collect();
    if d.is_empty() {
        return 1.0;
    }
    d.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f32 = d.iter().map(|x| x.1).sum();
    let at = |q: f32| {
        let mut acc = 0.0;
        for x in &d {
            acc += x.1;
            if acc >= q * total {
                return x.0;
            }
        }
        d.last().unwrap().0
    };
    at(0.95) / at(0.05)
}

/// Paints triangles `tris` into a new `size²` image through the mesh's (new)
/// UVs, each texel centre getting `colour(triangle, barycentric weights)`;
/// texels outside every chart take the nearest painted colour.
fn bake(mesh: &Mesh, tris: &[usize], size: u32, colour: impl Fn(usize, [f32; 3]) -> glam::Vec3) -> Image {
    let mut img = Image::filled(size, size, [0.0; 3]);
    let mut painted = vec![false; (size * size) as usize];
    let s = size as f32;
    for &t in tris {
        let uv = mesh.triangle_uvs(t).map(|p| Vec2::new(p.x * s, (1.0 - p.y) * s));
        let lo = uv[0].min(uv[1]).min(uv[2]).floor().max(Vec2::ZERO);
        let hi = uv[0].max(uv[1]).max(uv[2]).ceil().min(Vec2::splat(s));
        let area = (uv[1] - uv[0]).perp_dot(uv[2] - uv[0]);
        if area.abs() < 1e-12 {
            continue;
        }
        for y in lo.y as u32..hi.y as u32 {
            for x in lo.x as u32..hi.x as u32 {
                // Texel centres at +0.5 (see conventions); texels whose centre
                // no triangle covers are filled from their neighbours below.
                let p = Vec2::new(x as f32 + 0.5, y as f32 + 0.5);
                let w1 = (p - uv[0]).perp_dot(uv[2] - uv[0]) / area;
                let w2 = (uv[1] - uv[0]).perp_dot(p - uv[0]) / area;
                let w0 = 1.0 - w1 - w2;
                if w0 < -1e-4 || w1 < -1e-4 || w2 < -1e-4 {
                    continue;
                }
                let c = colour(t, [w0, w1, w2]);
                img.set_pixel(x, y, c.clamp(glam::Vec3::ZERO, glam::Vec3::ONE).to_array());
                painted[(y * size + x) as usize] = true;
            }
        }
    }
    crate::fill::fill_unseen(&mut img, &painted);
    img
}
