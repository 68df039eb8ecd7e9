//! `glb`: glTF 2.0 binary for viewers, Blender and services that take glTF.
//! One primitive per material, its texture embedded as `baseColorTexture`,
//! `KHR_materials_unlit` so viewers show the painted colours without
//! lighting them twice. Positions in metres (glTF's unit; with
//! `--print-size` the model is that many millimetres), +Y up as the mesh
//! file was; glTF's UV origin is the top-left, so `v` is flipped
//! ([`crate::conventions`]).

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use glam::Vec3;
use gltf_json as json;
use json::validation::{Checked::Valid, USize64};

use super::{longest_side, Job, OutFile, Produced};
use crate::image_io::Image;
use crate::mesh::Mesh;

/// Appends `bytes` to the binary chunk, 4-byte aligned, as a buffer view.
fn view(root: &mut json::Root, bin: &mut Vec<u8>, bytes: &[u8], target: Option<json::buffer::Target>) -> json::Index<json::buffer::View> {
    while !bin.len().is_multiple_of(4) {
        bin.push(0);
    }
    let offset = bin.len();
    bin.extend_from_slice(bytes);
    root.push(json::buffer::View {
        buffer: json::Index::new(0),
        byte_length: USize64::from(bytes.len()),
        byte_offset: Some(USize64::from(offset)),
        byte_stride: None,
        name: None,
        target: target.map(Valid),
        extensions: None,
        extras: Default::default(),
    })
}

fn accessor(
    root: &mut json::Root,
    view: json::Index<json::buffer::View>,
    count: usize,
    component: json::accessor::ComponentType,
    type_: json::accessor::Type,
    bounds: Option<(Vec3, Vec3)>,
) -> json::Index<json::Accessor> {
    root.push(json::Accessor {
        buffer_view: Some(view),
        byte_offset: None,
        count: USize64::from(count),
        component_type: Valid(json::accessor::GenericComponentType(component)),
        extensions: None,
        extras: Default::default(),
        type_: Valid(type_),
        // glTF requires min/max on POSITION accessors.
        min: bounds.map(|b| json::Value::from(b.0.to_array().to_vec())),
        max: bounds.map(|b| json::Value::from(b.1.to_array().to_vec())),
        name: None,
        normalized: false,
        sparse: None,
    })
}

/// The `glb` format. glTF is in metres and +Y up: the mesh is only scaled.
pub(super) fn produce(job: &mut Job) -> Result<Produced> {
    let s = job.size_mm().map_or(1.0, |mm| mm / 1000.0 / longest_side(job.mesh));
    let p: Vec<Vec3> = job.mesh.positions.iter().map(|&p| p * s).collect();
    Ok(Produced::files(vec![file(job.mesh, &p, job.textures, job.names.claim(job.name, "glb"))?]))
}

/// The GLB file of `mesh` with `positions` (already placed, in metres) and
/// `textures[m]` for material `m`.
pub fn file(mesh: &Mesh, positions: &[Vec3], textures: &[Image], file_name: String) -> Result<OutFile> {
    build(mesh, positions, textures, false, file_name)
}

/// The names of the two `KHR_materials_variants` of [`file_with_variants`], in order.
pub const VARIANTS: [&str; 2] = ["styled", "original"];

/// [`file`] with `KHR_materials_variants`: each primitive shows `textures`
/// by default (variant `styled`) and the mesh's own texture, or its flat
/// colour where it has none, in variant `original`, so a viewer can flip
/// between the two on one model (the run page does).
pub fn file_with_variants(mesh: &Mesh, positions: &[Vec3], textures: &[Image], file_name: String) -> Result<OutFile> {
    build(mesh, positions, textures, true, file_name)
}

