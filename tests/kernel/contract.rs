//! The fixture set through the real binary, checked against the seed-derived schemas in
//! `../shared/contract/` (the schemas executors wire against).

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn seed_schema(name: &str) -> jsonschema::Validator {
    let path = root().join("../shared/contract").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    jsonschema::draft7::new(&serde_json::from_str(&text).unwrap()).unwrap()
}

fn our_schema(doc: &str) -> jsonschema::Validator {
    let out = Command::new(env!("CARGO_BIN_EXE_revenue-os"))
        .args(["schema", doc])
        .output()
        .unwrap();
    assert!(out.status.success());
    jsonschema::draft7::new(&serde_json::from_slice(&out.stdout).unwrap()).unwrap()
}

struct Run {
    code: i32,
    doc: Value,
}

fn kernel(file: &Path, now: &str) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_revenue-os"))
        .args(["kernel", file.to_str().unwrap(), "--now", now])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{}: stdout is not one JSON document ({e}): {text}",
            file.display()
        )
    });
    Run {
        code: out.status.code().unwrap(),
        doc,
    }
}

fn cases() -> (String, Vec<Value>) {
    let text = std::fs::read_to_string(root().join("tests/fixtures/invalid/cases.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    (
        v["now"].as_str().unwrap().to_owned(),
        v["cases"].as_array().unwrap().clone(),
    )
}

fn assert_valid(v: &jsonschema::Validator, doc: &Value, what: &str) {
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:?}");
}

#[test]
fn valid_fixtures_print_a_schema_valid_output_and_exit_0() {
    let (now, _) = cases();
    let output_schema = seed_schema("kernel-output.schema.json");
    let dir = root().join("tests/fixtures/valid");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let run = kernel(&path, &now);
        assert_eq!(run.code, 0, "{}: {}", path.display(), run.doc);
        assert_valid(&output_schema, &run.doc, &path.display().to_string());
        assert_eq!(run.doc["version"], "revenue_os_v1");
        n += 1;
    }
    assert!(n > 0);
}

#[test]
fn each_invalid_fixture_prints_its_error_with_every_violation_and_exits_2() {
    let (now, cases) = cases();
    let error_schema = seed_schema("kernel-error.schema.json");
    assert!(cases.len() >= 20);
    for case in cases {
        let file = case["file"].as_str().unwrap();
        let run = kernel(&root().join("tests/fixtures/invalid").join(file), &now);
        assert_eq!(run.code, 2, "{file}: {}", run.doc);
        assert_valid(&error_schema, &run.doc, file);
        assert_eq!(run.doc["code"], case["code"], "{file}: {}", run.doc);
        let got: Vec<&str> = run.doc["details"]["violations"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v["path"].as_str()).collect())
            .unwrap_or_default();
        for want in case["paths"].as_array().unwrap() {
            assert!(
                got.contains(&want.as_str().unwrap()),
                "{file}: {want} not in {got:?}"
            );
        }
    }
}

#[test]
fn several_problems_are_all_reported_in_one_error() {
    let (now, _) = cases();
    let run = kernel(
        &root().join("tests/fixtures/invalid/multiple_problems.json"),
        &now,
    );
    let paths: Vec<&str> = run.doc["details"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["analysis_window", "guardrails.allowed_levers", "tenant_id"]
    );
}

/// Documents both schemas judge: every fixture that parses, plus targeted mutations.
fn input_documents() -> Vec<(String, Value)> {
    let mut docs = Vec::new();
    for dir in ["tests/fixtures/valid", "tests/fixtures/invalid"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().unwrap() == "cases.json" {
                continue;
            }
            if let Ok(v) = serde_json::from_slice::<Value>(&std::fs::read(&path).unwrap()) {
                docs.push((path.display().to_string(), v));
            }
        }
    }
    docs
}

