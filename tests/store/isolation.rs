//! Two tenants using the same ids never see each other's rows.

use crate::common::db::TestDb;
use crate::common::*;
use revenue_os::contract::*;

fn tenant_doc(tenant: &str, campaign_name: &str, amount: f64) -> KernelInput {
    let mut input = fixture(DEMAND_BOUND);
    input.tenant_id = tenant.into();
    input.campaigns.truncate(1);
    input.campaigns[0].id = "cmp_1".into();
    input.campaigns[0].name = campaign_name.into();
    for e in &mut input.revenue_events {
        e.amount = amount;
    }
    input
}

#[tokio::test]
async fn same_campaign_id_in_two_tenants_stays_apart() {
    let db = TestDb::new().await;
    let cat = catalog();
    let a = tenant_doc("11111111-1111-4111-8111-111111111111", "A's campaign", 10.0);
    let mut b = tenant_doc("22222222-2222-4222-8222-222222222222", "B's campaign", 20.0);
    b.opportunities.truncate(3);
    b.metrics.iter_mut().for_each(|m| m.value += 1.0);
    db.store().import(&a, &cat).await.unwrap();
    db.store().import(&b, &cat).await.unwrap();

    for doc in [&a, &b] {
        let got = assemble(&db, doc).await;
        assert_eq!(got.tenant_id, doc.tenant_id);
        assert_eq!(normalized(got), normalized(doc.clone()));
    }
    let rows = db
        .count("SELECT count(*) FROM campaigns WHERE id = 'cmp_1'")
        .await;
    assert_eq!(rows, 2);
    db.cleanup().await;
}
