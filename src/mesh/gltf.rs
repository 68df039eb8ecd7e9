//! glTF 2.0 (`.gltf` with external or embedded buffers and images, `.glb`)
//! through the `gltf` crate: positions, indices, `TEXCOORD_0` and each
//! material's `baseColorTexture` (one texture per material). Node transforms
//! of the default scene are applied, so the mesh looks as it does in a viewer.
//! glTF's UV origin is the image's top-left; it is flipped to the OBJ
//! convention here (see [`crate::conventions`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use glam::{Mat4, Vec2, Vec3};

use super::{Material, Mesh, MeshError, MeshErrorKind, UvCoverage};
use crate::image_io::Image;

/// A relative URI as a path (percent-escapes decoded, e.g. `my%20tex.png`).
fn uri_path(base: &Path, uri: &str) -> PathBuf {
    let decoded = urlencoding::decode(uri).map(|c| c.into_owned()).unwrap_or_else(|_| uri.to_string());
    base.join(decoded)
}

pub(super) fn load(path: &Path, bytes: &[u8]) -> Result<Mesh, MeshError> {
    let err = |kind, msg: String, hint: &str| MeshError::new(kind, path, msg, hint);
    let base = path.parent().unwrap_or(Path::new("."));
    let gltf = gltf::Gltf::from_slice(bytes).map_err(|e| {
        let kind = if matches!(e, gltf::Error::Binary(_)) { MeshErrorKind::Truncated } else { MeshErrorKind::Parse };
        err(kind, format!("malformed glTF: {e}"), "export it again (glTF 2.0, .gltf or .glb)")
    })?;
    // External buffers: say which file is missing (the crate only says "No such file").
    for b in gltf.document.buffers() {
        if let gltf::buffer::Source::Uri(uri) = b.source() {
            if !uri.starts_with("data:") && !uri_path(base, uri).is_file() {
                return Err(err(
                    MeshErrorKind::Buffer,
                    format!("buffer {} refers to {}, which is missing", b.index(), uri_path(base, uri).display()),
                    "keep the .bin next to the .gltf, or export a .glb",
                ));
            }
        }
    }
    let buffers = gltf::import_buffers(&gltf.document, Some(base), gltf.blob.clone()).map_err(|e| {
        err(MeshErrorKind::Buffer, format!("cannot load the glTF buffers: {e}"), "the file or its .bin is truncated; export it again")
    })?;

    let mut mesh = Mesh::empty(path);
    let mut material_ids: HashMap<Option<usize>, u32> = HashMap::new();
    let (mut with_uv, mut without_uv) = (0usize, 0usize);
    let mut instances: Vec<(gltf::Mesh, Mat4)> = Vec::new();
    match gltf.document.default_scene().or_else(|| gltf.document.scenes().next()) {
        Some(scene) => {
            let mut stack: Vec<(gltf::Node, Mat4)> = scene.nodes().map(|n| (n, Mat4::IDENTITY)).collect();
            while let Some((node, parent)) = stack.pop() {
                let world = parent * Mat4::from_cols_array_2d(&node.transform().matrix());
                if let Some(m) = node.mesh() {
                    instances.push((m, world));
                }
                stack.extend(node.children().map(|c| (c, world)));
            }
        }
        None => instances.extend(gltf.document.meshes().map(|m| (m, Mat4::IDENTITY))),
    }
    for (gmesh, world) in instances {
        for prim in gmesh.primitives() {
            let what = format!("mesh {} primitive {}", gmesh.index(), prim.index());
            if prim.mode() != gltf::mesh::Mode::Triangles {
                return Err(err(MeshErrorKind::Parse, format!("{what} is drawn as {:?}, not triangles", prim.mode()), "triangulate it before export"));
            }
            for (_, acc) in prim.attributes() {
                check_accessor(path, &what, &acc, &buffers)?;
            }
            if let Some(acc) = prim.indices() {
                check_accessor(path, &what, &acc, &buffers)?;
            }
            let reader = prim.reader(|b| buffers.get(b.index()).map(|d| &d.0[..]));
            let short = || err(MeshErrorKind::Buffer, format!("{what}: an accessor reaches past the end of its buffer"), "the file is truncated; export it again");
            let positions: Vec<Vec3> = reader.read_positions().ok_or_else(short)?.map(|p| world.transform_point3(Vec3::from_array(p))).collect();
            let base_vertex = mesh.positions.len() as u32;
            let n = positions.len() as u32;
            mesh.positions.extend(positions);
            let indices: Vec<u32> = match prim.indices() {
                Some(_) => reader.read_indices().ok_or_else(short)?.into_u32().collect(),
                None => (0..n).collect(),
            };
            if !indices.len().is_multiple_of(3) {
                return Err(err(MeshErrorKind::Parse, format!("{what} has {} indices, not a multiple of 3", indices.len()), "export it again"));
            }
            if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
                return Err(err(
                    MeshErrorKind::IndexOutOfRange,
                    format!("{what} refers to vertex {bad} but has only {n}"),
                    "the file is corrupt; export it again",
                ));
            }
            let uvs = match prim.get(&gltf::Semantic::TexCoords(0)) {
                Some(_) => Some(reader.read_tex_coords(0).ok_or_else(short)?.into_f32().collect::<Vec<_>>()),
                None => None,
            };
            let uv_base = mesh.texcoords.len() as u32;
            if let Some(uvs) = &uvs {
                if uvs.len() != n as usize {
                    return Err(err(MeshErrorKind::Parse, format!("{what} has {} UVs for {n} vertices", uvs.len()), "export it again"));
                }
                // glTF: (0, 0) is the image's top-left; OBJ: bottom-left.
                mesh.texcoords.extend(uvs.iter().map(|t| Vec2::new(t[0], 1.0 - t[1])));
            }
            let material = prim.material();
            let id = match material_ids.get(&material.index()) {
                Some(&id) => id,
                None => {
                    let m = load_material(path, base, &material, &buffers)?;
                    mesh.materials.push(m);
                    let id = mesh.materials.len() as u32 - 1;
                    material_ids.insert(material.index(), id);
                    id
                }
            };
            for t in indices.chunks_exact(3) {
                mesh.triangles.push([base_vertex + t[0], base_vertex + t[1], base_vertex + t[2]]);
                mesh.tri_material.push(id);
                if uvs.is_some() {
                    mesh.tri_texcoords.push([uv_base + t[0], uv_base + t[1], uv_base + t[2]]);
                    with_uv += 1;
                } else {
                    without_uv += 1;
                }
            }
        }
    }
    mesh.uv_coverage = match (with_uv, without_uv) {
        (_, 0) if with_uv > 0 => UvCoverage::All,
        (0, _) => UvCoverage::None,
        (w, wo) => {
            mesh.tri_texcoords.clear();
            UvCoverage::Partial(format!("{w} triangles have TEXCOORD_0, {wo} do not"))
        }
    };
    Ok(mesh)
}

