//! Saving the outbox between runs. The whole outbox is written to `PATH.tmp`, synced,
//! and renamed over `PATH` (then the folder is synced): a crash leaves either the old
//! snapshot or the new one, never half of one. An empty outbox removes the file.
//!
//! Format: a `#` header line, then one JSON array per reading,
//! `[ts_µs, value, "sensor", "unit" | null, "device" | null]`. Values round-trip
//! exactly; lines that do not parse are skipped and counted.
//!
//! A client that takes commands keeps its command book (executed ids, answers not yet
//! confirmed: see `super::commands`) beside it in `PATH.commands`, written the same way.

use crate::domain::{DeviceName, Reading, SensorName, Timestamp, Unit, Value};
use crate::protocol::ingest::DeviceReading;
use std::fs::{self, File};
use std::io::{self, BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

const HEADER: &str = "# telehub device client outbox v1";

type Line = (i64, Value, String, Option<String>, Option<String>);

/// Writes `readings` to `path` atomically (or removes `path` when there are none).
pub(super) fn save(path: &Path, readings: &[DeviceReading]) -> io::Result<()> {
    if readings.is_empty() {
        return match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => sync_dir(path),
        };
    }
    let tmp = tmp_path(path);
    let mut w = BufWriter::new(File::create(&tmp)?);
    writeln!(w, "{HEADER}")?;
    for r in readings {
        let line: (i64, &Value, &str, Option<&str>, Option<&str>) = (
            r.reading.ts.as_micros(),
            &r.reading.value,
            r.reading.sensor.as_str(),
            r.reading.unit.as_ref().map(Unit::as_str),
            r.device.as_ref().map(DeviceName::as_str),
        );
        serde_json::to_writer(&mut w, &line)?;
        w.write_all(b"\n")?;
    }
    let f = w.into_inner().map_err(io::IntoInnerError::into_error)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    sync_dir(path)
}

/// Reads a snapshot: the readings, and how many lines were skipped. A missing file is empty.
pub(super) fn load(path: &Path) -> io::Result<(Vec<DeviceReading>, usize)> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let (mut out, mut skipped) = (Vec::new(), 0);
    for line in io::BufReader::new(f).lines() {
        let line = line?;
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Line>(&line)
            .ok()
            .and_then(|l| reading(l).ok())
        {
            Some(r) => out.push(r),
            None => skipped += 1,
        }
    }
    Ok((out, skipped))
}

fn reading((ts, value, sensor, unit, device): Line) -> Result<DeviceReading, ()> {
    Ok(DeviceReading {
        device: device
            .map(|d| DeviceName::parse(&d))
            .transpose()
            .map_err(drop)?,
        reading: Reading {
            sensor: SensorName::parse(&sensor).map_err(drop)?,
            value,
            ts: Timestamp::from_micros(ts),
            unit: unit.map(|u| Unit::parse(&u)).transpose().map_err(drop)?,
        },
    })
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Makes a rename or removal in the folder of `path` durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => File::open(".")?.sync_all(),
    }
}

/// Where the command book is saved beside the outbox at `path`.
pub(super) fn commands_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".commands");
    PathBuf::from(p)
}

/// Writes the command book's snapshot beside the outbox (atomically, as the outbox).
pub(super) fn save_commands(path: &Path, snapshot: &str) -> io::Result<()> {
    let path = commands_path(path);
    let tmp = tmp_path(&path);
    let mut f = File::create(&tmp)?;
    f.write_all(COMMANDS_HEADER.as_bytes())?;
    f.write_all(b"\n")?;
    f.write_all(snapshot.as_bytes())?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, &path)?;
    sync_dir(&path)
}

const COMMANDS_HEADER: &str = "# telehub device client commands v1";

/// Reads the command book saved beside the outbox (empty when there is none).
pub(super) fn load_commands(path: &Path, remember: usize) -> io::Result<super::commands::Book> {
    let path = commands_path(path);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(e),
    };
    let (book, skipped) = super::commands::Book::restore(&text, remember);
    if skipped > 0 {
        tracing::warn!(path = %path.display(), skipped, "unreadable lines in the saved command book were skipped");
    }
    Ok(book)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(i: i64, unit: Option<&str>, device: Option<&str>) -> DeviceReading {
        DeviceReading {
            device: device.map(|d| DeviceName::parse(d).unwrap()),
            reading: Reading {
                sensor: SensorName::parse("co2").unwrap(),
                value: (0.1 + i as f64 / 7.0).into(),
                ts: Timestamp::from_micros(1_795_255_200_000_001 + i),
                unit: unit.map(|u| Unit::parse(u).unwrap()),
            },
        }
    }

    #[test]
    fn a_saved_outbox_loads_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d1.outbox");
        let rs = vec![
            r(0, Some("ppm"), None),
            r(1, None, Some("room-2")),
            r(2, Some(""), None),
            r(3, Some("%RH \"x\""), Some("a:b.c")),
        ];
        save(&path, &rs).unwrap();
        assert!(!tmp_path(&path).exists());
        assert_eq!(load(&path).unwrap(), (rs, 0));
    }

    #[test]
    fn an_empty_outbox_removes_the_file_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d1.outbox");
        save(&path, &[r(0, None, None)]).unwrap();
        assert!(path.exists());
        save(&path, &[]).unwrap();
        assert!(!path.exists());
        save(&path, &[]).unwrap();
        assert_eq!(load(&path).unwrap(), (vec![], 0));
    }

    #[test]
    fn damaged_lines_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d1.outbox");
        save(&path, &[r(0, None, None), r(1, None, None)]).unwrap();
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str("[1, 2.0, \"bad name\", null, null]\n[1, 2.0\n");
        fs::write(&path, text).unwrap();
        let (rs, skipped) = load(&path).unwrap();
        assert_eq!((rs.len(), skipped), (2, 2));
    }

    #[test]
    fn a_leftover_temp_file_does_not_replace_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d1.outbox");
        save(&path, &[r(0, None, None)]).unwrap();
        // A crash between writing the temp file and the rename leaves the old snapshot.
        fs::write(tmp_path(&path), "[half").unwrap();
        assert_eq!(load(&path).unwrap().0, vec![r(0, None, None)]);
        save(&path, &[r(1, None, None)]).unwrap();
        assert_eq!(load(&path).unwrap().0, vec![r(1, None, None)]);
    }
}
