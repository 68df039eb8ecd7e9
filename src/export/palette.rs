//! `palette:N`: the texture reduced to N filament colours, one colour per
//! face of the subdivided mesh, written as an OBJ with one `usemtl` + `Kd`
//! per colour — what Bambu Studio and OrcaSlicer map to the filaments of a
//! multi-material printer.
//!
//! The colours are k-means centres in CIELAB (distances there follow what
//! the eye sees), each face weighted by its surface area, so a colour that
//! covers much of the object gets a filament before a speck does. No
//! dithering: at the subdivided mesh's ~2-texel faces, dithering would
//! scatter single-face islands of other filaments over the surface, which
//! multiply filament changes per layer and read as noise on a print; the
//! nearest colour keeps brush strokes as coherent regions.

use std::collections::HashMap;
use std::fmt::Write as _;

use anyhow::Result;
use glam::{Vec2, Vec3};

use super::{preview, Job, OutFile, Produced};
use crate::image_io::Image;
use crate::lookup::sample_bilinear;
use crate::mesh::Mesh;

/// Palette sizes the `palette:N` export accepts (AMS units hold 4 to 16 filaments).
pub const SIZES: std::ops::RangeInclusive<u32> = 2..=16;

/// Lloyd iterations at most (it usually settles in fewer).
const ITERATIONS: usize = 50;

/// The `palette:N` format: the split mesh in `n` colours, its preview, and
/// the filaments to load (most surface first).
pub(super) fn produce(job: &mut Job, n: u32) -> Result<Produced> {
    let split = job.split();
    let (p, size) = job.placed(split);
    let mut notes = vec![size];
    let textures = job.textures;
    let raster = job.split_raster()?;
    let pal = reduce(split, textures, n as usize);
    if pal.colors.len() < n as usize {
        notes.push(format!("the texture has only {} distinct colours, fewer than the {n} asked for", pal.colors.len()));
    }
    let list: Vec<String> = (0..pal.colors.len()).map(|i| format!("#{} {:.0} %", pal.hex(i), 100.0 * pal.area[i])).collect();
    notes.push(format!("filaments, most surface first: {}", list.join(", ")));
    let preview = preview::palette(raster, split, &pal)?;
    let stem = format!("{}_palette{n}", job.name);
    let mtl = job.names.claim(&stem, "mtl");
    let files = files(split, &p, &pal, job.names.claim(&stem, "obj"), mtl);
    let swatches = pal.colors.iter().copied().zip(pal.area.iter().copied()).collect();
    Ok(Produced { files, preview: Some(preview), notes, swatches })
}

/// A reduced-colour version of a mesh.
#[derive(Clone, Debug)]
pub struct Palette {
    /// 8-bit sRGB colours, most surface area first.
    pub colors: Vec<[u8; 3]>,
    /// Fraction of the surface area each colour covers.
    pub area: Vec<f32>,
    /// Per triangle, an index into `colors`.
    pub face_color: Vec<u32>,
}

impl Palette {
    /// `RRGGBB` of colour `i`.
    pub fn hex(&self, i: usize) -> String {
        let [r, g, b] = self.colors[i];
        format!("{r:02x}{g:02x}{b:02x}")
    }
}

/// The colour of each face: the mean of its material's texture at its
/// three corners and its centre.
fn face_colors(mesh: &Mesh, textures: &[Image]) -> Vec<[f32; 3]> {
    (0..mesh.triangles.len())
        .map(|t| {
            let tex = &textures[mesh.tri_material[t] as usize];
            let uv = mesh.triangle_uvs(t);
            let centre = (uv[0] + uv[1] + uv[2]) / 3.0;
            let taps: [Vec2; 4] = [uv[0], uv[1], uv[2], centre];
            let mut acc = [0.0f32; 3];
            for p in taps {
                let c = sample_bilinear(tex, p);
                for k in 0..3 {
                    acc[k] += 0.25 * c[k];
                }
            }
            acc
        })
        .collect()
}

