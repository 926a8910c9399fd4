//! What each kind of load carries: its columns (the contract's field names), their types
//! and checks, its table and its natural key. The store builds its SQL from this table.

/// What a load's rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Metrics,
    RevenueEvents,
    Campaigns,
    Opportunities,
    ActionResults,
    /// Each tenant's targets, guardrails and config (NDJSON only: they are nested objects).
    Tenants,
}

impl Kind {
    pub const ALL: &'static [Kind] = &[
        Kind::Metrics,
        Kind::RevenueEvents,
        Kind::Campaigns,
        Kind::Opportunities,
        Kind::ActionResults,
        Kind::Tenants,
    ];

    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    pub fn spec(self) -> &'static Spec {
        match self {
            Kind::Metrics => &METRICS,
            Kind::RevenueEvents => &REVENUE_EVENTS,
            Kind::Campaigns => &CAMPAIGNS,
            Kind::Opportunities => &OPPORTUNITIES,
            Kind::ActionResults => &ACTION_RESULTS,
            Kind::Tenants => &TENANTS,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A column's type and the check it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// A non-blank identifier (text).
    Id,
    /// Any text.
    Text,
    /// A finite number.
    Float,
    /// A finite number >= 0.
    NonNegative,
    /// A finite number in [0, 1].
    Fraction,
    /// `YYYY-MM-DD`.
    Date,
    /// A JSON object of strings (CSV: its JSON text); absent is `{}`.
    Dimension,
    /// An id in the metric dictionary.
    MetricId,
    /// `successful`, `failed` or `inconclusive`.
    Outcome,
    /// A JSON object (NDJSON), checked as a whole row by the contract's rules.
    Object,
}

impl Ty {
    /// The staging column's SQL type.
    pub fn sql(self) -> &'static str {
        match self {
            Ty::Id | Ty::Text | Ty::MetricId | Ty::Outcome => "text",
            Ty::Float | Ty::NonNegative | Ty::Fraction => "float8",
            Ty::Date => "date",
            Ty::Dimension | Ty::Object => "jsonb",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
}

const fn req(name: &'static str, ty: Ty) -> Column {
    Column {
        name,
        ty,
        required: true,
    }
}

const fn opt(name: &'static str, ty: Ty) -> Column {
    Column {
        name,
        ty,
        required: false,
    }
}

/// One kind of load. `tenant_id` is implicit: every row has one, first.
#[derive(Debug, PartialEq, Eq)]
pub struct Spec {
    pub name: &'static str,
    /// The table rows merge into.
    pub table: &'static str,
    pub columns: &'static [Column],
    /// The natural key after tenant_id.
    pub key: &'static [&'static str],
    /// The column stamped when a row changes.
    pub stamp: &'static str,
    /// Whether `--snapshot` applies (rows missing from the file are marked removed).
    pub snapshot: bool,
    /// Whether a CSV file can carry it (not nested objects).
    pub csv: bool,
}

impl Spec {
    pub fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

static METRICS: Spec = Spec {
    name: "metrics",
    table: "metric_snapshots",
    columns: &[
        req("metric_id", Ty::MetricId),
        req("date", Ty::Date),
        req("value", Ty::Float),
        opt("dimension", Ty::Dimension),
    ],
    key: &["metric_id", "date", "dimension"],
    stamp: "updated_at",
    snapshot: false,
    csv: true,
};

static REVENUE_EVENTS: Spec = Spec {
    name: "revenue_events",
    table: "revenue_events",
    columns: &[
        req("id", Ty::Id),
        req("type", Ty::Text),
        req("amount", Ty::Float),
        req("effective_date", Ty::Date),
        opt("attributed_campaign_id", Ty::Text),
        opt("attributed_channel", Ty::Text),
    ],
    key: &["id"],
    stamp: "updated_at",
    snapshot: false,
    csv: true,
};

static CAMPAIGNS: Spec = Spec {
    name: "campaigns",
    table: "campaigns",
    columns: &[
        req("id", Ty::Id),
        req("name", Ty::Text),
        req("status", Ty::Text),
        req("objective", Ty::Text),
        req("budget_total", Ty::NonNegative),
        req("budget_spent", Ty::NonNegative),
        req("start_date", Ty::Date),
        opt("end_date", Ty::Date),
    ],
    key: &["id"],
    stamp: "updated_at",
    snapshot: true,
    csv: true,
};

static OPPORTUNITIES: Spec = Spec {
    name: "opportunities",
    table: "opportunities",
    columns: &[
        req("id", Ty::Id),
        req("stage", Ty::Text),
        req("amount", Ty::NonNegative),
        req("expected_close_date", Ty::Date),
        req("win_probability", Ty::Fraction),
    ],
    key: &["id"],
    stamp: "updated_at",
    snapshot: true,
    csv: true,
};

static ACTION_RESULTS: Spec = Spec {
    name: "action_results",
    table: "action_results",
    columns: &[
        req("action_id", Ty::Id),
        req("target_metric", Ty::MetricId),
        req("baseline_value", Ty::Float),
        req("observed_value", Ty::Float),
        req("delta", Ty::Float),
        req("confidence", Ty::Fraction),
        req("outcome", Ty::Outcome),
    ],
    key: &["action_id"],
    stamp: "recorded_at",
    snapshot: false,
    csv: true,
};

/// Merged by `store::ingest` into tenants, targets, guardrails and tenant_config (not the
/// generic one-table merge); a tenant need not exist before.
static TENANTS: Spec = Spec {
    name: "tenants",
    table: "tenants",
    columns: &[
        req("targets", Ty::Object),
        req("guardrails", Ty::Object),
        opt("config", Ty::Object),
    ],
    key: &[],
    stamp: "updated_at",
    snapshot: false,
    csv: false,
};
