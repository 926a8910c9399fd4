//! The operator console over HTTP, as the `revenue-os console` binary serves it: writes need
//! a signed-in session and its CSRF token, ids in paths are UUIDs, outside text is escaped,
//! a console without a token is read-only and will not listen on an open address; and
//! `revenue-os report` prints the same tenant view.

use crate::common::amqp::{RunningWorker, TestBroker, WINDOW, eventually, settings};
use crate::common::db::TestDb;
use crate::common::process::{KillOnDrop, Reply, console_command, free_port, http};
use crate::common::{DEMAND_BOUND, catalog, fixture, hold_routing};
use revenue_os::contract::KernelInput;
use revenue_os::store::PendingApproval;
use uuid::Uuid;

pub const XSS: &str = "<script>alert(1)</script>";
pub const TOKEN: &str = "console-test-token-5f1c";

/// The example tenant, its first campaign named `XSS`, holding every routing action for a
/// person.
pub async fn import_held_tenant(db: &TestDb) -> Uuid {
    let tenant = Uuid::new_v4();
    let mut input: KernelInput = fixture(DEMAND_BOUND);
    input.tenant_id = tenant.to_string();
    input.campaigns[0].name = format!("Q4 {XSS} brand");
    db.store().import(&input, &catalog()).await.unwrap();
    hold_routing(db, tenant).await;
    tenant
}

/// Waits for the tenant's held action.
pub async fn pending_of(db: &TestDb, tenant: Uuid) -> PendingApproval {
    eventually(60, "an action held for approval", || async {
        db.store()
            .pending_approvals(Some(tenant))
            .await
            .unwrap()
            .into_iter()
            .next()
    })
    .await
}

/// Starts `revenue-os console` and waits until it answers.
pub async fn start_console(db: &TestDb, token: Option<&str>) -> (u16, KillOnDrop) {
    let port = free_port();
    let child = console_command(db, &format!("127.0.0.1:{port}"), token)
        .spawn()
        .unwrap();
    let guard = KillOnDrop(Some(child));
    eventually(30, "console up", || async {
        http(port, "GET", "/", &[], "").await.map(|_| ())
    })
    .await;
    (port, guard)
}

pub async fn get(port: u16, path: &str, cookie: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = cookie.map(|c| ("Cookie", c)).into_iter().collect();
    http(port, "GET", path, &headers, "").await.unwrap()
}

pub async fn post(port: u16, path: &str, cookie: Option<&str>, form: &str) -> Reply {
    let headers: Vec<(&str, &str)> = cookie.map(|c| ("Cookie", c)).into_iter().collect();
    http(port, "POST", path, &headers, form).await.unwrap()
}

/// `name="csrf" value="…"` from a page.
pub fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