/// Reduces the faces of `mesh` to at most `n` colours (fewer only when the
/// texture has fewer distinct colours).
pub fn reduce(mesh: &Mesh, textures: &[Image], n: usize) -> Palette {
    let faces = face_colors(mesh, textures);
    let area: Vec<f32> = mesh
        .triangles
        .iter()
        .map(|t| {
            let [a, b, c] = t.map(|i| mesh.positions[i as usize]);
            0.5 * (b - a).cross(c - a).length()
        })
        .collect();
    // Bin faces by 8-bit colour: k-means then runs over distinct colours, not faces.
    let mut bins: HashMap<[u8; 3], f64> = HashMap::new();
    for (c, &a) in faces.iter().zip(&area) {
        *bins.entry(to_u8(*c)).or_default() += a.max(f32::MIN_POSITIVE) as f64;
    }
    let mut points: Vec<([u8; 3], Vec3, f64)> = bins.into_iter().map(|(c, w)| (c, lab(to_f32(c)), w)).collect();
    points.sort_by_key(|p| p.0); // deterministic whatever the hash order
    let centres = kmeans(&points, n.min(points.len()));

    // Final colours are 8-bit (what the MTL and the hex codes say).
    let face_u8: Vec<[u8; 3]> = faces.iter().map(|&c| to_u8(c)).collect();
    let centres_u8 = centres.iter().map(|&c| to_u8(srgb(c))).collect();
    let (colors, mut face_color) = settle(&face_u8, centres_u8, n.min(points.len()));
    let mut used = vec![0.0f64; colors.len()];
    for (&k, &a) in face_color.iter().zip(&area) {
        used[k as usize] += a as f64;
    }
    // Most area first.
    let mut order: Vec<usize> = (0..colors.len()).collect();
    order.sort_by(|&a, &b| used[b].total_cmp(&used[a]).then(a.cmp(&b)));
    let mut remap = vec![0u32; colors.len()];
    for (new, &old) in order.iter().enumerate() {
        remap[old] = new as u32;
    }
    face_color.iter_mut().for_each(|k| *k = remap[*k as usize]);
    let total: f64 = used.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    Palette {
        colors: order.iter().map(|&k| colors[k]).collect(),
        area: order.iter().map(|&k| (used[k] / total) as f32).collect(),
        face_color,
    }
}

/// Gives each face the nearest of `colors` (in CIELAB). Rounding centres to
/// 8 bits can merge two of them or leave one that no face takes; such a
/// colour is dropped, and the face farthest from its colour adds its own,
/// until `want` colours each colour some face (or no face is left out).
fn settle(faces: &[[u8; 3]], mut colors: Vec<[u8; 3]>, want: usize) -> (Vec<[u8; 3]>, Vec<u32>) {
    let face_labs: Vec<Vec3> = faces.iter().map(|&c| lab(to_f32(c))).collect();
    let mut rounds = 0;
    loop {
        colors.sort();
        colors.dedup();
        let labs: Vec<Vec3> = colors.iter().map(|&c| lab(to_f32(c))).collect();
        let nearest = |c: Vec3| (0..labs.len()).min_by(|&a, &b| labs[a].distance_squared(c).total_cmp(&labs[b].distance_squared(c))).unwrap() as u32;
        let face_color: Vec<u32> = face_labs.iter().map(|&c| nearest(c)).collect();
        let mut count = vec![0usize; colors.len()];
        face_color.iter().for_each(|&k| count[k as usize] += 1);
        rounds += 1;
        if count.contains(&0) {
            colors = colors.iter().zip(&count).filter(|(_, &c)| c > 0).map(|(&c, _)| c).collect();
            continue;
        }
        if colors.len() >= want || rounds > 4 * want {
            return (colors, face_color);
        }
        let far = (0..faces.len()).max_by(|&a, &b| {
            let d = |f: usize| labs[face_color[f] as usize].distance_squared(face_labs[f]);
            d(a).total_cmp(&d(b))
        });
        match far.map(|f| faces[f]) {
            Some(c) if !colors.contains(&c) => colors.push(c),
            _ => return (colors, face_color),
        }
    }
}

