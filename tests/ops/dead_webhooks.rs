//! `/dead-letters` lists the webhook deliveries given up on (issue 23): a delivery driven
//! through the store's own steps (recorded, routed, claimed, dead) shows with its event,
//! subject, tenant, attempts and last error, its address cut to the origin.

use super::console::{get, start_console};
use crate::common::db::TestDb;
use chrono::Utc;
use revenue_os::contract::{Notification, NotifyEvent};
use revenue_os::store::{AttemptEnd, NewDelivery, Router, TenantWebhook};
use std::time::Duration;

/// Every notification to one webhook whose path is its secret.
struct OneHook;

impl Router for OneHook {
    fn route(&self, n: &Notification, _: &[TenantWebhook]) -> Vec<NewDelivery> {
        vec![NewDelivery {
            webhook: "global:ops-slack".into(),
            url: "https://hooks.example.com/services/T000/B000/SECRETPATH".into(),
            body: format!("{{\"subject\":\"{}\"}}", n.subject).into_bytes(),
        }]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letters_page_lists_a_dead_webhook_delivery() {
    let db = TestDb::new().await;
    let tenant = uuid::Uuid::new_v4();
    let store = db.store();
    let held = Notification::new(
        NotifyEvent::TriggerDeadLettered,
        format!("{tenant}:dead-page-1"),
        Some(tenant),
        Utc::now(),
    );
    let untenanted = Notification::new(
        NotifyEvent::TriggerDeadLettered,
        "none:dead-page-2",
        None,
        Utc::now(),
    );
    assert!(store.record_notification(&held).await.unwrap());
    assert!(store.record_notification(&untenanted).await.unwrap());
    assert_eq!(store.route_notifications(&OneHook, 10).await.unwrap(), 2);
    let claimed = store
        .claim_deliveries(10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    // The tenant's one is dead; the other is still being tried (not listed).
    let dead = claimed
        .iter()
        .find(|d| d.tenant_id == Some(tenant))
        .unwrap();
    store
        .finish_delivery(
            dead,
            &AttemptEnd::Dead {
                status: Some(503),
                error: "status 503 after 12 attempts".into(),
            },
        )
        .await
        .unwrap();
    let other = claimed.iter().find(|d| d.tenant_id.is_none()).unwrap();
    store
        .finish_delivery(
            other,
            &AttemptEnd::Retry {
                status: None,
                error: "connect hooks.example.com:443: refused".into(),
                after: Duration::from_secs(60),
            },
        )
        .await
        .unwrap();

    let (port, _console) = start_console(&db, None).await;
    let r = get(port, "/dead-letters", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let section = &r.body[r.body.find("Dead webhook deliveries").expect("the section")..];
    let section = &section[..section.find("</section>").unwrap()];
    assert!(
        section.contains(&format!("{tenant}:dead-page-1")),
        "{section}"
    );
    assert!(section.contains("trigger_dead_lettered"), "{section}");
    assert!(section.contains(&tenant.to_string()), "{section}");
    assert!(section.contains("global:ops-slack"), "{section}");
    assert!(
        section.contains("status 503 after 12 attempts"),
        "{section}"
    );
    assert!(section.contains("<td>503</td>"), "{section}");
    assert!(section.contains("https://hooks.example.com"), "{section}");
    assert!(
        !section.contains("SECRETPATH"),
        "the path stays off the page"
    );
    assert!(
        !section.contains("dead-page-2"),
        "a delivery still tried is not dead"
    );
    assert_eq!(section.matches("<tr><td>").count(), 1, "{section}");
    db.cleanup().await;
}
