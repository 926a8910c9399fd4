//! Broker errors no retry can heal end the worker with the error instead of looping.

use crate::common::amqp::{TestBroker, settings};
use crate::common::db::TestDb;
use revenue_os::config::Settings;
use revenue_os::contract::catalog::Catalog;
use revenue_os::worker::Failure;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

async fn run_until_it_returns(s: Settings, db: &TestDb) -> Result<(), Failure> {
    let w = revenue_os::app::worker(&s, db.store().clone(), Catalog::embedded().unwrap());
    tokio::time::timeout(Duration::from_secs(30), w.run(CancellationToken::new()))
        .await
        .expect("the worker gives up instead of retrying forever")
}

#[tokio::test]
async fn an_unparsable_amqp_url_is_returned() {
    let db = TestDb::new().await;
    let mut s = settings("t_unused", &db);
    s.amqp.url = "not a url at all".into();
    let err = run_until_it_returns(s, &db).await.unwrap_err();
    assert!(matches!(err, Failure::Broker(_)), "{err}");
    assert!(!err.is_retryable());
    db.cleanup().await;
}

/// `amqp.delivery_limit` changed while the triggers queue exists: the declare gets 406
/// PRECONDITION_FAILED, which only an operator can resolve.
#[tokio::test]
async fn a_clashing_queue_declaration_is_returned() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let mut s = settings(&b.prefix, &db);
    s.amqp.delivery_limit += 1;
    let err = run_until_it_returns(s, &db).await.unwrap_err();
    assert!(err.to_string().contains("PRECONDITION"), "{err}");
    assert!(!err.is_retryable());
    b.cleanup().await;
    db.cleanup().await;
}
