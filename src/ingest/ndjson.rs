//! NDJSON: one JSON object per line, with the CSV's column names. A line longer than
//! `Limits::max_line_bytes` is read past without keeping it. Blank lines are skipped; an
//! optional UTF-8 BOM before the first line is too.

use super::fields::{Field, check_row};
use super::spec::Spec;
use super::{DecodeError, Decoded, Known, Limits, RAW_KEEP, Rejected, cut};
use crate::contract::Violation;
use serde_json::{Map, Value};
use std::io::BufRead;

pub(super) struct Lines<R> {
    reader: R,
    limits: Limits,
    buf: Vec<u8>,
    line: u64,
    started: bool,
}

impl<R: BufRead> Lines<R> {
    pub(super) fn new(reader: R, limits: Limits) -> Self {
        Lines {
            reader,
            limits,
            buf: Vec::new(),
            line: 0,
            started: false,
        }
    }

    /// The next line into `buf` (without its LF or CRLF); `Ok(Some(false))` when it was too
    /// long (and `buf` holds only its start), `Ok(None)` at the end.
    fn read_line(&mut self, hash: &mut ring::digest::Context) -> std::io::Result<Option<bool>> {
        self.buf.clear();
        let mut fits = true;
        let mut any = false;
        loop {
            let input = self.reader.fill_buf()?;
            if input.is_empty() {
                break;
            }
            any = true;
            let (take, done) = match input.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (input.len(), false),
            };
            let content = &input[..if done { take - 1 } else { take }];
            let room = self.limits.max_line_bytes.saturating_sub(self.buf.len());
            if content.len() > room {
                fits = false;
            }
            let keep = content.len().min(room);
            self.buf.extend_from_slice(&content[..keep]);
            hash.update(&input[..take]);
            self.reader.consume(take);
            if done {
                break;
            }
        }
        if !any {
            return Ok(None);
        }
        self.line += 1;
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        if !self.started {
            self.started = true;
            if self.buf.starts_with(b"\xef\xbb\xbf") {
                self.buf.drain(..3);
            }
        }
        Ok(Some(fits))
    }

    pub(super) fn next(
        &mut self,
        spec: &Spec,
        known: &Known,
        hash: &mut ring::digest::Context,
    ) -> Result<Option<Decoded>, DecodeError> {
        loop {
            let Some(fits) = self.read_line(hash)? else {
                return Ok(None);
            };
            let line = self.line;
            let whole = |problem: String, raw: &[u8]| {
                Some(Decoded::Reject(Rejected {
                    line,
                    tenant: None,
                    problems: vec![Violation::new(format!("line {line}"), problem)],
                    raw: cut(&String::from_utf8_lossy(raw), RAW_KEEP),
                }))
            };
            if !fits {
                let why = format!("longer than {} bytes", self.limits.max_line_bytes);
                return Ok(whole(why, &self.buf));
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let object: Map<String, Value> = match serde_json::from_slice(&self.buf) {
                Ok(o) => o,
                Err(e) => return Ok(whole(format!("is not a JSON object: {e}"), &self.buf)),
            };
            let mut problems = Vec::new();
            for k in object.keys() {
                if k != "tenant_id" && spec.position(k).is_none() {
                    problems.push(Violation::new(
                        format!("line {line}: {}", cut(k, 80)),
                        format!("unknown column (a {} row has tenant_id, {})", spec.name, {
                            let names: Vec<&str> = spec.columns.iter().map(|c| c.name).collect();
                            names.join(", ")
                        }),
                    ));
                }
            }
            for (k, v) in &object {
                if let Value::String(s) = v
                    && s.len() > self.limits.max_field_bytes
                {
                    problems.push(Violation::new(
                        format!("line {line}: {}", cut(k, 80)),
                        format!("longer than {} bytes", self.limits.max_field_bytes),
                    ));
                }
            }
            let tenant = object.get("tenant_id").map(Field::Json);
            let fields = spec
                .columns
                .iter()
                .map(|c| object.get(c.name).map(Field::Json));
            let raw = || String::from_utf8_lossy(&self.buf).into_owned();
            return Ok(Some(check_row(
                spec, known, line, tenant, fields, problems, raw,
            )));
        }
    }
}
