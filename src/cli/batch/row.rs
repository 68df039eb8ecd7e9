//! What a batch knows of each job: a [`Row`] of `batch.csv`, kept per job
//! in the batch's state folder (`OUT/.batch/ID.row`, `key=value` lines) so
//! that Slurm tasks on different nodes each write their own and any of them
//! (or `--status`) can gather the table; and the contact sheet of results.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::image_io::{write_atomic, Image};
use crate::preview::{contact_sheet, SHEET_BACKGROUND, SHEET_GAP};

/// One job as `batch.csv` lists it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    pub id: String,
    pub mesh: PathBuf,
    pub style: PathBuf,
    /// `done`, `failed`, `interrupted`, `running` or `not started`.
    pub status: String,
    /// The run's exit code (128 + N when killed by signal N).
    pub exit_code: Option<i32>,
    /// Wall time of the run, process start to exit (setup and exports included).
    pub wall_s: Option<f64>,
    /// Style loss on the run's held-out views, after (the run's closing summary).
    pub style_loss: Option<f32>,
    /// Content loss on the same held-out views, after (the run's closing
    /// summary): relative error to the mesh's own texture; none without one.
    pub content_loss: Option<f32>,
    /// The job's output folder.
    pub folder: PathBuf,
    /// Why it failed: the run's error line.
    pub message: String,
}

pub const CSV_HEADER: &str = "id,mesh,style,status,exit_code,wall_s,style_loss,content_loss,folder,message";

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or(String::new(), |x| x.to_string())
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl Row {
    fn values(&self) -> [(&'static str, String); 10] {
        [
            ("id", self.id.clone()),
            ("mesh", self.mesh.display().to_string()),
            ("style", self.style.display().to_string()),
            ("status", self.status.clone()),
            ("exit_code", opt(&self.exit_code)),
            ("wall_s", self.wall_s.map_or(String::new(), |w| format!("{w:.1}"))),
            ("style_loss", opt(&self.style_loss)),
            ("content_loss", opt(&self.content_loss)),
            ("folder", self.folder.display().to_string()),
            ("message", self.message.replace(['\n', '\r'], " ")),
        ]
    }

    pub fn csv_line(&self) -> String {
        self.values().iter().map(|(_, v)| field(v)).collect::<Vec<_>>().join(",")
    }

    /// Saves the row as `key=value` lines, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text: String = self.values().iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        write_atomic(path, text.as_bytes())
    }

    /// A row saved by [`Row::save`]; `None` when missing or unreadable.
    pub fn load(path: &Path) -> Option<Row> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut r = Row::default();
        for line in text.lines() {
            let (k, v) = line.split_once('=')?;
            match k {
                "id" => r.id = v.into(),
                "mesh" => r.mesh = v.into(),
                "style" => r.style = v.into(),
                "status" => r.status = v.into(),
                "exit_code" => r.exit_code = v.parse().ok(),
                "wall_s" => r.wall_s = v.parse().ok(),
                "style_loss" => r.style_loss = v.parse().ok(),
                "content_loss" => r.content_loss = v.parse().ok(),
                "folder" => r.folder = v.into(),
                "message" => r.message = v.into(),
                _ => {}
            }
        }
        Some(r)
    }
}

/// `batch.csv`, written atomically.
pub fn write_csv(path: &Path, rows: &[Row]) -> Result<()> {
    let mut s = format!("{CSV_HEADER}\n");
    for r in rows {
        s += &r.csv_line();
        s.push('\n');
    }
    write_atomic(path, s.as_bytes())
}

/// The before/after previews of the finished jobs, one row per job, in job
/// order; `None` when no job has one yet.
pub fn contact_sheet_of(rows: &[Row]) -> Result<Option<Image>> {
    let mut images = Vec::new();
    for r in rows.iter().filter(|r| r.status == "done") {
        let p = r.folder.join(crate::cli::style::PREVIEW);
        if p.is_file() {
            images.push(Image::load(&p)?);
        }
    }
    Ok((!images.is_empty()).then(|| contact_sheet(&images, 1, SHEET_GAP, SHEET_BACKGROUND)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_survives_saving_and_quotes_what_csv_must() {
        let dir = tempfile::tempdir().unwrap();
        let r = Row {
            id: "a_b".into(),
            mesh: "m, 1.obj".into(),
            status: "failed".into(),
            exit_code: Some(2),
            wall_s: Some(1.5),
            style_loss: Some(0.25),
            message: "bad \"mesh\"".into(),
            ..Default::default()
        };
        r.save(&dir.path().join("r")).unwrap();
        assert_eq!(Row::load(&dir.path().join("r")).unwrap(), r);
        assert_eq!(r.csv_line(), "a_b,\"m, 1.obj\",,failed,2,1.5,0.25,,,\"bad \"\"mesh\"\"\"");
    }
}
