//! The CPU reference rasterizer: same output and conventions as the GPU path
//! ([`crate::conventions`]), reached by a deliberately different route so it
//! can serve as an independent oracle in tests:
//! - triangles are clipped against the near plane (Sutherland–Hodgman in clip
//!   space) instead of rasterized homogeneously;
//! - coverage uses screen-space edge functions in f64, inclusive on edges;
//! - UVs are interpolated with 1/w-weighted screen barycentrics.
//!
//! The depth test keeps the smallest `(view distance as f32 bits, triangle
//! id)` per sample through `AtomicU64::fetch_min`, so the result does not depend on
//! how rayon splits the triangles.

use std::sync::atomic::{AtomicU64, Ordering};

use glam::{DVec2, Mat4, Vec4};
use rayon::prelude::*;

use super::{FramePixel, RasterFrame, RasterMesh, ViewSize};

/// A clipped polygon vertex: clip position and barycentric weights relative
/// to the original triangle.
#[derive(Clone, Copy)]
struct ClipVertex {
    clip: Vec4,
    bary: [f32; 3],
}

/// Rasterizes `mesh` seen through `view_proj` (normalized mesh space → clip).
pub fn rasterize(mesh: &RasterMesh, view_proj: Mat4, size: ViewSize) -> RasterFrame {
    let (w, h) = (size.width * size.samples, size.height * size.samples);
    let depth: Vec<AtomicU64> = (0..w as usize * h as usize).map(|_| AtomicU64::new(u64::MAX)).collect();
    mesh.triangles.par_iter().enumerate().for_each(|(t, tri)| {
        let corner = |k: usize| view_proj * Vec4::from_array(mesh.positions[tri[k] as usize]);
        let mut poly = [ClipVertex { clip: Vec4::ZERO, bary: [0.0; 3] }; 4];
        let n = clip_near(
            [
                ClipVertex { clip: corner(0), bary: [1.0, 0.0, 0.0] },
                ClipVertex { clip: corner(1), bary: [0.0, 1.0, 0.0] },
                ClipVertex { clip: corner(2), bary: [0.0, 0.0, 1.0] },
            ],
            &mut poly,
        );
        for k in 1..n.saturating_sub(1) {
            raster_triangle(&[poly[0], poly[k], poly[k + 1]], t as u32, w, h, |i, key| {
                depth[i].fetch_min(key, Ordering::Relaxed);
            });
        }
    });

    let pixels = depth
        .par_iter()
        .enumerate()
        .map(|(i, key)| {
            let key = key.load(Ordering::Relaxed);
            if key == u64::MAX {
                return FramePixel::default();
            }
            let t = (key & 0xffff_ffff) as usize;
            let (x, y) = ((i as u32 % w) as f64 + 0.5, (i as u32 / w) as f64 + 0.5);
            let bary = perspective_bary(mesh, view_proj, t, x, y, w, h);
            let uv = |k: usize| mesh.uvs[3 * t + k];
            let clip = |k: usize| view_proj * Vec4::from_array(mesh.positions[mesh.triangles[t][k] as usize]);
            let (z, cw) = (0..3).fold((0.0, 0.0), |(z, cw), k| {
                (z + bary[k] * clip(k).z as f64, cw + bary[k] * clip(k).w as f64)
            });
            FramePixel {
                u: (bary[0] * uv(0)[0] as f64 + bary[1] * uv(1)[0] as f64 + bary[2] * uv(2)[0] as f64) as f32,
                v: (bary[0] * uv(0)[1] as f64 + bary[1] * uv(1)[1] as f64 + bary[2] * uv(2)[1] as f64) as f32,
                depth: (z / cw) as f32,
                tri: t as u32 + 1,
            }
        })
        .collect();
    RasterFrame { width: size.width, height: size.height, samples: size.samples, pixels }
}

/// Clips a triangle to the half-space in front of the near plane (clip z ≥ 0
/// with a [0, 1] depth range); writes up to 4 vertices into `out`, returns the count.
fn clip_near(tri: [ClipVertex; 3], out: &mut [ClipVertex; 4]) -> usize {
    let mut n = 0;
    for i in 0..3 {
        let (a, b) = (tri[i], tri[(i + 1) % 3]);
        let (ina, inb) = (a.clip.z >= 0.0, b.clip.z >= 0.0);
        if ina {
            out[n] = a;
            n += 1;
        }
        if ina != inb {
            let s = a.clip.z / (a.clip.z - b.clip.z);
            out[n] = ClipVertex {
                clip: a.clip.lerp(b.clip, s),
                bary: [0, 1, 2].map(|k| a.bary[k] + (b.bary[k] - a.bary[k]) * s),
            };
            n += 1;
        }
    }
    n
}

