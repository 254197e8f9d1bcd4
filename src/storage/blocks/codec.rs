//! The block codec: one series' readings over a closed time range (timestamps in µs,
//! values as stored: numbers, booleans as 0/1, strings as text ids) to bytes and back.
//!
//! Owns the block byte format. Pure: no I/O. A block is
//! `[version = 1][count: u32 LE][timestamps' length: u32 LE][timestamps][values]`, each
//! column compressed by pcodec (`pco`): timestamps as delta (of delta) encoded
//! integers, values with its float modes, which find decimal quantisation (two-decimal
//! readings become small integers) and runs of a few distinct states. Lossless: every
//! value reads back bit for bit (BENCHMARKS.md "Compressed cold storage" has the
//! measurements behind the choice).

use pco::ChunkConfig;
use pco::standalone::{simple_compress, simple_decompress};

const VERSION: u8 = 1;
const HEADER: usize = 9;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("a block needs sorted, unique timestamps and one finite value per timestamp")]
    InvalidInput,
    #[error(
        "a compressed block could not be read ({0}): the database file is damaged; restore it from a backup"
    )]
    Corrupt(String),
}

/// One series' readings, sorted by time, timestamps unique.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Columns {
    pub ts: Vec<i64>,
    pub values: Vec<f64>,
}

impl Columns {
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// The readings as `(ts, value)` pairs.
    pub fn pairs(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        self.ts.iter().copied().zip(self.values.iter().copied())
    }
}

/// Encodes sorted, unique, finite readings.
pub fn encode(c: &Columns) -> Result<Vec<u8>, CodecError> {
    let valid = c.ts.len() == c.values.len()
        && !c.ts.is_empty()
        && c.ts.windows(2).all(|w| w[0] < w[1])
        && c.values.iter().all(|v| v.is_finite());
    if !valid || c.ts.len() > u32::MAX as usize {
        return Err(CodecError::InvalidInput);
    }
    let config = ChunkConfig::default();
    let ts = simple_compress(&c.ts, &config).map_err(|e| CodecError::Corrupt(e.to_string()))?;
    let values =
        simple_compress(&c.values, &config).map_err(|e| CodecError::Corrupt(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER + ts.len() + values.len());
    out.push(VERSION);
    out.extend_from_slice(&(c.ts.len() as u32).to_le_bytes());
    out.extend_from_slice(&(ts.len() as u32).to_le_bytes());
    out.extend_from_slice(&ts);
    out.extend_from_slice(&values);
    Ok(out)
}

/// Decodes a block written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Columns, CodecError> {
    let corrupt = |what: &str| CodecError::Corrupt(what.to_owned());
    if bytes.len() < HEADER || bytes[0] != VERSION {
        return Err(corrupt("unknown header"));
    }
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let (count, ts_len) = (word(1) as usize, word(5) as usize);
    let rest = &bytes[HEADER..];
    if ts_len > rest.len() {
        return Err(corrupt("truncated"));
    }
    let ts: Vec<i64> =
        simple_decompress(&rest[..ts_len]).map_err(|e| CodecError::Corrupt(e.to_string()))?;
    let values: Vec<f64> =
        simple_decompress(&rest[ts_len..]).map_err(|e| CodecError::Corrupt(e.to_string()))?;
    if ts.len() != count || values.len() != count {
        return Err(corrupt("column lengths differ"));
    }
    Ok(Columns { ts, values })
}
