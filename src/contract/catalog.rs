//! The metric dictionary and the executor map, embedded at build time from `config/`.
//!
//! These are reference data, not code: the kernel, output validation, the database's
//! `metric_dictionary` table and the broker's exchange names all read them from here.

use super::types::{ActionType, Subsystem};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

const METRICS_TOML: &str = include_str!("../../config/metrics.toml");
const EXECUTORS_TOML: &str = include_str!("../../config/executors.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lens {
    Demand,
    Conversion,
    Economics,
    DataHealth,
}

impl Lens {
    pub fn as_str(self) -> &'static str {
        match self {
            Lens::Demand => "demand",
            Lens::Conversion => "conversion",
            Lens::Economics => "economics",
            Lens::DataHealth => "data_health",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Up,
    Down,
    Band,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Count,
    Currency,
    Fraction,
    Percent,
    Ratio,
    Days,
    Hours,
    Months,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "count",
            Unit::Currency => "currency",
            Unit::Fraction => "fraction",
            Unit::Percent => "percent",
            Unit::Ratio => "ratio",
            Unit::Days => "days",
            Unit::Hours => "hours",
            Unit::Months => "months",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricDef {
    pub id: String,
    pub lens: Lens,
    pub direction: Direction,
    pub unit: Unit,
    pub meaning: String,
    #[serde(default)]
    pub dimension: Option<String>,
    /// The smallest change worth a deviation; absent here, the unit's default from
    /// `[min_change]` is filled in when the catalog loads.
    #[serde(default)]
    pub min_change: Option<MinChange>,
}

/// A change smaller than this is not practical news, however unusual.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum MinChange {
    /// A share of the expected value (0.10 = 10%).
    Relative(f64),
    /// In the metric's own unit (0.05 = 5 points of a fraction).
    Absolute(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    AtLeast,
    AtMost,
}

/// The lens a target's shortfall scores in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetLens {
    Demand,
    Conversion,
    Economics,
    /// Demand when pipeline covers too little of the bookings target, else conversion.
    Funnel,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetDef {
    /// Field name in `targets`.
    pub field: String,
    pub metric: String,
    pub bound: Bound,
    /// Overrides the metric's own lens for scoring (see `Catalog::target_lens`).
    #[serde(default)]
    pub lens: Option<TargetLens>,
    /// A breach beyond the finance tolerance makes economics bind.
    #[serde(default)]
    pub finance_gate: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsFile {
    required_metrics: Vec<String>,
    metric: Vec<MetricDef>,
    target: Vec<TargetDef>,
    /// Default minimum practical change by unit (`count`, `fraction`, ...).
    #[serde(default)]
    min_change: BTreeMap<String, MinChange>,
}

/// What an executor validates for one `proposed_change.field`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FieldSpec {
    Number {
        #[serde(default)]
        min: Option<f64>,
        #[serde(default)]
        max: Option<f64>,
        #[serde(default)]
        gt: Option<f64>,
        #[serde(default)]
        integer: bool,
        /// Capped by this tenant guardrail (only `max_daily_spend` exists).
        #[serde(default)]
        max_guardrail: Option<String>,
        /// At least this attribute of the target entity (only `budget_spent` exists).
        #[serde(default)]
        min_entity: Option<String>,
    },
    Boolean,
    OneOf {
        values: Vec<String>,
    },
    Json,
    Text {
        max_chars: usize,
    },
    Date {
        #[serde(default)]
        not_past: bool,
    },
    Ascending,
    Weights {
        total: f64,
    },
}

/// Facts a field check may need beyond the value itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct FieldContext {
    pub max_daily_spend: Option<f64>,
    pub entity_budget_spent: Option<f64>,
    pub today: Option<chrono::NaiveDate>,
}

impl FieldSpec {
    /// `Err(problem)` when an executor would reject `value`.
    pub fn check(&self, value: &Value, ctx: &FieldContext) -> Result<(), String> {
        match self {
            FieldSpec::Number {
                min,
                max,
                gt,
                integer,
                max_guardrail,
                min_entity,
            } => {
                let v = value
                    .as_f64()
                    .filter(|v| v.is_finite())
                    .ok_or("must be a finite number")?;
                if *integer && v.fract() != 0.0 {
                    return Err(format!("{v} must be a whole number"));
                }
                if let Some(gt) = gt
                    && v <= *gt
                {
                    return Err(format!("{v} must be > {gt}"));
                }
                if let Some(min) = min
                    && v < *min
                {
                    return Err(format!("{v} must be >= {min}"));
                }
                if let Some(max) = max
                    && v > *max
                {
                    return Err(format!("{v} must be <= {max}"));
                }
                if max_guardrail.is_some()
                    && let Some(cap) = ctx.max_daily_spend
                    && v > cap
                {
                    return Err(format!("{v} exceeds guardrails.max_daily_spend {cap}"));
                }
                if min_entity.is_some()
                    && let Some(spent) = ctx.entity_budget_spent
                    && v < spent
                {
                    return Err(format!("{v} is below the campaign's budget_spent {spent}"));
                }
                Ok(())
            }
            FieldSpec::Boolean => value
                .as_bool()
                .map(|_| ())
                .ok_or("must be a boolean".into()),
            FieldSpec::OneOf { values } => match value.as_str() {
                Some(s) if values.iter().any(|v| v == s) => Ok(()),
                _ => Err(format!("must be one of {}", values.join(", "))),
            },
            FieldSpec::Json => value
                .as_object()
                .map(|_| ())
                .ok_or("must be a JSON object".into()),
            FieldSpec::Text { max_chars } => match value.as_str() {
                Some(s) if !s.is_empty() && s.chars().count() <= *max_chars => Ok(()),
                _ => Err(format!(
                    "must be a non-empty string of at most {max_chars} characters"
                )),
            },
            FieldSpec::Date { not_past } => {
                let d = value
                    .as_str()
                    .and_then(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                    .ok_or("must be a YYYY-MM-DD date")?;
                match ctx.today {
                    Some(today) if *not_past && d < today => {
                        Err(format!("{d} is in the past (today is {today})"))
                    }
                    _ => Ok(()),
                }
            }
            FieldSpec::Ascending => {
                let xs: Option<Vec<f64>> = value
                    .as_array()
                    .map(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<_>>>())
                    .unwrap_or(None);
                match xs {
                    Some(xs) if !xs.is_empty() && xs.windows(2).all(|w| w[0] < w[1]) => Ok(()),
                    _ => Err("must be a non-empty array of ascending numbers".into()),
                }
            }
            FieldSpec::Weights { total } => {
                let obj = value.as_object().ok_or("must be an object of weights")?;
                let mut sum = 0.0;
                for w in obj.values() {
                    match w.as_f64() {
                        Some(w) if w >= 0.0 => sum += w,
                        _ => return Err("weights must be non-negative numbers".into()),
                    }
                }
                if obj.is_empty() || (sum - total).abs() > 1e-9 {
                    return Err(format!("weights sum to {sum}, must sum to {total}"));
                }
                Ok(())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorDef {
    /// Exchange name relative to `amqp.prefix`.
    pub exchange: String,
    pub action_types: Vec<ActionType>,
    pub fields: BTreeMap<String, FieldSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecutorsFile {
    subsystems: BTreeMap<Subsystem, ExecutorDef>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{file}: {source}")]
    Parse {
        file: &'static str,
        source: toml::de::Error,
    },
    #[error("catalog is inconsistent: {0}")]
    Inconsistent(String),
}

/// Reference data the kernel decides against.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub required_metrics: Vec<String>,
    metrics: BTreeMap<String, MetricDef>,
    targets: Vec<TargetDef>,
    executors: BTreeMap<Subsystem, ExecutorDef>,
}

impl Catalog {
    /// The catalog compiled into this binary.
    pub fn embedded() -> Result<Self, CatalogError> {
        Self::from_toml(METRICS_TOML, EXECUTORS_TOML)
    }

    pub fn from_toml(metrics: &str, executors: &str) -> Result<Self, CatalogError> {
        let m: MetricsFile = toml::from_str(metrics).map_err(|source| CatalogError::Parse {
            file: "metrics.toml",
            source,
        })?;
        let e: ExecutorsFile = toml::from_str(executors).map_err(|source| CatalogError::Parse {
            file: "executors.toml",
            source,
        })?;
        let mut by_id = BTreeMap::new();
        for mut def in m.metric {
            if def.min_change.is_none() {
                def.min_change = m.min_change.get(def.unit.as_str()).copied();
            }
            if by_id.insert(def.id.clone(), def).is_some() {
                return Err(CatalogError::Inconsistent("duplicate metric id".into()));
            }
        }
        let unknown = m
            .required_metrics
            .iter()
            .chain(m.target.iter().map(|t| &t.metric))
            .find(|id| !by_id.contains_key(*id));
        if let Some(id) = unknown {
            return Err(CatalogError::Inconsistent(format!("unknown metric {id}")));
        }
        if let Some(s) = Subsystem::ALL
            .iter()
            .find(|s| !e.subsystems.contains_key(s))
        {
            return Err(CatalogError::Inconsistent(format!("no executor for {s}")));
        }
        Ok(Self {
            required_metrics: m.required_metrics,
            metrics: by_id,
            targets: m.target,
            executors: e.subsystems,
        })
    }

    pub fn metric(&self, id: &str) -> Option<&MetricDef> {
        self.metrics.get(id)
    }

    pub fn is_metric(&self, id: &str) -> bool {
        self.metrics.contains_key(id)
    }

    pub fn metrics(&self) -> impl Iterator<Item = &MetricDef> {
        self.metrics.values()
    }

    pub fn targets(&self) -> &[TargetDef] {
        &self.targets
    }

    /// The target definition behind a `targets` field name.
    pub fn target(&self, field: &str) -> Option<&TargetDef> {
        self.targets.iter().find(|t| t.field == field)
    }

    /// The lens a target's shortfall scores in: its own `lens`, else its metric's lens
    /// (a data-health metric scores nowhere).
    pub fn target_lens(&self, t: &TargetDef) -> Option<TargetLens> {
        if let Some(l) = t.lens {
            return Some(l);
        }
        match self.metric(&t.metric)?.lens {
            Lens::Demand => Some(TargetLens::Demand),
            Lens::Conversion => Some(TargetLens::Conversion),
            Lens::Economics => Some(TargetLens::Economics),
            Lens::DataHealth => None,
        }
    }

    pub fn executor(&self, s: Subsystem) -> Option<&ExecutorDef> {
        self.executors.get(&s)
    }

    pub fn executors(&self) -> impl Iterator<Item = (Subsystem, &ExecutorDef)> {
        self.executors.iter().map(|(s, d)| (*s, d))
    }

    /// Whether the executor of `s` runs actions of type `t`.
    pub fn accepts(&self, s: Subsystem, t: ActionType) -> bool {
        self.executor(s)
            .is_some_and(|e| e.action_types.contains(&t))
    }

    pub fn field(&self, s: Subsystem, field: &str) -> Option<&FieldSpec> {
        self.executor(s).and_then(|e| e.fields.get(field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn embedded_catalog_loads_and_matches_reference() {
        let c = Catalog::embedded().expect("embedded catalog");
        assert_eq!(c.metrics().count(), 33);
        assert_eq!(
            c.required_metrics,
            ["pipeline_total", "bookings_new", "cac_blended"]
        );
        assert_eq!(
            c.target("cac_max").map(|t| t.metric.as_str()),
            Some("cac_blended")
        );
        let lens = |f: &str| c.target(f).and_then(|t| c.target_lens(t));
        assert_eq!(lens("pipeline_total"), Some(TargetLens::Demand));
        assert_eq!(lens("bookings_new"), Some(TargetLens::Funnel));
        assert_eq!(lens("arr_target"), Some(TargetLens::Funnel));
        assert_eq!(lens("cac_max"), Some(TargetLens::Economics));
        let gated: Vec<&str> = c
            .targets()
            .iter()
            .filter(|t| t.finance_gate)
            .map(|t| t.field.as_str())
            .collect();
        assert_eq!(gated, ["cac_max", "payback_max_months", "gross_margin_min"]);
        assert!(!c.accepts(Subsystem::Routing, ActionType::Experiment));
        assert!(!c.accepts(Subsystem::Pricing, ActionType::Scale));
        assert!(!c.accepts(Subsystem::Pricing, ActionType::Pause));
        assert!(c.accepts(Subsystem::Routing, ActionType::Scale));
        assert!(c.accepts(Subsystem::Crm, ActionType::Pause));
    }

    #[test]
    fn field_specs_check_values() {
        let c = Catalog::embedded().unwrap();
        let ctx = FieldContext {
            max_daily_spend: Some(500.0),
            entity_budget_spent: Some(1000.0),
            today: chrono::NaiveDate::from_ymd_opt(2026, 1, 10),
        };
        let check = |s, f, v| c.field(s, f).unwrap().check(&v, &ctx);
        assert!(check(Subsystem::Campaigns, "budget_daily", json!(400)).is_ok());
        assert!(check(Subsystem::Campaigns, "budget_daily", json!(600)).is_err());
        assert!(check(Subsystem::Campaigns, "budget_daily", json!(0)).is_err());
        assert!(check(Subsystem::Campaigns, "budget_total", json!(999)).is_err());
        assert!(check(Subsystem::Campaigns, "status", json!("paused")).is_ok());
        assert!(check(Subsystem::Campaigns, "status", json!("archived")).is_err());
        assert!(check(Subsystem::Campaigns, "end_date", json!("2026-01-09")).is_err());
        assert!(check(Subsystem::Crm, "follow_up_sla_hours", json!(24)).is_ok());
        assert!(check(Subsystem::Crm, "follow_up_sla_hours", json!(169)).is_err());
        assert!(check(Subsystem::Crm, "max_touches", json!(2.5)).is_err());
        assert!(check(Subsystem::Pricing, "discount_max_pct", json!(51)).is_err());
        assert!(check(Subsystem::Pricing, "tier_threshold", json!([1, 5, 3])).is_err());
        assert!(
            check(
                Subsystem::Content,
                "variant_weights",
                json!({"a": 90, "b": 10})
            )
            .is_ok()
        );
        assert!(check(Subsystem::Content, "variant_weights", json!({"a": 90})).is_err());
        assert!(check(Subsystem::Content, "cta_text", json!("x".repeat(51))).is_err());
    }
}
