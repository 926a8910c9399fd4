//! Whatever bytes arrive, `kernel::run` answers with a schema-valid output or a schema-valid
//! error, and never panics. Cases: PROPTEST_CASES (default 256); the README shows the 10,000-case
//! release run (`--test kernel never_panics`).

use proptest::prelude::*;
use revenue_os::contract::catalog::Catalog;
use revenue_os::contract::parse_timestamp;
use serde_json::Value;
use std::sync::LazyLock;

static CATALOG: LazyLock<Catalog> = LazyLock::new(|| Catalog::embedded().unwrap());
static FIXTURE: LazyLock<Value> = LazyLock::new(|| {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/valid/demand_bound.json"
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
});

fn seed(name: &str) -> jsonschema::Validator {
    let path = format!("{}/../shared/contract/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    jsonschema::draft7::new(&serde_json::from_str(&text).unwrap()).unwrap()
}

static OUTPUT: LazyLock<jsonschema::Validator> =
    LazyLock::new(|| seed("kernel-output.schema.json"));
static ERROR: LazyLock<jsonschema::Validator> = LazyLock::new(|| seed("kernel-error.schema.json"));

fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let now = parse_timestamp("2026-11-26T06:05:00Z").unwrap();
    let (doc, schema) =
        match revenue_os::kernel::run(bytes, &Default::default(), &CATALOG, now, uuid::Uuid::nil())
        {
            Ok(out) => (serde_json::to_value(out).unwrap(), &*OUTPUT),
            Err(err) => (serde_json::to_value(err).unwrap(), &*ERROR),
        };
    let errors: Vec<String> = schema.iter_errors(&doc).map(|e| e.to_string()).collect();
    prop_assert!(errors.is_empty(), "{errors:?} in {doc}");
    Ok(())
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z_0-9:-]{0,12}".prop_map(Value::from),
        Just(Value::from("2026-11-20")),
        Just(Value::from("7d3c1a52-2f4e-4c8e-9a51-0b6f2d9e4c11")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,16}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Replaces or deletes the node at a path into the fixture, chosen by index at each level.
fn mutate(doc: &mut Value, picks: &[usize], replacement: Value, delete: bool) {
    let Some((pick, rest)) = picks.split_first() else {
        *doc = replacement;
        return;
    };
    let len = match doc {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    };
    if len == 0 {
        *doc = replacement;
        return;
    }
    let i = pick % len;
    match doc {
        Value::Object(map) => {
            let key = map.keys().nth(i).cloned().unwrap();
            if rest.is_empty() && delete {
                map.remove(&key);
            } else if let Some(child) = map.get_mut(&key) {
                mutate(child, rest, replacement, delete);
            }
        }
        Value::Array(items) => {
            if rest.is_empty() && delete {
                items.remove(i);
            } else {
                mutate(&mut items[i], rest, replacement, delete);
            }
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(crate::support::beside_the_source())),
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes)?;
    }

    #[test]
    fn arbitrary_json_never_panics(doc in arb_json()) {
        check(&serde_json::to_vec(&doc).unwrap())?;
    }

    #[test]
    fn mutated_fixtures_never_panic(
        edits in prop::collection::vec(
            (prop::collection::vec(any::<usize>(), 1..5), arb_json(), any::<bool>()), 1..4),
        cut in prop::option::of(any::<usize>()),
    ) {
        let mut doc = FIXTURE.clone();
        for (picks, replacement, delete) in edits {
            mutate(&mut doc, &picks, replacement, delete);
        }
        let mut bytes = serde_json::to_vec(&doc).unwrap();
        if let Some(cut) = cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        check(&bytes)?;
    }
}
