//! The audit trail: one row per recorded event (cycles, decisions, executor reports, watchdog
//! evaluations and reverts, outcomes, policy changes, loads, console sign-ins), streamed
//! tenant by tenant into a bounded channel so an export of millions of rows holds only the
//! channel's worth. Sign-ins belong to no tenant: they close the export of every tenant.

use super::tenant::tenant_tx;
use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use futures_util::{TryStreamExt, pin_mut};
use serde::Serialize;
use tokio::sync::mpsc;
use uuid::Uuid;

/// One audited event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRow {
    pub time: DateTime<Utc>,
    /// `person`, `executor`, `watchdog`, `kernel`, `import` (a loaded document) or `load`
    /// (a bulk load, `revenue-os ingest`).
    pub actor_kind: String,
    pub actor: String,
    /// None for an event of no tenant (a console sign-in).
    pub tenant_id: Option<Uuid>,
    pub cycle_id: Option<Uuid>,
    pub action_id: Option<String>,
    pub event: String,
    pub detail: String,
}

const AUDIT_SQL: &str = "
SELECT at, actor_kind, actor, cycle_id, action_id, event, detail FROM (
  SELECT executed_at AS at, 'kernel' AS actor_kind, 'kernel' AS actor, cycle_id,
         NULL::text AS action_id, 'cycle_' || status AS event,
         coalesce(binding_constraint || ' binds on ' || priority_metric, error_code, '') AS detail
    FROM cycles WHERE tenant_id = $1
  UNION ALL
  SELECT decided_at, CASE WHEN decided_by = 'watchdog sweep' THEN 'watchdog' ELSE 'person' END,
         decided_by, cycle_id, action_id, 'approval_' || decision, coalesce(reason, '')
    FROM approval_decisions WHERE tenant_id = $1
  UNION ALL
  SELECT received_at, 'executor', source, cycle_id, action_id,
         'report_' || type || CASE WHEN on_revert THEN '_on_revert' ELSE '' END,
         status_before || ' -> ' || status_after || ' (' || result || ')'
    FROM action_reports WHERE tenant_id = $1
  UNION ALL
  SELECT evaluated_at, 'watchdog', 'watchdog', cycle_id, action_id,
         CASE WHEN verdict = 'abort' THEN 'revert' ELSE 'evaluation_' || verdict END
           || CASE WHEN mode = 'shadow' THEN '_shadow' ELSE '' END,
         sentence
    FROM watchdog_evaluations WHERE tenant_id = $1
  UNION ALL
  SELECT recorded_at, CASE WHEN source IS NULL THEN 'import' ELSE 'watchdog' END,
         coalesce(source, 'import'), NULL, action_id, 'outcome_' || outcome,
         target_metric || ' ' || baseline_value || ' -> ' || observed_value
    FROM action_results WHERE tenant_id = $1
  UNION ALL
  SELECT updated_at, CASE WHEN updated_by IS NULL THEN 'import' ELSE 'person' END,
         coalesce(updated_by, 'command line'), NULL, NULL, 'policy_set',
         'require ' || array_to_string(require, ',') || '; two approvers '
           || array_to_string(two_approvers, ',')
    FROM approval_policy WHERE tenant_id = $1
  UNION ALL
  SELECT committed_at, 'load', source, NULL, NULL, 'load_' || kind,
         'load ' || load_id || CASE WHEN snapshot THEN ' (snapshot)' ELSE '' END
           || ' of ' || cardinality(tenants) || ' tenant(s): ' || rows || ' rows, '
           || inserted || ' inserted, ' || updated || ' updated, ' || unchanged
           || ' unchanged, ' || rejected || ' rejected, ' || removed || ' removed'
    FROM loads WHERE committed_at IS NOT NULL AND tenants @> ARRAY[$1::uuid]
) e
WHERE $2::timestamptz IS NULL OR at >= $2
ORDER BY at, event, action_id";

/// Console sign-ins (`operator_sign_ins`, V13): not tenant data (no row-level security; an
/// operator is every tenant's), so they are read once, after the tenants, in an export of
/// every tenant.
const SIGN_INS_SQL: &str = "
SELECT signed_in_at, operator,
       'role ' || role || CASE WHEN named THEN '' ELSE ', bootstrap token' END
FROM operator_sign_ins
WHERE $1::timestamptz IS NULL OR signed_in_at >= $1
ORDER BY signed_in_at, id";

impl Store {
    /// Sends every audited event of `tenant` (or of every tenant, one after another, then the
    /// console sign-ins, of no tenant), each tenant's in time order, from `since` on; returns
    /// how many. Stops early, without an error, when the receiver is gone. A load appears
    /// once in each tenant it loaded.
    pub async fn audit(
        &self,
        tenant: Option<Uuid>,
        since: Option<DateTime<Utc>>,
        out: mpsc::Sender<AuditRow>,
    ) -> Result<u64, StoreError> {
        let tenants = match tenant {
            Some(t) => vec![t],
            None => {
                let client = self.pool.get().await?;
                client
                    .query("SELECT revenue_os.tenant_ids()", &[])
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<Vec<Uuid>, _>>()?
            }
        };
        let mut n = 0;
        for t in tenants {
            let mut client = self.pool.get().await?;
            let tx = tenant_tx(&mut client, t).await?;
            // An export runs as long as its reader reads: no statement timeout for it.
            tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&t, &since];
            let rows = tx.query_raw(AUDIT_SQL, params).await?;
            pin_mut!(rows);
            while let Some(r) = rows.try_next().await? {
                let row = AuditRow {
                    time: r.try_get(0)?,
                    actor_kind: r.try_get(1)?,
                    actor: r.try_get(2)?,
                    tenant_id: Some(t),
                    cycle_id: r.try_get(3)?,
                    action_id: r.try_get(4)?,
                    event: r.try_get(5)?,
                    detail: r.try_get(6)?,
                };
                if out.send(row).await.is_err() {
                    return Ok(n);
                }
                n += 1;
            }
            tx.commit().await?;
        }
        if tenant.is_none() {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&since];
            let rows = tx.query_raw(SIGN_INS_SQL, params).await?;
            pin_mut!(rows);
            while let Some(r) = rows.try_next().await? {
                let row = AuditRow {
                    time: r.try_get(0)?,
                    actor_kind: "person".into(),
                    actor: r.try_get(1)?,
                    tenant_id: None,
                    cycle_id: None,
                    action_id: None,
                    event: "sign_in".into(),
                    detail: r.try_get(2)?,
                };
                if out.send(row).await.is_err() {
                    return Ok(n);
                }
                n += 1;
            }
            tx.commit().await?;
        }
        Ok(n)
    }
}