fn form(p: &PendingApproval, hash: &str, csrf: &str, extra: &str) -> String {
    format!(
        "cycle_id={}&action_id={}&hash={hash}&csrf={csrf}{extra}",
        p.cycle_id, p.action_id
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_a_session_and_its_csrf_token_and_pages_escape_and_parse_ids() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let tenant = import_held_tenant(&db).await;
    let worker = RunningWorker::start(settings(&b.prefix, &db), &db, Default::default());
    b.trigger(tenant, Some(WINDOW), "m-console-http").await;
    let held = pending_of(&db, tenant).await;
    worker.stop().await;
    let (port, _console) = start_console(&db, Some(TOKEN)).await;

    // Reads need nothing; a write without a session is 401 and changes nothing.
    let page = get(port, "/approvals", None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&held.action_id));
    assert!(
        !page.body.contains("name=\"csrf\""),
        "no forms before sign-in"
    );
    let r = post(
        port,
        "/approvals/approve",
        None,
        &form(&held, &held.hash, "x", ""),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);

    // Signing in: a wrong token is refused; the right one sets a session cookie that is
    // HttpOnly, SameSite=Strict, Path=/, and is not the token.
    let r = post(port, "/login", None, "operator=ana&token=wrong").await;
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());
    let r = post(port, "/login", None, &format!("operator=ana&token={TOKEN}")).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let set = r.header("set-cookie").unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains(TOKEN), "{set}");
    let cookie = set.split(';').next().unwrap().to_owned();

    // A signed-in write with a wrong CSRF token is 403, and the action still waits.
    let page = get(port, "/approvals", Some(&cookie)).await;
    assert!(page.body.contains("signed in as ana"));
    let csrf = csrf_of(&page.body);
    let bad = "0".repeat(csrf.len());
    let r = post(
        port,
        "/approvals/approve",
        Some(&cookie),
        &form(&held, &held.hash, &bad, ""),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = post(
        port,
        "/approvals/approve",
        Some(&cookie),
        &form(&held, &held.hash, "", ""),
    )
    .await;
    assert_eq!(r.status, 403);
    // Another session's token is not this one's.
    let other = post(port, "/login", None, &format!("operator=bo&token={TOKEN}")).await;
    let other_cookie = other
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    let r = post(
        port,
        "/approvals/approve",
        Some(other_cookie),
        &form(&held, &held.hash, &csrf, ""),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        db.store()
            .pending_approvals(Some(tenant))
            .await
            .unwrap()
            .len(),
        1
    );

    // With its CSRF token the session decides: a stale hash is refused (409), a rejection
    // with a reason is recorded by the signed-in name.
    let r = post(
        port,
        "/approvals/reject",
        Some(&cookie),
        &form(&held, &"f".repeat(64), &csrf, "&reason=too+early"),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("stale hash"));
    let r = post(
        port,
        "/approvals/reject",
        Some(&cookie),
        &form(&held, &held.hash, &csrf, "&reason=too+early"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Rejected"));
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT decided_by, reason FROM approval_decisions
             WHERE cycle_id = $1 AND action_id = $2 AND decision = 'rejected'",
            &[&held.cycle_id, &held.action_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "ana");
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("too early")
    );

    // Ids in paths are UUIDs: anything else is 400, an unknown one 404.
    for path in [
        "/tenants/not-a-uuid",
        "/tenants/1%27%20OR%201=1",
        "/cycles/42",
    ] {
        assert_eq!(get(port, path, None).await.status, 400, "{path}");
    }
    let unknown = format!("/tenants/{}", Uuid::new_v4());
    assert_eq!(get(port, &unknown, None).await.status, 404);

    // A deviation of the priority metric on its newest day, and a quarantined load's reject.
    let client = db.client().await;
    client
        .batch_execute(&format!(
            "INSERT INTO deviations (tenant_id, metric_id, day, observed, expected, band_lower,
                 band_upper, k, method, days_used, log_scale, severity, harmful,
                 trigger_message_id)
             SELECT s.tenant_id, s.metric_id, s.date, s.value, s.value * 1.6, s.value * 1.3,
                    s.value * 1.9, 3.5, 'mstl_ets', 28, false, 4.2, true, 'deviation:x'
             FROM metric_snapshots s JOIN cycles c USING (tenant_id)
             WHERE s.tenant_id = '{tenant}' AND s.metric_id = c.priority_metric
               AND s.dimension = '{{}}'
             ORDER BY s.date DESC LIMIT 1;
             INSERT INTO loads (load_id, kind, source, rows, inserted, rejected, tenants,
                                started_at, committed_at)
             VALUES ('load-q-1', 'campaigns', 'crm/campaigns.csv', 3, 2, 1,
                     ARRAY['{tenant}'::uuid], now(), now());
             INSERT INTO ingest_rejects (load_id, line, tenant_id, problem, raw)
             VALUES ('load-q-1', 3, '{tenant}', 'line 3: budget_total: -5 must be >= 0',
                     '{tenant},c9,x,running,pipeline,-5,0,2026-11-01,');"
        ))
        .await
        .unwrap();

    // Outside text is escaped by the template engine.
    let page = get(port, &format!("/tenants/{tenant}"), None).await;
    assert!(
        page.body.contains(r#"class="mark harmful""#),
        "a deviation mark on the chart"
    );
    assert!(page.body.contains("-38%"), "the deviation's size");
    assert!(page.body.contains("triggered a cycle"));
    assert!(
        page.body.contains("crm/campaigns.csv"),
        "the tenant's last loads"
    );
    assert!(
        page.body.contains("budget_total: -5 must be &gt;= 0")
            || page.body.contains("budget_total: -5 must be &#62;= 0"),
        "its rejects"
    );
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("Q4 &#60;script&#62;alert(1)&#60;/script&#62; brand")
            || page
                .body
                .contains("Q4 &lt;script&gt;alert(1)&lt;/script&gt; brand")
    );
    assert!(!page.body.contains(XSS));
    assert!(page.body.contains("<svg"), "the chart");
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");

    // The cycle page carries the stored trace.
    let page = get(port, &format!("/cycles/{}", held.cycle_id), None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("== candidates"), "{}", page.body);

    // `report` is the same view for a terminal.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_revenue-os"))
        .args(["report", "--tenant", &tenant.to_string()])
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("binding constraint"), "{text}");
    assert!(text.contains("demand"), "{text}");
    assert!(
        text.contains(&format!("{}  [rejected]", held.action_id)),
        "{text}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_revenue-os"))
        .args(["report", "--tenant", &Uuid::new_v4().to_string()])
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    b.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_console_is_read_only_and_stays_on_loopback() {
    let db = TestDb::new().await;
    let (port, _console) = start_console(&db, None).await;
    let page = get(port, "/login", None).await;
    assert!(page.body.contains("read-only"));
    let r = post(port, "/login", None, "operator=ana&token=anything").await;
    assert_eq!(r.status, 403);
    let r = post(
        port,
        "/approvals/approve",
        None,
        &format!("cycle_id={}&action_id=a&hash=h&csrf=c", Uuid::new_v4()),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(get(port, "/", None).await.status, 200);

    // An open address without a token: a clear error at start, exit 1.
    let out = console_command(&db, &format!("0.0.0.0:{}", free_port()), None)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a loopback address") && err.contains("REVENUE_OS_CONSOLE_TOKEN"),
        "{err}"
    );
}
