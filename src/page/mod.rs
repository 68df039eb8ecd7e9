//! `OUT/index.html`: the run page, one self-contained file that opens from
//! `file://` with no server and no network. The styled model turns in
//! Google's `<model-viewer>` (vendored in `vendor/`, inlined as a classic
//! script: browsers refuse module scripts and `fetch` from `file://`), with
//! a switch between the `styled` and `original` variants of its GLB
//! ([`crate::export::glb::file_with_variants`], embedded as a data URI),
//! the painting beside it, the loss curves ([`plot`]), where a step's time
//! went, the command that reproduces the run, the options and where their
//! values came from ([`options`]), and every file written with what to do
//! with it ([`exports`]). [`batch`] is the gallery page of a batch of runs.

pub mod batch;
pub mod exports;
pub mod options;
pub mod plot;

use std::fmt::Write;

use anyhow::Result;
use base64::Engine;

use crate::image_io::Image;
use crate::optim::StepLog;

pub use batch::{batch_index, GalleryJob};
pub use exports::ExportRow;
pub use options::OptionRow;

/// `model-viewer` 4.4.0's UMD build, as published on npm (see `vendor/SOURCE.md`).
const MODEL_VIEWER: &str = include_str!("vendor/model-viewer-umd.min.js");

/// The vendored script without its source-map comment (the map is not shipped).
pub fn model_viewer_script() -> &'static str {
    MODEL_VIEWER.rsplit_once("\n//# sourceMappingURL=").map_or(MODEL_VIEWER, |(code, _)| code)
}

/// Everything the run page shows, all of it already computed by the run.
pub struct RunPage<'a> {
    /// "bunny × starry_night".
    pub title: String,
    /// The GLB with `styled` and `original` variants.
    pub glb: &'a [u8],
    pub painting: &'a Image,
    /// `preview_before_after.png`'s image.
    pub preview: &'a Image,
    pub log: &'a [StepLog],
    /// Held-out style loss before and after, and on how many views.
    pub eval: (f32, f32),
    pub eval_views: usize,
    /// Content loss of the final texture on the same views (`None`: no texture to keep).
    pub eval_content: Option<f32>,
    pub seen_fraction: f64,
    /// Wall time of the whole run, seconds.
    pub total_s: f64,
    /// Mean milliseconds per step of each part ([`crate::cli::report::time_split`]).
    pub time_split: Vec<(&'static str, f64)>,
    /// The command line that reproduces the run, shell-quoted.
    pub command: String,
    pub options: Vec<OptionRow>,
    pub exports: Vec<ExportRow>,
}

/// The page's HTML.
pub fn run_page(p: &RunPage) -> Result<String> {
    let mut h = head(&p.title);
    viewer(&mut h, p)?;
    let _ = write!(h, "<section><h2>Loss</h2>{}", plot::loss_svg(p.log, p.eval)?);
    let _ = write!(
        h,
        "<p>Style loss on {} held-out views (views no step trained on): {:.4} before, {:.4} after. {:.0} % of texels were seen by some view; the rest were filled from their neighbours.</p>",
        p.eval_views, p.eval.0, p.eval.1, 100.0 * p.seen_fraction
    );
    if let Some(c) = p.eval_content {
        let _ = write!(h, "<p>Content loss on the same views: {c:.4} (relative error to the mesh's own texture at {}: 0 = unchanged, 1 = nothing kept).</p>", crate::optim::HELD_OUT_CONTENT_LAYERS.join(" and "));
    }
    h.push_str("</section>");
    time_split(&mut h, p);
    let _ = write!(h, "<section><h2>Reproduce</h2><pre id=\"command\">{}</pre></section>", esc(&p.command));
    options::section(&mut h, &p.options);
    exports::section(&mut h, &p.exports);
    h.push_str("</main>\n");
    script(&mut h);
    h.push_str("</body></html>\n");
    Ok(h)
}

