//! Holes in a print: edges counted on positions (welded by value, since UV
//! seams and some formats repeat a position under several indices), and
//! `--close-holes`, which fills each boundary loop with a fan from its
//! centroid. Slicers drop layers where a mesh is open, so the print exports
//! say how many edges are open and how to close them.

use std::collections::HashMap;

use glam::Vec3;

use crate::mesh::Mesh;

/// Edges of a mesh that a closed solid would not have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EdgeReport {
    /// Edges on one face only (a hole's rim).
    pub open: usize,
    /// Edges shared by more than two faces.
    pub non_manifold: usize,
    /// Boundary loops (holes).
    pub holes: usize,
}

impl EdgeReport {
    /// The warning line for the print exports, when there is something to say.
    pub fn warning(&self) -> Option<String> {
        (self.open + self.non_manifold > 0).then(|| {
            format!(
                "warning: the print exports are not watertight: {} open edges ({} hole{}), {} non-manifold edges; slicers may leave layers empty there (--close-holes fills the holes; non-manifold edges need a fix in a modeller)",
                self.open,
                self.holes,
                if self.holes == 1 { "" } else { "s" },
                self.non_manifold
            )
        })
    }
}

/// Per position index, the index of the first position with the same value.
fn weld(positions: &[Vec3]) -> Vec<u32> {
    let mut first: HashMap<[u32; 3], u32> = HashMap::with_capacity(positions.len());
    // `+ 0.0` makes -0.0 and 0.0 one key.
    positions.iter().enumerate().map(|(i, p)| *first.entry((*p + Vec3::ZERO).to_array().map(f32::to_bits)).or_insert(i as u32)).collect()
}

/// Per undirected welded edge, the faces' directed uses of it: (from, to, triangle).
type Edges = HashMap<(u32, u32), Vec<(u32, u32, usize)>>;

fn edges(mesh: &Mesh, welded: &[u32]) -> Edges {
    let mut edges: Edges = HashMap::with_capacity(mesh.triangles.len() * 2);
    for (t, tri) in mesh.triangles.iter().enumerate() {
        let w = tri.map(|i| welded[i as usize]);
        if w[0] == w[1] || w[1] == w[2] || w[0] == w[2] {
            continue; // a degenerate triangle bounds nothing
        }
        for k in 0..3 {
            let (a, b) = (w[k], w[(k + 1) % 3]);
            edges.entry((a.min(b), a.max(b))).or_default().push((a, b, t));
        }
    }
    edges
}

/// The boundary loops: each a list of (welded from, welded to, triangle) in
/// the order the faces run along the rim.
fn loops(edges: &Edges) -> Vec<Vec<(u32, u32, usize)>> {
    let mut from: HashMap<u32, Vec<(u32, u32, usize)>> = HashMap::new();
    let mut open: Vec<(u32, u32, usize)> = edges.values().filter(|u| u.len() == 1).map(|u| u[0]).collect();
    open.sort_unstable(); // deterministic whatever the hash order
    for &e in &open {
        from.entry(e.0).or_default().push(e);
    }
    let mut loops = Vec::new();
    for start in open {
        let Some(list) = from.get_mut(&start.0) else { continue };
        let Some(pos) = list.iter().position(|&e| e == start) else { continue };
        list.swap_remove(pos);
        // The faces run a→b along the rim; the hole runs the other way, and
        // walking on from b follows the rim.
        let mut lp = vec![start];
        let mut at = start.1;
        while at != start.0 {
            let Some(next) = from.get_mut(&at).and_then(Vec::pop) else { break };
            lp.push(next);
            at = next.1;
        }
        loops.push(lp);
    }
    loops
}

/// Open and non-manifold edges of `mesh`, and its holes.
pub fn report(mesh: &Mesh) -> EdgeReport {
    let welded = weld(&mesh.positions);
    let edges = edges(mesh, &welded);
    let open = edges.values().filter(|u| u.len() == 1).count();
    let non_manifold = edges.values().filter(|u| u.len() > 2).count();
    EdgeReport { open, non_manifold, holes: if open > 0 { loops(&edges).len() } else { 0 } }
}

/// `mesh` with every boundary loop closed by a fan from the loop's centroid
/// (one new position per hole). Each new triangle runs its rim edge the
/// other way from the face it borders, so orientation stays consistent. It
/// takes that face's material, and its UVs: the rim corners keep theirs and
/// the centroid corner takes the fill triangle's first rim corner's, so it
/// reads the texture along the rim edge it borders (the colours next to the
/// hole) and no texel has to be added.
pub fn close(mesh: &Mesh) -> Mesh {
    let welded = weld(&mesh.positions);
    let mut m = mesh.clone();
    m.obj_layout = None;
    for lp in loops(&edges(mesh, &welded)) {
        if lp.len() < 3 {
            continue;
        }
        let centroid = lp.iter().map(|e| mesh.positions[e.0 as usize]).sum::<Vec3>() / lp.len() as f32;
        let c = m.positions.len() as u32;
        m.positions.push(centroid);
        if !m.vertex_colors.is_empty() {
            let sum = lp.iter().map(|e| Vec3::from(mesh.vertex_colors[e.0 as usize])).sum::<Vec3>();
            m.vertex_colors.push((sum / lp.len() as f32).to_array());
        }
        for &(a, b, t) in &lp {
            // The face's own corner indices at a and b (welded ids are first indices).
            let tri = mesh.triangles[t];
            let k = |w: u32| (0..3).find(|&k| welded[tri[k] as usize] == w).expect("the edge is the face's");
            let (ka, kb) = (k(a), k(b));
            m.triangles.push([tri[kb], tri[ka], c]);
            if !mesh.tri_texcoords.is_empty() {
                let uv = mesh.tri_texcoords[t];
                m.tri_texcoords.push([uv[kb], uv[ka], uv[kb]]);
            }
            m.tri_material.push(mesh.tri_material[t]);
            m.tri_polygon.push(u32::MAX);
        }
    }
    m
}

/// `mesh` without the positions no triangle uses (the Stanford bunny has
/// some): a slicer or a service counts them as stray geometry. The others
/// keep their order.
pub fn used_only(mesh: &Mesh) -> Mesh {
    let mut used = vec![false; mesh.positions.len()];
    mesh.triangles.iter().flatten().for_each(|&i| used[i as usize] = true);
    let mut new = vec![u32::MAX; mesh.positions.len()];
    let mut m = mesh.clone();
    m.positions.clear();
    m.vertex_colors.clear();
    for (i, _) in used.iter().enumerate().filter(|(_, &u)| u) {
        new[i] = m.positions.len() as u32;
        m.positions.push(mesh.positions[i]);
        m.vertex_colors.extend(mesh.vertex_colors.get(i));
    }
    m.triangles.iter_mut().flatten().for_each(|i| *i = new[*i as usize]);
    m
}
