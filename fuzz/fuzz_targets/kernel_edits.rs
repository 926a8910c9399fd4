//! The kernel on inputs that stay well-formed: a fixture tenant with one to four edits chosen
//! by the fuzzer (a value replaced, scaled or removed anywhere in the document), then
//! `kernel::run`. Where `check_input` mostly exercises the decoder on broken bytes, this one
//! reaches the rules and the decision with odd numbers, dates, ids and missing rows. It must
//! never panic and never answer INTERNAL_ERROR (the kernel refusing its own output).
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use revenue_os::contract::{Catalog, ErrorCode, Levers, parse_timestamp};
use revenue_os::kernel;
use serde_json::Value;
use std::sync::LazyLock;

const FIXTURES: &[&[u8]] = &[
    include_bytes!("../../tests/fixtures/valid/demand_bound.json"),
    include_bytes!("../../tests/fixtures/scenarios/conversion_bound.json"),
    include_bytes!("../../tests/fixtures/scenarios/economics_breach.json"),
    include_bytes!("../../tests/fixtures/scenarios/healthy.json"),
    include_bytes!("../../tests/fixtures/scenarios/learning_mixed.json"),
    include_bytes!("../../tests/fixtures/scenarios/stale_data.json"),
    include_bytes!("../../tests/fixtures/scenarios/unattributed_75.json"),
    include_bytes!("../../tests/fixtures/scenarios/small_spend_cap.json"),
];

static CATALOG: LazyLock<Catalog> =
    LazyLock::new(|| Catalog::embedded().expect("the embedded catalog loads"));
static DOCS: LazyLock<Vec<Value>> = LazyLock::new(|| {
    FIXTURES
        .iter()
        .map(|b| serde_json::from_slice(b).expect("a fixture is JSON"))
        .collect()
});
/// Every string of the fixtures (ids, dates, enum values), to put back in other places.
static STRINGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(m) => m.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    DOCS.iter().for_each(|d| walk(d, &mut out));
    out.sort();
    out.dedup();
    out
});

const NUMBERS: &[f64] = &[
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    1e-300,
    1e300,
    f64::MAX,
    f64::MIN,
    f64::MIN_POSITIVE,
    1e15,
    100.0,
    101.0,
];
const SCALES: &[f64] = &[0.0, -1.0, 2.0, 10.0, 1e6, 1e-6, 0.999, 1.001];

fn value(u: &mut Unstructured, old: &Value) -> Result<Value> {
    Ok(match u.int_in_range(0u8..=10)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.int_in_range(-3i64..=3)?),
        3 => Value::from(u.arbitrary::<i64>()?),
        4 => serde_json::Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        5 => Value::from(*u.choose(NUMBERS)?),
        6 => Value::from(u.choose(&STRINGS)?.clone()),
        7 => Value::from(u.arbitrary::<String>()?),
        8 => Value::Array(Vec::new()),
        9 => Value::Object(serde_json::Map::new()),
        _ => match old.as_f64() {
            Some(x) => serde_json::Number::from_f64(x * u.choose(SCALES)?)
                .map_or(Value::Null, Value::Number),
            None => old.clone(),
        },
    })
}

/// Walks down from the root, child by child, and replaces or removes where it stops. Running
/// out of fuzzer bytes means "go on down" (`ratio` answers true then), so a short input edits
/// a leaf rather than replacing the whole document.
fn edit(doc: &mut Value, u: &mut Unstructured) -> Result<()> {
    let mut node = doc;
    loop {
        let len = match node {
            Value::Object(m) => m.len(),
            Value::Array(a) => a.len(),
            _ => 0,
        };
        if len == 0 || !u.ratio(4u8, 5)? {
            break;
        }
        let i = u.choose_index(len)?;
        if !u.ratio(11u8, 12)? {
            match node {
                Value::Object(m) => {
                    let key = m.keys().nth(i).cloned();
                    if let Some(k) = key {
                        m.remove(&k);
                    }
                }
                Value::Array(a) => {
                    a.remove(i);
                }
                _ => {}
            }
            return Ok(());
        }
        node = match node {
            Value::Object(m) => match m.values_mut().nth(i) {
                Some(child) => child,
                None => return Ok(()),
            },
            Value::Array(a) => &mut a[i],
            _ => return Ok(()),
        };
    }
    *node = value(u, node)?;
    Ok(())
}

fn mutated(data: &[u8]) -> Result<Value> {
    let mut u = Unstructured::new(data);
    let mut doc = u.choose(&DOCS)?.clone();
    for _ in 0..u.int_in_range(1u8..=4)? {
        edit(&mut doc, &mut u)?;
    }
    Ok(doc)
}

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = mutated(data) else {
        return;
    };
    let bytes = serde_json::to_vec(&doc).expect("a JSON value serializes");
    let fallback = parse_timestamp("2026-11-26T06:05:00Z").expect("a fixed timestamp");
    let now = doc["trigger"]["triggered_at"]
        .as_str()
        .and_then(parse_timestamp)
        .and_then(|t| t.checked_add_signed(chrono::TimeDelta::minutes(5)))
        .unwrap_or(fallback);
    let out = kernel::run(&bytes, &Levers::default(), &CATALOG, now, uuid::Uuid::nil());
    if let Err(e) = &out {
        assert_ne!(e.code, ErrorCode::InternalError, "{e:?}");
    }
});
