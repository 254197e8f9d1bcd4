//! `telehub export`: every raw reading of a range, of one device or of every device a
//! pattern matches (`--device 'line-3-*'`), as CSV or NDJSON on stdout, in constant memory
//! (keyset pages, [`crate::export`]), with a progress bar on stderr when stderr is a
//! terminal. Works while the hub runs.

use super::query::{Selection, SelectionArgs};
use crate::config::Settings;
use crate::export::{self, CSV_HEADER, ExportFormat, PAGE, Pages};
use crate::storage::{OpenMode, RangeQuery, Store};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// `--device` is a device name or a pattern (`*` matches any run of characters).
    #[command(flatten)]
    selection: SelectionArgs,
    #[arg(long, value_enum, default_value = "csv")]
    format: FormatArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    /// `device,sensor,ts,value,unit` with a header line.
    Csv,
    /// One JSON object per line: `{"device","sensor","ts","value","unit"}` (also `json`, as
    /// `query --format json`).
    #[value(alias = "json")]
    Ndjson,
}

pub async fn run(settings: Settings, args: &ExportArgs) -> anyhow::Result<()> {
    let sel = Selection::parse_fleet(&args.selection)?;
    let format = match args.format {
        FormatArg::Csv => ExportFormat::Csv,
        FormatArg::Ndjson => ExportFormat::Ndjson,
    };
    // One read connection: one SQLite page cache, so memory stays bounded.
    let mut db = settings.database;
    db.max_connections = 1;
    let store = Store::open_with(&db, OpenMode::Existing).await?;
    let result = run_export(&store, &sel, format).await;
    store.close().await;
    result
}

async fn run_export(
    store: &Store,
    sel: &export::Selection,
    format: ExportFormat,
) -> anyhow::Result<()> {
    let series = export::series(store, sel).await?;
    if series.is_empty() {
        match sel.devices.exact() {
            Some(d) if !has_device(store, d).await? => {
                anyhow::bail!("no device {d}; see `telehub device list`")
            }
            Some(d) => {
                if let Some(s) = &sel.sensor {
                    anyhow::bail!("device {d} has no sensor {s}");
                }
            }
            None => eprintln!("telehub: no device matches {}", sel.devices),
        }
    }
    let range = |id| RangeQuery {
        series: id,
        from: sel.from,
        to: sel.to,
        after: None,
        limit: PAGE,
    };
    let progress = if std::io::stderr().is_terminal() {
        // The total comes from the rollups: cheap even for years of data.
        let mut total = 0;
        for (_, s) in &series {
            total += store.count(range(s.id)).await?;
        }
        let bar = ProgressBar::new(total.max(0) as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {human_pos}/{human_len} readings ({per_sec}, {eta} left)",
            )
            .expect("valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut out = std::io::BufWriter::new(std::io::stdout());
    if format == ExportFormat::Csv {
        writeln!(out, "{CSV_HEADER}")?;
    }
    for (device, s) in &series {
        let mut pages = Pages::new(range(s.id), usize::MAX);
        while let Some(page) = pages.next(store).await? {
            progress.inc(page.len() as u64);
            for p in &page {
                out.write_all(export::line(format, device, s, p).as_bytes())?;
            }
        }
    }
    progress.finish_and_clear();
    out.flush()?;
    Ok(())
}

async fn has_device(store: &Store, name: &str) -> anyhow::Result<bool> {
    let Ok(name) = crate::domain::DeviceName::parse(name) else {
        return Ok(false);
    };
    Ok(store.find_device(&name).await?.is_some())
}
