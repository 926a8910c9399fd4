//! The contract's `KernelError` document and its HTTP status table.

use super::types::ErrorCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The literal `true` of `KernelError.error`: a value that cannot be anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct True;

impl Serialize for True {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(true)
    }
}

impl<'de> Deserialize<'de> for True {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match bool::deserialize(d)? {
            true => Ok(True),
            false => Err(serde::de::Error::custom("`error` must be true")),
        }
    }
}

impl JsonSchema for True {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "True".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "boolean", "const": true })
    }
}

/// One problem found in an input document, located by a path such as `metrics[3].date`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Violation {
    pub path: String,
    pub problem: String,
}

impl Violation {
    pub fn new(path: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelError {
    pub error: True,
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Map<String, Value>>,
}

impl std::fmt::Display for KernelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for KernelError {}

impl KernelError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: True,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// Adds `details[key] = value`.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.details
            .get_or_insert_with(Map::new)
            .insert(key.to_owned(), value);
        self
    }

    pub fn invalid_input(violations: Vec<Violation>) -> Self {
        let n = violations.len();
        let message = match violations.first() {
            Some(v) if n == 1 => format!("input is invalid: {}: {}", v.path, v.problem),
            _ => format!("input is invalid: {n} violations"),
        };
        Self::new(ErrorCode::InvalidInput, message).with("violations", json!(violations))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InternalError, message)
    }

    /// TENANT_NOT_FOUND for a tenant id that names no tenant.
    pub fn tenant_not_found(tenant_id: uuid::Uuid) -> Self {
        Self::new(
            ErrorCode::TenantNotFound,
            format!("tenant {tenant_id} does not exist"),
        )
        .with("tenant_id", json!(tenant_id.to_string()))
    }

    /// The contract's status table.
    pub fn http_status(&self) -> u16 {
        match self.code {
            ErrorCode::InvalidInput => 400,
            ErrorCode::TenantNotFound => 404,
            ErrorCode::InsufficientData => 422,
            ErrorCode::CycleTooRecent => 429,
            ErrorCode::InternalError => 500,
        }
    }

    /// The violations listed in `details`, if any (used by tests and the CLI).
    pub fn violations(&self) -> Vec<Violation> {
        self.details
            .as_ref()
            .and_then(|d| d.get("violations"))
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }
}
