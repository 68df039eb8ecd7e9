//! Midpoint subdivision for the per-vertex and per-face colour exports: a
//! 512² texture on a mesh of a few thousand vertices would lose its strokes,
//! so edges are halved until none spans more than [`MAX_EDGE_TEXELS`] texels
//! of its material's texture, or the triangle budget is reached.
//!
//! New vertices are edge midpoints, so the surface is exactly the same
//! (each new triangle lies in its parent's plane). An edge is keyed by its
//! two position indices, so the two triangles sharing it split it at the
//! same new vertex (no T-junctions, the mesh stays watertight where it
//! was); UV midpoints are keyed by UV indices, so seams stay seams.

use std::collections::HashMap;

use glam::Vec2;

use crate::mesh::Mesh;

/// The longest edge the colour exports aim for, in texels: about one colour
/// sample per texel along every edge.
pub const MAX_EDGE_TEXELS: f32 = 2.0;

/// A subdivided mesh and how far the subdivision got.
#[derive(Clone, Debug)]
pub struct Split {
    pub mesh: Mesh,
    /// The longest edge left, in texels.
    pub longest_edge_texels: f32,
    /// True when the triangle budget stopped the subdivision early.
    pub budget_bound: bool,
}

/// Halves edges of `mesh` longer than `max_texels` (measured in a
/// `texture_size` texture) until none is left or `max_triangles` would be
/// exceeded. `mesh` must have UVs and at most `max_triangles` triangles.
pub fn subdivide(mesh: &Mesh, texture_size: (u32, u32), max_texels: f32, max_triangles: usize) -> Split {
    assert!(mesh.has_uvs() && mesh.triangles.len() <= max_triangles, "checked by export::Plan");
    let scale = Vec2::new(texture_size.0 as f32, texture_size.1 as f32);
    let mut m = mesh.clone();
    let mut budget_bound = false;
    loop {
        let lengths = edge_lengths(&m, scale);
        let mut long: Vec<((u32, u32), f32, u32)> =
            lengths.into_iter().filter(|&(_, (len, _))| len > max_texels).map(|(k, (len, n))| (k, len, n)).collect();
        if long.is_empty() || budget_bound {
            break;
        }
        // Splitting an edge adds one triangle per triangle that shares it.
        let added: usize = long.iter().map(|&(_, _, n)| n as usize).sum();
        if m.triangles.len() + added > max_triangles {
            budget_bound = true;
            long.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let mut room = max_triangles - m.triangles.len();
            long.retain(|&(_, _, n)| {
                let fits = n as usize <= room;
                if fits {
                    room -= n as usize;
                }
                fits
            });
            if long.is_empty() {
                break;
            }
        }
        let marked: HashMap<(u32, u32), u32> = long.iter().map(|&(k, _, _)| (k, u32::MAX)).collect();
        m = split_edges(&m, marked);
    }
    let longest_edge_texels = edge_lengths(&m, scale).values().map(|&(l, _)| l).fold(0.0, f32::max);
    Split { mesh: m, longest_edge_texels, budget_bound }
}

fn edge_key(a: u32, b: u32) -> (u32, u32) {
    (a.min(b), a.max(b))
}

/// Per position edge: its longest length in texels over the triangles that
/// share it (UV seams give it one length per side), and how many share it.
fn edge_lengths(m: &Mesh, scale: Vec2) -> HashMap<(u32, u32), (f32, u32)> {
    let mut out: HashMap<(u32, u32), (f32, u32)> = HashMap::with_capacity(m.triangles.len() * 2);
    for (t, tri) in m.triangles.iter().enumerate() {
        let uv = m.triangle_uvs(t);
        for k in 0..3 {
            let (a, b) = (tri[k], tri[(k + 1) % 3]);
            if a == b {
                continue; // degenerate: nothing to split
            }
            let len = ((uv[(k + 1) % 3] - uv[k]) * scale).length();
            let e = out.entry(edge_key(a, b)).or_insert((0.0, 0));
            e.0 = e.0.max(len);
            e.1 += 1;
        }
    }
    out
}

