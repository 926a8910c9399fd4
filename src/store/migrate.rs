//! Embedded refinery migrations and the metric dictionary sync.

use super::{Store, StoreError};
use crate::contract::catalog::Catalog;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Serialises concurrent `migrate` calls (several workers starting at once).
const MIGRATION_LOCK: i64 = 0x7265_765f_6f73_6d67; // "rev_osmg"

impl Store {
    /// Applies embedded refinery migrations, then syncs `metric_dictionary` from the embedded
    /// catalog; returns how many migrations it applied (0 when up to date).
    ///
    /// A schema already up to date is left alone without running refinery, which would issue
    /// DDL (`CREATE TABLE IF NOT EXISTS` of its history table): so a role with no DDL rights,
    /// the worker's, may call this at start (`database.migrate_on_start`) and only syncs the
    /// dictionary. A schema behind needs the owner: the worker's role then gets an error
    /// that says so.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let catalog = Catalog::embedded().map_err(|e| StoreError::Migrate(e.to_string()))?;
        // A session lock on a pooled connection would outlive a cancelled call and block
        // every later migrate; taken out of the pool, the connection (and the lock) ends
        // when this call does, however it ends.
        let mut obj = deadpool_postgres::Object::take(self.pool.get().await?);
        obj.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        let result = migrate_locked(&mut obj, &catalog).await;
        obj.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await?;
        result
    }
}

async fn migrate_locked(
    obj: &mut deadpool_postgres::ClientWrapper,
    catalog: &Catalog,
) -> Result<usize, StoreError> {
    let runner = embedded::migrations::runner();
    let missing = missing_versions(obj, runner.get_migrations()).await?;
    if missing > 0 {
        let client: &mut tokio_postgres::Client = obj;
        let report = runner.run_async(client).await.map_err(|e| {
            // refinery's own words hide the server's ("db error"): add the causes.
            let mut shown = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                shown.push_str(&format!(": {s}"));
                source = s.source();
            }
            let hint = if shown.contains("permission denied") {
                " (this database role may not run DDL: run `revenue-os migrate` with the \
                 schema owner's URL first)"
            } else {
                ""
            };
            StoreError::Migrate(format!("{shown}{hint}"))
        })?;
        sync_in_tx(obj, catalog).await?;
        return Ok(report.applied_migrations().len());
    }
    sync_in_tx(obj, catalog).await?;
    Ok(0)
}

/// How many embedded migrations the database has not recorded as applied.
async fn missing_versions(
    client: &tokio_postgres::Client,
    embedded: &[refinery::Migration],
) -> Result<usize, StoreError> {
    let history: Option<String> = client
        .query_one("SELECT to_regclass('refinery_schema_history')::text", &[])
        .await?
        .try_get(0)?;
    if history.is_none() {
        return Ok(embedded.len());
    }
    let applied: Vec<i64> = client
        .query("SELECT version::int8 FROM refinery_schema_history", &[])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    Ok(embedded
        .iter()
        .filter(|m| !applied.contains(&i64::from(m.version())))
        .count())
}

async fn sync_in_tx(
    client: &mut deadpool_postgres::ClientWrapper,
    catalog: &Catalog,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    sync_metric_dictionary(&tx, catalog).await?;
    tx.commit().await?;
    Ok(())
}

/// Upserts every catalog metric; rows for metrics since removed from the catalog stay, since
/// stored snapshots may still reference them.
pub(super) async fn sync_metric_dictionary(
    client: &tokio_postgres::Transaction<'_>,
    catalog: &Catalog,
) -> Result<(), StoreError> {
    let mut ids = Vec::new();
    let mut lens = Vec::new();
    let mut direction = Vec::new();
    let mut unit = Vec::new();
    let mut meaning = Vec::new();
    let mut dimension: Vec<Option<String>> = Vec::new();
    for m in catalog.metrics() {
        ids.push(m.id.clone());
        lens.push(m.lens.as_str().to_owned());
        direction.push(
            match m.direction {
                crate::contract::catalog::Direction::Up => "up",
                crate::contract::catalog::Direction::Down => "down",
                crate::contract::catalog::Direction::Band => "band",
            }
            .to_owned(),
        );
        unit.push(m.unit.as_str().to_owned());
        meaning.push(m.meaning.clone());
        dimension.push(m.dimension.clone());
    }
    client
        .execute(
            "INSERT INTO metric_dictionary (metric_id, lens, direction, unit, meaning, dimension)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                  $6::text[])
             ON CONFLICT (metric_id) DO UPDATE SET
                lens = EXCLUDED.lens, direction = EXCLUDED.direction, unit = EXCLUDED.unit,
                meaning = EXCLUDED.meaning, dimension = EXCLUDED.dimension, synced_at = now()
             WHERE (metric_dictionary.lens, metric_dictionary.direction, metric_dictionary.unit,
                    metric_dictionary.meaning, metric_dictionary.dimension)
                   IS DISTINCT FROM
                   (EXCLUDED.lens, EXCLUDED.direction, EXCLUDED.unit, EXCLUDED.meaning,
                    EXCLUDED.dimension)",
            &[&ids, &lens, &direction, &unit, &meaning, &dimension],
        )
        .await?;
    Ok(())
}
