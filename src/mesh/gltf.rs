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
    let base = path.parent().unwrap_or(Path::new("."));
    let (gltf, buffers) = parse(path, base, bytes)?;
    let mut reader = Reader {
        path,
        base,
        buffers: &buffers,
        mesh: Mesh::empty(path),
        material_ids: HashMap::new(),
        with_uv: 0,
        without_uv: 0,
    };
    for (gmesh, world) in instances(&gltf.document) {
        for prim in gmesh.primitives() {
            reader.primitive(&gmesh, &prim, world)?;
        }
    }
    let Reader { mut mesh, with_uv, without_uv, .. } = reader;
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

/// The document and its buffers (external ones read from beside the file).
fn parse(path: &Path, base: &Path, bytes: &[u8]) -> Result<(gltf::Gltf, Vec<gltf::buffer::Data>), MeshError> {
    let err = |kind, msg: String, hint: &str| MeshError::new(kind, path, msg, hint);
    let gltf = gltf::Gltf::from_slice(bytes).map_err(|e| {
        let kind = if matches!(e, gltf::Error::Binary(_)) { MeshErrorKind::Truncated } else { MeshErrorKind::Parse };
        err(kind, format!("malformed glTF: {e}"), "export it again (glTF 2.0, .gltf or .glb)")
    })?;
    // External buffers: say which file is missing (the crate only says "No such file").
    for b in gltf.document.buffers() {
        if let gltf::buffer::Source::Uri(uri) = b.source() {
            if uri.starts_with("data:") {
                continue;
            }
            // Checked before the crate opens it: a FIFO or device would block or never end.
            let file = uri_path(base, uri);
            match crate::input::check(&file, crate::input::MESH_MAX_BYTES) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                    return Err(err(MeshErrorKind::Buffer, format!("buffer {} refers to {}, which {e}", b.index(), file.display()), ""))
                }
                Err(_) => {
                    return Err(err(
                        MeshErrorKind::Buffer,
                        format!("buffer {} refers to {}, which is missing", b.index(), file.display()),
                        "keep the .bin next to the .gltf, or export a .glb",
                    ))
                }
            }
        }
    }
    let buffers = gltf::import_buffers(&gltf.document, Some(base), gltf.blob.clone()).map_err(|e| {
        err(MeshErrorKind::Buffer, format!("cannot load the glTF buffers: {e}"), "the file or its .bin is truncated; export it again")
    })?;
    Ok((gltf, buffers))
}

/// Every mesh the default scene (or else the first) draws, with its node's
/// world transform; every mesh untransformed when the file has no scene.
fn instances(document: &gltf::Document) -> Vec<(gltf::Mesh<'_>, Mat4)> {
    let mut instances = Vec::new();
    match document.default_scene().or_else(|| document.scenes().next()) {
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
        None => instances.extend(document.meshes().map(|m| (m, Mat4::IDENTITY))),
    }
    instances
}

/// The mesh being assembled from the file's primitives.
struct Reader<'a> {
    path: &'a Path,
    /// The file's folder, against which image URIs are resolved.
    base: &'a Path,
    buffers: &'a [gltf::buffer::Data],
    mesh: Mesh,
    /// glTF material index (`None`: the default material) to ours.
    material_ids: HashMap<Option<usize>, u32>,
    /// Triangles with and without `TEXCOORD_0`.
    with_uv: usize,
    without_uv: usize,
}

