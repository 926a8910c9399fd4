//! Deviation detection for the tenants of each metrics load, as a listener of the load
//! follow-up: it runs after the watchdog has seen the new days.

use super::LoadListener;
use crate::broker::Topology;
use crate::config::DeviationSettings;
use crate::contract::Catalog;
use crate::store::{Store, StoreError};
use crate::worker::deviation::detect_for;
use crate::worker::relay::Relay;
use std::sync::Arc;

/// Detection for the tenants of each metrics load, as the load follow-up hands them over;
/// the triggers it queues go out with the next outbox sweep, kicked at once.
pub struct DetectOnLoad {
    pub store: Store,
    pub catalog: Arc<Catalog>,
    pub settings: DeviationSettings,
    pub topology: Topology,
    pub clock: crate::clock::Clock,
    pub relay: Arc<Relay>,
}

impl LoadListener for DetectOnLoad {
    fn loaded<'a>(
        &'a self,
        load: &'a crate::store::LoadFollowUp,
        tenants: &'a [uuid::Uuid],
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<uuid::Uuid>, StoreError>> {
        Box::pin(async move {
            if load.kind != "metrics" {
                return Ok(Vec::new());
            }
            let pass = detect_for(
                &self.store,
                &self.catalog,
                &self.settings,
                &self.topology,
                tenants,
                self.clock.now(),
            )
            .await?;
            // One line per page of the load's tenants.
            tracing::info!(load_id = %load.load_id, tenants = pass.tenants,
                deviations = pass.recorded, triggers = pass.triggers, "deviations after a load");
            if pass.triggers > 0 {
                self.relay.kick();
            }
            Ok(pass.triggered)
        })
    }
}