/// Weighted k-means (k-means++ start with a fixed seed, Lloyd iterations);
/// an emptied cluster restarts at the point farthest from its centre, so
/// `k` distinct centres come back whenever there are `k` distinct points.
fn kmeans(points: &[([u8; 3], Vec3, f64)], k: usize) -> Vec<Vec3> {
    let mut rng = crate::rng::SplitMix(0x9a1e_77e5);
    let d2 = |p: Vec3, cs: &[Vec3]| cs.iter().map(|c| c.distance_squared(p)).fold(f32::INFINITY, f32::min) as f64;
    let heaviest = points.iter().max_by(|a, b| a.2.total_cmp(&b.2)).map(|p| p.1);
    let mut centres: Vec<Vec3> = heaviest.into_iter().collect();
    while centres.len() < k {
        let w: Vec<f64> = points.iter().map(|p| p.2 * d2(p.1, &centres)).collect();
        let total: f64 = w.iter().sum();
        if total <= 0.0 {
            break;
        }
        let mut r = rng.uniform() as f64 * total;
        let pick = w.iter().position(|&x| {
            r -= x;
            r <= 0.0 && x > 0.0
        });
        centres.push(points[pick.unwrap_or_else(|| w.iter().rposition(|&x| x > 0.0).unwrap())].1);
    }
    let mut assign = vec![usize::MAX; points.len()];
    for _ in 0..ITERATIONS {
        let mut changed = false;
        for (i, p) in points.iter().enumerate() {
            let best = (0..centres.len()).min_by(|&a, &b| centres[a].distance_squared(p.1).total_cmp(&centres[b].distance_squared(p.1))).unwrap();
            changed |= assign[i] != best;
            assign[i] = best;
        }
        let mut sum = vec![(Vec3::ZERO, 0.0f64); centres.len()];
        for (p, &a) in points.iter().zip(&assign) {
            sum[a].0 += p.1 * p.2 as f32;
            sum[a].1 += p.2;
        }
        for (c, (s, w)) in centres.iter_mut().zip(&sum) {
            if *w > 0.0 {
                *c = *s / *w as f32;
            }
        }
        for j in 0..centres.len() {
            if sum[j].1 == 0.0 {
                let far = (0..points.len()).max_by(|&a, &b| d2(points[a].1, &centres).total_cmp(&d2(points[b].1, &centres))).unwrap();
                centres[j] = points[far].1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    centres
}

/// `NAME_paletteN.mtl` (one material per colour, named by its hex code) and
/// `NAME_paletteN.obj` (faces grouped by colour), MTL first.
pub fn files(mesh: &Mesh, positions: &[Vec3], palette: &Palette, obj_name: String, mtl_name: String) -> Vec<OutFile> {
    let mut mtl = String::from("# texstyle: one material per filament colour, most surface area first\n");
    for (i, c) in palette.colors.iter().enumerate() {
        let kd = c.map(|v| v as f32 / 255.0);
        writeln!(
            mtl,
            "\nnewmtl color{}_{}\n# {:.1} % of the surface\nKa 0 0 0\nKd {:.6} {:.6} {:.6}\nKs 0 0 0\nd 1\nillum 1",
            i + 1,
            palette.hex(i),
            100.0 * palette.area[i],
            kd[0],
            kd[1],
            kd[2]
        )
        .unwrap();
    }
    let mut obj = String::with_capacity(40 * positions.len() + 32 * mesh.triangles.len());
    writeln!(obj, "# texstyle: {} colours, {} triangles\nmtllib {mtl_name}", palette.colors.len(), mesh.triangles.len()).unwrap();
    for p in positions {
        writeln!(obj, "v {} {} {}", p.x, p.y, p.z).unwrap();
    }
    for i in 0..palette.colors.len() {
        writeln!(obj, "usemtl color{}_{}", i + 1, palette.hex(i)).unwrap();
        for (t, tri) in mesh.triangles.iter().enumerate() {
            if palette.face_color[t] as usize == i {
                writeln!(obj, "f {} {} {}", tri[0] + 1, tri[1] + 1, tri[2] + 1).unwrap();
            }
        }
    }
    vec![OutFile { name: mtl_name, bytes: mtl.into_bytes() }, OutFile { name: obj_name, bytes: obj.into_bytes() }]
}

fn to_u8(c: [f32; 3]) -> [u8; 3] {
    c.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
}

fn to_f32(c: [u8; 3]) -> [f32; 3] {
    c.map(|v| v as f32 / 255.0)
}

/// D65 white in XYZ.
const WHITE: Vec3 = Vec3::new(0.950_47, 1.0, 1.088_83);

/// sRGB (0–1) → CIELAB (L in 0–100).
pub fn lab(rgb: [f32; 3]) -> Vec3 {
    let lin = rgb.map(|c| if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) });
    let xyz = Vec3::new(
        0.412_456_4 * lin[0] + 0.357_576_1 * lin[1] + 0.180_437_5 * lin[2],
        0.212_672_9 * lin[0] + 0.715_152_2 * lin[1] + 0.072_175 * lin[2],
        0.019_333_9 * lin[0] + 0.119_192 * lin[1] + 0.950_304_1 * lin[2],
    ) / WHITE;
    let f = |t: f32| if t > (6.0f32 / 29.0).powi(3) { t.cbrt() } else { t / (3.0 * (6.0f32 / 29.0).powi(2)) + 4.0 / 29.0 };
    let (fx, fy, fz) = (f(xyz.x), f(xyz.y), f(xyz.z));
    Vec3::new(116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz))
}

