//! Row-level security from the store's side (migrations/V8): the ONE place that names the
//! tenant a transaction may see, and the calls into the `revenue_os` sweep functions that
//! find work across tenants without reading another tenant's rows.
//!
//! Every tenant-owned table shows a transaction only the rows of the tenant set here; outside
//! such a transaction (or with none set) a query sees no tenant rows at all. The store's own
//! `WHERE tenant_id = $1` clauses stay: the policies are the second line, not the first.

use super::StoreError;
use deadpool_postgres::ClientWrapper;
use deadpool_postgres::Transaction;
use uuid::Uuid;

/// Scopes the rest of `tx` to `tenant` (`SET LOCAL revenue_os.tenant_id`). Called again in
/// the same transaction it moves the scope to the next tenant: a sweep that visits several
/// tenants does so one at a time, each under its own tenant's policy.
pub(super) async fn set_tenant(tx: &Transaction<'_>, tenant: Uuid) -> Result<(), StoreError> {
    // One simple-protocol round trip instead of prepare + execute; a Uuid prints as hex and
    // dashes only, so splicing it in cannot inject anything.
    tx.batch_execute(&format!(
        "SELECT set_config('revenue_os.tenant_id', '{tenant}', true)"
    ))
    .await?;
    Ok(())
}

/// A transaction scoped to one tenant.
pub(super) async fn tenant_tx(
    client: &mut ClientWrapper,
    tenant: Uuid,
) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    let tx = client.transaction().await?;
    set_tenant(&tx, tenant).await?;
    Ok(tx)
}

/// The tenant that owns `cycle`, if it exists (`revenue_os.cycle_tenant`): what a report or a
/// page that names only a cycle scopes its transaction to.
pub(super) async fn cycle_tenant(
    client: &impl deadpool_postgres::GenericClient,
    cycle: Uuid,
) -> Result<Option<Uuid>, StoreError> {
    let row = client
        .query_one("SELECT revenue_os.cycle_tenant($1)", &[&cycle])
        .await?;
    Ok(row.try_get(0)?)
}

/// A transaction scoped to the tenant of `cycle`; `None` when there is no such cycle.
pub(super) async fn cycle_tx(
    client: &mut ClientWrapper,
    cycle: Uuid,
) -> Result<Option<(deadpool_postgres::Transaction<'_>, Uuid)>, StoreError> {
    let tx = client.transaction().await?;
    let Some(tenant) = cycle_tenant(&tx, cycle).await? else {
        tx.commit().await?;
        return Ok(None);
    };
    set_tenant(&tx, tenant).await?;
    Ok(Some((tx, tenant)))
}

/// The distinct tenants of `keys`, in the order they first appear.
pub(super) fn tenants_in_order(keys: impl IntoIterator<Item = Uuid>) -> Vec<Uuid> {
    let mut out: Vec<Uuid> = Vec::new();
    for t in keys {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// Scopes the rest of `tx` to every tenant of `tenants` at once (`SET LOCAL
/// revenue_os.tenant_ids`, V18's `tenant_batch` policy): what a batch that works on many
/// tenants in one transaction uses, naming exactly the tenants it works on.
pub(super) async fn set_tenants(tx: &Transaction<'_>, tenants: &[Uuid]) -> Result<(), StoreError> {
    tx.batch_execute(&tenants_scope(tenants)).await?;
    Ok(())
}

/// `set_tenants`, and the rest of `tx` on each statement's generic plan (the cycle's
/// transaction sets the same). Under the default the planner weighs a cached statement's
/// generic plan against its custom ones: for one that takes arrays (`unnest($1)`, `=
/// ANY($1)`) it costs the generic plan for ten elements and a custom one for the few a batch
/// has, and for one re-planned after autovacuum or ANALYZE of a table it reads the two can
/// cost about the same. Either way it could plan every execution anew (0.2 to 1.5 ms each)
/// and arrive at the same plan.
pub(super) async fn set_tenants_generic(
    tx: &Transaction<'_>,
    tenants: &[Uuid],
) -> Result<(), StoreError> {
    let sql = tenants_scope(tenants) + "; SET LOCAL plan_cache_mode = force_generic_plan";
    tx.batch_execute(&sql).await?;
    Ok(())
}

/// The statement `set_tenants` sends. Simple protocol, as `set_tenant`: one message, sent
/// when first polled, so a caller may pipeline statements behind it and know they run in its
/// scope. Uuids print as hex and dashes only: nothing spliced here can inject.
fn tenants_scope(tenants: &[Uuid]) -> String {
    let mut sql = String::with_capacity(48 + tenants.len() * 37);
    sql.push_str("SELECT set_config('revenue_os.tenant_ids', '{");
    for (i, t) in tenants.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&t.to_string());
    }
    sql.push_str("}', true)");
    sql
}

#[cfg(test)]
mod tests {
    use super::{tenants_in_order, tenants_scope};
    use uuid::Uuid;

    #[test]
    fn tenants_keep_their_first_position() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_eq!(tenants_in_order([b, a, b, a]), vec![b, a]);
    }

    #[test]
    fn the_scope_names_the_tenants_as_one_array() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_eq!(
            tenants_scope(&[a, b]),
            "SELECT set_config('revenue_os.tenant_ids', \
             '{00000000-0000-0000-0000-000000000001,00000000-0000-0000-0000-000000000002}', true)"
        );
        assert_eq!(
            tenants_scope(&[]),
            "SELECT set_config('revenue_os.tenant_ids', '{}', true)"
        );
    }
}
