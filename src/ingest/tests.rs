use super::*;
use proptest::prelude::*;

const T: &str = "7d3c1a52-2f4e-4c8e-9a51-0b6f2d9e4c11";

fn known() -> Known {
    Known {
        metric_ids: ["pipeline_total", "cac_blended"]
            .into_iter()
            .map(String::from)
            .collect(),
    }
}

fn decode_with(
    kind: Kind,
    format: Format,
    text: &[u8],
    limits: Limits,
) -> Result<Vec<Decoded>, DecodeError> {
    let mut d = Decoder::new(kind, format, text, limits, known())?;
    let mut out = Vec::new();
    while let Some(r) = d.next_row()? {
        out.push(r);
    }
    Ok(out)
}

fn decode(kind: Kind, format: Format, text: &str) -> Vec<Decoded> {
    decode_with(kind, format, text.as_bytes(), Limits::default()).unwrap()
}

fn problems(rows: &[Decoded]) -> Vec<(String, String)> {
    rows.iter()
        .filter_map(|r| match r {
            Decoded::Reject(j) => Some(j),
            Decoded::Row(_) => None,
        })
        .flat_map(|j| {
            j.problems
                .iter()
                .map(|p| (p.path.clone(), p.problem.clone()))
        })
        .collect()
}

#[test]
fn csv_rows_become_typed_cells() {
    let text = format!(
        "\u{feff}tenant_id,metric_id,date,value,dimension\r\n\
         {T},pipeline_total,2026-11-01,12.5,\r\n\
         {T},cac_blended,2026-11-02,3000,\"{{\"\"channel\"\":\"\"paid\"\"}}\"\r\n"
    );
    let rows = decode(Kind::Metrics, Format::Csv, &text);
    assert_eq!(rows.len(), 2);
    let Decoded::Row(r) = &rows[1] else {
        panic!("{rows:?}")
    };
    assert_eq!(r.line, 3);
    assert_eq!(r.tenant.to_string(), T);
    assert_eq!(r.cells[2], Cell::Float(3000.0));
    assert_eq!(
        r.cells[3],
        Cell::Json(serde_json::json!({"channel": "paid"}))
    );
    let Decoded::Row(first) = &rows[0] else {
        panic!()
    };
    assert_eq!(first.cells[3], Cell::Json(serde_json::json!({})));
}

#[test]
fn line_numbers_count_quoted_newlines_and_both_line_ends() {
    for nl in ["\n", "\r\n"] {
        let text = format!(
            "tenant_id,id,stage,amount,expected_close_date,win_probability{nl}\
             {T},\"o{nl}1\",open,1,2026-12-01,0.5{nl}\
             {T},o2,open,-1,2026-12-01,0.5{nl}\
             {T},o3,open,1,2026-12-01,2"
        );
        let rows = decode(Kind::Opportunities, Format::Csv, &text);
        let lines: Vec<u64> = rows.iter().map(Decoded::line).collect();
        assert_eq!(lines, vec![2, 4, 5], "{nl:?}");
        assert_eq!(
            problems(&rows),
            vec![
                ("line 4: amount".into(), "-1 must be >= 0".into()),
                (
                    "line 5: win_probability".into(),
                    "2 must be between 0 and 1".into()
                ),
            ]
        );
    }
}

#[test]
fn every_problem_of_a_row_is_named() {
    let text = format!(
        "tenant_id,metric_id,date,value\n\
         nope,pipeline_totl,2026-02-30,NaN\n\
         {T},pipeline_total,2026-01-01,inf\n\
         {T},pipeline_total,2026-01-01,\n"
    );
    let p = problems(&decode(Kind::Metrics, Format::Csv, &text));
    let paths: Vec<&str> = p.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "line 2: tenant_id",
            "line 2: metric_id",
            "line 2: date",
            "line 2: value",
            "line 3: value",
            "line 4: value"
        ]
    );
    assert_eq!(p[5].1, "missing");
}

#[test]
fn the_header_must_name_known_columns_once_and_all_required_ones() {
    for (header, problem) in [
        (
            "tenant_id,metric_id,date,value,colour",
            "unknown column 'colour'",
        ),
        (
            "tenant_id,metric_id,date,date,value",
            "column 'date' appears twice",
        ),
        ("tenant_id,metric_id,value", "missing column(s): date"),
        ("metric_id,date,value", "missing column(s): tenant_id"),
        ("", "the file is empty"),
    ] {
        let Err(DecodeError::Invalid(v)) = decode_with(
            Kind::Metrics,
            Format::Csv,
            header.as_bytes(),
            Limits::default(),
        ) else {
            panic!("{header}")
        };
        assert_eq!(v.path, "line 1: header");
        assert!(v.problem.starts_with(problem), "{header}: {}", v.problem);
    }
}

