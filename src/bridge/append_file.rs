//! An append-only file of lines that outlives the bridge: each line is written at once
//! (it survives a crash of the bridge) and synced to disk on [`AppendFile::sync`] (every
//! second and on exit: it survives power loss after that). The owner rewrites it with
//! only its live lines when dead ones have piled up: to a temporary file, synced, then
//! renamed over, so a crash leaves the old file or the new one, never half of either.
//! A write that fails turns the file off, logged once: the owner goes on in memory.
//!
//! Owns [`AppendFile`]. Used by [`super::journal`] (sealed messages) and
//! [`super::result_log`] (command results).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct AppendFile {
    path: PathBuf,
    file: File,
    dirty: bool,
    /// Set after a write failed: the error is logged once and nothing is written again.
    failed: bool,
    /// What a restart loses once the file is off (for the error line).
    loses: &'static str,
}

impl AppendFile {
    /// Writes `lines` as the whole file and opens it for appending.
    pub fn create(
        path: &Path,
        lines: impl IntoIterator<Item = String>,
        loses: &'static str,
    ) -> std::io::Result<Self> {
        write_whole(path, lines)?;
        Ok(Self {
            path: path.to_owned(),
            file: OpenOptions::new().append(true).open(path)?,
            dirty: false,
            failed: false,
            loses,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line (`line` has no newline).
    pub fn append(&mut self, line: &str) {
        if self.failed {
            return;
        }
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        match self.file.write_all(&bytes) {
            Ok(()) => self.dirty = true,
            Err(e) => self.fail(&e),
        }
    }

    /// Replaces the file with `lines`, the owner's live records.
    pub fn rewrite(&mut self, lines: impl IntoIterator<Item = String>) {
        if self.failed {
            return;
        }
        match write_whole(&self.path, lines)
            .and_then(|()| OpenOptions::new().append(true).open(&self.path))
        {
            Ok(f) => {
                self.file = f;
                self.dirty = false;
            }
            Err(e) => self.fail(&e),
        }
    }

    pub fn sync(&mut self) {
        if self.dirty && !self.failed {
            if let Err(e) = self.file.sync_data() {
                self.fail(&e);
            }
            self.dirty = false;
        }
    }

    fn fail(&mut self, e: &std::io::Error) {
        self.failed = true;
        tracing::error!(
            state_file = %self.path.display(),
            "cannot write the state file ({e}); keeping state in memory only from now on: a restart will lose {}. Free disk space or fix permissions, then restart the bridge",
            self.loses
        );
    }
}

/// Writes `lines` to a temporary file, syncs it and renames it over `path`.
fn write_whole(path: &Path, lines: impl IntoIterator<Item = String>) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut w = std::io::BufWriter::new(File::create(&tmp)?);
        for line in lines {
            writeln!(w, "{line}")?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}
