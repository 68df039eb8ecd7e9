// raster_resolve.wgsl — one invocation per sample: turns the winning
// (depth, triangle) of raster_tri.wgsl into the UV frame. Dispatched by
// `raster::gpu::Rasterizer` right after raster_tri.
//
// Bindings (group 0):
//   0  uniform             params     Params (same struct as raster_tri.wgsl)
//   1  storage, read       positions  array<vec4<f32>>   normalized mesh space, w = 1
//   2  storage, read       triangles  array<vec4<u32>>   (i0, i1, i2, material)
//   3  storage, read       depth      array<vec2<u32>>   raster_tri's u64 keys (x = low word)
//   4  storage, read       uvs        array<vec2<f32>>   3 per triangle, OBJ vt convention
//   5  storage, read_write frame      array<vec4<u32>>   (u bits, v bits, depth bits, tri + 1);
//                                                         all 0 for background

struct Params {
    mvp: mat4x4<f32>,
    width: u32,
    height: u32,
    num_tris: u32,
    row_stride: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> positions: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> triangles: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> depth: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read> uvs: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> frame: array<vec4<u32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.row_stride;
    if i >= params.width * params.height {
        return;
    }
    let key = ~depth[i];  // back to (tri, distance bits); all ones = empty
    if key.y == 0xffffffffu {
        frame[i] = vec4<u32>(0u);
        return;
    }
    let t = key.x;
    let tri = triangles[t];
    let k0 = params.mvp * positions[tri.x];
    let k1 = params.mvp * positions[tri.y];
    let k2 = params.mvp * positions[tri.z];
    let c0 = k0.xyw;
    let c1 = k1.xyw;
    let c2 = k2.xyw;
    let col = i % params.width;
    let row = i / params.width;
    // Sample centre in NDC: src/conventions.rs `pixel_center_ndc` (rows top-down, NDC y up).
    let p = vec3<f32>(
        (f32(col) + 0.5) / f32(params.width) * 2.0 - 1.0,
        1.0 - (f32(row) + 0.5) / f32(params.height) * 2.0,
        1.0,
    );
    // Perspective-correct barycentrics: rows of adj(M) applied to p, normalized.
    var l = vec3<f32>(dot(cross(c1, c2), p), dot(cross(c2, c0), p), dot(cross(c0, c1), p));
    let s = l.x + l.y + l.z;
    l = select(vec3<f32>(1.0 / 3.0), l / s, s != 0.0);
    let uv = l.x * uvs[3u * t] + l.y * uvs[3u * t + 1u] + l.z * uvs[3u * t + 2u];
    let depth = dot(l, vec3<f32>(k0.z, k1.z, k2.z)) / dot(l, vec3<f32>(k0.w, k1.w, k2.w));
    frame[i] = vec4<u32>(bitcast<u32>(uv.x), bitcast<u32>(uv.y), bitcast<u32>(depth), t + 1u);
}
