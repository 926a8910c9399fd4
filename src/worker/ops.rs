//! Ops endpoints on `http.listen`: `/healthz` (not wedged), `/readyz` (database and broker
//! answered lately), `/metrics` (Prometheus text). Health and readiness answer from the
//! state the worker keeps (`WorkerStatus`), never by waiting on a dependency.

use super::WorkerStatus;
use crate::store::Store;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once; later calls return the same handle
/// (None if another recorder was installed first).
pub fn install_metrics() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ];
            // Batch sizes are counts, not seconds.
            let sizes = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
            PrometheusBuilder::new()
                .set_buckets(&buckets)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(crate::telemetry::metrics::CYCLE_BATCH.to_owned()),
                        &sizes,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(crate::telemetry::metrics::MARK_BATCH.to_owned()),
                        &sizes,
                    )
                })
                .and_then(|b| b.install_recorder())
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()
                .inspect(|_| crate::telemetry::metrics::describe())
        })
        .clone()
}

/// The recorder's handle if `install_metrics` installed it, without installing it.
pub fn installed_metrics() -> Option<PrometheusHandle> {
    HANDLE.get().cloned().flatten()
}

#[derive(Clone)]
pub struct OpsState {
    pub store: Store,
    pub status: Arc<WorkerStatus>,
    pub metrics: Option<PrometheusHandle>,
    /// `worker.wedged_after_secs`.
    pub wedged_after: Duration,
}

/// Liveness: the consume loop, the relay and running triggers are moving.
pub const HEALTHZ: &str = "/healthz";
/// Readiness: the database and the broker answered within the last few seconds.
pub const READYZ: &str = "/readyz";
/// Prometheus text format.
pub const METRICS: &str = "/metrics";

pub fn router(state: OpsState) -> Router {
    Router::new()
        .route(HEALTHZ, get(healthz))
        .route(READYZ, get(readyz))
        .route(METRICS, get(metrics))
        .with_state(state)
}

async fn readyz(State(s): State<OpsState>) -> (StatusCode, String) {
    let (ready, mut body) = s.status.snapshot().readiness();
    body.push_str(&super::health::primary_line(s.store.primary().as_deref()));
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, body)
}

async fn healthz(State(s): State<OpsState>) -> (StatusCode, String) {
    match s.status.snapshot().liveness(s.wedged_after) {
        Ok(()) => (StatusCode::OK, "ok\n".into()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("wedged: {why}\n")),
    }
}

async fn metrics(State(s): State<OpsState>) -> (StatusCode, String) {
    match &s.metrics {
        Some(h) => {
            let pool = s.store.pool().status();
            crate::telemetry::metrics::db_pool(
                pool.size,
                pool.available,
                pool.max_size,
                pool.waiting,
            );
            // The database-backed gauges are their periodic services' (`action_gauge`,
            // `overdue_gauge`): a scrape never waits on the database.
            h.run_upkeep();
            (StatusCode::OK, h.render())
        }
        None => (
            StatusCode::NOT_FOUND,
            "metrics recorder not installed\n".into(),
        ),
    }
}

/// Serves until `shutdown`. Returns the bound address (useful with port 0).
pub async fn serve(
    listen: &str,
    state: OpsState,
    shutdown: CancellationToken,
) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = router(state);
    let task = tokio::spawn(async move {
        let res = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "ops server stopped");
        }
    });
    Ok((addr, task))
}
