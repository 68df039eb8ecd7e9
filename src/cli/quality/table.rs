//! What `bench quality` writes down: one [`Score`] per judged texture, as
//! `quality.csv` rows and printed lines, and the mean over seeds of each
//! recipe (recipes named `NAME@SEED` are one recipe at several seeds) as
//! `quality_mean.csv` and a printed Markdown table.

use super::judge::{SizeScore, JUDGE_SIZES};
use crate::cli::recipe::group_of;

/// One judged texture.
#[derive(Clone, Debug)]
pub struct Score {
    pub pairing: String,
    pub recipe: String,
    /// When it was judged: `end`, or the `--at` seconds the loop had passed (`30s`).
    pub at: String,
    pub step: usize,
    pub seconds: f64,
    /// One per size of [`JUDGE_SIZES`].
    pub sizes: Vec<SizeScore>,
}

/// The score columns' names: `style_256,content_256,content_shallow_256,edges_256,sharpness_256,style_512,…`.
fn score_columns() -> String {
    JUDGE_SIZES.iter().flat_map(|s| SizeScore::NAMES.map(|n| format!("{n}_{}", s.width))).collect::<Vec<_>>().join(",")
}

fn values(sizes: &[SizeScore], sep: &str) -> String {
    sizes.iter().map(|s| s.values().map(|v| format!("{v:.5}")).join(sep)).collect::<Vec<_>>().join(sep)
}

/// The header of the printed lines.
pub fn line_header() -> String {
    format!("pairing recipe at step seconds {}", score_columns().replace(',', " "))
}

/// One printed line.
pub fn line(s: &Score) -> String {
    format!("{} {} {} {} {:.1} {}", s.pairing, s.recipe, s.at, s.step, s.seconds, values(&s.sizes, " "))
}

/// `quality.csv`: one row per judged texture.
pub fn scores_csv(scores: &[Score]) -> String {
    let mut csv = format!("pairing,recipe,at,step,seconds,{}\n", score_columns());
    for s in scores {
        csv += &format!("{},{},{},{},{:.2},{}\n", s.pairing, s.recipe, s.at, s.step, s.seconds, values(&s.sizes, ","));
    }
    csv
}

/// The mean of the scores that share a pairing, a recipe (without `@SEED`) and an `at`.
#[derive(Clone, Debug)]
pub struct Mean {
    pub pairing: String,
    pub recipe: String,
    pub at: String,
    pub runs: usize,
    pub step: f64,
    pub seconds: f64,
    pub sizes: Vec<SizeScore>,
}

/// The means, in the order their groups first appear.
pub fn means(scores: &[Score]) -> Vec<Mean> {
    let mut out: Vec<Mean> = Vec::new();
    for s in scores {
        let key = (s.pairing.as_str(), group_of(&s.recipe), s.at.as_str());
        let i = match out.iter().position(|m| (m.pairing.as_str(), m.recipe.as_str(), m.at.as_str()) == key) {
            Some(i) => i,
            None => {
                let sizes = vec![SizeScore::default(); s.sizes.len()];
                out.push(Mean { pairing: key.0.into(), recipe: key.1.into(), at: key.2.into(), runs: 0, step: 0.0, seconds: 0.0, sizes });
                out.len() - 1
            }
        };
        let m = &mut out[i];
        m.runs += 1;
        m.step += s.step as f64;
        m.seconds += s.seconds;
        for (a, b) in m.sizes.iter_mut().zip(&s.sizes) {
            let (mut x, y) = (a.values(), b.values());
            x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
            *a = SizeScore::from_values(x);
        }
    }
    for m in &mut out {
        let n = m.runs as f64;
        (m.step, m.seconds) = (m.step / n, m.seconds / n);
        for a in &mut m.sizes {
            *a = SizeScore::from_values(a.values().map(|v| v / n as f32));
        }
    }
    out
}

/// `quality_mean.csv`.
pub fn means_csv(means: &[Mean]) -> String {
    let mut csv = format!("pairing,recipe,at,runs,step,seconds,{}\n", score_columns());
    for m in means {
        csv += &format!("{},{},{},{},{:.1},{:.2},{}\n", m.pairing, m.recipe, m.at, m.runs, m.step, m.seconds, values(&m.sizes, ","));
    }
    csv
}

/// The means as a Markdown table (three decimals), for the terminal and the README.
pub fn means_markdown(means: &[Mean]) -> String {
    let cols = score_columns().replace(',', " | ");
    let mut md = format!("| pairing | recipe | at | runs | step | s | {cols} |\n|{}\n", "---|".repeat(6 + SizeScore::NAMES.len() * JUDGE_SIZES.len()));
    for m in means {
        let v: Vec<String> = m.sizes.iter().flat_map(|s| s.values()).map(|v| format!("{v:.3}")).collect();
        md += &format!("| {} | {} | {} | {} | {:.0} | {:.1} | {} |\n", m.pairing, m.recipe, m.at, m.runs, m.step, m.seconds, v.join(" | "));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_group_seeds_of_one_recipe_and_keep_the_rest_apart() {
        let sc = |recipe: &str, at: &str, v: f32| Score {
            pairing: "p".into(),
            recipe: recipe.into(),
            at: at.into(),
            step: 10,
            seconds: v as f64,
            sizes: vec![SizeScore { style: v, content: 2.0 * v, sharpness: 3.0 * v, ..SizeScore::default() }; JUDGE_SIZES.len()],
        };
        let scores = [sc("d@0", "end", 1.0), sc("d@1", "end", 3.0), sc("d@0", "30s", 5.0), sc("ref", "end", 7.0)];
        let m = means(&scores);
        assert_eq!(m.iter().map(|m| (m.recipe.as_str(), m.at.as_str(), m.runs)).collect::<Vec<_>>(), [("d", "end", 2), ("d", "30s", 1), ("ref", "end", 1)]);
        assert_eq!((m[0].sizes[1].style, m[0].sizes[1].content, m[0].sizes[1].sharpness, m[0].seconds), (2.0, 4.0, 6.0, 2.0));
        let csv = scores_csv(&scores);
        let header = "pairing,recipe,at,step,seconds,style_256,content_256,content_shallow_256,edges_256,sharpness_256,style_512,content_512,content_shallow_512,edges_512,sharpness_512\n";
        assert!(csv.starts_with(header), "{csv}");
        assert!(csv.lines().nth(1).is_some_and(|l| l.ends_with(",3.00000")), "{csv}");
        assert_eq!(means_markdown(&m).lines().count(), 2 + 3);
    }
}
