//! The gallery page of a batch: one card per job, with its status, exit
//! code, wall time and losses (the numbers of `batch.csv`), a thumbnail,
//! and a link to the job's own run page. Self-contained like the run page
//! (thumbnails as data URIs), but with no viewer: it stays small.

use std::fmt::Write;
use std::path::PathBuf;

use super::esc;

/// One job of a batch, as its gallery card shows it.
#[derive(Clone, Debug)]
pub struct GalleryJob {
    pub id: String,
    pub mesh: String,
    pub style: String,
    /// "done", "failed", "interrupted", …: as `batch.csv` writes it.
    pub status: String,
    pub exit_code: Option<i32>,
    pub wall_s: f64,
    /// Held-out style loss after the run, and the content loss at the last step.
    pub style_loss: Option<f32>,
    pub content_loss: Option<f32>,
    /// The job's folder relative to the gallery page; its card links to `folder/index.html`.
    pub folder: PathBuf,
    /// A small picture of the result (e.g. the styled row of the preview), as a data URI or relative path.
    pub thumbnail: Option<String>,
}

/// The gallery's HTML: a summary line, then one card per job in `rows` order.
pub fn batch_index(rows: &[GalleryJob]) -> String {
    let ok = rows.iter().filter(|r| r.exit_code == Some(0)).count();
    let total_s: f64 = rows.iter().map(|r| r.wall_s).sum();
    let mut h = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"generator\" content=\"texstyle\"><title>texstyle batch</title>\
         <style>{STYLE}</style></head><body><main><h1>texstyle batch</h1><p id=\"summary\">{ok} of {} jobs succeeded, {total_s:.0} s of runs in all.</p><div class=\"cards\">",
        rows.len()
    );
    for r in rows {
        card(&mut h, r);
    }
    h.push_str("</div></main></body></html>\n");
    h
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#fafaf7;color:#222}main{max-width:1200px;margin:auto;padding:16px 24px}\
.cards{display:flex;flex-wrap:wrap;gap:14px}.card{width:260px;border:1px solid #ccc;background:#fff;padding:8px}\
.card img{width:100%}.card.failed{border-color:#c33;background:#fff4f4}.status{font-weight:bold}.card a{color:inherit}";

fn card(h: &mut String, r: &GalleryJob) {
    let link = r.folder.join("index.html");
    // Links are URLs: forward slashes, each segment percent-encoded.
    let href: Vec<String> = link.iter().map(|s| urlencoding::encode(&s.to_string_lossy()).into_owned()).collect();
    let failed = r.exit_code != Some(0);
    let num = |x: Option<f32>| x.map_or("—".to_string(), |v| format!("{v:.4}"));
    let code = r.exit_code.map_or("—".to_string(), |c| c.to_string());
    let _ = write!(h, "<div class=\"card{}\" data-id=\"{}\">", if failed { " failed" } else { "" }, esc(&r.id));
    let _ = write!(h, "<a href=\"{}\">", esc(&href.join("/")));
    if let Some(t) = &r.thumbnail {
        let _ = write!(h, "<img alt=\"{}\" src=\"{}\">", esc(&r.id), esc(t));
    }
    let _ = write!(
        h,
        "<div><b>{}</b>: {} × {}</div></a><div><span class=\"status\">{}</span>, exit {code}, {:.1} s</div>\
         <div>held-out style {}, content {}</div></div>",
        esc(&r.id),
        esc(&r.mesh),
        esc(&r.style),
        esc(&r.status),
        r.wall_s,
        num(r.style_loss),
        num(r.content_loss)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, status: &str, exit: Option<i32>, folder: &str) -> GalleryJob {
        GalleryJob {
            id: id.into(),
            mesh: "meshes/bunny.obj".into(),
            style: "styles/the_scream.jpg".into(),
            status: status.into(),
            exit_code: exit,
            wall_s: 12.5,
            style_loss: exit.filter(|&c| c == 0).map(|_| 0.4321),
            content_loss: None,
            folder: PathBuf::from(folder),
            thumbnail: Some("data:image/png;base64,AAAA".into()),
        }
    }

    #[test]
    fn one_card_per_job_linking_to_its_page_with_its_numbers() {
        let rows = [job("a", "done", Some(0), "jobs/a"), job("b<&>", "failed", Some(2), "jobs/b c"), job("c", "interrupted", None, "jobs/c")];
        let html = batch_index(&rows);
        assert_eq!(html.matches(" data-id=").count(), 3);
        assert!(html.contains("1 of 3 jobs succeeded, 38 s of runs in all"), "{html}");
        assert!(html.contains("href=\"jobs/a/index.html\""));
        // A space is encoded in the link, markup in an id escaped.
        assert!(html.contains("href=\"jobs/b%20c/index.html\""), "{html}");
        assert!(html.contains("<b>b&lt;&amp;&gt;</b>") && !html.contains("b<&>"));
        assert!(html.contains("held-out style 0.4321, content —"));
        assert!(html.contains("<div class=\"card failed\" data-id=\"b&lt;&amp;&gt;\">"));
        assert!(html.contains("exit —") && html.contains("exit 2") && html.contains("exit 0"));
        assert_eq!(html.matches("<img").count(), 3);
    }

    #[test]
    fn an_empty_batch_is_still_a_page() {
        let html = batch_index(&[]);
        assert!(html.contains("0 of 0 jobs succeeded") && html.ends_with("</html>\n"));
    }
}
