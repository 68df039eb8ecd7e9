//! The run page's list of files: each export with its files, their sizes
//! and what to do with them (the README's "Where will you print?", filled
//! in with this run's file names and, for a palette, its colours).

use std::fmt::Write;
use std::path::Path;

use super::esc;
use crate::export::{Format, Made};

/// One export (or one other file of the run) as the page lists it.
pub struct ExportRow {
    /// `palette:4`, or a file's role ("preview", "loss log").
    pub what: String,
    /// File names and sizes in bytes.
    pub files: Vec<(String, u64)>,
    /// What to do with them.
    pub advice: String,
    /// A palette's colours and their share of the surface.
    pub swatches: Vec<([u8; 3], f32)>,
    /// The export's own preview, as a data URI.
    pub preview: Option<String>,
}

/// The rows of `made` (whose files are in their folder now) and of the
/// run's `other` files, with their sizes read from the disk.
pub fn rows(made: &[Made], other: &[(&str, &Path)]) -> std::io::Result<Vec<ExportRow>> {
    let entry = |p: &Path| -> std::io::Result<(String, u64)> {
        Ok((p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), std::fs::metadata(p)?.len()))
    };
    let mut rows = Vec::new();
    for m in made {
        let files = m.files.iter().chain(&m.preview).map(|p| entry(p)).collect::<std::io::Result<Vec<_>>>()?;
        let preview = match &m.preview {
            Some(p) => Some(super::png_uri(&std::fs::read(p)?)),
            None => None,
        };
        let advice = advice(m.format, &files, &m.swatches);
        rows.push(ExportRow { what: m.format.to_string(), files, advice, swatches: m.swatches.clone(), preview });
    }
    for (what, p) in other {
        rows.push(ExportRow { what: what.to_string(), files: vec![entry(p)?], advice: other_advice(what), swatches: Vec::new(), preview: None });
    }
    Ok(rows)
}

/// What to do with an export's files (`files[0]` is its main file but for
/// `obj`, whose OBJ comes last: it is written after what it points at).
pub fn advice(format: Format, files: &[(String, u64)], swatches: &[([u8; 3], f32)]) -> String {
    let named = |ext: &str| files.iter().map(|f| f.0.as_str()).find(|n| n.ends_with(ext)).unwrap_or("the file").to_string();
    match format {
        Format::Obj => format!(
            "Blender: File › Import › Wavefront (.obj), pick {} (keep the MTL and PNG beside it). Full-colour print services take it zipped (--export obj-zip).",
            named(".obj")
        ),
        Format::ObjZip => format!("Upload {} to a full-colour print service; give the size on its upload page (the OBJ keeps the mesh's units).", named(".zip")),
        Format::ThreeMf => format!("Full-colour printer or service (HP Multi Jet Fusion, PolyJet, Shapeways-like): send {}; millimetres, +Z up.", named(".3mf")),
        Format::Glb => format!("Viewers, Blender (File › Import › glTF 2.0), the web: {} carries its texture inside.", named(".glb")),
        Format::VertexColors => format!(
            "Bambu Studio / OrcaSlicer (multi-colour, AMS): import {}; the slicer turns its vertex colours into filament regions.",
            named(".obj")
        ),
        Format::Palette(n) => {
            let hex: Vec<String> = swatches.iter().map(|(c, _)| format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])).collect();
            format!(
                "Bambu Studio / OrcaSlicer (multi-colour, AMS): import {}, map these {} colours to {n} filaments: {}.",
                named(".obj"),
                swatches.len(),
                hex.join(", ")
            )
        }
    }
}

fn other_advice(what: &str) -> String {
    match what {
        "preview" => "eight turntable views: top as the mesh came, bottom styled (shown above)".into(),
        "loss log" => "one line per step: step, style, content, total, seconds and where the time went (plotted above)".into(),
        _ => String::new(),
    }
}

/// The "Files" section.
pub fn section(h: &mut String, rows: &[ExportRow]) {
    h.push_str("<section><h2>Files</h2><table id=\"files\"><tr><th>export</th><th>files</th><th>what to do with them</th></tr>");
    for r in rows {
        let files: Vec<String> = r.files.iter().map(|(n, b)| format!("<code>{}</code> {}", esc(n), size(*b))).collect();
        let _ = write!(h, "<tr><td>{}</td><td>{}</td><td>{}", esc(&r.what), files.join("<br>"), esc(&r.advice));
        if !r.swatches.is_empty() {
            h.push_str("<div class=\"swatches\">");
            for (c, share) in &r.swatches {
                let hex = format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2]);
                let _ = write!(h, "<div><span class=\"swatch\" style=\"background:{hex}\"></span><code>{hex}</code> {:.0} % of the surface</div>", 100.0 * share);
            }
            h.push_str("</div>");
        }
        if let Some(uri) = &r.preview {
            let _ = write!(h, "<br><img class=\"sheet\" alt=\"{} preview\" src=\"{uri}\">", esc(&r.what));
        }
        h.push_str("</td></tr>");
    }
    h.push_str("</table></section>");
}

/// "5.0 MB", "12 kB", "830 B".
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.0} kB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}