/// Splits every edge in `marked` at its midpoint (1, 2 or 3 marked edges per
/// triangle give 2, 3 or 4 triangles, same orientation as the parent).
fn split_edges(m: &Mesh, mut marked: HashMap<(u32, u32), u32>) -> Mesh {
    let mut out = Mesh {
        positions: m.positions.clone(),
        texcoords: m.texcoords.clone(),
        triangles: Vec::with_capacity(m.triangles.len() * 2),
        tri_texcoords: Vec::with_capacity(m.triangles.len() * 2),
        tri_material: Vec::with_capacity(m.triangles.len() * 2),
        materials: m.materials.clone(),
        uv_coverage: m.uv_coverage.clone(),
        ..Mesh::empty(&m.path)
    };
    let mut uv_mid: HashMap<(u32, u32), u32> = HashMap::new();
    for (t, (&p, &uv)) in m.triangles.iter().zip(&m.tri_texcoords).enumerate() {
        // Midpoint (position, uv) of edge k, if marked.
        let mut mid: [Option<(u32, u32)>; 3] = [None; 3];
        for k in 0..3 {
            let (a, b) = (p[k], p[(k + 1) % 3]);
            let Some(slot) = marked.get_mut(&edge_key(a, b)) else { continue };
            if *slot == u32::MAX {
                *slot = out.positions.len() as u32;
                out.positions.push((m.positions[a as usize] + m.positions[b as usize]) * 0.5);
            }
            let (ua, ub) = (uv[k], uv[(k + 1) % 3]);
            let mu = *uv_mid.entry(edge_key(ua, ub)).or_insert_with(|| {
                out.texcoords.push((m.texcoords[ua as usize] + m.texcoords[ub as usize]) * 0.5);
                out.texcoords.len() as u32 - 1
            });
            mid[k] = Some((*slot, mu));
        }
        let c = |k: usize| (p[k % 3], uv[k % 3]);
        let mut push = |corners: [(u32, u32); 3]| {
            out.triangles.push(corners.map(|c| c.0));
            out.tri_texcoords.push(corners.map(|c| c.1));
            out.tri_material.push(m.tri_material[t]);
            // Pieces of one triangle keep its source face.
            out.tri_polygon.push(m.tri_polygon.get(t).copied().unwrap_or(t as u32));
        };
        match mid {
            [None, None, None] => push([c(0), c(1), c(2)]),
            [Some(m0), Some(m1), Some(m2)] => {
                push([c(0), m0, m2]);
                push([m0, c(1), m1]);
                push([m2, m1, c(2)]);
                push([m0, m1, m2]);
            }
            _ => {
                let n = mid.iter().flatten().count();
                if n == 1 {
                    let k = mid.iter().position(Option::is_some).unwrap();
                    let mk = mid[k].unwrap();
                    push([c(k), mk, c(k + 2)]);
                    push([mk, c(k + 1), c(k + 2)]);
                } else {
                    // Rotate so the unmarked edge is (r + 2, r): corners a b c,
                    // midpoints on ab and bc.
                    let r = (mid.iter().position(Option::is_none).unwrap() + 1) % 3;
                    let (a, b, cc) = (c(r), c(r + 1), c(r + 2));
                    let (mab, mbc) = (mid[r].unwrap(), mid[(r + 1) % 3].unwrap());
                    push([mab, b, mbc]);
                    push([a, mab, mbc]);
                    push([a, mbc, cc]);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::test_mesh;

    fn area(m: &Mesh) -> f32 {
        m.triangles
            .iter()
            .map(|t| {
                let [a, b, c] = t.map(|i| m.positions[i as usize]);
                0.5 * (b - a).cross(c - a).length()
            })
            .sum()
    }

    #[test]
    fn edges_end_within_the_limit_and_the_surface_is_unchanged() {
        let mesh = test_mesh::triangles(&["a", "b"]);
        let s = subdivide(&mesh, (16, 16), 2.0, 1_000_000);
        assert!(!s.budget_bound);
        assert!(s.longest_edge_texels <= 2.0, "{}", s.longest_edge_texels);
        // 16-texel legs halved 3 times (4³ = 64 triangles), then the
        // 2.8-texel hypotenuses once more: 128 each, all in the plane z = 0.
        assert_eq!(s.mesh.triangles.len(), 2 * 128);
        assert!((area(&s.mesh) - area(&mesh)).abs() < 1e-5);
        assert!(s.mesh.positions.iter().all(|p| p.z == 0.0));
        // Each new vertex's UV is where it sits on its parent: here u = x mod 2, v = y.
        for (t, tri) in s.mesh.triangles.iter().enumerate() {
            for (k, uv) in s.mesh.triangle_uvs(t).iter().enumerate() {
                let p = s.mesh.positions[tri[k] as usize];
                assert!((uv.x - p.x.rem_euclid(2.0)).abs() < 1e-6 && (uv.y - p.y).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn shared_edges_split_at_one_vertex_and_the_budget_binds() {
        // Two triangles sharing the diagonal of the unit square.
        let mut mesh = test_mesh::triangles(&["a"]);
        mesh.positions.push(glam::Vec3::new(1.0, 1.0, 0.0));
        mesh.texcoords.push(Vec2::new(1.0, 1.0));
        mesh.triangles.push([1, 3, 2]);
        mesh.tri_texcoords.push([1, 3, 2]);
        mesh.tri_material.push(0);
        mesh.tri_polygon.push(1);
        let s = subdivide(&mesh, (64, 64), 2.0, 1_000_000);
        // Watertight: every interior edge is shared by exactly two triangles.
        let mut count: HashMap<(u32, u32), u32> = HashMap::new();
        for t in &s.mesh.triangles {
            for k in 0..3 {
                *count.entry(edge_key(t[k], t[(k + 1) % 3])).or_default() += 1;
            }
        }
        let boundary = count.values().filter(|&&n| n == 1).count();
        assert!(count.values().all(|&n| n <= 2));
        assert_eq!(boundary, 4 * 32, "each side of the square in 32 pieces");

        let tight = subdivide(&mesh, (64, 64), 2.0, 100);
        assert!(tight.budget_bound && tight.mesh.triangles.len() <= 100 && tight.mesh.triangles.len() > 50);
        assert!((area(&tight.mesh) - 1.0).abs() < 1e-5);
    }
}
