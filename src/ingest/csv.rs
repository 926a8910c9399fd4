//! RFC 4180 CSV through `csv_core`, which parses into buffers we own: a record longer than
//! `Limits::max_line_bytes` (or with more than `max_fields` fields) overflows a fixed buffer
//! and is read past, so memory stays bounded. A header row is required; an optional UTF-8
//! BOM is skipped; CRLF and LF both end a record.

use super::fields::{Field, check_row};
use super::spec::Spec;
use super::{DecodeError, Decoded, Known, Limits, Rejected, cut};
use crate::contract::Violation;
use csv_core::{ReadRecordResult, Reader};
use std::io::BufRead;

pub(super) struct Records<R> {
    reader: R,
    core: Reader,
    limits: Limits,
    out: Vec<u8>,
    ends: Vec<usize>,
    /// For each spec column, its position in the record (None: not in the header).
    map: Vec<Option<usize>>,
    tenant_at: usize,
    width: usize,
}

/// One record as read: its first line, and either its fields or why it was too big.
struct Raw {
    line: u64,
    len: usize,
    fields: usize,
    overflow: Option<String>,
}

impl<R: BufRead> Records<R> {
    pub(super) fn new(
        reader: R,
        spec: &Spec,
        limits: Limits,
        hash: &mut ring::digest::Context,
    ) -> Result<Self, DecodeError> {
        let mut r = Records {
            reader,
            core: Reader::new(),
            limits,
            out: vec![0; limits.max_line_bytes.max(1)],
            ends: vec![0; limits.max_fields.max(1)],
            map: vec![None; spec.columns.len()],
            tenant_at: 0,
            width: 0,
        };
        let header =
            |problem: String| DecodeError::Invalid(Violation::new("line 1: header", problem));
        let Some(raw) = r.read(hash)? else {
            return Err(header("the file is empty: a header row is required".into()));
        };
        if let Some(why) = raw.overflow {
            return Err(header(why));
        }
        let mut tenant_at = None;
        for i in 0..raw.fields {
            let name = std::str::from_utf8(r.field(i))
                .map_err(|_| header("is not UTF-8".into()))?
                .trim()
                .to_owned();
            let name = name.as_str();
            let slot = if name == "tenant_id" {
                &mut tenant_at
            } else {
                match spec.position(name) {
                    Some(p) => &mut r.map[p],
                    None => {
                        let known: Vec<&str> = spec.columns.iter().map(|c| c.name).collect();
                        return Err(header(format!(
                            "unknown column '{}' (a {} file has tenant_id, {})",
                            cut(name, 80),
                            spec.name,
                            known.join(", ")
                        )));
                    }
                }
            };
            if slot.replace(i).is_some() {
                return Err(header(format!("column '{name}' appears twice")));
            }
        }
        let missing: Vec<&str> = std::iter::once("tenant_id")
            .filter(|_| tenant_at.is_none())
            .chain(
                spec.columns
                    .iter()
                    .zip(&r.map)
                    .filter(|(c, at)| c.required && at.is_none())
                    .map(|(c, _)| c.name),
            )
            .collect();
        if !missing.is_empty() {
            return Err(header(format!("missing column(s): {}", missing.join(", "))));
        }
        r.tenant_at = tenant_at.unwrap_or(0);
        r.width = raw.fields;
        Ok(r)
    }

    fn field(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.out[start..self.ends[i]]
    }