/// A material's base colour factor and texture, decoded from a file, a
/// data URI or a buffer view.
fn load_material(path: &Path, base: &Path, m: &gltf::Material, buffers: &[gltf::buffer::Data]) -> Result<Material, MeshError> {
    let name = m.name().map(str::to_string).unwrap_or_else(|| match m.index() {
        Some(i) => format!("material{i}"),
        None => "default".into(),
    });
    let pbr = m.pbr_metallic_roughness();
    let f = pbr.base_color_factor();
    let mut out = Material { name, diffuse: [f[0], f[1], f[2]], texture_path: None, texture: None };
    let Some(info) = pbr.base_color_texture() else { return Ok(out) };
    if info.tex_coord() != 0 {
        return Err(MeshError::new(
            MeshErrorKind::Texture,
            path,
            format!("material '{}' maps its base colour through TEXCOORD_{}", out.name, info.tex_coord()),
            "texstyle uses TEXCOORD_0; bake the texture to the first UV map",
        ));
    }
    let image = info.texture().source();
    let terr = |what: String| {
        MeshError::new(MeshErrorKind::Texture, path, format!("texture of material '{}' {what}", out.name), "fix the image or re-export the glTF")
    };
    match image.source() {
        gltf::image::Source::Uri { uri, .. } if !uri.starts_with("data:") => {
            // A file beside the glTF: loaded with the other texture files.
            out.texture_path = Some(uri_path(base, uri));
        }
        src => {
            let bytes: Vec<u8> = match src {
                gltf::image::Source::View { view, .. } => {
                    let data = buffers.get(view.buffer().index()).ok_or_else(|| terr("has no buffer".into()))?;
                    data.0.get(view.offset()..view.offset() + view.length()).ok_or_else(|| terr("reaches past its buffer".into()))?.to_vec()
                }
                gltf::image::Source::Uri { uri, .. } => {
                    let (_, payload) = uri.split_once(";base64,").ok_or_else(|| terr("is a data URI that is not base64".into()))?;
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.decode(payload).map_err(|e| terr(format!("is not valid base64: {e}")))?
                }
            };
            let decoded = image::load_from_memory(&bytes).map_err(|e| terr(format!("cannot be decoded: {e}")))?;
            out.texture = Some(Image::from_rgb8(&decoded.to_rgb8()));
        }
    }
    Ok(out)
}

/// Checks what the `gltf` crate's reader assumes (it panics on an empty
/// accessor): at least one element, and every element inside its view and
/// buffer.
fn check_accessor(path: &Path, what: &str, acc: &gltf::Accessor, buffers: &[gltf::buffer::Data]) -> Result<(), MeshError> {
    let err = |msg: String| MeshError::new(MeshErrorKind::Buffer, path, format!("{what}: accessor {} {msg}", acc.index()), "the file is corrupt or truncated; export it again");
    if acc.count() == 0 {
        return Err(err("has no elements".into()));
    }
    let Some(view) = acc.view() else { return Ok(()) };
    let size = acc.size();
    let stride = view.stride().unwrap_or(size);
    let end = acc.offset() + (acc.count() - 1) * stride + size;
    if end > view.length() {
        return Err(err(format!("needs {end} bytes of its buffer view, which has {}", view.length())));
    }
    let have = buffers.get(view.buffer().index()).map_or(0, |d| d.0.len());
    if view.offset() + view.length() > have {
        return Err(err(format!("lies in bytes {}..{} of a buffer of {have} bytes", view.offset(), view.offset() + view.length())));
    }
    Ok(())
}