/// Screen position (in samples, y down) of a clip-space point with w > 0: the
/// NDC → pixel mapping of [`crate::conventions::pixel_center_ndc`], inverted
/// (NDC y up, rows top-down, pixel centres at +0.5).
fn to_screen(c: Vec4, w: u32, h: u32) -> DVec2 {
    let (x, y, cw) = (c.x as f64, c.y as f64, c.w as f64);
    DVec2::new((x / cw + 1.0) * 0.5 * w as f64, (1.0 - y / cw) * 0.5 * h as f64)
}

/// Scan-converts one clipped (all in front) triangle, calling `emit(sample
/// index, key)` for each covered sample centre inside the depth range.
fn raster_triangle(v: &[ClipVertex; 3], t: u32, w: u32, h: u32, mut emit: impl FnMut(usize, u64)) {
    let s = v.map(|c| to_screen(c.clip, w, h));
    let area = (s[1] - s[0]).perp_dot(s[2] - s[0]);
    if area == 0.0 || !area.is_finite() {
        return;
    }
    let lo = s[0].min(s[1]).min(s[2]).max(DVec2::ZERO);
    let hi = s[0].max(s[1]).max(s[2]).min(DVec2::new(w as f64, h as f64));
    // Sample centres at +0.5: the first column whose centre is ≥ lo.x.
    let (x0, y0) = ((lo.x - 0.5).ceil().max(0.0) as u32, (lo.y - 0.5).ceil().max(0.0) as u32);
    let (x1, y1) = ((hi.x - 0.5).floor(), (hi.y - 0.5).floor());
    if x1 < 0.0 || y1 < 0.0 {
        return;
    }
    let (x1, y1) = ((x1 as u32).min(w - 1), (y1 as u32).min(h - 1));
    let zw = v.map(|c| c.clip.z as f64 / c.clip.w as f64);
    let inv_w = v.map(|c| 1.0 / c.clip.w as f64);
    for y in y0..=y1 {
        for x in x0..=x1 {
            let p = DVec2::new(x as f64 + 0.5, y as f64 + 0.5);
            let b = [
                (s[2] - s[1]).perp_dot(p - s[1]) / area,
                (s[0] - s[2]).perp_dot(p - s[2]) / area,
                (s[1] - s[0]).perp_dot(p - s[0]) / area,
            ];
            if b.iter().any(|&bk| bk < 0.0) {
                continue;
            }
            // z/w and 1/w are affine in screen space.
            let d = b[0] * zw[0] + b[1] * zw[1] + b[2] * zw[2];
            if !(0.0..=1.0).contains(&d) {
                continue;
            }
            // The depth test compares view distances (w), like the GPU path.
            let dist = (1.0 / (b[0] * inv_w[0] + b[1] * inv_w[1] + b[2] * inv_w[2])) as f32;
            emit((y * w + x) as usize, (dist.to_bits() as u64) << 32 | t as u64);
        }
    }
}

