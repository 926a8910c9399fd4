//! The `worker` process around the loop: database and migrations when configured, the ops endpoints, the
//! loop itself, and a graceful stop on SIGTERM or SIGINT.

use super::{Worker, ops};
use crate::catalog::Catalog;
use crate::config::Settings;
use crate::error::Error;
use crate::store::Store;
use tokio_util::sync::CancellationToken;

/// Runs until SIGTERM/SIGINT (or `shutdown`), then drains and returns.
pub async fn serve(
    settings: Settings,
    catalog: Catalog,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    if settings.database.migrate_on_start {
        Store::create_database_if_missing(&settings.database).await?;
    }
    let store = Store::connect(&settings.database).await?;
    if settings.database.migrate_on_start {
        store.migrate().await?;
    }
    let worker = Worker::new(settings.clone(), store.clone(), catalog);
    let state = ops::OpsState {
        store,
        status: worker.status(),
        metrics: ops::install_metrics(),
    };
    let (addr, ops_task) = ops::serve(&settings.http.listen, state, shutdown.clone())
        .await
        .map_err(|e| Error::Listen {
            addr: settings.http.listen.clone(),
            source: e,
        })?;
    tracing::info!(%addr, "ops endpoints listening");
    let signals = tokio::spawn(cancel_on_signal(shutdown.clone()));
    let result = worker.run(shutdown.clone()).await;
    shutdown.cancel();
    signals.abort();
    let _ = ops_task.await;
    Ok(result?)
}

/// SIGTERM or SIGINT cancels `token`.
async fn cancel_on_signal(token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
        _ = token.cancelled() => return,
    }
    token.cancel();
}