/// `<!doctype>` to the start of `<main>`, with the page's styles.
fn head(title: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"generator\" content=\"texstyle\"><title>{t} · texstyle</title><style>{STYLE}</style></head>\
         <body><main><h1>{t}</h1>",
        t = esc(title)
    )
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#fafaf7;color:#222}\
main{max-width:1100px;margin:auto;padding:16px 24px}h2{margin-top:2em;border-bottom:1px solid #ddd}\
.row{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}\
model-viewer{width:620px;height:480px;max-width:100%;background:#2b2f36;border:1px solid #ccc}\
.painting{margin:0;max-width:400px}.painting img{max-width:100%;border:1px solid #ccc}\
img.sheet{max-width:100%}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}\
pre{background:#f0f0ec;padding:8px;white-space:pre-wrap;word-break:break-all}\
.swatch{display:inline-block;width:48px;height:32px;border:1px solid #888;vertical-align:middle;margin-right:6px}\
.switch button{font-size:15px;padding:4px 12px}.switch button[aria-pressed=true]{background:#333;color:#fff}\
.bar{display:inline-block;height:12px;background:#6a6aa8;vertical-align:middle}";

/// The model (styled, with the switch to the original) and the painting.
fn viewer(h: &mut String, p: &RunPage) -> Result<()> {
    let glb = base64::engine::general_purpose::STANDARD.encode(p.glb);
    let _ = write!(
        h,
        "<div class=\"row\"><div><model-viewer id=\"model\" src=\"data:model/gltf-binary;base64,{glb}\" camera-controls \
         interaction-prompt=\"none\" shadow-intensity=\"0\" tone-mapping=\"none\" alt=\"{alt}\"></model-viewer>\
         <div class=\"switch\" role=\"group\" aria-label=\"texture\"><button id=\"show-styled\" aria-pressed=\"true\">styled</button> \
         <button id=\"show-original\" aria-pressed=\"false\">original</button> drag to turn, scroll to zoom</div></div>\
         <figure class=\"painting\"><img alt=\"the painting\" src=\"{painting}\"><figcaption>the painting</figcaption></figure></div>\
         <figure><img class=\"sheet\" alt=\"eight views before and after\" src=\"{sheet}\"><figcaption>preview_before_after.png: \
         top, the mesh as it came; bottom, styled</figcaption></figure>",
        alt = esc(&p.title),
        painting = jpeg_uri(p.painting, 480)?,
        sheet = jpeg_uri(p.preview, 2048)?,
    );
    Ok(())
}

/// Mean time of each part of a step, as bars.
fn time_split(h: &mut String, p: &RunPage) {
    let total: f64 = p.time_split.iter().map(|t| t.1).sum();
    let steps = p.log.len();
    let _ = write!(h, "<section><h2>Time</h2><p>{steps} steps in {:.1} s; a step took {total:.0} ms on average:</p><table>", p.total_s);
    for (name, ms) in &p.time_split {
        let share = if total > 0.0 { ms / total } else { 0.0 };
        let _ = write!(
            h,
            "<tr><td>{name}</td><td>{ms:.1} ms</td><td>{:.0} %</td><td><span class=\"bar\" style=\"width:{:.0}px\"></span></td></tr>",
            100.0 * share,
            300.0 * share
        );
    }
    h.push_str("</table></section>");
}

/// The vendored viewer and the switch between the two variants.
fn script(h: &mut String) {
    h.push_str("<script>");
    h.push_str(model_viewer_script());
    h.push_str(
        "\n</script><script>\n(function(){var mv=document.getElementById('model');\
         function show(v){mv.variantName=v;['styled','original'].forEach(function(n){\
         document.getElementById('show-'+n).setAttribute('aria-pressed',String(n===v));});}\
         document.getElementById('show-styled').onclick=function(){show('styled');};\
         document.getElementById('show-original').onclick=function(){show('original');};})();\n</script>",
    );
}

/// `image` scaled to at most `max_side` pixels a side, as a JPEG data URI.
pub fn jpeg_uri(image: &Image, max_side: u32) -> Result<String> {
    let rgb = image.to_rgb8();
    let (w, h) = crate::image_io::fit(rgb.width(), rgb.height(), max_side);
    let rgb = if (w, h) == rgb.dimensions() { rgb } else { image::imageops::resize(&rgb, w, h, image::imageops::FilterType::Triangle) };
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 88).encode_image(&rgb)?;
    Ok(format!("data:image/jpeg;base64,{}", base64::engine::general_purpose::STANDARD.encode(jpeg)))
}

/// A PNG file's bytes as a data URI.
pub fn png_uri(png: &[u8]) -> String {
    format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png))
}

/// `s` escaped for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `args` as one shell command line: each argument single-quoted where the
/// shell would otherwise split or expand it.
pub fn shell_line(args: &[String]) -> String {
    let quote = |a: &String| {
        let plain = !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./,:=+@%".contains(c));
        if plain { a.clone() } else { format!("'{}'", a.replace('\'', "'\\''")) }
    };
    args.iter().map(quote).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
