//! Approvals: a tenant's policy, the actions held for a person, and each decision applied in
//! one transaction under the tenant's lock (so it cannot race the tenant's next cycle). What
//! a decision may do is the caller's `ApprovalGate`; the store keeps the facts and the record.

use super::cached::Cached;
use super::tenant::{cycle_tenant, cycle_tx, set_tenant, tenant_tx, tenants_in_order};
use super::webhooks;
use super::{OutboxMessage, OutboxRow, Store, StoreError, outbox, tenant_lock_key};
use crate::contract::{Action, ActionStatus, Notification, NotifyEvent, action_hash};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Which actions of a tenant need a person. The default (no row) holds nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApprovalPolicy {
    /// `<subsystem>:<type>` patterns; `*` matches any (`pricing:*`, `*:experiment`).
    pub require: Vec<String>,
    /// Hold actions that may add more than this much spend.
    pub max_added_spend: Option<f64>,
    /// Hold budget changes bigger than this percentage of the current budget.
    pub max_budget_step_pct: Option<f64>,
    /// Hold everything during the tenant's first N days.
    pub first_days: Option<i32>,
    /// Patterns (as `require`) whose held actions need two distinct approvers.
    #[serde(default)]
    pub two_approvers: Vec<String>,
}

/// Who last set a tenant's policy, and when (`None`: the command line, or before V11).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicySetBy {
    pub by: Option<String>,
    pub at: DateTime<Utc>,
}

/// What a cycle's plan needs to know to hold actions.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalFacts {
    pub policy: Option<ApprovalPolicy>,
    /// When the tenant was created.
    pub tenant_since: DateTime<Utc>,
}

/// An action waiting for a person, with the hash an approval must carry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingApproval {
    pub tenant_id: Uuid,
    pub cycle_id: Uuid,
    pub action_id: String,
    pub action: Action,
    pub hash: String,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Who gave it a first approval (a two-approver policy), oldest first.
    pub approved_by: Vec<String>,
}

/// A person's decision.
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalRequest {
    Approve {
        by: String,
        hash: String,
    },
    Reject {
        by: String,
        hash: String,
        reason: String,
    },
}

/// What the store knows when a decision (or the expiry sweep) looks at a held action.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldFacts {
    pub tenant_id: Uuid,
    pub cycle_id: Uuid,
    pub action_id: String,
    pub status: ActionStatus,
    pub action: Action,
    pub hash: String,
    pub created_at: DateTime<Utc>,
    /// A completed cycle of the tenant newer than this action's.
    pub superseded: bool,
    /// The tenant's policy now (how many approvers this action needs).
    pub policy: Option<ApprovalPolicy>,
    /// Earlier first approvals of this action: (by, the hash they approved).
    pub first_approvals: Vec<(String, Option<String>)>,
}

/// The gate's verdict; the store applies it.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// Release it: this message goes to the outbox, the action becomes `pending`.
    Approve(OutboxMessage),
    Reject,
    /// Refused as asked (stale hash): recorded, nothing changes.
    StaleHash,
    /// The first of the approvals it needs: recorded, the action still waits.
    FirstApproval {
        needed: usize,
    },
    /// This person already approved it: a second approval must be someone else's.
    SameApprover,
    Expire,
    Supersede,
    /// Not held (any more): nothing to decide.
    NotPending,
    /// Leave it waiting (the expiry sweep, for one still fresh).
    Keep,
}

pub trait ApprovalGate: Sync {
    fn judge(
        &self,
        facts: &HeldFacts,
        request: Option<&ApprovalRequest>,
        now: DateTime<Utc>,
    ) -> Gate;
}

#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalOutcome {
    Approved {
        outbox: OutboxRow,
    },
    Rejected,
    StaleHash {
        current: String,
    },
    /// Recorded; it waits for `needed` approvers in all.
    FirstApproval {
        needed: usize,
    },
    /// Refused: the same person cannot be both approvers.
    SameApprover,
    Expired,
    Superseded,
    NotPending {
        status: ActionStatus,
    },
    NotFound,
}

