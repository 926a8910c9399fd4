//! Wire types of the `revenue_os_v1` contract, field for field.
//!
//! Input structs reject unknown fields and explicit `null`s (the contract's optional fields are
//! "absent", never null). Output structs omit absent optionals. Identifiers, dates and timestamps
//! stay strings on the input side so that validation can report every bad one, not just the first.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

pub const CONTRACT_VERSION: &str = "revenue_os_v1";

/// Accepts a present value, rejects an explicit `null` (used with `#[serde(default)]`).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
        pub enum $name {
            $(#[serde(rename = $wire)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($wire => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                Self::parse(s).ok_or_else(|| {
                    let all: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    format!("'{s}' is not one of {}", all.join(", "))
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(TriggerType {
    Scheduled = "scheduled",
    MetricDeviation = "metric_deviation",
    LifecycleEvent = "lifecycle_event",
    Manual = "manual",
});

wire_enum!(Lever {
    Campaigns = "campaigns",
    Channels = "channels",
    Sequences = "sequences",
    Pricing = "pricing",
});

wire_enum!(Outcome {
    Successful = "successful",
    Failed = "failed",
    Inconclusive = "inconclusive",
});

wire_enum!(RiskTolerance {
    Low = "low",
    Medium = "medium",
    High = "high",
});

wire_enum!(BindingConstraint {
    Demand = "demand",
    Conversion = "conversion",
    Economics = "economics",
    DataQuality = "data_quality",
});

wire_enum!(Subsystem {
    Campaigns = "campaigns",
    Crm = "crm",
    Pricing = "pricing",
    Routing = "routing",
    Content = "content",
});

wire_enum!(ActionType {
    ConfigChange = "config_change",
    Experiment = "experiment",
    Pause = "pause",
    Scale = "scale",
    Revert = "revert",
});

wire_enum!(EntityType {
    Campaign = "campaign",
    Channel = "channel",
    Segment = "segment",
    Sequence = "sequence",
});

wire_enum!(Operator {
    Gt = ">",
    Lt = "<",
    Ge = ">=",
    Le = "<=",
});

wire_enum!(ImpactDirection {
    Increase = "increase",
    Decrease = "decrease",
});

wire_enum!(OutcomeDirection {
    Increase = "increase",
    Decrease = "decrease",
    Stabilize = "stabilize",
});

wire_enum!(DataIssueType {
    MissingData = "missing_data",
    StaleData = "stale_data",
    InvalidData = "invalid_data",
    MissingAttribution = "missing_attribution",
});

wire_enum!(ErrorCode {
    InvalidInput = "INVALID_INPUT",
    TenantNotFound = "TENANT_NOT_FOUND",
    InsufficientData = "INSUFFICIENT_DATA",
    CycleTooRecent = "CYCLE_TOO_RECENT",
    InternalError = "INTERNAL_ERROR",
});

wire_enum!(
    /// The single contract version; serialises as the `revenue_os_v1` constant.
    Version { V1 = "revenue_os_v1" }
);

// ---------------------------------------------------------------- input

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelInput {
    /// UUID of the tenant.
    pub tenant_id: String,
    pub trigger: Trigger,
    pub analysis_window: AnalysisWindow,
    pub targets: Targets,
    pub guardrails: Guardrails,
    pub metrics: Vec<MetricPoint>,
    pub revenue_events: Vec<RevenueEvent>,
    pub campaigns: Vec<Campaign>,
    pub opportunities: Vec<Opportunity>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub recent_action_results: Option<Vec<ActionResult>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub config: Option<TenantConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    #[serde(rename = "type")]
    pub kind: TriggerType,
    /// Free text naming the publisher, e.g. `cron_daily`, `metric_alert`.
    pub source: String,
    /// RFC 3339 timestamp.
    pub triggered_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalysisWindow {
    /// `YYYY-MM-DD`, inclusive.
    pub start_date: String,
    /// `YYYY-MM-DD`, inclusive.
    pub end_date: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub pipeline_total: Option<f64>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub bookings_new: Option<f64>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub arr_target: Option<f64>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub cac_max: Option<f64>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub payback_max_months: Option<f64>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub gross_margin_min: Option<f64>,
}

impl Targets {
    /// Every defined target as `(targets field, value)`, in contract order.
    pub fn defined(&self) -> Vec<(&'static str, f64)> {
        [
            ("pipeline_total", self.pipeline_total),
            ("bookings_new", self.bookings_new),
            ("arr_target", self.arr_target),
            ("cac_max", self.cac_max),
            ("payback_max_months", self.payback_max_months),
            ("gross_margin_min", self.gross_margin_min),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Guardrails {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_daily_spend: Option<f64>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_experiment_exposure_pct: Option<f64>,
    pub allowed_levers: Vec<Lever>,
    /// Action types never to emit (`config_change`, `experiment`, `pause`, `scale`, `revert`).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub blocked_actions: Option<Vec<String>>,
}

impl Guardrails {
    pub fn is_blocked(&self, t: ActionType) -> bool {
        self.blocked_actions
            .as_deref()
            .is_some_and(|b| b.iter().any(|s| s == t.as_str()))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricPoint {
    pub metric_id: String,
    pub value: f64,
    /// `YYYY-MM-DD`.
    pub date: String,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub dimension: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevenueEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub amount: f64,
    /// `YYYY-MM-DD`.
    pub effective_date: String,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub attributed_campaign_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub attributed_channel: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    pub id: String,
    pub name: String,
    pub status: String,
    pub objective: String,
    pub budget_total: f64,
    pub budget_spent: f64,
    /// `YYYY-MM-DD`.
    pub start_date: String,
    /// `YYYY-MM-DD`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub end_date: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Opportunity {
    pub id: String,
    pub stage: String,
    pub amount: f64,
    /// `YYYY-MM-DD`.
    pub expected_close_date: String,
    /// Fraction in [0, 1].
    pub win_probability: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionResult {
    pub action_id: String,
    pub target_metric: String,
    pub baseline_value: f64,
    pub observed_value: f64,
    pub delta: f64,
    /// Fraction in [0, 1].
    pub confidence: f64,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_sample_size: Option<f64>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_observation_window_days: Option<f64>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub risk_tolerance: Option<RiskTolerance>,
}

// ---------------------------------------------------------------- output

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelOutput {
    pub tenant_id: String,
    /// UUID v4 generated for this cycle.
    pub cycle_id: String,
    /// RFC 3339 timestamp (UTC) of the clock the kernel ran with.
    pub executed_at: String,
    pub version: Version,
    pub cycle_summary: CycleSummary,
    /// 1 to 7 actions, priorities ascending.
    pub actions: Vec<Action>,
    /// Present (and non-empty) when the binding constraint is `data_quality`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_quality_actions: Option<Vec<DataQualityAction>>,
    pub learning_plan: LearningPlan,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CycleSummary {
    pub binding_constraint: BindingConstraint,
    /// A metric_id from the dictionary.
    pub priority_metric: String,
    /// One or two sentences quoting the numbers.
    pub diagnosis: String,
    /// In [0, 1].
    pub confidence: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// Deterministic: `<subsystem>.<type>.<entity>.<field>`; unique within the cycle.
    pub action_id: String,
    /// 1 to 7, lower is more important.
    pub priority: u8,
    pub owner_subsystem: Subsystem,
    #[serde(rename = "type")]
    pub kind: ActionType,
    pub target_metric: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_entity: Option<TargetEntity>,
    pub proposed_change: ProposedChange,
    pub guardrails: ActionGuardrails,
    /// Present exactly when `type` is `experiment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<Experiment>,
    pub observation_window_days: u32,
    pub expected_impact: ExpectedImpact,
    pub notes_for_humans: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetEntity {
    #[serde(rename = "type")]
    pub kind: EntityType,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposedChange {
    /// A field the owner subsystem's executor accepts (see the executor map).
    pub field: String,
    pub current_value: Value,
    pub new_value: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionGuardrails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_additional_spend: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_exposure_percent: Option<f64>,
    pub abort_conditions: Vec<AbortCondition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AbortCondition {
    pub metric_id: String,
    pub operator: Operator,
    pub threshold: f64,
    pub consecutive_days: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub hypothesis: String,
    pub control_group_pct: f64,
    pub treatment_group_pct: f64,
    /// Per arm.
    pub min_sample_size: u64,
    pub success_metric: String,
    pub success_threshold: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedImpact {
    pub metric_id: String,
    pub direction: ImpactDirection,
    pub magnitude_pct: f64,
    pub confidence: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataQualityAction {
    pub action_id: String,
    pub priority: u8,
    pub issue_type: DataIssueType,
    pub affected_metric: String,
    pub description: String,
    pub recommended_fix: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LearningPlan {
    pub metrics_to_monitor: Vec<String>,
    pub observation_window_days: u32,
    pub expected_outcomes: Vec<ExpectedOutcome>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedOutcome {
    pub metric_id: String,
    pub direction: OutcomeDirection,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub magnitude_pct: Option<f64>,
}
