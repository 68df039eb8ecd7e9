// raster_tri.wgsl — depth test: one invocation per triangle, every pixel of
// its screen bounding box. Dispatched by `raster::gpu::Rasterizer`.
//
// Bindings (group 0):
//   0  uniform             params     Params (see raster/gpu.rs, RasterParams)
//   1  storage, read       positions  array<vec4<f32>>   normalized mesh space, w = 1
//   2  storage, read       triangles  array<vec4<u32>>   (i0, i1, i2, material)
//   3  storage, read_write depth      array<atomic<u64>> per sample: ~((view distance bits << 32) | tri),
//                                                         0 = empty (cleared with clear_buffer)
//
// Rasterization is homogeneous (Olano & Greer 1997): with M = [c0 c1 c2] the
// clip-space (x, y, w) of the corners, M⁻¹ (px, py, 1) are the unnormalized
// perspective-correct barycentrics of the point seen at NDC (px, py). They are
// all ≥ 0 exactly where the triangle covers the pixel in front of the camera,
// so triangles crossing the near plane or behind the camera need no clipping
// (only their bounding box does). Row i of adj(M) is the edge function
// c_j × c_k; it is always computed from the lower vertex index to the higher
// so the two triangles sharing an edge get bit-identical values with opposite
// signs: no pixel falls between them (watertight).
//
// Storing the bitwise complement lets the buffer start at 0 and atomicMax pick
// the smallest (distance, tri) pair: the nearest surface, ties to the lower id.

struct Params {
    mvp: mat4x4<f32>,
    width: u32,        // sample grid width, in samples
    height: u32,       // sample grid height, in samples
    num_tris: u32,
    row_stride: u32,   // invocations per dispatch row (workgroups.x * 64)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> positions: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> triangles: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> depth: array<atomic<u64>>;

// Edge function of the edge (ia → ib) as a vector (a, b, c) with
// value a·px + b·py + c, evaluated in canonical vertex order.
fn edge(ia: u32, ib: u32, ca: vec3<f32>, cb: vec3<f32>) -> vec4<f32> {
    if ia < ib {
        return vec4<f32>(cross(ca, cb), 1.0);
    }
    return vec4<f32>(cross(cb, ca), -1.0);
}

fn edge_value(e: vec4<f32>, p: vec2<f32>) -> f32 {
    return e.w * (e.x * p.x + e.y * p.y + e.z);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x + gid.y * params.row_stride;
    if t >= params.num_tris {
        return;
    }
    let tri = triangles[t];
    let c0 = params.mvp * positions[tri.x];
    let c1 = params.mvp * positions[tri.y];
    let c2 = params.mvp * positions[tri.z];

    // Bounding box of the part in front of the near plane (clip z ≥ 0):
    // clip the triangle against it (at most 4 points, all with w > 0).
    var lo = vec2<f32>(1e30, 1e30);
    var hi = vec2<f32>(-1e30, -1e30);
    var any_front = false;
    let cs = array<vec4<f32>, 3>(c0, c1, c2);
    for (var i = 0u; i < 3u; i++) {
        let a = cs[i];
        let b = cs[(i + 1u) % 3u];
        if a.z >= 0.0 && a.w > 0.0 {
            let p = a.xy / a.w;
            lo = min(lo, p);
            hi = max(hi, p);
            any_front = true;
        }
        if (a.z >= 0.0) != (b.z >= 0.0) {
            let s = a.z / (a.z - b.z);
            let q = mix(a, b, s);
            if q.w > 0.0 {
                let p = q.xy / q.w;
                lo = min(lo, p);
                hi = max(hi, p);
                any_front = true;
            }
        }
    }
    if !any_front {
        return;
    }
    let w = f32(params.width);
    let h = f32(params.height);
    // NDC → sample index (inverse of src/conventions.rs `pixel_center_ndc`):
    // col = (x + 1)/2·W − 0.5, row = (1 − y)/2·H − 0.5,
    // clamped first so huge coordinates near the camera stay finite.
    lo = clamp(lo, vec2<f32>(-2.0), vec2<f32>(2.0));
    hi = clamp(hi, vec2<f32>(-2.0), vec2<f32>(2.0));
    let col0 = i32(max(floor((lo.x + 1.0) * 0.5 * w - 0.5), 0.0));
    let col1 = i32(min(ceil((hi.x + 1.0) * 0.5 * w - 0.5), w - 1.0));
    let row0 = i32(max(floor((1.0 - hi.y) * 0.5 * h - 0.5), 0.0));
    let row1 = i32(min(ceil((1.0 - lo.y) * 0.5 * h - 0.5), h - 1.0));
    if col0 > col1 || row0 > row1 {
        return;
    }

    let e0 = edge(tri.y, tri.z, c1.xyw, c2.xyw);
    let e1 = edge(tri.z, tri.x, c2.xyw, c0.xyw);
    let e2 = edge(tri.x, tri.y, c0.xyw, c1.xyw);
    let det = dot(c0.xyw, e0.w * e0.xyz);
    if det == 0.0 {
        return;  // seen edge-on: covers no area
    }
    let sgn = sign(det);
    let z = vec3<f32>(c0.z, c1.z, c2.z);
    let ws = vec3<f32>(c0.w, c1.w, c2.w);

    // Sample centres in NDC: src/conventions.rs `pixel_center_ndc`.
    for (var row = row0; row <= row1; row++) {
        let py = 1.0 - (f32(row) + 0.5) / h * 2.0;
        for (var col = col0; col <= col1; col++) {
            let px = (f32(col) + 0.5) / w * 2.0 - 1.0;
            let p = vec2<f32>(px, py);
            let l = vec3<f32>(edge_value(e0, p), edge_value(e1, p), edge_value(e2, p)) * sgn;
            if any(l < vec3<f32>(0.0)) {
                continue;
            }
            // l is proportional to the perspective-correct barycentrics; the
            // error shared by all three (f32 cancellation in the edge
            // functions) divides out of these ratios.
            let lw = dot(l, ws);
            let d = dot(l, z) / lw;
            if !(d >= 0.0 && d <= 1.0) {
                continue;  // before the near plane or past the far plane (or NaN)
            }
            // Test on view distance (w), not on z/w: z/w crowds near 1 and
            // would tie surfaces millimetres apart.
            let dist = lw / (l.x + l.y + l.z);
            let key = (u64(bitcast<u32>(dist)) << 32u) | u64(t);
            atomicMax(&depth[u32(row) * params.width + u32(col)], ~key);
        }
    }
}
