//! JSON Schemas (draft-07) generated from the wire types, and structural validation against them.

use super::error::{KernelError, Violation};
use super::levers::Levers;
use super::messages::{ActionMessage, TriggerMessage};
use super::report::ReportEvent;
use super::types::{KernelInput, KernelOutput};
use jsonschema::Validator;
use schemars::generate::{Contract, SchemaSettings};
use serde_json::Value;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    Input,
    Output,
    Error,
    Trigger,
    ActionMessage,
    Report,
    Levers,
}

impl Document {
    pub const ALL: [Document; 7] = [
        Document::Input,
        Document::Output,
        Document::Error,
        Document::Trigger,
        Document::ActionMessage,
        Document::Report,
        Document::Levers,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Document::Input => "input",
            Document::Output => "output",
            Document::Error => "error",
            Document::Trigger => "trigger",
            Document::ActionMessage => "action-message",
            Document::Report => "report",
            Document::Levers => "levers",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == s)
    }
}

/// The JSON Schema of a document, as `revenue-os schema <name>` prints it.
pub fn schema(doc: Document) -> Value {
    // Inputs are what we deserialize; outputs are what we serialize.
    let contract = match doc {
        Document::Input | Document::Trigger | Document::Report | Document::Levers => {
            Contract::Deserialize
        }
        _ => Contract::Serialize,
    };
    let mut settings = SchemaSettings::draft07();
    settings.contract = contract;
    let generator = settings.into_generator();
    let schema = match doc {
        Document::Input => generator.into_root_schema_for::<KernelInput>(),
        Document::Output => generator.into_root_schema_for::<KernelOutput>(),
        Document::Error => generator.into_root_schema_for::<KernelError>(),
        Document::Trigger => generator.into_root_schema_for::<TriggerMessage>(),
        Document::ActionMessage => generator.into_root_schema_for::<ActionMessage>(),
        Document::Report => generator.into_root_schema_for::<ReportEvent>(),
        Document::Levers => generator.into_root_schema_for::<Levers>(),
    };
    let mut value = schema.to_value();
    strip_null(&mut value);
    value
}

/// The contract's optional fields are absent, never null, and our decoders reject null; the
/// schema says so too instead of schemars' default `["T", "null"]`.
fn strip_null(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            for key in ["anyOf", "oneOf"] {
                if let Some(Value::Array(alts)) = map.get_mut(key) {
                    alts.retain(|a| a.get("type").is_none_or(|t| t != "null"));
                    if alts.len() == 1 {
                        let only = alts.remove(0);
                        map.remove(key);
                        if let Value::Object(inner) = only {
                            map.extend(inner);
                        }
                    }
                }
            }
            if map.get("enum").is_some_and(Value::is_array)
                && let Some(Value::Array(vals)) = map.get_mut("enum")
            {
                vals.retain(|x| !x.is_null());
            }
            map.values_mut().for_each(strip_null);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}

fn validator(doc: Document) -> Result<&'static Validator, KernelError> {
    static CELLS: [OnceLock<Result<Validator, String>>; 5] = [const { OnceLock::new() }; 5];
    let idx = Document::ALL.iter().position(|d| *d == doc).unwrap_or(0);
    CELLS[idx]
        .get_or_init(|| {
            jsonschema::draft7::new(&schema(doc)).map_err(|e| format!("{} schema: {e}", doc.name()))
        })
        .as_ref()
        .map_err(|e| KernelError::internal(e.clone()))
}

/// Every place where `value` breaks the document's schema, as dotted paths.
pub fn structural_violations(doc: Document, value: &Value) -> Vec<Violation> {
    let v = match validator(doc) {
        Ok(v) => v,
        Err(e) => return vec![Violation::new("$", e.message)],
    };
    let mut out: Vec<Violation> = v
        .iter_errors(value)
        .map(|e| Violation::new(dotted(&e.instance_path().to_string()), problem(&e)))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// jsonschema abbreviates long enum lists ("or 2 other candidates"); name them all.
fn problem(e: &jsonschema::ValidationError<'_>) -> String {
    match e.kind() {
        jsonschema::error::ValidationErrorKind::Enum { options } => {
            let names: Vec<String> = options
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|o| o.as_str().map_or(o.to_string(), str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            format!("{} is not one of: {}", e.instance(), names.join(", "))
        }
        _ => e.to_string(),
    }
}

/// `/metrics/3/date` → `metrics[3].date`; the root is `$`.
pub fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(&seg);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    if out.is_empty() { "$".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_to_dotted_path() {
        assert_eq!(dotted(""), "$");
        assert_eq!(dotted("/metrics/3/date"), "metrics[3].date");
        assert_eq!(
            dotted("/guardrails/allowed_levers/0"),
            "guardrails.allowed_levers[0]"
        );
    }

    #[test]
    fn schemas_compile_and_have_no_nulls() {
        for doc in Document::ALL {
            let s = schema(doc);
            assert!(jsonschema::draft7::new(&s).is_ok(), "{}", doc.name());
            assert!(!s.to_string().contains("\"null\""), "{}", doc.name());
        }
    }
}