fn build(mesh: &Mesh, positions: &[Vec3], textures: &[Image], variants: bool, file_name: String) -> Result<OutFile> {
    let mut root = json::Root::default();
    root.asset.generator = Some("texstyle".into());
    root.extensions_used.push("KHR_materials_unlit".into());
    let mut bin = Vec::new();
    let sampler = root.push(json::texture::Sampler {
        mag_filter: Some(Valid(json::texture::MagFilter::Linear)),
        min_filter: Some(Valid(json::texture::MinFilter::LinearMipmapLinear)),
        ..Default::default()
    });
    let mut primitives = Vec::new();
    // Per primitive: its styled and original materials.
    let mut mappings = Vec::new();
    for (m, material) in mesh.materials.iter().enumerate() {
        let corners = Corners::of_material(mesh, positions, m);
        if corners.idx.is_empty() {
            continue;
        }
        let (positions_acc, uv_acc, idx_acc) = corners.push(&mut root, &mut bin);
        let mat = unlit_material(&mut root, &mut bin, sampler, Some(&textures[m]), [1.0; 3], &material.name)?;
        if variants {
            let name = format!("{} (original)", material.name);
            let own = unlit_material(&mut root, &mut bin, sampler, material.texture.as_ref(), material.diffuse, &name)?;
            mappings.push((mat.value(), own.value()));
        }
        primitives.push(json::mesh::Primitive {
            attributes: BTreeMap::from([
                (Valid(json::mesh::Semantic::Positions), positions_acc),
                (Valid(json::mesh::Semantic::TexCoords(0)), uv_acc),
            ]),
            extensions: None,
            extras: Default::default(),
            indices: Some(idx_acc),
            material: Some(mat),
            mode: Valid(json::mesh::Mode::Triangles),
            targets: None,
        });
    }
    while bin.len() % 4 != 0 {
        bin.push(0);
    }
    root.push(json::Buffer { byte_length: USize64::from(bin.len()), name: None, uri: None, extensions: None, extras: Default::default() });
    let mesh_idx = root.push(json::Mesh { extensions: None, extras: Default::default(), name: None, primitives, weights: None });
    let node = root.push(json::Node { mesh: Some(mesh_idx), ..Default::default() });
    let scene = root.push(json::Scene { extensions: None, extras: Default::default(), name: None, nodes: vec![node] });
    root.scene = Some(scene);
    let mut doc = json::serialize::to_value(&root)?;
    if variants {
        add_variants(&mut doc, &mappings);
    }
    Ok(OutFile { name: file_name, bytes: container(&json::serialize::to_vec(&doc)?, &bin)? })
}

/// Writes `KHR_materials_variants` into the document (`gltf-json` has no
/// type for it here): the two [`VARIANTS`] at the root, and on primitive
/// `i` the mapping of variant 0 to `mappings[i].0` and 1 to `mappings[i].1`.
fn add_variants(doc: &mut json::Value, mappings: &[(usize, usize)]) {
    use json::Value;
    const EXT: &str = "KHR_materials_variants";
    let names: Vec<Value> = VARIANTS.iter().map(|n| serde_json_object([("name", Value::from(*n))])).collect();
    doc["extensionsUsed"].as_array_mut().expect("KHR_materials_unlit is listed").push(Value::from(EXT));
    let variants = serde_json_object([("variants", Value::from(names))]);
    match doc.get_mut("extensions").and_then(Value::as_object_mut) {
        Some(ext) => {
            ext.insert(EXT.into(), variants);
        }
        None => doc["extensions"] = serde_json_object([(EXT, variants)]),
    }
    let primitives = doc["meshes"][0]["primitives"].as_array_mut().expect("one mesh with its primitives");
    for (p, &(styled, original)) in primitives.iter_mut().zip(mappings) {
        let map = |material: usize, variant: usize| serde_json_object([("material", Value::from(material)), ("variants", Value::from(vec![variant]))]);
        let list = Value::from(vec![map(styled, 0), map(original, 1)]);
        p["extensions"] = serde_json_object([(EXT, serde_json_object([("mappings", list)]))]);
    }
}

