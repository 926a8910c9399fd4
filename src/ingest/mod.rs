//! Bulk loads, the pure half: CSV (RFC 4180) and NDJSON files decoded row by row into
//! checked rows of one kind (`Spec`), streaming from a `BufRead` with every line and field
//! bounded (`Limits`), so memory stays flat whatever the file size. Each row comes out either
//! checked (typed cells) or rejected (its line and every problem found in it). What needs
//! the database (unknown tenants, conflicting duplicates, the merge) is `store::ingest`'s.
//! See docs/ingest.md.

mod csv;
mod fields;
pub mod generate;
mod ndjson;
mod spec;

pub use fields::Cell;
pub use spec::{Column, Kind, Spec, Ty};

use crate::contract::Violation;
use chrono::NaiveDate;
use std::collections::HashSet;
use std::io::BufRead;
use uuid::Uuid;

/// The file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "csv" => Some(Format::Csv),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            _ => None,
        }
    }

    /// From a file name's extension (`.csv`, `.ndjson`, `.jsonl`), if it says.
    pub fn from_path(path: &str) -> Option<Format> {
        let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
        Format::parse(&ext)
    }
}

/// Size bounds: a longer line (CSV: record) or field is a rejected row, read past in bounded
/// memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_line_bytes: usize,
    pub max_field_bytes: usize,
    /// Columns a CSV record may have before it is refused.
    pub max_fields: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_bytes: 64 * 1024,
            max_field_bytes: 8 * 1024,
            max_fields: 64,
        }
    }
}

/// A row that passed every check this module can make.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// 1-based line of the file where the row starts.
    pub line: u64,
    pub tenant: Uuid,
    /// One per `Spec::columns`, in that order; absent optionals are `Cell::Null`.
    pub cells: Vec<Cell>,
}

/// A row refused, with every problem found in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub line: u64,
    /// The row's tenant when it had a readable one.
    pub tenant: Option<Uuid>,
    /// `path` is `line N: column` (or `line N` for the row as a whole).
    pub problems: Vec<Violation>,
    /// The row as read, cut to `RAW_KEEP` bytes.
    pub raw: String,
}

/// How much of a rejected row is kept for people to look at.
pub const RAW_KEEP: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Row(Checked),
    Reject(Rejected),
}

impl Decoded {
    pub fn line(&self) -> u64 {
        match self {
            Decoded::Row(r) => r.line,
            Decoded::Reject(r) => r.line,
        }
    }
}

/// A problem with the file as a whole (a CSV header), or reading it failed.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{}: {}", .0.path, .0.problem)]
    Invalid(Violation),
    #[error("reading the file: {0}")]
    Io(#[from] std::io::Error),
}

/// What a decoder needs to know beyond the file: the metric dictionary's ids.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub metric_ids: HashSet<String>,
}

impl Known {
    pub fn from_catalog(catalog: &crate::contract::catalog::Catalog) -> Known {
        Known {
            metric_ids: catalog.metrics().map(|m| m.id.clone()).collect(),
        }
    }
}

/// Streams a file's rows. Rows come out in file order; after the last one, `digest` is the
/// SHA-256 (hex) of the kind's name followed by every byte read: the default load id.
pub struct Decoder<R> {
    inner: Inner<R>,
    spec: &'static Spec,
    known: Known,
    hash: ring::digest::Context,
    rows: u64,
    done: bool,
}

enum Inner<R> {
    // Boxed: csv_core's parser is a few hundred bytes.
    Csv(Box<csv::Records<R>>),
    Ndjson(ndjson::Lines<R>),
}

impl<R: BufRead> Decoder<R> {
    /// A CSV decoder reads the header here: an unknown, duplicated or missing column is a
    /// `DecodeError::Invalid` before any row.
    pub fn new(
        kind: Kind,
        format: Format,
        reader: R,
        limits: Limits,
        known: Known,
    ) -> Result<Decoder<R>, DecodeError> {
        let spec = kind.spec();
        if format == Format::Csv && !spec.csv {
            return Err(DecodeError::Invalid(Violation::new(
                "--format",
                format!("a {kind} load is NDJSON only: its rows hold nested objects"),
            )));
        }
        let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
        hash.update(kind.as_str().as_bytes());
        let inner = match format {
            Format::Csv => Inner::Csv(Box::new(csv::Records::new(
                reader, spec, limits, &mut hash,
            )?)),
            Format::Ndjson => Inner::Ndjson(ndjson::Lines::new(reader, limits)),
        };
        Ok(Decoder {
            inner,
            spec,
            known,
            hash,
            rows: 0,
            done: false,
        })
    }

    pub fn spec(&self) -> &'static Spec {
        self.spec
    }

    /// Data rows read so far (checked and rejected).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The next row; `Ok(None)` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<Decoded>, DecodeError> {
        if self.done {
            return Ok(None);
        }
        let out = match &mut self.inner {
            Inner::Csv(r) => r.next(self.spec, &self.known, &mut self.hash)?,
            Inner::Ndjson(r) => r.next(self.spec, &self.known, &mut self.hash)?,
        };
        match &out {
            Some(_) => self.rows += 1,
            None => self.done = true,
        }
        Ok(out)
    }

    /// The SHA-256 of the kind and the bytes read, as lower-case hex. Meaningful once
    /// `next_row` returned `Ok(None)`.
    pub fn digest(&self) -> String {
        let d = self.hash.clone().finish();
        d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A date cell's value (the store writes it as `date`).
pub fn date_of(cell: &Cell) -> Option<NaiveDate> {
    match cell {
        Cell::Date(d) => Some(*d),
        _ => None,
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
pub(crate) fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests;
