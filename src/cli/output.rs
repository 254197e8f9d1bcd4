//! Output formats shared by commands: table, CSV and JSON lines.

use std::io::{IsTerminal, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    /// One JSON object per line (also `ndjson`, as `export --format ndjson`).
    #[value(alias = "ndjson")]
    Json,
}

impl Format {
    /// The given format, or `table` on a terminal and `csv` otherwise.
    pub fn or_default(f: Option<Format>) -> Format {
        f.unwrap_or(if std::io::stdout().is_terminal() {
            Format::Table
        } else {
            Format::Csv
        })
    }
}

/// Quotes a CSV field when it needs it (RFC 4180).
pub fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// A value as a CSV field (protocol.md §8): numbers as they are, `true`/`false`, strings always
/// quoted (so `"42"` the string and `42` the number stay apart).
pub fn csv_value(v: &crate::domain::Value) -> String {
    match v {
        crate::domain::Value::Text(t) => format!("\"{}\"", t.as_str().replace('"', "\"\"")),
        other => other.to_string(),
    }
}

/// Writes rows as a left-aligned table with a header.
pub fn table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line =
        |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| -> std::io::Result<()> {
            let mut s = String::new();
            for (c, w) in cells.zip(&widths) {
                s.push_str(&format!("{c:<w$}  "));
            }
            writeln!(out, "{}", s.trim_end())
        };
    line(out, &mut header.iter().copied())?;
    for r in rows {
        line(out, &mut r.iter().map(String::as_str))?;
    }
    Ok(())
}

/// `--format` of a listing (`device list`, `token list`).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

/// `--format json` (the rows, pretty-printed) or `table` (the default: `cells` of each row).
pub fn print_list<T: serde::Serialize>(
    format: &Option<ListFormat>,
    rows: &[T],
    header: &[&str],
    cells: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format.unwrap_or(ListFormat::Table) {
        ListFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(rows)?)?,
        ListFormat::Table => table(
            &mut out,
            header,
            &rows.iter().map(cells).collect::<Vec<_>>(),
        )?,
    }
    Ok(())
}
