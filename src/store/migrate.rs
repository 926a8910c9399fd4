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
    /// catalog; a no-op when up to date.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let catalog = Catalog::embedded().map_err(|e| StoreError::Migrate(e.to_string()))?;
        // A session lock on a pooled connection would outlive a cancelled call and block
        // every later migrate; taken out of the pool, the connection (and the lock) ends
        // when this call does, however it ends.
        let mut obj = deadpool_postgres::Object::take(self.pool.get().await?);
        obj.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        let client: &mut tokio_postgres::Client = &mut obj;
        let applied = embedded::migrations::runner()
            .run_async(client)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()));
        let synced = match applied {
            Ok(_) => sync_in_tx(&mut obj, &catalog).await,
            Err(e) => Err(e),
        };
        obj.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await?;
        synced
    }
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