/// A JSON object of `pairs`.
fn serde_json_object<const N: usize>(pairs: [(&str, json::Value); N]) -> json::Value {
    json::Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// One material's triangles as glTF vertices: glTF has one index per
/// vertex, so each (position, uv) pair becomes a vertex of its own.
struct Corners {
    pos: Vec<f32>,
    /// `v` flipped: glTF's UV origin is the top-left.
    uv: Vec<f32>,
    idx: Vec<u32>,
}

impl Corners {
    fn of_material(mesh: &Mesh, positions: &[Vec3], m: usize) -> Corners {
        let mut corner: HashMap<(u32, u32), u32> = HashMap::new();
        let (mut pos, mut uv, mut idx) = (Vec::<f32>::new(), Vec::<f32>::new(), Vec::<u32>::new());
        for (t, tri) in mesh.triangles.iter().enumerate() {
            if mesh.tri_material[t] as usize != m {
                continue;
            }
            for (k, &v) in tri.iter().enumerate() {
                let key = (v, mesh.tri_texcoords[t][k]);
                let i = *corner.entry(key).or_insert_with(|| {
                    let p = positions[key.0 as usize];
                    let c = mesh.texcoords[key.1 as usize];
                    pos.extend([p.x, p.y, p.z]);
                    uv.extend([c.x, 1.0 - c.y]);
                    (pos.len() / 3 - 1) as u32
                });
                idx.push(i);
            }
        }
        Corners { pos, uv, idx }
    }

    /// Appends positions, UVs and indices to the binary chunk; returns their accessors.
    fn push(&self, root: &mut json::Root, bin: &mut Vec<u8>) -> (json::Index<json::Accessor>, json::Index<json::Accessor>, json::Index<json::Accessor>) {
        use json::accessor::{ComponentType, Type};
        let (pos, uv, idx) = (&self.pos, &self.uv, &self.idx);
        let n = pos.len() / 3;
        let bounds = pos.chunks(3).fold((Vec3::splat(f32::INFINITY), Vec3::splat(f32::NEG_INFINITY)), |(lo, hi), p| {
            let p = Vec3::from_slice(p);
            (lo.min(p), hi.max(p))
        });
        let target = Some(json::buffer::Target::ArrayBuffer);
        let v = view(root, bin, bytemuck::cast_slice(pos), target);
        let positions_acc = accessor(root, v, n, ComponentType::F32, Type::Vec3, Some(bounds));
        let v = view(root, bin, bytemuck::cast_slice(uv), target);
        let uv_acc = accessor(root, v, n, ComponentType::F32, Type::Vec2, None);
        let v = view(root, bin, bytemuck::cast_slice(idx), Some(json::buffer::Target::ElementArrayBuffer));
        let idx_acc = accessor(root, v, idx.len(), ComponentType::U32, Type::Scalar, None);
        (positions_acc, uv_acc, idx_acc)
    }
}

/// An unlit material named `name` whose base colour is `texture`, embedded
/// as a PNG, or the flat `color` where there is none.
fn unlit_material(
    root: &mut json::Root,
    bin: &mut Vec<u8>,
    sampler: json::Index<json::texture::Sampler>,
    texture: Option<&Image>,
    color: [f32; 3],
    name: &str,
) -> Result<json::Index<json::Material>> {
    let base_color_texture = match texture {
        Some(texture) => {
            let png = view(root, bin, &texture.png_bytes()?, None);
            let image = root.push(json::Image {
                buffer_view: Some(png),
                mime_type: Some(json::image::MimeType("image/png".into())),
                name: Some(name.to_string()),
                uri: None,
                extensions: None,
                extras: Default::default(),
            });
            let texture = root.push(json::Texture { name: None, sampler: Some(sampler), source: image, extensions: None, extras: Default::default() });
            Some(json::texture::Info { index: texture, tex_coord: 0, extensions: None, extras: Default::default() })
        }
        None => None,
    };
    let [r, g, b] = if texture.is_some() { [1.0; 3] } else { color };
    Ok(root.push(json::Material {
        name: Some(name.to_string()),
        pbr_metallic_roughness: json::material::PbrMetallicRoughness {
            base_color_texture,
            base_color_factor: json::material::PbrBaseColorFactor([r, g, b, 1.0]),
            metallic_factor: json::material::StrengthFactor(0.0),
            roughness_factor: json::material::StrengthFactor(1.0),
            ..Default::default()
        },
        extensions: Some(json::extensions::material::Material { unlit: Some(Default::default()) }),
        ..Default::default()
    }))
}

/// The GLB container: header, JSON chunk (space-padded), BIN chunk (zero-padded).
fn container(text: &[u8], bin: &[u8]) -> Result<Vec<u8>> {
    let mut text = text.to_vec();
    while text.len() % 4 != 0 {
        text.push(b' ');
    }
    let total = 12 + 8 + text.len() + 8 + bin.len();
    let mut glb = Vec::with_capacity(total);
    glb.extend_from_slice(b"glTF");
    glb.extend_from_slice(&2u32.to_le_bytes());
    glb.extend_from_slice(&u32::try_from(total).context("the GLB would exceed glTF's 4 GB limit (lower --max-triangles or the texture size)")?.to_le_bytes());
    glb.extend_from_slice(&(text.len() as u32).to_le_bytes());
    glb.extend_from_slice(b"JSON");
    glb.extend_from_slice(&text);
    glb.extend_from_slice(&(bin.len() as u32).to_le_bytes());
    glb.extend_from_slice(b"BIN\0");
    glb.extend_from_slice(bin);
    Ok(glb)
}
