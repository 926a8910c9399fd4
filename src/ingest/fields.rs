//! One row's fields, from either format, checked into typed cells.

use super::spec::{Spec, Ty};
use super::{Checked, Decoded, Known, RAW_KEEP, Rejected, cut};
use crate::contract::{
    Guardrails, Outcome, Targets, TenantConfig, Violation, parse_date, validate_tenant_settings,
};
use chrono::NaiveDate;
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

/// A typed value of a checked row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Float(f64),
    Date(NaiveDate),
    Json(Value),
}

/// A field as the file gave it.
pub(super) enum Field<'a> {
    /// CSV: empty means absent.
    Text(&'a str),
    /// NDJSON.
    Json(&'a Value),
}

/// Builds one row: `get(i)` is the field of column `i` (`None`: not given), `tenant` the
/// tenant_id field. Every problem is collected, not just the first.
pub(super) fn check_row<'a>(
    spec: &Spec,
    known: &Known,
    line: u64,
    tenant: Option<Field<'a>>,
    fields: impl Iterator<Item = Option<Field<'a>>>,
    mut problems: Vec<Violation>,
    raw: impl FnOnce() -> String,
) -> Decoded {
    let at = |col: &str| format!("line {line}: {col}");
    let tenant = match tenant.and_then(present) {
        None => {
            problems.push(Violation::new(at("tenant_id"), "missing"));
            None
        }
        Some(f) => match text(&f).map(str::trim).map(Uuid::try_parse) {
            Some(Ok(t)) => Some(t),
            _ => {
                problems.push(Violation::new(at("tenant_id"), "is not a UUID"));
                None
            }
        },
    };
    let mut cells = Vec::with_capacity(spec.columns.len());
    for (col, field) in spec.columns.iter().zip(fields) {
        let cell = match field.and_then(present) {
            None if col.required => Err("missing".to_owned()),
            None if col.ty == Ty::Dimension => Ok(Cell::Json(Value::Object(Default::default()))),
            None => Ok(Cell::Null),
            Some(f) => cell(col.ty, &f, known),
        };
        match cell {
            Ok(c) => cells.push(c),
            Err(p) => {
                problems.push(Violation::new(at(col.name), p));
                cells.push(Cell::Null);
            }
        }
    }
    cross_checks(spec, &cells, line, &mut problems);
    match (tenant, problems.is_empty()) {
        (Some(tenant), true) => Decoded::Row(Checked {
            line,
            tenant,
            cells,
        }),
        (tenant, _) => Decoded::Reject(Rejected {
            line,
            tenant,
            problems,
            raw: cut(&raw(), RAW_KEEP),
        }),
    }
}

/// Checks across fields of one row (the contract's): a campaign ends on or after it starts.
fn cross_checks(spec: &Spec, cells: &[Cell], line: u64, problems: &mut Vec<Violation>) {
    if spec.columns.iter().any(|c| c.ty == Ty::Object) {
        tenant_settings(cells, line, problems);
    }
    if let (Some(s), Some(e)) = (spec.position("start_date"), spec.position("end_date"))
        && let (Cell::Date(s), Cell::Date(e)) = (&cells[s], &cells[e])
        && e < s
    {
        problems.push(Violation::new(
            format!("line {line}: end_date"),
            format!("{e} is before start_date {s}"),
        ));
    }
}

/// Absent: an empty CSV field; JSON null is given (and refused by `cell`), as the contract
/// refuses an explicit null.
fn present(f: Field<'_>) -> Option<Field<'_>> {
    match f {
        Field::Text("") => None,
        f => Some(f),
    }
}

fn text<'a>(f: &Field<'a>) -> Option<&'a str> {
    match f {
        Field::Text(s) => Some(s),
        Field::Json(Value::String(s)) => Some(s),
        Field::Json(_) => None,
    }
}