impl Store {
    pub async fn approval_policy(
        &self,
        tenant: Uuid,
    ) -> Result<Option<ApprovalPolicy>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = tenant_tx(&mut client, tenant).await?;
        let policy = read_policy(&tx, tenant).await?;
        tx.commit().await?;
        Ok(policy)
    }

    /// Sets the tenant's policy; `false` when the tenant does not exist.
    pub async fn set_approval_policy(
        &self,
        tenant: Uuid,
        p: &ApprovalPolicy,
    ) -> Result<bool, StoreError> {
        self.set_approval_policy_by(tenant, p, None).await
    }

    /// Who last set the tenant's policy, and when; `None` without a policy.
    pub async fn approval_policy_set_by(
        &self,
        tenant: Uuid,
    ) -> Result<Option<PolicySetBy>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = tenant_tx(&mut client, tenant).await?;
        let row = tx
            .query_opt(
                "SELECT updated_by, updated_at FROM approval_policy WHERE tenant_id = $1",
                &[&tenant],
            )
            .await?;
        tx.commit().await?;
        row.map(|r| {
            Ok(PolicySetBy {
                by: r.try_get(0)?,
                at: r.try_get(1)?,
            })
        })
        .transpose()
    }

    /// Sets the tenant's policy, recording who (`None`: the command line).
    pub async fn set_approval_policy_by(
        &self,
        tenant: Uuid,
        p: &ApprovalPolicy,
        by: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = tenant_tx(&mut client, tenant).await?;
        let n = tx
            .execute(
                "INSERT INTO approval_policy (tenant_id, require, max_added_spend,
                                              max_budget_step_pct, first_days, two_approvers,
                                              updated_by)
                 SELECT $1, $2, $3, $4, $5, $6, $7 FROM tenants WHERE tenant_id = $1
                 ON CONFLICT (tenant_id) DO UPDATE SET require = EXCLUDED.require,
                    max_added_spend = EXCLUDED.max_added_spend,
                    max_budget_step_pct = EXCLUDED.max_budget_step_pct,
                    first_days = EXCLUDED.first_days, two_approvers = EXCLUDED.two_approvers,
                    updated_by = EXCLUDED.updated_by, updated_at = now()",
                &[
                    &tenant,
                    &p.require,
                    &p.max_added_spend,
                    &p.max_budget_step_pct,
                    &p.first_days,
                    &p.two_approvers,
                    &by,
                ],
            )
            .await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// When a cycle ran (`executed_at`), if it exists.
    pub async fn cycle_executed_at(
        &self,
        cycle_id: Uuid,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut client = self.pool.get().await?;
        let Some((tx, _)) = cycle_tx(&mut client, cycle_id).await? else {
            return Ok(None);
        };
        let row = tx
            .query_opt(
                "SELECT executed_at FROM cycles WHERE cycle_id = $1",
                &[&cycle_id],
            )
            .await?;
        tx.commit().await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Held actions, oldest first: of one tenant, or (`None`) of every tenant that has some.
    pub async fn pending_approvals(
        &self,
        tenant: Option<Uuid>,
    ) -> Result<Vec<PendingApproval>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let tenants = match tenant {
            Some(t) => vec![t],
            None => {
                let keys = pending_keys(&tx, PENDING_SWEEP_LIMIT).await?;
                tenants_in_order(keys.iter().map(|k| k.0))
            }
        };
        let mut out = Vec::new();
        for t in tenants {
            set_tenant(&tx, t).await?;
            let rows = tx
                .query(
                    "SELECT tenant_id, cycle_id, action_id, action, approval_reason, created_at,
                            ARRAY(SELECT d.decided_by FROM approval_decisions d
                                  WHERE d.cycle_id = a.cycle_id AND d.action_id = a.action_id
                                    AND d.decision = 'first_approval' ORDER BY d.id)
                     FROM actions a WHERE status = 'pending_approval' AND tenant_id = $1
                     ORDER BY created_at, cycle_id, action_id",
                    &[&t],
                )
                .await?;
            for r in &rows {
                let action_id: String = r.try_get(2)?;
                let action: Action = serde_json::from_value(r.try_get(3)?)
                    .map_err(|e| StoreError::Corrupt(format!("stored action {action_id}: {e}")))?;
                out.push(PendingApproval {
                    tenant_id: r.try_get(0)?,
                    cycle_id: r.try_get(1)?,
                    hash: action_hash(&action),
                    action_id,
                    action,
                    reason: r.try_get(4)?,
                    created_at: r.try_get(5)?,
                    approved_by: r.try_get(6)?,
                });
            }
        }
        tx.commit().await?;
        out.sort_by(|a, b| {
            (a.created_at, a.cycle_id, &a.action_id).cmp(&(b.created_at, b.cycle_id, &b.action_id))
        });
        Ok(out)
    }

    /// A person's decision on one held action, judged by `gate` and applied at once.
    pub async fn decide_approval(
        &self,
        cycle_id: Uuid,
        action_id: &str,
        request: &ApprovalRequest,
        gate: &dyn ApprovalGate,
        now: DateTime<Utc>,
    ) -> Result<ApprovalOutcome, StoreError> {
        let mut client = self.pool.get().await?;
        let Some(tenant) = cycle_tenant(&client, cycle_id).await? else {
            return Ok(ApprovalOutcome::NotFound);
        };
        let tx = tenant_tx(&mut client, tenant).await?;
        // The cycle's lock: a decision and the tenant's next cycle take turns.
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&tenant_lock_key(tenant)],
        )
        .await?;
        let Some(facts) = held(&tx, cycle_id, action_id).await? else {
            return Ok(ApprovalOutcome::NotFound);
        };
        let verdict = gate.judge(&facts, Some(request), now);
        let outcome = apply(&tx, &facts, &verdict, Some(request), now).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Expires or supersedes held actions as `gate` says (the periodic sweep); returns how
    /// many it decided. Each in its own transaction, scoped to the action's tenant.
    pub async fn sweep_pending_approvals(
        &self,
        gate: &dyn ApprovalGate,
        now: DateTime<Utc>,
    ) -> Result<Vec<(HeldFacts, ApprovalOutcome)>, StoreError> {
        let mut out = Vec::new();
        let client = self.pool.get().await?;
        let keys = pending_keys(&client, PENDING_SWEEP_LIMIT).await?;
        drop(client);
        for (tenant, cycle_id, action_id) in &keys {
            let mut client = self.pool.get().await?;
            let tx = tenant_tx(&mut client, *tenant).await?;
            let Some(facts) = held(&tx, *cycle_id, action_id).await? else {
                continue;
            };
            let verdict = gate.judge(&facts, None, now);
            if matches!(verdict, Gate::Keep | Gate::NotPending) {
                continue;
            }
            let outcome = apply(&tx, &facts, &verdict, None, now).await?;
            tx.commit().await?;
            out.push((facts, outcome));
        }
        Ok(out)
    }
}

