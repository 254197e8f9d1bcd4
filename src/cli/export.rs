//! `telehub export`: every raw reading of a range, as CSV or NDJSON on stdout, in
//! constant memory (keyset pages of [`super::query`]), with a progress bar on stderr
//! when stderr is a terminal. Works while the hub runs.

use super::output::Format;
use super::query::{Printer, Row, Selection, SelectionArgs, for_each_page};
use crate::config::Settings;
use crate::storage::{OpenMode, Store};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    selection: SelectionArgs,
    #[arg(long, value_enum, default_value = "csv")]
    format: ExportFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ExportFormat {
    /// `device,sensor,ts,value,unit` with a header line.
    Csv,
    /// One JSON object per line: `{"device","sensor","ts","value","unit"}` (also `json`, as
    /// `query --format json`).
    #[value(alias = "json")]
    Ndjson,
}

pub async fn run(settings: Settings, args: &ExportArgs) -> anyhow::Result<()> {
    let sel = Selection::parse(&args.selection)?;
    let format = match args.format {
        ExportFormat::Csv => Format::Csv,
        ExportFormat::Ndjson => Format::Json,
    };
    // One read connection: one SQLite page cache, so memory stays bounded.
    let mut db = settings.database;
    db.max_connections = 1;
    let store = Store::open_with(&db, OpenMode::Existing).await?;
    let result = export(&store, &sel, format).await;
    store.close().await;
    result
}

async fn export(store: &Store, sel: &Selection, format: Format) -> anyhow::Result<()> {
    let series = sel.series(store).await?;
    let progress = if std::io::stderr().is_terminal() {
        // The total comes from the rollups: cheap even for years of data.
        let mut total = 0;
        for s in &series {
            total += store.count(sel.range(s.id, usize::MAX)).await?;
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
    let mut out = Printer::new(format, false);
    let mut left = usize::MAX;
    for s in &series {
        for_each_page(store, sel.range(s.id, left), &mut left, |page| {
            progress.inc(page.len() as u64);
            page.iter()
                .try_for_each(|p| out.row(&sel.device, s, Row::Point(p)))
        })
        .await?;
    }
    progress.finish_and_clear();
    out.finish()
}