impl Reader<'_> {
    /// Appends one primitive of `gmesh`, placed by `world`: its positions,
    /// UVs (flipped to the OBJ convention), material and triangles.
    fn primitive(&mut self, gmesh: &gltf::Mesh, prim: &gltf::Primitive, world: Mat4) -> Result<(), MeshError> {
        let path = self.path;
        let err = |kind, msg: String, hint: &str| MeshError::new(kind, path, msg, hint);
        let what = format!("mesh {} primitive {}", gmesh.index(), prim.index());
        self.check(&what, prim)?;
        let buffers = self.buffers;
        let reader = prim.reader(|b| buffers.get(b.index()).map(|d| &d.0[..]));
        let short = || err(MeshErrorKind::Buffer, format!("{what}: an accessor reaches past the end of its buffer"), "the file is truncated; export it again");
        let positions: Vec<Vec3> = reader.read_positions().ok_or_else(short)?.map(|p| world.transform_point3(Vec3::from_array(p))).collect();
        let base_vertex = self.mesh.positions.len() as u32;
        let n = positions.len() as u32;
        self.mesh.positions.extend(positions);
        let indices: Vec<u32> = match prim.indices() {
            Some(_) => reader.read_indices().ok_or_else(short)?.into_u32().collect(),
            None => (0..n).collect(),
        };
        if !indices.len().is_multiple_of(3) {
            return Err(err(MeshErrorKind::Parse, format!("{what} has {} indices, not a multiple of 3", indices.len()), "export it again"));
        }
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            return Err(err(MeshErrorKind::IndexOutOfRange, format!("{what} refers to vertex {bad} but has only {n}"), "the file is corrupt; export it again"));
        }
        let uvs = match prim.get(&gltf::Semantic::TexCoords(0)) {
            Some(_) => Some(reader.read_tex_coords(0).ok_or_else(short)?.into_f32().collect::<Vec<_>>()),
            None => None,
        };
        let uv_base = self.mesh.texcoords.len() as u32;
        if let Some(uvs) = &uvs {
            if uvs.len() != n as usize {
                return Err(err(MeshErrorKind::Parse, format!("{what} has {} UVs for {n} vertices", uvs.len()), "export it again"));
            }
            // glTF: (0, 0) is the image's top-left; OBJ: bottom-left.
            self.mesh.texcoords.extend(uvs.iter().map(|t| Vec2::new(t[0], 1.0 - t[1])));
        }
        let id = self.material_id(&prim.material())?;
        let uv_base = uvs.is_some().then_some(uv_base);
        self.push_triangles(&indices, base_vertex, uv_base, id);
        Ok(())
    }

    /// What the crate's reader needs of a primitive: triangles, and
    /// accessors inside their buffers.
    fn check(&self, what: &str, prim: &gltf::Primitive) -> Result<(), MeshError> {
        if prim.mode() != gltf::mesh::Mode::Triangles {
            return Err(MeshError::new(
                MeshErrorKind::Parse,
                self.path,
                format!("{what} is drawn as {:?}, not triangles", prim.mode()),
                "triangulate it before export",
            ));
        }
        for (_, acc) in prim.attributes() {
            check_accessor(self.path, what, &acc, self.buffers)?;
        }
        if let Some(acc) = prim.indices() {
            check_accessor(self.path, what, &acc, self.buffers)?;
        }
        Ok(())
    }

    /// Our index of `material`, loaded the first time a primitive uses it.
    fn material_id(&mut self, material: &gltf::Material) -> Result<u32, MeshError> {
        if let Some(&id) = self.material_ids.get(&material.index()) {
            return Ok(id);
        }
        let m = load_material(self.path, self.base, material, self.buffers)?;
        self.mesh.materials.push(m);
        let id = self.mesh.materials.len() as u32 - 1;
        self.material_ids.insert(material.index(), id);
        Ok(id)
    }

    /// The primitive's triangles (`indices` from `base_vertex`), with
    /// texture coordinates from `uv_base` when it has UVs.
    fn push_triangles(&mut self, indices: &[u32], base_vertex: u32, uv_base: Option<u32>, id: u32) {
        for t in indices.chunks_exact(3) {
            self.mesh.triangles.push([base_vertex + t[0], base_vertex + t[1], base_vertex + t[2]]);
            self.mesh.tri_material.push(id);
            if let Some(uv_base) = uv_base {
                self.mesh.tri_texcoords.push([uv_base + t[0], uv_base + t[1], uv_base + t[2]]);
                self.with_uv += 1;
            } else {
                self.without_uv += 1;
            }
        }
    }
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
