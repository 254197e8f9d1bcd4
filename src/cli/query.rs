//! `telehub query`: stored readings straight from storage (works while the hub runs),
//! as a table, CSV or JSON lines; raw points or buckets. Streams page by page, so any
//! range prints in bounded memory.

use super::UsageError;
use super::output::{Format, csv_field, csv_value, table};
use crate::config::Settings;
use crate::domain::{DeviceName, SensorName, Timestamp, Value, parse_duration, parse_time_arg};
use crate::export::Pages;
use crate::storage::history::{History, HistoryError, HistoryLimits, HistoryRead, Shape};
use crate::storage::{Agg, Bucket, OpenMode, Point, RangeQuery, SeriesRow, StorageError, Store};
use clap::Args;
use std::io::Write;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct QueryArgs {
    #[command(flatten)]
    selection: SelectionArgs,
    /// Bucket width, e.g. 1m, 1h; the buckets hold --agg of their readings (default: avg).
    #[arg(long)]
    every: Option<String>,
    #[arg(long, value_enum, requires = "every")]
    agg: Option<Agg>,
    /// Rows at most (all sensors together).
    #[arg(long)]
    limit: Option<usize>,
    /// table (default on a terminal), csv (default otherwise) or json (one object per line).
    #[arg(long, value_enum)]
    format: Option<Format>,
}

use crate::export::PAGE;

