//! The ingest row decoders (CSV and NDJSON, every kind) on arbitrary bytes: never panic,
//! never loop, every row within the limits, a rejected row always says why, and lines only
//! move forward.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revenue_os::ingest::{Cell, Decoded, Decoder, Format, Kind, Known, Limits, RAW_KEEP};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let kind = Kind::ALL[usize::from(selector >> 1) % Kind::ALL.len()];
    let format = if selector & 1 == 0 { Format::Csv } else { Format::Ndjson };
    let limits = Limits {
        max_line_bytes: 256,
        max_field_bytes: 64,
        max_fields: 12,
    };
    let known = Known {
        metric_ids: ["pipeline_total", "cac_blended"].map(String::from).into(),
    };
    let Ok(mut d) = Decoder::new(kind, format, body, limits, known) else {
        return;
    };
    let mut last = 0;
    while let Ok(Some(row)) = d.next_row() {
        assert!(row.line() >= last, "lines go forward");
        last = row.line();
        match row {
            Decoded::Row(r) => {
                assert_eq!(r.cells.len(), kind.spec().columns.len());
                for c in &r.cells {
                    if let Cell::Float(x) = c {
                        assert!(x.is_finite());
                    }
                    if let Cell::Text(s) = c {
                        assert!(s.len() <= limits.max_line_bytes);
                    }
                }
            }
            Decoded::Reject(j) => {
                assert!(!j.problems.is_empty());
                assert!(j.raw.len() <= RAW_KEEP + 3);
            }
        }
    }
    assert_eq!(d.digest().len(), 64);
});