/// How many held actions one sweep (or one listing of every tenant's) takes.
const PENDING_SWEEP_LIMIT: i64 = 1000;

/// (tenant, cycle, action) of held actions across tenants, oldest first
/// (`revenue_os.pending_approvals`).
async fn pending_keys(
    client: &impl deadpool_postgres::GenericClient,
    limit: i64,
) -> Result<Vec<(Uuid, Uuid, String)>, StoreError> {
    client
        .query(
            "SELECT tenant_id, cycle_id, action_id FROM revenue_os.pending_approvals($1)",
            &[&limit],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

/// The held action's facts, its row locked.
async fn held(
    tx: &Transaction<'_>,
    cycle_id: Uuid,
    action_id: &str,
) -> Result<Option<HeldFacts>, StoreError> {
    let Some(r) = tx
        .query_opt(
            "SELECT a.tenant_id, a.status, a.action, a.created_at,
                    EXISTS (SELECT 1 FROM cycles n, cycles c
                            WHERE c.cycle_id = a.cycle_id AND n.tenant_id = a.tenant_id
                              AND n.status = 'completed' AND n.executed_at > c.executed_at)
             FROM actions a WHERE a.cycle_id = $1 AND a.action_id = $2 FOR UPDATE OF a",
            &[&cycle_id, &action_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let status: String = r.try_get(1)?;
    let action: Action = serde_json::from_value(r.try_get(2)?)
        .map_err(|e| StoreError::Corrupt(format!("stored action {action_id}: {e}")))?;
    let tenant: Uuid = r.try_get(0)?;
    let policy = facts_in(tx, tenant).await?.and_then(|f| f.policy);
    let first_approvals = tx
        .query(
            "SELECT decided_by, hash FROM approval_decisions
             WHERE cycle_id = $1 AND action_id = $2 AND decision = 'first_approval' ORDER BY id",
            &[&cycle_id, &action_id],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some(HeldFacts {
        tenant_id: r.try_get(0)?,
        cycle_id,
        action_id: action_id.to_owned(),
        status: ActionStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("action status '{status}'")))?,
        hash: action_hash(&action),
        action,
        created_at: r.try_get(3)?,
        superseded: r.try_get(4)?,
        policy,
        first_approvals,
    }))
}

async fn apply(
    tx: &Transaction<'_>,
    f: &HeldFacts,
    verdict: &Gate,
    request: Option<&ApprovalRequest>,
    now: DateTime<Utc>,
) -> Result<ApprovalOutcome, StoreError> {
    let (by, hash, reason) = match request {
        Some(ApprovalRequest::Approve { by, hash }) => (by.as_str(), Some(hash.as_str()), None),
        Some(ApprovalRequest::Reject { by, hash, reason }) => {
            (by.as_str(), Some(hash.as_str()), Some(reason.as_str()))
        }
        None => ("watchdog sweep", None, None),
    };
    let (decision, status, outcome) = match verdict {
        Gate::NotPending | Gate::Keep => {
            return Ok(ApprovalOutcome::NotPending { status: f.status });
        }
        Gate::Approve(_) => ("approved", Some(ActionStatus::Pending), None),
        Gate::Reject => (
            "rejected",
            Some(ActionStatus::Rejected),
            Some(ApprovalOutcome::Rejected),
        ),
        Gate::FirstApproval { needed } => (
            "first_approval",
            None,
            Some(ApprovalOutcome::FirstApproval { needed: *needed }),
        ),
        Gate::SameApprover => return Ok(ApprovalOutcome::SameApprover),
        Gate::StaleHash => (
            "refused_stale",
            None,
            Some(ApprovalOutcome::StaleHash {
                current: f.hash.clone(),
            }),
        ),
        Gate::Expire => (
            "expired",
            Some(ActionStatus::Expired),
            Some(ApprovalOutcome::Expired),
        ),
        Gate::Supersede => (
            "superseded",
            Some(ActionStatus::Superseded),
            Some(ApprovalOutcome::Superseded),
        ),
    };
    tx.execute(
        "INSERT INTO approval_decisions (tenant_id, cycle_id, action_id, decision, decided_by,
                                         decided_at, hash, reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &f.tenant_id,
            &f.cycle_id,
            &f.action_id,
            &decision,
            &by,
            &now,
            &hash,
            &reason,
        ],
    )
    .await?;
    let subject = format!("{}:{}", f.cycle_id, f.action_id);
    let notice = match decision {
        "expired" => Some((NotifyEvent::ApprovalExpired, subject)),
        "superseded" => Some((NotifyEvent::ApprovalSuperseded, subject)),
        "refused_stale" => None,
        d => Some((NotifyEvent::ApprovalDecided, format!("{subject}:{d}"))),
    };
    if let Some((event, subject)) = notice {
        let waited = (now - f.created_at).num_minutes() as f64 / 60.0;
        let n = Notification::new(event, subject, Some(f.tenant_id), now)
            .on_action(f.cycle_id, &f.action_id)
            .with_details(webhooks::action_details(
                &f.action,
                serde_json::json!({
                    "decision": decision,
                    "by": request.map(|_| by),
                    "reason": reason,
                    "hash": f.hash,
                    "waited_hours": (waited * 10.0).round() / 10.0,
                }),
            ));
        webhooks::record(tx, &n).await?;
    }
    if let Some(s) = status {
        tx.execute(
            "UPDATE actions SET status = $3, updated_at = now() WHERE cycle_id = $1 AND action_id = $2",
            &[&f.cycle_id, &f.action_id, &s.as_str()],
        )
        .await?;
    }
    match (verdict, outcome) {
        (Gate::Approve(m), _) => {
            let row = outbox::insert(tx, f.tenant_id, f.cycle_id, m).await?;
            Ok(ApprovalOutcome::Approved { outbox: row })
        }
        (_, Some(o)) => Ok(o),
        (_, None) => Ok(ApprovalOutcome::NotPending { status: f.status }),
    }
}

/// The approval facts a cycle's plan reads, inside the cycle's transaction; `None` when the
/// tenant does not exist.
pub(super) async fn facts_in(
    tx: &Transaction<'_>,
    tenant: Uuid,
) -> Result<Option<ApprovalFacts>, StoreError> {
    // Sent together: one round trip.
    let by_tenant: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&tenant];
    let (since, policy) = futures_util::try_join!(
        tx.query_opt_cached(
            "SELECT created_at FROM tenants WHERE tenant_id = $1",
            &by_tenant
        ),
        read_policy(tx, tenant),
    )?;
    since
        .map(|row| {
            Ok(ApprovalFacts {
                policy,
                tenant_since: row.try_get(0)?,
            })
        })
        .transpose()
}

/// The tenant's approval policy, if it has one: the one reader of `approval_policy`.
async fn read_policy(
    tx: &Transaction<'_>,
    tenant: Uuid,
) -> Result<Option<ApprovalPolicy>, StoreError> {
    tx.query_opt_cached(
        "SELECT require, max_added_spend, max_budget_step_pct, first_days, two_approvers
         FROM approval_policy WHERE tenant_id = $1",
        &[&tenant],
    )
    .await?
    .map(|r| {
        Ok(ApprovalPolicy {
            require: r.try_get(0)?,
            max_added_spend: r.try_get(1)?,
            max_budget_step_pct: r.try_get(2)?,
            first_days: r.try_get(3)?,
            two_approvers: r.try_get(4)?,
        })
    })
    .transpose()
}