pub(super) enum Row<'a> {
    Point(&'a Point),
    Bucket(&'a Bucket),
}

/// `--device`, `--sensor`, `--from`, `--to`: the arguments shared by `query` and `export`.
#[derive(Args, Debug)]
pub(super) struct SelectionArgs {
    #[arg(long)]
    device: String,
    /// One sensor; all of the device's sensors when omitted.
    #[arg(long)]
    sensor: Option<String>,
    /// Start (inclusive): RFC 3339, `now`, or relative like -15m or -30d. Default: 24 h
    /// before --to.
    #[arg(long, allow_hyphen_values = true)]
    from: Option<String>,
    /// End (exclusive). Default: now.
    #[arg(long, allow_hyphen_values = true)]
    to: Option<String>,
}

/// Which series and time range a command reads, parsed from its arguments.
pub(super) struct Selection {
    pub device: DeviceName,
    pub sensor: Option<SensorName>,
    pub from: Timestamp,
    pub to: Timestamp,
}

/// `--sensor`, `--from` and `--to`: `--to` defaults to now and `--from` to 24 h before it.
fn parse_range(args: &SelectionArgs) -> anyhow::Result<(Option<SensorName>, Timestamp, Timestamp)> {
    let usage = |m: String| anyhow::Error::from(UsageError(m));
    let now = Timestamp::now();
    let sensor = args
        .sensor
        .as_deref()
        .map(SensorName::parse)
        .transpose()
        .map_err(|e| usage(format!("--sensor {e}")))?;
    let to = args
        .to
        .as_deref()
        .map(|t| parse_time_arg(t, now))
        .transpose()
        .map_err(|e| usage(format!("--to: {e}")))?
        .unwrap_or(now);
    let from = match &args.from {
        Some(f) => parse_time_arg(f, now).map_err(|e| usage(format!("--from: {e}")))?,
        None => to.saturating_sub(Duration::from_secs(24 * 3600)),
    };
    if from >= to {
        return Err(usage("--from must be before --to".into()));
    }
    Ok((sensor, from, to))
}

impl Selection {
    /// Parses the arguments; `--to` defaults to now and `--from` to 24 h before `--to`.
    pub fn parse(args: &SelectionArgs) -> anyhow::Result<Self> {
        let device =
            DeviceName::parse(&args.device).map_err(|e| UsageError(format!("--device {e}")))?;
        let (sensor, from, to) = parse_range(args)?;
        Ok(Self {
            device,
            sensor,
            from,
            to,
        })
    }

    /// The arguments with `--device` a pattern (`line-3-*`, `*`), for `export`.
    pub fn parse_fleet(args: &SelectionArgs) -> anyhow::Result<crate::export::Selection> {
        let devices = crate::domain::Segment::parse(&args.device)
            .map_err(|e| UsageError(format!("--device {:?}: {e}", args.device)))?;
        let (sensor, from, to) = parse_range(args)?;
        Ok(crate::export::Selection {
            devices,
            sensor,
            from,
            to,
        })
    }

    /// The selected series of the device (all its sensors without `--sensor`).
    pub async fn series(&self, store: &Store) -> anyhow::Result<Vec<SeriesRow>> {
        let device = &self.device;
        let dev = store
            .find_device(device)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no device {device}; see `telehub device list`"))?;
        let mut series = store.series_of(&dev).await?;
        if let Some(s) = &self.sensor {
            series.retain(|x| &x.sensor == s);
            if series.is_empty() {
                anyhow::bail!("device {device} has no sensor {s}");
            }
        }
        Ok(series)
    }

    /// The first page of a series' raw points.
    pub fn range(&self, series: i64, limit: usize) -> RangeQuery {
        RangeQuery {
            series,
            from: self.from,
            to: self.to,
            after: None,
            limit: PAGE.min(limit),
        }
    }
}

/// Calls `each` with successive pages of raw points (keyset on `ts`, so memory stays
/// bounded and pages neither repeat nor skip rows), until the range or `left` ends.
pub(super) async fn for_each_page(
    store: &Store,
    q: RangeQuery,
    left: &mut usize,
    mut each: impl FnMut(&[Point]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut pages = Pages::new(q, *left);
    while let Some(p) = pages.next(store).await? {
        *left = pages.left;
        each(&p)?;
    }
    Ok(())
}

/// Calls `each` with successive pages of buckets (each page continues after the last
/// bucket's start), until the range or `left` ends.
async fn for_each_bucket_page(
    store: &Store,
    q: RangeQuery,
    every_us: i64,
    agg: Agg,
    left: &mut usize,
    mut each: impl FnMut(&[Bucket]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut read = HistoryRead::buckets(&q, every_us, agg);
    while *left > 0 {
        let History::Buckets(b) = store.history(&read, HistoryLimits::PAGED).await? else {
            break;
        };
        *left -= b.len();
        each(&b)?;
        match b.last() {
            Some(last) if b.len() == read_limit(&read) => {
                read.from = Timestamp::from_micros(last.ts.as_micros() + every_us)
            }
            _ => break,
        }
        read.shape = Shape::Buckets {
            every_us,
            offset_us: 0,
            agg,
            limit: PAGE.min(*left),
        };
    }
    Ok(())
}

fn read_limit(read: &HistoryRead) -> usize {
    match read.shape {
        Shape::Raw { limit, .. } | Shape::Buckets { limit, .. } | Shape::Newest { limit } => limit,
        Shape::Total { .. } => 1,
        Shape::Downsample { max_points } => max_points,
    }
}

pub async fn run(settings: Settings, args: &QueryArgs) -> anyhow::Result<()> {
    let sel = Selection::parse(&args.selection)?;
    let every = args
        .every
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| UsageError(format!("--every: {e}")))?;
    let format = Format::or_default(args.format);

    let store = Store::open_with(&settings.database, OpenMode::Existing).await?;
    let result = async {
        let device = &sel.device;
        let mut out = Printer::new(format, every.is_some());
        let mut left = args.limit.unwrap_or(usize::MAX);
        for s in sel.series(&store).await? {
            let q = sel.range(s.id, left);
            if let Some(every) = every {
                let every_us = every.as_micros().min(i64::MAX as u128) as i64;
                let agg = args.agg.unwrap_or(Agg::Avg);
                let done = for_each_bucket_page(&store, q, every_us, agg, &mut left, |page| {
                    page.iter()
                        .try_for_each(|b| out.row(device, &s, Row::Bucket(b)))
                })
                .await;
                // An aggregate a series' type lacks (`avg` of a string sensor): with
                // --sensor that is the caller's mistake; over all sensors that series is
                // left out, and stderr says so.
                match done.map_err(|e| e.downcast::<HistoryError>()) {
                    Ok(()) => {}
                    Err(Ok(HistoryError::Storage(StorageError::InvalidQuery(d)))) => {
                        let why = format!("sensor {}: {d}", s.sensor);
                        if sel.sensor.is_some() {
                            return Err(UsageError(why).into());
                        }
                        eprintln!("telehub: {why}; left out");
                    }
                    Err(Ok(e)) => return Err(e.into()),
                    Err(Err(e)) => return Err(e),
                }
            } else {
                for_each_page(&store, q, &mut left, |page| {
                    page.iter()
                        .try_for_each(|p| out.row(device, &s, Row::Point(p)))
                })
                .await?;
            }
        }
        out.finish()
    }
    .await;
    store.close().await;
    result
}

/// `v` with at most `digits` significant digits, without float noise (`1.56767`).
fn significant(v: f64, digits: usize) -> String {
    if v == 0.0 || !v.is_finite() {
        return v.to_string();
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (digits as i32 - 1 - magnitude).max(0) as usize;
    let rounded: f64 = format!("{v:.decimals$}").parse().unwrap_or(v);
    rounded.to_string()
}

/// Prints rows as they come; a table is collected (it needs column widths), the
/// others stream.
pub(super) struct Printer {
    format: Format,
    buckets: bool,
    out: std::io::BufWriter<std::io::Stdout>,
    table_rows: Vec<Vec<String>>,
    header_done: bool,
}

impl Printer {
    pub fn new(format: Format, buckets: bool) -> Self {
        Self {
            format,
            buckets,
            out: std::io::BufWriter::new(std::io::stdout()),
            table_rows: Vec::new(),
            header_done: false,
        }
    }

    /// The CSV header: the contract's columns, then `unit`.
    fn csv_header(&self) -> &'static str {
        if self.buckets {
            "device,sensor,ts,value,count,unit"
        } else {
            "device,sensor,ts,value,unit"
        }
    }

    pub fn row(
        &mut self,
        device: &DeviceName,
        series: &SeriesRow,
        row: Row<'_>,
    ) -> anyhow::Result<()> {
        let (sensor, unit) = (&series.sensor, series.unit.as_deref());
        let (ts, value, count) = match row {
            Row::Point(p) => (p.ts, &p.value, None),
            Row::Bucket(b) => (b.ts, &b.value, Some(b.count)),
        };
        match self.format {
            Format::Table => {
                // A bucket's value is computed (an average has float noise): 6 significant
                // digits; a stored reading prints as stored.
                let shown = match (count, value) {
                    (Some(_), Value::Number(v)) => significant(*v, 6),
                    _ => value.to_string(),
                };
                let mut r = vec![
                    device.to_string(),
                    sensor.to_string(),
                    ts.to_rfc3339(),
                    shown,
                ];
                r.extend(count.map(|c| c.to_string()));
                r.push(unit.unwrap_or("").to_owned());
                self.table_rows.push(r);
            }
            Format::Csv => {
                if !self.header_done {
                    writeln!(self.out, "{}", self.csv_header())?;
                    self.header_done = true;
                }
                write!(
                    self.out,
                    "{},{},{},{}",
                    csv_field(device.as_str()),
                    csv_field(sensor.as_str()),
                    ts,
                    csv_value(value)
                )?;
                if let Some(c) = count {
                    write!(self.out, ",{c}")?;
                }
                writeln!(self.out, ",{}", csv_field(unit.unwrap_or("")))?;
            }
            Format::Json => {
                let mut v = serde_json::json!({"device": device, "sensor": sensor, "ts": ts, "value": value});
                if let Some(c) = count {
                    v["count"] = c.into();
                }
                v["unit"] = unit.into();
                writeln!(self.out, "{v}")?;
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> anyhow::Result<()> {
        if self.format == Format::Csv && !self.header_done {
            writeln!(self.out, "{}", self.csv_header())?;
        }
        if self.format == Format::Table {
            let mut header = vec!["DEVICE", "SENSOR", "TS", "VALUE"];
            if self.buckets {
                header.push("COUNT");
            }
            header.push("UNIT");
            if self.table_rows.is_empty() {
                eprintln!("no readings in that range");
            } else {
                table(&mut self.out, &header, &self.table_rows)?;
            }
        }
        self.out.flush()?;
        Ok(())
    }
}
