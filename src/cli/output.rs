//! Output formats shared by commands: table, CSV and JSON lines; `--format` and rows
//! printed in the chosen one.

use serde_json::Value as Json;
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

pub use crate::export::{csv_field, csv_value};

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

/// `--format` of a listing.
#[derive(clap::Args, Debug)]
pub struct FormatArg {
    /// table (default on a terminal), csv (default otherwise) or json (one object per line).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

/// Rows as a table, CSV (header: the column names in lower case) or JSON lines.
pub fn print(
    out: &mut impl Write,
    format: Option<Format>,
    header: &[&str],
    rows: Vec<(Vec<String>, Json)>,
) -> anyhow::Result<()> {
    match Format::or_default(format) {
        Format::Table => {
            let cells: Vec<Vec<String>> = rows.into_iter().map(|(c, _)| c).collect();
            table(out, header, &cells)?;
        }
        Format::Csv => {
            writeln!(out, "{}", header.join(",").to_lowercase())?;
            for (cells, _) in rows {
                let line: Vec<_> = cells.iter().map(|c| csv_field(c)).collect();
                writeln!(out, "{}", line.join(","))?;
            }
        }
        Format::Json => {
            for (_, j) in rows {
                writeln!(out, "{j}")?;
            }
        }
    }
    Ok(())
}
