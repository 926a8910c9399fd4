//! The record of bulk loads: listing them (the `loads` command, the console's tenant page),
//! and handing committed loads to the follow-up service with a lease.

use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

/// A load as recorded in `loads`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    pub load_id: String,
    pub kind: String,
    pub source: String,
    pub snapshot: bool,
    pub rows: i64,
    pub inserted: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub rejected: i64,
    pub removed: i64,
    pub tenants: Vec<Uuid>,
    pub started_at: DateTime<Utc>,
    pub committed_at: Option<DateTime<Utc>>,
}

/// A rejected row of a quarantined load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectView {
    pub load_id: String,
    pub line: i64,
    pub problem: String,
    pub raw: String,
}

/// A load a follow-up service claimed. Its tenants are read a page at a time
/// (`load_tenants`): a load of every tenant lists 100,000 of them, and a claim of four such
/// loads held 14 MB in the worker at once.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadFollowUp {
    pub load_id: String,
    pub kind: String,
    /// How many tenants the load lists.
    pub tenant_count: usize,
    pub committed_at: DateTime<Utc>,
    /// `ingest --trigger`: queue a scheduled trigger per loaded tenant.
    pub trigger: bool,
}

impl Store {
    /// The most recent committed loads, newest first; with a tenant, those that loaded rows
    /// of it.
    pub async fn loads(
        &self,
        tenant: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<LoadReport>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {REPORT_COLUMNS} FROM loads
                     WHERE committed_at IS NOT NULL
                       AND ($1::uuid IS NULL OR tenants @> ARRAY[$1::uuid])
                     ORDER BY committed_at DESC, load_id LIMIT $2"
                ),
                &[&tenant, &limit.max(0)],
            )
            .await?;
        rows.iter().map(report).collect()
    }

    /// The console's tenant page: the tenant's last loads, and the rows of its that
    /// quarantined loads refused (newest loads first).
    pub async fn tenant_loads(
        &self,
        tenant: Uuid,
        limit: i64,
    ) -> Result<(Vec<LoadReport>, Vec<RejectView>), StoreError> {
        let loads = self.loads(Some(tenant), limit).await?;
        let mut client = self.pool.get().await?;
        let tx = super::tenant::tenant_tx(&mut client, tenant).await?;
        let rows = tx
            .query(
                "SELECT r.load_id, r.line, r.problem, r.raw FROM ingest_rejects r
                 JOIN loads l USING (load_id)
                 WHERE r.tenant_id = $1
                 ORDER BY l.committed_at DESC, r.load_id, r.line LIMIT $2",
                &[&tenant, &limit.max(0)],
            )
            .await?;
        tx.commit().await?;
        let rejects = rows
            .iter()
            .map(|r| {
                Ok(RejectView {
                    load_id: r.try_get(0)?,
                    line: r.try_get(1)?,
                    problem: r.try_get(2)?,
                    raw: r.try_get(3)?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok((loads, rejects))
    }

    /// Claims up to `limit` committed loads nobody has followed up yet (oldest first), for
    /// `lease`: a follow-up that dies leaves them to the next claim. Concurrent claimers skip
    /// each other's rows. Mark each done with `load_followed_up`.
    pub async fn claim_load_follow_ups(
        &self,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<LoadFollowUp>, StoreError> {
        let client = self.pool.get().await?;
        let secs = lease.as_secs_f64();
        let rows = client
            .query(
                "UPDATE loads l SET follow_up_claimed_until = now() + make_interval(secs => $2)
                 FROM (SELECT load_id FROM loads
                       WHERE followed_up_at IS NULL AND committed_at IS NOT NULL
                         AND (follow_up_claimed_until IS NULL OR follow_up_claimed_until <= now())
                       ORDER BY committed_at, load_id LIMIT $1
                       FOR UPDATE SKIP LOCKED) c
                 WHERE l.load_id = c.load_id
                 RETURNING l.load_id, l.kind, cardinality(l.tenants), l.committed_at,
                           l.trigger",
                &[&limit.max(0), &secs],
            )
            .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                let count: i32 = r.try_get(2)?;
                Ok(LoadFollowUp {
                    load_id: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    tenant_count: usize::try_from(count).unwrap_or(0),
                    committed_at: r.try_get(3)?,
                    trigger: r.try_get(4)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by(|a, b| (a.committed_at, &a.load_id).cmp(&(b.committed_at, &b.load_id)));
        Ok(out)
    }

    /// Up to `limit` of a load's tenants, from the `from`th (0-based) in the order the load
    /// lists them; empty past the end or for an unknown load.
    pub async fn load_tenants(
        &self,
        load_id: &str,
        from: usize,
        limit: usize,
    ) -> Result<Vec<Uuid>, StoreError> {
        let client = self.pool.get().await?;
        // Array slices are 1-based and inclusive; a slice past the end is empty.
        let first = i32::try_from(from).unwrap_or(i32::MAX).saturating_add(1);
        let last = first.saturating_add(i32::try_from(limit).unwrap_or(i32::MAX) - 1);
        let row = client
            .query_opt(
                "SELECT coalesce(tenants[$2:$3], '{}') FROM loads WHERE load_id = $1",
                &[&load_id, &first, &last],
            )
            .await?;
        match row {
            Some(r) => Ok(r.try_get(0)?),
            None => Ok(Vec::new()),
        }
    }

    /// Records that a load's follow-up is done; false if it already was.
    pub async fn load_followed_up(&self, load_id: &str) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "UPDATE loads SET followed_up_at = now(), follow_up_claimed_until = NULL
                 WHERE load_id = $1 AND followed_up_at IS NULL",
                &[&load_id],
            )
            .await?;
        Ok(n == 1)
    }

    /// Tenants with an action the watchdog may be due to evaluate (a superset). One array,
    /// not a row per tenant: a driver row costs about a hundred bytes and two allocations,
    /// an array element 16 bytes, and at 100,000 tenants that is the worker's peak memory.
    pub async fn watch_due_tenants(&self) -> Result<Vec<Uuid>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT coalesce(array_agg(t), '{}') FROM revenue_os.watch_due_tenants() t",
                &[],
            )
            .await?;
        Ok(row.try_get(0)?)
    }
}

pub(super) const REPORT_COLUMNS: &str = "load_id, kind, source, snapshot, rows, inserted, updated, \
     unchanged, rejected, removed, tenants, started_at, committed_at";

pub(super) fn report(r: &Row) -> Result<LoadReport, StoreError> {
    Ok(LoadReport {
        load_id: r.try_get(0)?,
        kind: r.try_get(1)?,
        source: r.try_get(2)?,
        snapshot: r.try_get(3)?,
        rows: r.try_get(4)?,
        inserted: r.try_get(5)?,
        updated: r.try_get(6)?,
        unchanged: r.try_get(7)?,
        rejected: r.try_get(8)?,
        removed: r.try_get(9)?,
        tenants: r.try_get(10)?,
        started_at: r.try_get(11)?,
        committed_at: r.try_get(12)?,
    })
}

pub(super) async fn committed_load(
    client: &impl GenericClient,
    load_id: &str,
) -> Result<Option<LoadReport>, StoreError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {REPORT_COLUMNS} FROM loads
                 WHERE load_id = $1 AND committed_at IS NOT NULL"
            ),
            &[&load_id],
        )
        .await?;
    row.as_ref().map(report).transpose()
}