type Edit = (&'static str, Box<dyn Fn(&mut Value)>);

fn mutations(base: &Value) -> Vec<(String, Value)> {
    let edits: Vec<Edit> = vec![
        ("extra top-level field", Box::new(|d| d["extra"] = json!(1))),
        (
            "drop required field",
            Box::new(|d| {
                d.as_object_mut().unwrap().remove("version");
            }),
        ),
        (
            "unknown enum",
            Box::new(|d| d["cycle_summary"]["binding_constraint"] = json!("vibes")),
        ),
        (
            "wrong version",
            Box::new(|d| d["version"] = json!("revenue_os_v2")),
        ),
        (
            "string confidence",
            Box::new(|d| d["cycle_summary"]["confidence"] = json!("high")),
        ),
        (
            "extra action field",
            Box::new(|d| d["actions"][0]["why"] = json!("because")),
        ),
        (
            "bad subsystem",
            Box::new(|d| d["actions"][0]["owner_subsystem"] = json!("billing")),
        ),
        (
            "null optional",
            Box::new(|d| d["data_quality_actions"] = Value::Null),
        ),
        (
            "bad operator",
            Box::new(
                |d| d["actions"][0]["guardrails"]["abort_conditions"] = json!([{"metric_id": "cac_blended", "operator": "==", "threshold": 1, "consecutive_days": 2}]),
            ),
        ),
        (
            "missing change",
            Box::new(|d| {
                d["actions"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("proposed_change");
            }),
        ),
    ];
    edits
        .into_iter()
        .map(|(name, f)| {
            let mut d = base.clone();
            f(&mut d);
            (name.to_owned(), d)
        })
        .collect()
}

fn agree(
    ours: &jsonschema::Validator,
    seed: &jsonschema::Validator,
    docs: &[(String, Value)],
) -> (usize, usize) {
    let (mut accepted, mut rejected) = (0, 0);
    for (name, doc) in docs {
        let (a, b) = (ours.is_valid(doc), seed.is_valid(doc));
        assert_eq!(a, b, "{name}: ours {a}, seed {b}");
        if a { accepted += 1 } else { rejected += 1 }
    }
    (accepted, rejected)
}

#[test]
fn our_schemas_agree_with_the_seed_schemas_on_the_fixture_set() {
    let (now, _) = cases();
    let inputs = input_documents();
    let (a, r) = agree(
        &our_schema("input"),
        &seed_schema("kernel-input.schema.json"),
        &inputs,
    );
    assert!(
        a > 0 && r > 0,
        "input set must hold both kinds: {a} accepted, {r} rejected"
    );

    let out = kernel(&root().join("tests/fixtures/valid/demand_bound.json"), &now).doc;
    let mut outputs = vec![("kernel output".to_owned(), out.clone())];
    outputs.extend(mutations(&out));
    let (a, r) = agree(
        &our_schema("output"),
        &seed_schema("kernel-output.schema.json"),
        &outputs,
    );
    assert!(a > 0 && r > 0);

    let mut errors = Vec::new();
    for case in cases().1 {
        let path = root()
            .join("tests/fixtures/invalid")
            .join(case["file"].as_str().unwrap());
        errors.push((case["file"].to_string(), kernel(&path, &now).doc));
    }
    errors.push((
        "error false".into(),
        json!({"error": false, "code": "INVALID_INPUT", "message": "x"}),
    ));
    errors.push((
        "unknown code".into(),
        json!({"error": true, "code": "TEAPOT", "message": "x"}),
    ));
    errors.push((
        "extra".into(),
        json!({"error": true, "code": "INTERNAL_ERROR", "message": "x", "stack": []}),
    ));
    errors.push((
        "no message".into(),
        json!({"error": true, "code": "INTERNAL_ERROR"}),
    ));
    let (a, r) = agree(
        &our_schema("error"),
        &seed_schema("kernel-error.schema.json"),
        &errors,
    );
    assert!(a > 0 && r > 0);
}