    /// Reads one record into `out`/`ends`; `None` at the end of the input.
    fn read(&mut self, hash: &mut ring::digest::Context) -> Result<Option<Raw>, std::io::Error> {
        let before = self.core.line();
        let (mut nout_all, mut nend_all) = (0, 0);
        let mut overflow: Option<String> = None;
        let mut scratch = [0u8; 1024];
        let mut scratch_ends = [0usize; 16];
        loop {
            let input = self.reader.fill_buf()?;
            let empty = input.is_empty();
            let (res, nin, nout, nend) = if overflow.is_some() {
                self.core
                    .read_record(input, &mut scratch, &mut scratch_ends)
            } else {
                self.core
                    .read_record(input, &mut self.out[nout_all..], &mut self.ends[nend_all..])
            };
            let last = input[..nin].last().copied();
            hash.update(&input[..nin]);
            self.reader.consume(nin);
            if overflow.is_none() {
                nout_all += nout;
                nend_all += nend;
            }
            match res {
                ReadRecordResult::InputEmpty if empty => return Ok(None),
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => {
                    overflow.get_or_insert_with(|| {
                        format!("longer than {} bytes", self.limits.max_line_bytes)
                    });
                }
                ReadRecordResult::OutputEndsFull => {
                    overflow.get_or_insert_with(|| {
                        format!("has more than {} fields", self.limits.max_fields)
                    });
                }
                ReadRecordResult::End => return Ok(None),
                ReadRecordResult::Record => {
                    // Counted back from the record's end: the newlines inside its quoted
                    // fields and its own terminating LF (a CR's LF is counted with the next).
                    let after = self.core.line();
                    let line = match overflow {
                        Some(_) => before,
                        None => {
                            let inside =
                                self.out[..nout_all].iter().filter(|&&b| b == b'\n').count();
                            let own = u64::from(last == Some(b'\n'));
                            after.saturating_sub(inside as u64 + own).max(1)
                        }
                    };
                    return Ok(Some(Raw {
                        line,
                        len: nout_all,
                        fields: nend_all,
                        overflow,
                    }));
                }
            }
        }
    }

    pub(super) fn next(
        &mut self,
        spec: &Spec,
        known: &Known,
        hash: &mut ring::digest::Context,
    ) -> Result<Option<Decoded>, DecodeError> {
        let Some(raw) = self.read(hash)? else {
            return Ok(None);
        };
        let line = raw.line;
        let whole = |problem: String| {
            Decoded::Reject(Rejected {
                line,
                tenant: None,
                problems: vec![Violation::new(format!("line {line}"), problem)],
                raw: String::new(),
            })
        };
        if let Some(why) = raw.overflow {
            return Ok(Some(whole(format!("the record is {why}"))));
        }
        let raw_text = || String::from_utf8_lossy(&self.out[..raw.len]).into_owned();
        if raw.fields != self.width {
            let mut r = whole(format!(
                "has {} field(s), the header has {}",
                raw.fields, self.width
            ));
            if let Decoded::Reject(j) = &mut r {
                j.raw = cut(&raw_text(), super::RAW_KEEP);
            }
            return Ok(Some(r));
        }
        let mut problems = Vec::new();
        let mut texts: Vec<&str> = Vec::with_capacity(raw.fields);
        for i in 0..raw.fields {
            let bytes = self.field(i);
            if bytes.len() > self.limits.max_field_bytes {
                problems.push(Violation::new(
                    format!("line {line}: field {}", i + 1),
                    format!("longer than {} bytes", self.limits.max_field_bytes),
                ));
                texts.push("");
                continue;
            }
            match std::str::from_utf8(bytes) {
                Ok(s) => texts.push(s),
                Err(_) => {
                    problems.push(Violation::new(
                        format!("line {line}: field {}", i + 1),
                        "is not UTF-8",
                    ));
                    texts.push("");
                }
            }
        }
        let tenant = Some(Field::Text(texts[self.tenant_at]));
        let fields = self.map.iter().map(|at| at.map(|i| Field::Text(texts[i])));
        let joined = || {
            let mut s = String::new();
            for i in 0..raw.fields {
                if i > 0 {
                    s.push(',');
                }
                s.push_str(&String::from_utf8_lossy(self.field(i)));
            }
            s
        };
        Ok(Some(check_row(
            spec, known, line, tenant, fields, problems, joined,
        )))
    }
}
