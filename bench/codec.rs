//! Block codec benchmark (not a test; see BENCHMARKS.md "Compressed cold storage"): bytes
//! per reading and decode speed of the candidate codecs on the data shapes of issue 31.
//! Run with `cargo bench --bench codec` (add `-- --readings N` for another size).
//!
//! Shapes: `walk` — 200 random-walk series, two decimals, one reading every 10 s, 2 % of
//! timestamps a second late; `demo-number`, `demo-boolean`, `demo-string` — the
//! `serve --demo` fleet's signals (`telehub::sim`), one sample every 10 s.
//! Codecs: `pco` (what the hub stores: [`telehub::storage::blocks::codec`]), `gorilla`
//! (Facebook's delta-of-delta timestamps and XOR floats, written here), and `zstd-3` /
//! `zstd-19` over columnar bytes (timestamp deltas, then values, little-endian).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use telehub::domain::{Timestamp, Value};
use telehub::sim::{Kind, SimDevice};
use telehub::storage::blocks::codec::{self, Columns};

const SEC: i64 = 1_000_000;

fn main() {
    let mut readings = 1_000_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--readings" {
            readings = args
                .next()
                .and_then(|v| v.parse().ok())
                .expect("--readings N");
        }
    }
    let shapes = [
        ("walk", walk(200, readings / 200)),
        ("demo-number", demo(readings, Shape::Number)),
        ("demo-boolean", demo(readings / 4, Shape::Boolean)),
        ("demo-string", demo(readings / 4, Shape::String)),
    ];
    println!("shape          block  codec     bytes/reading  decode Mreadings/s");
    for (name, series) in &shapes {
        for block in [1024, 4096] {
            let blocks: Vec<Columns> = series.iter().flat_map(|s| split(s, block)).collect();
            let n: usize = blocks.iter().map(Columns::len).sum();
            for (codec, enc, dec) in CODECS {
                let encoded: Vec<Vec<u8>> = blocks.iter().map(enc).collect();
                let bytes: usize = encoded.iter().map(Vec::len).sum();
                let started = Instant::now();
                let mut back = 0;
                for (e, b) in encoded.iter().zip(&blocks) {
                    let d = dec(e);
                    assert_eq!(&d, b, "{codec} round trip");
                    back += d.len();
                }
                let took = started.elapsed().max(Duration::from_nanos(1));
                println!(
                    "{name:<14} {block:>5}  {codec:<8} {:>14.3}  {:>18.1}",
                    bytes as f64 / n as f64,
                    back as f64 / took.as_secs_f64() / 1e6
                );
            }
        }
    }
}

