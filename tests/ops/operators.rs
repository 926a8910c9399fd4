//! Named operators over HTTP, as the `revenue-os console` binary serves them (issue 23):
//! each signs in with their own token, a viewer cannot decide, an approver sees a held
//! budget raise at a glance and bulk-approves two actions while a third is refused as stale,
//! a two-approver policy releases only at the second person, a revoked operator's session
//! ends; and the CLI's `operator` and several-id `reject`.

use super::console::{csrf_of, get, post, start_console};
use crate::common::amqp::{RunningWorker, TestBroker, WINDOW, eventually, settings};
use crate::common::db::TestDb;
use crate::common::{DEMAND_BOUND, catalog, fixture};
use revenue_os::contract::KernelInput;
use revenue_os::store::{ApprovalPolicy, PendingApproval};
use std::process::Command;
use uuid::Uuid;

pub fn cli(db: &TestDb, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_revenue-os"))
        .args(args)
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    let body = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code(), body)
}

pub fn add(db: &TestDb, name: &str, role: &str) -> String {
    let (code, body) = cli(db, &["operator", "add", name, "--role", role]);
    assert_eq!(code, Some(0), "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// Signs in with a token; the session cookie.
async fn sign_in(port: u16, token: &str) -> String {
    let r = post(port, "/login", None, &format!("token={token}")).await;
    assert_eq!(r.status, 303, "{}", r.body);
    r.header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

pub fn find<'a>(held: &'a [PendingApproval], prefix: &str) -> &'a PendingApproval {
    held.iter()
        .find(|p| p.action_id.starts_with(prefix))
        .unwrap_or_else(|| panic!("no held {prefix}"))
}

fn item(p: &PendingApproval, hash: &str) -> String {
    format!("item={}%3A{}%3A{hash}", p.cycle_id, p.action_id)
}

/// The example tenant with campaigns and CRM actions held for one person and routing for
/// two, its cycle run: the five held actions.
pub async fn five_held(db: &TestDb, b: &TestBroker) -> (Uuid, Vec<PendingApproval>) {
    let tenant = Uuid::new_v4();
    let mut input: KernelInput = fixture(DEMAND_BOUND);
    input.tenant_id = tenant.to_string();
    db.store().import(&input, &catalog()).await.unwrap();
    let policy = ApprovalPolicy {
        require: vec!["campaigns:*".into(), "crm:*".into()],
        two_approvers: vec!["routing:*".into()],
        ..Default::default()
    };
    assert!(
        db.store()
            .set_approval_policy_by(tenant, &policy, Some("ada"))
            .await
            .unwrap()
    );
    let worker = RunningWorker::start(settings(&b.prefix, db), db, Default::default());
    b.trigger(tenant, Some(WINDOW), "m-operators").await;
    let held = eventually(60, "five held actions", || async {
        let p = db.store().pending_approvals(Some(tenant)).await.unwrap();
        (p.len() == 5).then_some(p)
    })
    .await;
    worker.stop().await;
    (tenant, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_operators_roles_bulk_decisions_and_two_approvers() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let (tenant, held) = five_held(&db, &b).await;
    let ana = add(&db, "ana", "approver");
    let bo = add(&db, "bo", "approver");
    let vic = add(&db, "vic", "viewer");
    let (code, _) = cli(&db, &["operator", "add", "ana", "--role", "admin"]);
    assert_eq!(code, Some(1), "a live name is not reused");
    let (_, listed) = cli(&db, &["operator", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    assert!(
        !listed.to_string().contains(&ana),
        "the list never shows a token"
    );

    // No bootstrap token: the named operators make the console writable.
    let (port, _console) = start_console(&db, None).await;
    let r = post(port, "/login", None, "token=ros_not-a-token").await;
    assert_eq!(r.status, 401);

    // A viewer reads, gets no decide forms, and a decide post is refused.
    let vic_cookie = sign_in(port, &vic).await;
    let page = get(port, "/approvals", Some(&vic_cookie)).await;
    assert!(page.body.contains("signed in as vic"), "{}", page.body);
    assert!(page.body.contains("(viewer)"));
    assert!(!page.body.contains("name=\"csrf\""));
    assert!(page.body.contains("your role cannot decide"));
    let raise = find(&held, "campaigns.scale.cmp_002");
    let r = post(
        port,
        "/approvals/approve",
        Some(&vic_cookie),
        &format!(
            "cycle_id={}&action_id={}&hash={}&csrf=x",
            raise.cycle_id, raise.action_id, raise.hash
        ),
    )
    .await;
    // Refused by the role check (a viewer is shown no form, so has no CSRF token to send),
    // not as an expired form; nothing recorded.
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body
            .contains("vic is signed in as a viewer, who may not approve or reject actions."),
        "{}",
        r.body
    );
    assert!(!r.body.contains("CSRF"), "{}", r.body);
    let r = post(
        port,
        "/approvals/bulk",
        Some(&vic_cookie),
        &format!(
            "decision=approve&reason=x&item={}:{}:{}&csrf=x",
            raise.cycle_id, raise.action_id, raise.hash
        ),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body.contains("who may not approve or reject actions"),
        "{}",
        r.body
    );
    assert_eq!(
        db.count("SELECT count(*) FROM approval_decisions WHERE decided_by = 'vic'")
            .await,
        0
    );

    // An approver sees the budget raise at a glance.
    let ana_cookie = sign_in(port, &ana).await;
    let page = get(port, "/approvals", Some(&ana_cookie)).await;
    assert!(page.body.contains("signed in as ana"));
    let row_at = page
        .body
        .find(&format!("data-action=\"{}\"", raise.action_id))
        .unwrap();
    let row = &page.body[row_at..row_at + page.body[row_at..].find("</tr>").unwrap()];
    for needle in [
        "budget_daily",
        "517.85",
        "621.41",
        "+20.0%",
        "+103.56 budget_daily/day",
        "spend headroom:",
        "cac_blended",
        "from the threshold",
        ".actions.campaigns",
        &format!("scale.{tenant}"),
    ] {
        assert!(row.contains(needle), "{needle} in {row}");
    }

    // Bulk: two approved, a third refused as stale; each said.
    let csrf = csrf_of(&page.body);
    let pause = find(&held, "campaigns.pause.cmp_007");
    let other = find(&held, "campaigns.scale.cmp_006");
    let form = format!(
        "csrf={csrf}&reason=&decision=approve&{}&{}&{}",
        item(raise, &raise.hash),
        item(pause, &pause.hash),
        item(other, &"0".repeat(64)),
    );
    let r = post(port, "/approvals/bulk", Some(&ana_cookie), &form).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("2 of 3 approved; 1 refused."), "{}", r.body);
    assert!(r.body.contains("stale hash"), "{}", r.body);
    let released = |id: &str| {
        format!(
            "SELECT count(*) FROM outbox WHERE message_id = '{}:{id}'",
            raise.cycle_id
        )
    };
    assert_eq!(db.count(&released(&raise.action_id)).await, 1);
    assert_eq!(db.count(&released(&pause.action_id)).await, 1);
    assert_eq!(db.count(&released(&other.action_id)).await, 0);

    // Two approvers: the first approval holds, the same person again is refused, the
    // second person releases.
    let routing = find(&held, "routing.");
    let decide = |csrf: &str| {
        format!(
            "cycle_id={}&action_id={}&hash={}&csrf={csrf}",
            routing.cycle_id, routing.action_id, routing.hash
        )
    };
    let r = post(
        port,
        "/approvals/approve",
        Some(&ana_cookie),
        &decide(&csrf),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("waits for another approver"), "{}", r.body);
    assert!(r.body.contains("1 of 2 approvals (ana)"), "{}", r.body);
    assert_eq!(db.count(&released(&routing.action_id)).await, 0);
    let r = post(
        port,
        "/approvals/approve",
        Some(&ana_cookie),
        &decide(&csrf),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let bo_cookie = sign_in(port, &bo).await;
    let bo_csrf = csrf_of(&get(port, "/approvals", Some(&bo_cookie)).await.body);
    let r = post(
        port,
        "/approvals/approve",
        Some(&bo_cookie),
        &decide(&bo_csrf),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("on its way"), "{}", r.body);
    assert_eq!(db.count(&released(&routing.action_id)).await, 1);

    // The tenant page says what is held, for how many people, and who set it.
    let page = get(port, &format!("/tenants/{tenant}"), None).await;
    assert!(
        page.body
            .contains("Held for two distinct approvers: routing:*.")
    );
    assert!(
        page.body
            .contains("Held for one person: campaigns:*, crm:*.")
    );
    assert!(page.body.contains("Set by ada at "));

    // The CLI takes several ids; each item says what happened, exit 2 when one is refused.
    let crm = find(&held, "crm.");
    let (code, body) = cli(
        &db,
        &[
            "reject",
            &format!("{}:{}", crm.cycle_id, crm.action_id),
            &format!("{}:{}", raise.cycle_id, raise.action_id),
            "--by",
            "ana",
            "--reason",
            "not now",
        ],
    );
    assert_eq!(code, Some(2), "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items[0]["outcome"], "rejected", "{body}");
    assert!(
        items[1]["outcome"]
            .as_str()
            .unwrap()
            .contains("not waiting"),
        "{body}"
    );

    // Revoked: the token stops working and the live session ends at its next write.
    let (code, _) = cli(&db, &["operator", "revoke", "bo"]);
    assert_eq!(code, Some(0));
    let r = post(
        port,
        "/approvals/approve",
        Some(&bo_cookie),
        &decide(&bo_csrf),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = post(port, "/login", None, &format!("token={bo}")).await;
    assert_eq!(r.status, 401);
    b.cleanup().await;
}
