//! One step's losses and timings ([`StepLog`]), and the one list of its
//! columns ([`StepLog::COLUMNS`]) that both the checkpoint and `loss.csv` read,
//! so a new column is one field plus one line there.

use std::fmt::Write;

/// Losses and where the time of one step went.
#[derive(Clone, Debug, Default)]
pub struct StepLog {
    pub step: usize,
    pub style: f32,
    pub content: f32,
    /// The NNFM term (0 without `--loss gram+nnfm`).
    pub nnfm: f32,
    pub total: f32,
    /// Wall time since the loop started, in seconds.
    pub seconds: f64,
    /// The parameterization's forward and the learned view's gather.
    pub texture_ms: f64,
    pub raster_ms: f64,
    /// The view's lookup table and the content image.
    pub lookup_ms: f64,
    /// Style and content losses with their gradient in the learned view.
    pub network_ms: f64,
    /// The gradient from the view back to θ, and Adam.
    pub optimizer_ms: f64,
}

/// One column of the log: its name (the `loss.csv` header), how `loss.csv`
/// writes it, and how it goes to and from the checkpoint's `f32` table.
pub struct Column {
    pub name: &'static str,
    /// Digits after the point in `loss.csv`; `None`: the value as Rust prints it.
    decimals: Option<usize>,
    get: fn(&StepLog) -> Cell,
    set: fn(&mut StepLog, f32),
}

/// A field's value, in its own type (so `loss.csv` prints it as that type does).
#[derive(Clone, Copy)]
enum Cell {
    Count(usize),
    F32(f32),
    F64(f64),
}

impl Cell {
    /// As the checkpoint stores it.
    fn stored(self) -> f32 {
        match self {
            Cell::Count(n) => n as f64 as f32,
            Cell::F32(x) => x,
            Cell::F64(x) => x as f32,
        }
    }

    fn write(self, decimals: Option<usize>, s: &mut String) {
        let _ = match (self, decimals) {
            (Cell::Count(n), _) => write!(s, "{n}"),
            (Cell::F32(x), None) => write!(s, "{x}"),
            (Cell::F32(x), Some(d)) => write!(s, "{x:.d$}"),
            (Cell::F64(x), None) => write!(s, "{x}"),
            (Cell::F64(x), Some(d)) => write!(s, "{x:.d$}"),
        };
    }
}

impl From<usize> for Cell {
    fn from(n: usize) -> Cell {
        Cell::Count(n)
    }
}
impl From<f32> for Cell {
    fn from(x: f32) -> Cell {
        Cell::F32(x)
    }
}
impl From<f64> for Cell {
    fn from(x: f64) -> Cell {
        Cell::F64(x)
    }
}

/// A field's value back from the checkpoint's `f32`.
trait FromStored {
    fn from_stored(x: f32) -> Self;
}
impl FromStored for usize {
    fn from_stored(x: f32) -> usize {
        x as usize
    }
}
impl FromStored for f32 {
    fn from_stored(x: f32) -> f32 {
        x
    }
}
impl FromStored for f64 {
    fn from_stored(x: f32) -> f64 {
        x as f64
    }
}

/// `column!(field, decimals)`: the [`Column`] of `StepLog::field`.
macro_rules! column {
    ($field:ident, $decimals:expr) => {
        Column {
            name: stringify!($field),
            decimals: $decimals,
            get: |l| Cell::from(l.$field),
            set: |l, x| l.$field = FromStored::from_stored(x),
        }
    };
}

impl StepLog {
    /// Every column, in `loss.csv` and checkpoint order.
    pub const COLUMNS: [Column; 11] = [
        column!(step, None),
        column!(style, None),
        column!(content, None),
        column!(nnfm, None),
        column!(total, None),
        column!(seconds, Some(3)),
        column!(texture_ms, Some(2)),
        column!(raster_ms, Some(2)),
        column!(lookup_ms, Some(2)),
        column!(network_ms, Some(2)),
        column!(optimizer_ms, Some(2)),
    ];

    /// The values as the checkpoint stores them, in [`StepLog::COLUMNS`] order.
    pub fn to_row(&self) -> impl Iterator<Item = f32> + '_ {
        Self::COLUMNS.iter().map(move |c| (c.get)(self).stored())
    }

    /// The log entry of a checkpoint row ([`StepLog::to_row`]'s inverse).
    pub fn from_row(row: &[f32]) -> StepLog {
        let mut l = StepLog::default();
        for (c, &x) in Self::COLUMNS.iter().zip(row) {
            (c.set)(&mut l, x);
        }
        l
    }

    /// The `loss.csv` header line: the column names.
    pub fn csv_header() -> String {
        let names: Vec<&str> = Self::COLUMNS.iter().map(|c| c.name).collect();
        names.join(",") + "\n"
    }

    /// Appends this entry's `loss.csv` line to `s`.
    pub fn write_csv_row(&self, s: &mut String) {
        for (i, c) in Self::COLUMNS.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            (c.get)(self).write(c.decimals, s);
        }
        s.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StepLog {
        StepLog {
            step: 7,
            style: 0.125,
            content: 0.1,
            nnfm: 0.5,
            total: 3.0,
            seconds: 1.23456,
            texture_ms: 2.0,
            raster_ms: 0.25,
            lookup_ms: 10.0,
            network_ms: 99.999,
            optimizer_ms: 1.5,
        }
    }

    #[test]
    fn csv_line_prints_each_field_as_its_type_does() {
        let mut s = StepLog::csv_header();
        sample().write_csv_row(&mut s);
        assert_eq!(
            s,
            "step,style,content,nnfm,total,seconds,texture_ms,raster_ms,lookup_ms,network_ms,optimizer_ms\n\
             7,0.125,0.1,0.5,3,1.235,2.00,0.25,10.00,100.00,1.50\n"
        );
    }

    #[test]
    fn checkpoint_row_round_trips_through_f32() {
        let row: Vec<f32> = sample().to_row().collect();
        assert_eq!(row.len(), StepLog::COLUMNS.len());
        let back = StepLog::from_row(&row);
        let again: Vec<f32> = back.to_row().collect();
        assert_eq!(row, again);
        assert_eq!((back.step, back.style, back.content), (7, 0.125, 0.1));
    }
}