/// CIELAB → sRGB (0–1, clamped into the gamut).
pub fn srgb(lab: Vec3) -> [f32; 3] {
    let fy = (lab.x + 16.0) / 116.0;
    let (fx, fz) = (fy + lab.y / 500.0, fy - lab.z / 200.0);
    let finv = |t: f32| if t > 6.0 / 29.0 { t * t * t } else { 3.0 * (6.0f32 / 29.0).powi(2) * (t - 4.0 / 29.0) };
    let xyz = Vec3::new(finv(fx), finv(fy), finv(fz)) * WHITE;
    let lin = [
        3.240_454_2 * xyz.x - 1.537_138_5 * xyz.y - 0.498_531_4 * xyz.z,
        -0.969_266 * xyz.x + 1.876_010_8 * xyz.y + 0.041_556 * xyz.z,
        0.055_643_4 * xyz.x - 0.204_025_9 * xyz.y + 1.057_225_2 * xyz.z,
    ];
    lin.map(|c| {
        let c = c.clamp(0.0, 1.0);
        if c <= 0.003_130_8 { 12.92 * c } else { 1.055 * c.powf(1.0 / 2.4) - 0.055 }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::test_mesh;

    #[test]
    fn lab_round_trips_and_matches_known_values() {
        // Published values: sRGB red is L 53.24, a 80.09, b 67.20.
        let red = lab([1.0, 0.0, 0.0]);
        assert!((red - Vec3::new(53.24, 80.09, 67.20)).abs().max_element() < 0.05, "{red}");
        assert!(lab([1.0; 3]).distance(Vec3::new(100.0, 0.0, 0.0)) < 0.01);
        for c in [[0.2, 0.5, 0.9], [0.0, 0.0, 0.0], [0.7, 0.3, 0.1]] {
            let back = srgb(lab(c));
            assert!((0..3).all(|k| (back[k] - c[k]).abs() < 1e-4), "{c:?} → {back:?}");
        }
    }

    #[test]
    fn two_colour_texture_gives_those_two_colours_by_area() {
        // Left half of a 32² texture dark blue, right half orange; the
        // triangle (UVs inside the texture, away from the wrap) covers
        // more of the left half. Faces on the border mix the two, which
        // pulls the centres a little: hence a tolerance in ΔE.
        let mut mesh = test_mesh::triangles(&["a"]);
        mesh.texcoords = vec![Vec2::new(0.1, 0.1), Vec2::new(0.9, 0.1), Vec2::new(0.1, 0.9)];
        let mesh = super::super::subdivide::subdivide(&mesh, (32, 32), 1.0, 100_000).mesh;
        let (blue, orange) = ([0.0, 0.0, 0.4], [1.0, 0.5, 0.0]);
        let mut tex = Image::filled(32, 32, orange);
        for y in 0..32 {
            for x in 0..16 {
                tex.set_pixel(x, y, blue);
            }
        }
        let p = reduce(&mesh, &[tex], 2);
        assert_eq!(p.colors.len(), 2);
        let de = |i: usize, c: [f32; 3]| lab(to_f32(p.colors[i])).distance(lab(c));
        assert!(de(0, blue) < 5.0 && de(1, orange) < 5.0, "{} {}", p.hex(0), p.hex(1));
        assert!(p.area[0] > p.area[1] && (p.area[0] + p.area[1] - 1.0).abs() < 1e-5, "{:?}", p.area);
        assert!(p.face_color.iter().all(|&k| k < 2));
    }

    #[test]
    fn every_size_gives_exactly_that_many_colours_each_used() {
        let mesh = super::super::subdivide::subdivide(&test_mesh::triangles(&["a"]), (16, 16), 1.0, 100_000).mesh;
        let mut rng = crate::rng::SplitMix(5);
        let mut tex = Image::filled(16, 16, [0.0; 3]);
        for y in 0..16 {
            for x in 0..16 {
                // Mostly greys a step apart, which 8-bit rounding can merge, and a few bright texels.
                let g = (x + y) as f32 / 255.0;
                let c = if rng.uniform() < 0.1 { [rng.uniform(), rng.uniform(), rng.uniform()] } else { [0.4 + g, 0.4 + g, 0.4 + g] };
                tex.set_pixel(x, y, c);
            }
        }
        for n in SIZES {
            let p = reduce(&mesh, std::slice::from_ref(&tex), n as usize);
            assert_eq!(p.colors.len(), n as usize);
            let mut count = vec![0; p.colors.len()];
            p.face_color.iter().for_each(|&k| count[k as usize] += 1);
            assert!(count.iter().all(|&c| c > 0), "palette:{n}: an unused colour {count:?}");
            assert!(p.area.windows(2).all(|w| w[0] >= w[1]), "most area first");
        }
    }

    #[test]
    fn merged_or_unused_centres_are_replaced_by_the_colours_left_out() {
        let (a, b, c) = ([200, 10, 10], [10, 200, 10], [10, 10, 200]);
        let faces = [a, a, b, c, c];
        // Two centres rounded to the same colour: c, farthest from it, joins.
        let (colors, face_color) = settle(&faces, vec![a, a, b], 3);
        assert_eq!(colors, [c, b, a]);
        assert_eq!(face_color, [2, 2, 1, 0, 0]);
        // A centre no face takes (yellow: each face has its own colour) is
        // dropped rather than listed as a filament to load.
        let (colors, face_color) = settle(&faces, vec![a, b, c, [250, 250, 0]], 3);
        assert_eq!(colors, [c, b, a]);
        assert_eq!(face_color, [2, 2, 1, 0, 0]);
    }
}
