//! Shared test helpers: databases (`db`), fixtures and the catalog.
#![allow(dead_code)]

pub mod amqp;
pub mod db;
pub mod process;
pub mod tls;

use chrono::{DateTime, Utc};
use revenue_os::config::Settings;
use revenue_os::contract::catalog::Catalog;
use revenue_os::contract::{KernelInput, decode_input, parse_timestamp};
use std::path::PathBuf;

pub fn fixture_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

pub fn fixture_bytes(rel: &str) -> Vec<u8> {
    std::fs::read(fixture_path(rel)).unwrap()
}

pub fn fixture(rel: &str) -> KernelInput {
    decode_input(&fixture_bytes(rel)).unwrap()
}

/// The example tenant (valid/demand_bound.json) and the clock its fixtures were built for.
pub const DEMAND_BOUND: &str = "valid/demand_bound.json";
pub const FIXTURE_NOW: &str = "2026-11-26T06:05:00Z";

pub fn fixture_now() -> DateTime<Utc> {
    parse_timestamp(FIXTURE_NOW).unwrap()
}

pub fn catalog() -> Catalog {
    Catalog::embedded().unwrap()
}

/// A fresh database with the example tenant imported, and the document it came from.
pub async fn imported() -> (db::TestDb, KernelInput) {
    let db = db::TestDb::new().await;
    let input = fixture(DEMAND_BOUND);
    db.store().import(&input, &catalog()).await.unwrap();
    (db, input)
}

/// What the store assembles for this document's tenant, trigger and window.
pub async fn assemble(db: &db::TestDb, doc: &KernelInput) -> KernelInput {
    let tenant = uuid::Uuid::parse_str(&doc.tenant_id).unwrap();
    let at = parse_timestamp(&doc.trigger.triggered_at).unwrap();
    let window = revenue_os::contract::DateRange::parse(&doc.analysis_window).unwrap();
    db.store()
        .assemble(tenant, &doc.trigger, at, window)
        .await
        .unwrap()
        .expect("tenant exists")
        .input
}

/// The worker's rules from the default settings.
pub fn rules() -> revenue_os::worker::Rules {
    revenue_os::app::rules(&Settings::load_from(&[]).unwrap(), catalog())
}

/// The input with every list sorted, for order-insensitive comparison.
pub fn normalized(mut input: KernelInput) -> KernelInput {
    fn sort<T: serde::Serialize>(v: &mut [T]) {
        v.sort_by_cached_key(|x| serde_json::to_string(x).unwrap());
    }
    sort(&mut input.metrics);
    sort(&mut input.revenue_events);
    sort(&mut input.campaigns);
    sort(&mut input.opportunities);
    if let Some(r) = input.recent_action_results.as_mut() {
        sort(r);
    }
    input
}

/// Gives `tenant` an approval policy that holds every routing action for a person (the
/// example tenant's cycle then holds its round-robin change).
pub async fn hold_routing(db: &db::TestDb, tenant: uuid::Uuid) {
    let policy = revenue_os::store::ApprovalPolicy {
        require: vec!["routing:*".into()],
        ..Default::default()
    };
    assert!(
        db.store()
            .set_approval_policy(tenant, &policy)
            .await
            .unwrap()
    );
}