fn describe(f: &Field<'_>) -> &'static str {
    match f {
        Field::Text(_) => "text",
        Field::Json(Value::Null) => "null (leave the field out instead)",
        Field::Json(Value::Bool(_)) => "a boolean",
        Field::Json(Value::Number(_)) => "a number",
        Field::Json(Value::String(_)) => "a string",
        Field::Json(Value::Array(_)) => "an array",
        Field::Json(Value::Object(_)) => "an object",
    }
}

fn cell(ty: Ty, f: &Field<'_>, known: &Known) -> Result<Cell, String> {
    match ty {
        Ty::Id | Ty::Text | Ty::MetricId | Ty::Outcome => {
            let s = text(f).ok_or_else(|| format!("expected a string, found {}", describe(f)))?;
            if ty == Ty::Id && s.trim().is_empty() {
                return Err("must not be blank".into());
            }
            if ty == Ty::MetricId && !known.metric_ids.contains(s) {
                return Err(format!("'{}' is not in the metric dictionary", cut(s, 80)));
            }
            if ty == Ty::Outcome && Outcome::parse(s).is_none() {
                return Err(format!(
                    "'{}' is not one of successful, failed, inconclusive",
                    cut(s, 80)
                ));
            }
            Ok(Cell::Text(s.to_owned()))
        }
        Ty::Float | Ty::NonNegative | Ty::Fraction => {
            let x = match f {
                Field::Text(s) => s
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| format!("'{}' is not a number", cut(s, 80)))?,
                Field::Json(Value::Number(n)) => {
                    n.as_f64().ok_or_else(|| format!("{n} is not a number"))?
                }
                f => return Err(format!("expected a number, found {}", describe(f))),
            };
            if !x.is_finite() {
                return Err(format!("{x} is not a finite number"));
            }
            if ty == Ty::NonNegative && x < 0.0 {
                return Err(format!("{x} must be >= 0"));
            }
            if ty == Ty::Fraction && !(0.0..=1.0).contains(&x) {
                return Err(format!("{x} must be between 0 and 1"));
            }
            Ok(Cell::Float(x))
        }
        Ty::Date => {
            let s = text(f).ok_or_else(|| format!("expected a date, found {}", describe(f)))?;
            parse_date(s)
                .map(Cell::Date)
                .ok_or_else(|| format!("'{}' is not a YYYY-MM-DD date", cut(s, 80)))
        }
        Ty::Dimension => {
            let map: Result<BTreeMap<String, String>, String> = match f {
                Field::Text(s) => serde_json::from_str(s).map_err(|e| e.to_string()),
                Field::Json(v @ Value::Object(_)) => {
                    serde_json::from_value((*v).clone()).map_err(|e| e.to_string())
                }
                f => return Err(format!("expected an object, found {}", describe(f))),
            };
            let map = map.map_err(|e| format!("is not a JSON object of strings: {e}"))?;
            Ok(Cell::Json(Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            )))
        }
        Ty::Object => match f {
            Field::Json(v @ Value::Object(_)) => Ok(Cell::Json((*v).clone())),
            f => Err(format!("expected an object, found {}", describe(f))),
        },
    }
}

/// A tenants row: its targets, guardrails and config as the contract types, under the
/// contract's rules; each problem's path is the document's (`targets.cac_max`).
fn tenant_settings(cells: &[Cell], line: u64, problems: &mut Vec<Violation>) {
    fn part<T: serde::de::DeserializeOwned>(
        cell: Option<&Cell>,
        name: &str,
        line: u64,
        problems: &mut Vec<Violation>,
    ) -> Option<T> {
        let Some(Cell::Json(v)) = cell else {
            return None;
        };
        serde_json::from_value(v.clone())
            .map_err(|e| {
                problems.push(Violation::new(
                    format!("line {line}: {name}"),
                    e.to_string(),
                ))
            })
            .ok()
    }
    let targets = part::<Targets>(cells.first(), "targets", line, problems);
    let guardrails = part::<Guardrails>(cells.get(1), "guardrails", line, problems);
    let config = match cells.get(2) {
        Some(Cell::Null) | None => Some(None),
        c => part::<TenantConfig>(c, "config", line, problems).map(Some),
    };
    if let (Some(t), Some(g), Some(c)) = (targets, guardrails, config) {
        problems.extend(
            validate_tenant_settings(&t, &g, c.as_ref())
                .into_iter()
                .map(|v| Violation::new(format!("line {line}: {}", v.path), v.problem)),
        );
    }
}
