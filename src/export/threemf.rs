//! `3mf`: a 3MF package (3MF Core 1.3 + Materials and Properties 1.2) with
//! the mesh in millimetres, its UVs and one PNG texture per material
//! (`m:texture2d` + `m:texture2dgroup`), the format HP and print services
//! prefer for full-colour prints.
//!
//! Package layout (OPC): `[Content_Types].xml`, `_rels/.rels` pointing at
//! `3D/3dmodel.model`, `3D/_rels/3dmodel.model.rels` pointing at each
//! texture, `3D/Textures/*.png`. The texture is an optional extension
//! (not in `requiredextensions`): a consumer without it still gets the
//! shape. 3MF texture coordinates have their origin at the bottom-left,
//! like OBJ's `vt` ([`crate::conventions`]), so UVs are written as they are.

use std::collections::HashMap;
use std::fmt::Write as _;

use anyhow::Result;
use glam::Vec3;

use super::{file_stem, zip, Job, OutFile, Produced};
use crate::image_io::Image;
use crate::mesh::Mesh;

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
 <Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
 <Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>
 <Default Extension="png" ContentType="image/png"/>
</Types>
"#;

const ROOT_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
 <Relationship Target="/3D/3dmodel.model" Id="rel0" Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/>
</Relationships>
"#;

/// Escapes text for an XML attribute value.
fn xml_attr(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The `3mf` format: the mesh placed for printing, one package.
pub(super) fn produce(job: &mut Job) -> Result<Produced> {
    let mesh = job.print();
    let (p, size) = job.placed(mesh);
    let file = file(mesh, &p, job.textures, job.name, job.names.claim(job.name, "3mf"))?;
    Ok(Produced { files: vec![file], preview: None, notes: vec![size], swatches: Vec::new() })
}

/// The 3MF package of `mesh` with `positions` (already placed, in mm) and
/// `textures[m]` for material `m`. Triangles whose corners share a vertex
/// are left out: the 3MF core spec forbids them and they print nothing.
pub fn file(mesh: &Mesh, positions: &[Vec3], textures: &[Image], title: &str, file_name: String) -> Result<OutFile> {
    let pngs: Vec<String> =
        mesh.materials.iter().enumerate().map(|(i, m)| format!("/3D/Textures/{}_{}.png", i + 1, file_stem(&m.name))).collect();
    // A material no triangle uses gets no texture: an empty group is invalid.
    let used: Vec<bool> = (0..mesh.materials.len()).map(|m| mesh.tri_material.contains(&(m as u32))).collect();
    let mut parts: Vec<(String, Vec<u8>)> = vec![
        ("[Content_Types].xml".into(), CONTENT_TYPES.into()),
        ("_rels/.rels".into(), ROOT_RELS.into()),
        ("3D/3dmodel.model".into(), model(mesh, positions, &pngs, &used, title).into_bytes()),
        ("3D/_rels/3dmodel.model.rels".into(), model_rels(&pngs, &used).into_bytes()),
    ];
    for ((tex, png), _) in textures.iter().zip(&pngs).zip(&used).filter(|(_, &u)| u) {
        parts.push((png.trim_start_matches('/').to_string(), tex.png_bytes()?));
    }
    Ok(OutFile { name: file_name, bytes: zip(&parts)? })
}

/// Ids: texture 2m+1, its coordinate group 2m+2, the object after them.
fn group_id(m: usize) -> usize {
    2 * m + 2
}

/// `3D/3dmodel.model`: the textures and their coordinate groups, then the
/// object with its vertices and triangles.
fn model(mesh: &Mesh, positions: &[Vec3], pngs: &[String], used: &[bool], title: &str) -> String {
    let mut model = String::with_capacity(80 * (positions.len() + mesh.triangles.len()));
    model.push_str(concat!(
        r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        "\n",
        r#"<model unit="millimeter" xml:lang="en-US" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02" xmlns:m="http://schemas.microsoft.com/3dmanufacturing/material/2015/02">"#,
        "\n"
    ));
    writeln!(model, " <metadata name=\"Title\">{}</metadata>\n <metadata name=\"Application\">texstyle</metadata>\n <resources>", xml_attr(title)).unwrap();
    let local = texture_groups(&mut model, mesh, pngs, used);
    object(&mut model, mesh, positions, &local);
    model
}

/// Writes each used material's texture and coordinate group (the UVs its
/// triangles use, each once); returns per material the map from a UV index
/// to its index in the group.
fn texture_groups(model: &mut String, mesh: &Mesh, pngs: &[String], used: &[bool]) -> Vec<HashMap<u32, u32>> {
    let mut local: Vec<HashMap<u32, u32>> = vec![HashMap::new(); mesh.materials.len()];
    for (m, png) in pngs.iter().enumerate().filter(|&(m, _)| used[m]) {
        writeln!(model, "  <m:texture2d id=\"{}\" path=\"{png}\" contenttype=\"image/png\" tilestyleu=\"wrap\" tilestylev=\"wrap\" filter=\"linear\"/>", 2 * m + 1).unwrap();
        writeln!(model, "  <m:texture2dgroup id=\"{}\" texid=\"{}\">", group_id(m), 2 * m + 1).unwrap();
        let map = &mut local[m];
        for (t, uv) in mesh.tri_texcoords.iter().enumerate() {
            if mesh.tri_material[t] as usize != m {
                continue;
            }
            for &i in uv {
                let next = map.len() as u32;
                if let std::collections::hash_map::Entry::Vacant(e) = map.entry(i) {
                    e.insert(next);
                    let c = mesh.texcoords[i as usize];
                    writeln!(model, "   <m:tex2coord u=\"{}\" v=\"{}\"/>", c.x, c.y).unwrap();
                }
            }
        }
        model.push_str("  </m:texture2dgroup>\n");
    }
    local
}

/// Writes the object (vertices, then triangles with their coordinate-group
/// indices `local`) and the build that prints it, closing the model.
fn object(model: &mut String, mesh: &Mesh, positions: &[Vec3], local: &[HashMap<u32, u32>]) {
    let object_id = 2 * mesh.materials.len() + 1;
    // The object's default property must exist: the first triangle's group is not empty.
    let first = mesh.tri_material[0] as usize;
    let first_uv = local[first][&mesh.tri_texcoords[0][0]];
    writeln!(model, "  <object id=\"{object_id}\" type=\"model\" pid=\"{}\" pindex=\"{first_uv}\">\n   <mesh>\n    <vertices>", group_id(first)).unwrap();
    for p in positions {
        writeln!(model, "     <vertex x=\"{}\" y=\"{}\" z=\"{}\"/>", p.x, p.y, p.z).unwrap();
    }
    model.push_str("    </vertices>\n    <triangles>\n");
    for (t, v) in mesh.triangles.iter().enumerate() {
        if v[0] == v[1] || v[1] == v[2] || v[0] == v[2] {
            continue;
        }
        let m = mesh.tri_material[t] as usize;
        let p = mesh.tri_texcoords[t].map(|i| local[m][&i]);
        writeln!(
            model,
            "     <triangle v1=\"{}\" v2=\"{}\" v3=\"{}\" pid=\"{}\" p1=\"{}\" p2=\"{}\" p3=\"{}\"/>",
            v[0], v[1], v[2], group_id(m), p[0], p[1], p[2]
        )
        .unwrap();
    }
    writeln!(model, "    </triangles>\n   </mesh>\n  </object>\n </resources>\n <build>\n  <item objectid=\"{object_id}\"/>\n </build>\n</model>").unwrap();
}

/// `3D/_rels/3dmodel.model.rels`: a relationship to each used texture.
fn model_rels(pngs: &[String], used: &[bool]) -> String {
    let mut model_rels = String::from(concat!(
        r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        "\n",
        r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">"#,
        "\n"
    ));
    for (i, png) in pngs.iter().enumerate().filter(|&(m, _)| used[m]) {
        writeln!(model_rels, " <Relationship Target=\"{png}\" Id=\"tex{i}\" Type=\"http://schemas.microsoft.com/3dmanufacturing/2013/01/3dtexture\"/>").unwrap();
    }
    model_rels.push_str("</Relationships>\n");
    model_rels
}