#[test]
fn short_rows_and_over_long_records_are_rejected_in_bounded_memory() {
    let limits = Limits {
        max_line_bytes: 120,
        max_field_bytes: 40,
        max_fields: 8,
    };
    let long = "x".repeat(10_000);
    let text = format!(
        "tenant_id,metric_id,date,value\n\
         {T},pipeline_total\n\
         {T},pipeline_total,2026-01-01,{long}\n\
         {T},{},2026-01-01,1\n\
         {T},pipeline_total,2026-01-01,1\n",
        "y".repeat(50)
    );
    let rows = decode_with(Kind::Metrics, Format::Csv, text.as_bytes(), limits).unwrap();
    assert_eq!(rows.len(), 4);
    let p = problems(&rows);
    assert_eq!(p[0].1, "has 2 field(s), the header has 4");
    assert_eq!(
        p[1],
        (
            "line 3".into(),
            "the record is longer than 120 bytes".into()
        )
    );
    assert_eq!(
        p[2],
        ("line 4: field 2".into(), "longer than 40 bytes".into())
    );
    assert!(matches!(rows[3], Decoded::Row(_)));
}

#[test]
fn ndjson_rows_with_unknown_nulls_and_wrong_types() {
    let text = format!(
        "{{\"tenant_id\":\"{T}\",\"metric_id\":\"pipeline_total\",\"date\":\"2026-01-01\",\"value\":1}}\n\
         \n\
         {{\"tenant_id\":\"{T}\",\"metric_id\":\"pipeline_total\",\"date\":\"2026-01-01\",\"value\":\"1\",\"extra\":1}}\r\n\
         {{\"tenant_id\":\"{T}\",\"metric_id\":\"pipeline_total\",\"date\":\"2026-01-01\",\"value\":1,\"dimension\":null}}\n\
         [1,2]\n\
         {{\"tenant_id\":\"{T}\",\"metric_id\":\"cac_blended\",\"date\":\"2026-01-02\",\"value\":2,\"dimension\":{{\"c\":\"x\"}}}}"
    );
    let rows = decode(Kind::Metrics, Format::Ndjson, &text);
    let lines: Vec<u64> = rows.iter().map(Decoded::line).collect();
    assert_eq!(lines, vec![1, 3, 4, 5, 6]);
    let p = problems(&rows);
    assert_eq!(p[0].0, "line 3: extra");
    assert_eq!(
        p[1],
        (
            "line 3: value".into(),
            "expected a number, found a string".into()
        )
    );
    assert_eq!(p[2].0, "line 4: dimension");
    assert!(p[3].1.starts_with("is not a JSON object"), "{p:?}");
    assert!(matches!(rows[4], Decoded::Row(_)));
}

#[test]
fn a_campaign_may_not_end_before_it_starts() {
    let text = format!(
        "tenant_id,id,name,status,objective,budget_total,budget_spent,start_date,end_date\n\
         {T},c1,n,running,o,10,1,2026-02-01,2026-01-01\n\
         {T},c2,n,running,o,10,1,2026-02-01,\n"
    );
    let rows = decode(Kind::Campaigns, Format::Csv, &text);
    assert_eq!(
        problems(&rows),
        vec![(
            "line 2: end_date".into(),
            "2026-01-01 is before start_date 2026-02-01".into()
        )]
    );
    let Decoded::Row(r) = &rows[1] else { panic!() };
    assert_eq!(r.cells[7], Cell::Null);
}

#[test]
fn the_digest_depends_on_kind_and_bytes() {
    let text = format!("tenant_id,metric_id,date,value\n{T},pipeline_total,2026-01-01,1\n");
    let digest = |kind, t: &str| {
        let mut d =
            Decoder::new(kind, Format::Csv, t.as_bytes(), Limits::default(), known()).unwrap();
        while d.next_row().unwrap().is_some() {}
        d.digest()
    };
    let a = digest(Kind::Metrics, &text);
    assert_eq!(a.len(), 64);
    assert_eq!(a, digest(Kind::Metrics, &text));
    assert_ne!(a, digest(Kind::Metrics, &format!("{text}\n")));
}

proptest! {
    /// Arbitrary bytes never panic either decoder, and every row stays within the limits.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600),
                                   ndjson in any::<bool>()) {
        let limits = Limits { max_line_bytes: 64, max_field_bytes: 16, max_fields: 6 };
        let format = if ndjson { Format::Ndjson } else { Format::Csv };
        let mut text = b"tenant_id,metric_id,date,value\n".to_vec();
        text.extend_from_slice(&bytes);
        if let Ok(rows) = decode_with(Kind::Metrics, format, &text, limits) {
            for r in rows {
                if let Decoded::Reject(j) = r {
                    prop_assert!(j.raw.len() <= RAW_KEEP + 3);
                    prop_assert!(!j.problems.is_empty());
                }
            }
        }
    }
}
