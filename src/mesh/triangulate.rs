//! Polygons (quads, n-gons, concave ones included) into triangles by ear
//! clipping (`earcutr`) in the polygon's own plane, so a concave face does
//! not become overlapping fan triangles. Every triangle keeps the polygon's
//! winding (its normal side).

use glam::{Vec2, Vec3};

/// Triangles of a polygon given by its corner positions, as triples of
/// corner indices. A polygon ear clipping cannot handle (self-intersecting,
/// zero area) falls back to a fan, which is what other readers do.
pub fn triangulate(corners: &[Vec3]) -> Vec<[usize; 3]> {
    let n = corners.len();
    let fan = || (1..n.saturating_sub(1)).map(|i| [0, i, i + 1]).collect::<Vec<_>>();
    if n <= 3 {
        return fan();
    }
    // Newell's normal: robust for non-planar and concave polygons.
    let mut normal = Vec3::ZERO;
    for i in 0..n {
        let (a, b) = (corners[i], corners[(i + 1) % n]);
        normal += Vec3::new((a.y - b.y) * (a.z + b.z), (a.z - b.z) * (a.x + b.x), (a.x - b.x) * (a.y + b.y));
    }
    if normal.length_squared() == 0.0 || !normal.is_finite() {
        return fan();
    }
    let axis = normal.normalize();
    let u = axis.any_orthonormal_vector();
    let v = axis.cross(u);
    let flat: Vec<Vec2> = corners.iter().map(|p| Vec2::new(p.dot(u), p.dot(v))).collect();
    let coords: Vec<f64> = flat.iter().flat_map(|p| [p.x as f64, p.y as f64]).collect();
    let Ok(ids) = earcutr::earcut(&coords, &[], 2) else { return fan() };
    if ids.len() != 3 * (n - 2) {
        return fan();
    }
    // (u, v, normal) is right-handed, so the polygon is counter-clockwise in
    // the plane; keep every triangle counter-clockwise too.
    ids.chunks_exact(3)
        .map(|t| {
            let (a, b, c) = (flat[t[0]], flat[t[1]], flat[t[2]]);
            if (b - a).perp_dot(c - a) < 0.0 {
                [t[0], t[2], t[1]]
            } else {
                [t[0], t[1], t[2]]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn area2(p: &[Vec3], t: [usize; 3]) -> Vec3 {
        (p[t[1]] - p[t[0]]).cross(p[t[2]] - p[t[0]])
    }

    #[test]
    fn concave_polygon_triangles_cover_it_once_with_its_winding() {
        // An arrow-head: a fan from corner 0 would put a triangle outside it.
        let p = [
            Vec3::new(0.0, 0.0, 0.0),
            Vec3::new(2.0, 1.0, 0.0),
            Vec3::new(0.0, 2.0, 0.0),
            Vec3::new(0.5, 1.0, 0.0),
        ];
        let tris = triangulate(&p);
        assert_eq!(tris.len(), 2);
        let total: f32 = tris.iter().map(|&t| area2(&p, t).z).sum();
        // Shoelace area of the polygon, doubled: every triangle counter-clockwise
        // (positive z) and together exactly the polygon.
        assert!(tris.iter().all(|&t| area2(&p, t).z > 0.0), "{tris:?}");
        assert!((total - 2.0 * 1.5).abs() < 1e-5, "{total}");
        // The reflex corner 3 must be in both triangles.
        assert!(tris.iter().all(|t| t.contains(&3)), "{tris:?}");
    }

    #[test]
    fn clockwise_polygons_stay_clockwise() {
        let p = [Vec3::new(0.0, 0.0, 0.0), Vec3::new(0.0, 1.0, 0.0), Vec3::new(1.0, 1.0, 0.0), Vec3::new(1.0, 0.0, 0.0)];
        assert!(triangulate(&p).iter().all(|&t| area2(&p, t).z < 0.0));
    }
}