/// Perspective-correct barycentrics of triangle `t` at sample position
/// `(x, y)`: screen barycentrics weighted by 1/w, then normalized.
fn perspective_bary(mesh: &RasterMesh, view_proj: Mat4, t: usize, x: f64, y: f64, w: u32, h: u32) -> [f64; 3] {
    let tri = mesh.triangles[t];
    let mut poly = [ClipVertex { clip: Vec4::ZERO, bary: [0.0; 3] }; 4];
    let corner = |k: usize| view_proj * Vec4::from_array(mesh.positions[tri[k] as usize]);
    let n = clip_near(
        [
            ClipVertex { clip: corner(0), bary: [1.0, 0.0, 0.0] },
            ClipVertex { clip: corner(1), bary: [0.0, 1.0, 0.0] },
            ClipVertex { clip: corner(2), bary: [0.0, 0.0, 1.0] },
        ],
        &mut poly,
    );
    // Find the fan triangle containing the sample (or the nearest one, for
    // samples a rounding error outside) and interpolate there.
    let p = DVec2::new(x, y);
    let mut best = ([1.0 / 3.0; 3], f64::NEG_INFINITY);
    for k in 1..n.saturating_sub(1) {
        let v = [poly[0], poly[k], poly[k + 1]];
        let s = v.map(|c| to_screen(c.clip, w, h));
        let area = (s[1] - s[0]).perp_dot(s[2] - s[0]);
        if area == 0.0 {
            continue;
        }
        let b = [
            (s[2] - s[1]).perp_dot(p - s[1]) / area,
            (s[0] - s[2]).perp_dot(p - s[2]) / area,
            (s[1] - s[0]).perp_dot(p - s[0]) / area,
        ];
        let worst = b[0].min(b[1]).min(b[2]);
        if worst > best.1 {
            let q = [0, 1, 2].map(|i| b[i] / v[i].clip.w as f64);
            let sum = q[0] + q[1] + q[2];
            let bary = [0, 1, 2].map(|k| (0..3).map(|i| q[i] * v[i].bary[k] as f64).sum::<f64>() / sum);
            best = (bary, worst);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::Camera;
    use glam::Vec3;

    /// A unit quad in the z = 0 plane made of two triangles, UV = xy mapped to [0, 1].
    fn quad() -> RasterMesh {
        let p = [[-1.0, -1.0, 0.0, 1.0], [1.0, -1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 1.0], [-1.0, 1.0, 0.0, 1.0]];
        let uv = |i: usize| [(p[i][0] + 1.0) / 2.0, (p[i][1] + 1.0) / 2.0];
        RasterMesh {
            positions: p.to_vec(),
            triangles: vec![[0, 1, 2, 0], [0, 2, 3, 0]],
            uvs: vec![uv(0), uv(1), uv(2), uv(0), uv(2), uv(3)],
        }
    }

    #[test]
    fn quad_seen_head_on_maps_uv_to_pixels() {
        // Camera at z = 4 with a FOV that makes the quad fill 1/2 of the view.
        let fov = 2.0 * 0.5f32.atan().to_degrees();
        let cam = Camera::look_at(Vec3::new(0.0, 0.0, 4.0), Vec3::ZERO, fov, 0.1, 10.0);
        let f = rasterize(&quad(), cam.view_proj(1.0), ViewSize::square(16));
        // Corners of the view are background, the centre is covered.
        assert!(!f.at(0, 0).covered() && f.at(8, 8).covered());
        // The quad spans pixels 4..12; pixel (4, 4) is its top-left, so u ≈ 0, v ≈ 1.
        let tl = f.at(4, 4);
        assert!(tl.covered());
        assert!((tl.u - 0.5 / 8.0).abs() < 1e-4 && (tl.v - (1.0 - 0.5 / 8.0)).abs() < 1e-4, "{tl:?}");
        assert_eq!(f.pixels.iter().filter(|p| p.covered()).count(), 64);
    }

    #[test]
    fn triangle_behind_camera_is_invisible_and_crossing_one_is_clipped() {
        let cam = Camera::look_at(Vec3::new(0.0, 0.0, -0.5), Vec3::new(0.0, 0.0, -1.0), 90.0, 0.1, 10.0);
        // The quad at z = 0 lies behind this camera (looking towards −z from z = −0.5)…
        let behind = rasterize(&quad(), cam.view_proj(1.0), ViewSize::square(8));
        assert!(behind.pixels.iter().all(|p| !p.covered()));
        // …while a floor from z = +5 (behind) to z = −5 (in front) shows its front half.
        let floor = RasterMesh {
            positions: vec![[-1.0, -0.2, 5.0, 1.0], [1.0, -0.2, 5.0, 1.0], [1.0, -0.2, -5.0, 1.0], [-1.0, -0.2, -5.0, 1.0]],
            triangles: vec![[0, 1, 2, 0], [0, 2, 3, 0]],
            uvs: vec![[0.0; 2]; 6],
        };
        let f = rasterize(&floor, cam.view_proj(1.0), ViewSize::square(8));
        // Bottom rows see the floor, top rows the empty sky.
        assert!(f.at(4, 7).covered() && !f.at(4, 0).covered());
        assert!(f.pixels.iter().all(|p| !p.covered() || (0.0..=1.0).contains(&p.depth)));
    }
}