type Codec = (&'static str, fn(&Columns) -> Vec<u8>, fn(&[u8]) -> Columns);

const CODECS: [Codec; 4] = [
    (
        "pco",
        |c| codec::encode(c).expect("valid"),
        |b| codec::decode(b).expect("valid"),
    ),
    ("gorilla", gorilla::encode, gorilla::decode),
    ("zstd-3", |c| zstd_encode(c, 3), zstd_decode),
    ("zstd-19", |c| zstd_encode(c, 19), zstd_decode),
];

fn split(c: &Columns, block: usize) -> Vec<Columns> {
    c.ts.chunks(block)
        .zip(c.values.chunks(block))
        .map(|(t, v)| Columns {
            ts: t.to_vec(),
            values: v.to_vec(),
        })
        .collect()
}

/// `series` random walks of `per_series` readings.
fn walk(series: usize, per_series: usize) -> Vec<Columns> {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let start = 1_795_000_000 * SEC;
    (0..series)
        .map(|_| {
            let mut cents: i64 = 2000 + (next() % 1000) as i64;
            let mut c = Columns::default();
            for i in 0..per_series as i64 {
                let late = if next() % 100 < 2 { SEC } else { 0 };
                cents += (next() % 21) as i64 - 10;
                c.ts.push(start + i * 10 * SEC + late);
                c.values.push(cents as f64 / 100.0);
            }
            c
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Number,
    Boolean,
    String,
}

/// About `readings` readings of one value type from the demo fleet's eight devices.
fn demo(readings: usize, shape: Shape) -> Vec<Columns> {
    let names = [
        "boiler-1",
        "boiler-2",
        "room-1",
        "room-2",
        "freezer-1",
        "freezer-2",
        "outdoor-1",
        "outdoor-2",
    ];
    let start = Timestamp::from_micros(1_795_000_000 * SEC);
    let mut series: BTreeMap<(usize, String), BTreeMap<i64, f64>> = BTreeMap::new();
    let mut texts: BTreeMap<String, f64> = BTreeMap::new();
    let mut hours = 1;
    while series.values().map(BTreeMap::len).sum::<usize>() < readings && hours < 24 * 400 {
        series.clear();
        let to = Timestamp::from_micros(start.as_micros() + hours * 3600 * SEC);
        for (d, name) in names.iter().enumerate() {
            let dev = SimDevice::new(name, Kind::for_name(name), 1);
            for r in dev.history(start, to, Duration::from_secs(10)) {
                let v = match (&r.value, shape) {
                    (Value::Number(v), Shape::Number) => *v,
                    (Value::Bool(b), Shape::Boolean) => f64::from(u8::from(*b)),
                    (Value::Text(t), Shape::String) => {
                        let next = texts.len() as f64 + 1.0;
                        *texts.entry(t.as_str().to_owned()).or_insert(next)
                    }
                    _ => continue,
                };
                let key = (d, r.sensor.as_str().to_owned());
                series
                    .entry(key)
                    .or_default()
                    .entry(r.ts.as_micros())
                    .or_insert(v);
            }
        }
        hours *= 2;
    }
    series
        .into_values()
        .map(|m| Columns {
            ts: m.keys().copied().collect(),
            values: m.values().copied().collect(),
        })
        .collect()
}

fn zstd_encode(c: &Columns, level: i32) -> Vec<u8> {
    let mut raw = Vec::with_capacity(c.len() * 16 + 8);
    raw.extend_from_slice(&(c.len() as u64).to_le_bytes());
    let mut prev = 0i64;
    for &t in &c.ts {
        raw.extend_from_slice(&t.wrapping_sub(prev).to_le_bytes());
        prev = t;
    }
    for v in &c.values {
        raw.extend_from_slice(&v.to_le_bytes());
    }
    zstd::bulk::compress(&raw, level).expect("zstd")
}

fn zstd_decode(b: &[u8]) -> Columns {
    let raw = zstd::bulk::decompress(b, 64 << 20).expect("zstd");
    let n = u64::from_le_bytes(raw[..8].try_into().expect("8")) as usize;
    let word = |i: usize| <[u8; 8]>::try_from(&raw[8 + 8 * i..16 + 8 * i]).expect("8");
    let mut c = Columns::default();
    let mut prev = 0i64;
    for i in 0..n {
        prev = prev.wrapping_add(i64::from_le_bytes(word(i)));
        c.ts.push(prev);
    }
    c.values = (n..2 * n).map(|i| f64::from_le_bytes(word(i))).collect();
    c
}

/// Gorilla (Pelkonen et al., VLDB 2015): timestamps as delta of delta in variable-width
/// buckets, values XORed with the previous one (leading/trailing zero windows).
mod gorilla {
    use super::Columns;

    #[derive(Default)]
    struct Bits {
        out: Vec<u8>,
        used: u32,
    }

    impl Bits {
        fn put(&mut self, v: u64, n: u32) {
            for i in (0..n).rev() {
                if self.used.is_multiple_of(8) {
                    self.out.push(0);
                }
                let bit = ((v >> i) & 1) as u8;
                *self.out.last_mut().expect("pushed") |= bit << (7 - self.used % 8);
                self.used += 1;
            }
        }
    }

    struct Read<'a> {
        b: &'a [u8],
        at: usize,
    }

    impl Read<'_> {
        fn get(&mut self, n: u32) -> u64 {
            let mut v = 0;
            for _ in 0..n {
                let bit = (self.b[self.at / 8] >> (7 - self.at % 8)) & 1;
                v = (v << 1) | u64::from(bit);
                self.at += 1;
            }
            v
        }
    }

    const DOD: [(u64, u32, u32); 4] = [
        (0b10, 2, 7),
        (0b110, 3, 9),
        (0b1110, 4, 12),
        (0b1111, 4, 64),
    ];

    pub fn encode(c: &Columns) -> Vec<u8> {
        let mut w = Bits::default();
        w.put(c.len() as u64, 32);
        w.put(c.ts[0] as u64, 64);
        w.put(c.values[0].to_bits(), 64);
        let (mut delta, mut prev_v, mut window) = (0i64, c.values[0].to_bits(), (65u32, 0u32));
        for i in 1..c.len() {
            let d = c.ts[i] - c.ts[i - 1];
            let dod = d - delta;
            delta = d;
            if dod == 0 {
                w.put(0, 1);
            } else {
                let &(tag, len, bits) = DOD
                    .iter()
                    .find(|(_, _, b)| {
                        *b == 64 || (-(1i64 << (b - 1)) <= dod && dod < 1i64 << (b - 1))
                    })
                    .expect("64 bits fit");
                w.put(tag, len);
                w.put(dod as u64 & (u64::MAX >> (64 - bits)), bits);
            }
            let v = c.values[i].to_bits();
            let x = v ^ prev_v;
            prev_v = v;
            if x == 0 {
                w.put(0, 1);
                continue;
            }
            let (lead, trail) = (x.leading_zeros().min(31), x.trailing_zeros());
            if window.0 <= lead && window.1 <= trail && window.0 < 65 {
                w.put(0b10, 2);
                w.put(x >> window.1, 64 - window.0 - window.1);
            } else {
                window = (lead, trail);
                let len = 64 - lead - trail;
                w.put(0b11, 2);
                w.put(u64::from(lead), 5);
                w.put(u64::from(len - 1), 6);
                w.put(x >> trail, len);
            }
        }
        w.out
    }

    pub fn decode(b: &[u8]) -> Columns {
        let mut r = Read { b, at: 0 };
        let n = r.get(32) as usize;
        let mut c = Columns {
            ts: vec![r.get(64) as i64],
            values: vec![f64::from_bits(r.get(64))],
        };
        let (mut delta, mut prev_v, mut window) = (0i64, c.values[0].to_bits(), (0u32, 0u32));
        for _ in 1..n {
            let mut ones = 0;
            while ones < 4 && r.get(1) == 1 {
                ones += 1;
            }
            if ones > 0 {
                let bits = DOD[ones - 1].2;
                let raw = r.get(bits);
                let dod = if bits == 64 {
                    raw as i64
                } else {
                    ((raw << (64 - bits)) as i64) >> (64 - bits)
                };
                delta += dod;
            }
            c.ts.push(c.ts.last().expect("one") + delta);
            if r.get(1) == 1 {
                if r.get(1) == 1 {
                    let lead = r.get(5) as u32;
                    let len = r.get(6) as u32 + 1;
                    window = (lead, 64 - lead - len);
                }
                let len = 64 - window.0 - window.1;
                prev_v ^= r.get(len) << window.1;
            }
            c.values.push(f64::from_bits(prev_v));
        }
        c
    }
}
