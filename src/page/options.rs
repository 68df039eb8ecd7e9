//! The run page's options table: every option of the style transfer, the
//! value it had and where that value came from (the command line, a default
//! in `src/cli/defaults.rs`, or a rule such as the preset's step count), read
//! from clap's own record of the parse, so a new option shows up by itself.

use std::fmt::Write;

use clap::parser::ValueSource;

use super::esc;

/// One option as the page lists it.
pub struct OptionRow {
    pub option: String,
    pub value: String,
    pub source: String,
}

/// The rows of `cmd`'s own options (not its subcommands'), as parsed into `matches`.
pub fn rows(cmd: &clap::Command, matches: &clap::ArgMatches) -> Vec<OptionRow> {
    let mut rows = Vec::new();
    for arg in cmd.get_arguments().filter(|a| !matches!(a.get_id().as_str(), "help" | "version")) {
        let id = arg.get_id().as_str();
        let option = arg.get_long().map_or_else(|| id.to_uppercase(), |l| format!("--{l}"));
        let raw: Option<Vec<String>> = matches.get_raw(id).map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect());
        let switch = !arg.get_action().takes_values();
        let value = match (&raw, switch) {
            (Some(v), true) => if v.iter().any(|s| s == "true") { "on" } else { "off" }.to_string(),
            (Some(v), false) => v.join(","),
            (None, _) => String::new(),
        };
        let help = arg.get_long_help().or(arg.get_help()).map(|h| h.to_string()).unwrap_or_default();
        let rule = help.split_once("[default: ").map(|(_, d)| d.trim_end_matches(['.', ']']).to_string());
        let (value, source) = match (matches.value_source(id), rule) {
            (Some(ValueSource::CommandLine), _) => (value, "your command line".to_string()),
            (Some(ValueSource::EnvVariable), _) => (value, "an environment variable".to_string()),
            (Some(ValueSource::DefaultValue), _) if switch => (value, "off unless given".to_string()),
            (Some(_), _) => (value, "default (src/cli/defaults.rs)".to_string()),
            (None, Some(rule)) => ("—".to_string(), format!("not given: {rule}")),
            (None, None) => ("—".to_string(), "not given".to_string()),
        };
        rows.push(OptionRow { option, value, source });
    }
    rows
}

/// The "Options" section.
pub fn section(h: &mut String, rows: &[OptionRow]) {
    if rows.is_empty() {
        return;
    }
    h.push_str("<section><h2>Options</h2><table id=\"options\"><tr><th>option</th><th>value</th><th>where it came from</th></tr>");
    for r in rows {
        let _ = write!(h, "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>", esc(&r.option), esc(&r.value), esc(&r.source));
    }
    h.push_str("</table></section>");
}
