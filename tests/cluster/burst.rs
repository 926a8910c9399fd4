//! Publishing a burst of triggers as a client of a cluster would (a nacked or unconfirmed
//! trigger is sent again with the same message id, on a new connection if need be), and
//! timing how long the worker takes to make progress again after a fault.

use crate::common::amqp::{WINDOW, eventually, trigger_body};
use crate::common::db::TestDb;
use lapin::Connection;
use revenue_os::broker::{self, ConfirmedPublisher, Outgoing, Topology};
use revenue_os::config::AmqpSettings;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A trigger publisher on a list of broker nodes.
pub struct Publisher {
    amqp: AmqpSettings,
    topology: Topology,
    session: Option<(Connection, ConfirmedPublisher)>,
    /// Publishes that had to be repeated.
    pub retried: usize,
}

impl Publisher {
    pub fn new(amqp: AmqpSettings, topology: Topology) -> Publisher {
        Publisher {
            amqp,
            topology,
            session: None,
            retried: 0,
        }
    }

    /// Publishes until the broker confirms it (120 s at most: a quorum queue whose leader died
    /// with its node elects another first, which a machine busy with other tests slows).
    pub async fn send(&mut self, tenant: Uuid, message_id: &str) {
        let msg = Outgoing {
            exchange: self.topology.triggers_exchange.clone(),
            routing_key: format!("manual.{tenant}"),
            message_id: message_id.to_owned(),
            body: serde_json::to_vec(&trigger_body(tenant, Some(WINDOW))).expect("json"),
            mandatory: true,
            persistent: true,
            ..Default::default()
        };
        let until = Instant::now() + Duration::from_secs(120);
        let mut last_error = String::from("no session");
        let mut failures = 0u32;
        loop {
            if self.session.is_none() {
                let name = broker::connection_name(&self.topology.prefix, "test-publisher");
                if let Ok(conn) = broker::connect(&self.amqp, &name).await
                    && let Ok(p) = ConfirmedPublisher::open(&conn).await
                {
                    self.session = Some((conn, p));
                }
            }
            if let Some((_, p)) = &self.session {
                match p.publish(&msg).await {
                    Ok(()) => return,
                    // Nacked again and again on a usable session: try another node, as a
                    // client of a cluster would.
                    Err(e) if p.is_usable() && failures % 10 != 9 => last_error = e.to_string(),
                    Err(e) => {
                        last_error = e.to_string();
                        self.session = None;
                    }
                }
                failures += 1;
            }
            assert!(
                Instant::now() < until,
                "trigger {message_id} not confirmed in 120 s; last error: {last_error}"
            );
            self.retried += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// One trigger per tenant per round, `ha-<round>-<tenant>`; returns the ids.
    pub async fn rounds(
        &mut self,
        tenants: &[Uuid],
        rounds: std::ops::Range<usize>,
    ) -> Vec<String> {
        let mut ids = vec![];
        for round in rounds {
            for t in tenants {
                let id = format!("ha-{round}-{t}");
                self.send(*t, &id).await;
                ids.push(id);
            }
        }
        ids
    }

    pub async fn close(self) {
        if let Some((conn, p)) = self.session {
            p.close().await;
            let _ = conn.close(200, "done".into()).await;
        }
    }
}

pub async fn cycles(db: &TestDb) -> i64 {
    db.count("SELECT count(*) FROM cycles").await
}

/// Waits until at least `n` cycles exist.
pub async fn wait_cycles(db: &TestDb, n: i64, secs: u64, what: &str) {
    eventually(secs, what, || async {
        (cycles(db).await >= n).then_some(())
    })
    .await;
}

/// Seconds from `since` until the cycle count passes `at_fault` (work resumed), polling a
/// database that may be failing over (an error counts as no progress yet).
pub async fn resumed_after<F, Fut>(mut count: F, at_fault: i64, since: Instant, secs: u64) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<i64>>,
{
    let until = since + Duration::from_secs(secs);
    loop {
        if let Some(n) = count().await
            && n > at_fault
        {
            return since.elapsed().as_secs_f64();
        }
        assert!(
            Instant::now() < until,
            "no cycle committed within {secs} s of the fault"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
