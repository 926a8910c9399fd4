//! The console in a real browser (Debian's `chromium` over `chromedriver`, WebDriver): an
//! operator signs in, opens the overview and the tenant page, is refused an approval of an
//! action that changed since the page showed it, approves it once reviewed, and the action
//! reaches its executor's exchange through the outbox. Leaves a screenshot of the tenant
//! page in the target directory (the CI artifact); with `UPDATE_CONSOLE_SCREENSHOT=1`, also
//! in `docs/console-tenant.png` (the README's).
//!
//! Skipped, with a message, only when the binaries are not installed (`.ci/run` installs
//! them).

use super::console::{TOKEN, XSS, import_held_tenant, pending_of};
use crate::common::amqp::{TestBroker, WINDOW, eventually, wait_for_total};
use crate::common::db::TestDb;
use crate::common::process::{KillOnDrop, free_port, get, sigterm_and_wait, worker_command};
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long a page may take to show what the test waits for.
const WAIT: Duration = Duration::from_secs(20);

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

async fn browser(driver_port: u16, chromium: &std::path::Path) -> Client {
    let caps = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--hide-scrollbars", "--window-size=1280,1000"],
        }
    });
    let caps = caps.as_object().unwrap().clone();
    let url = format!("http://127.0.0.1:{driver_port}");
    let mut last = None;
    for _ in 0..50 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => return c,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("chromedriver on {url}: {last:?}");
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Clicks `click`, then waits for `then` on the page it leads to: first for the page it was
/// on to go (its `then` may be there too), so nothing is read from a page being replaced.
async fn click_then(c: &Client, click: &str, then: &str) -> fantoccini::elements::Element {
    let old = c.find(Locator::Css("html")).await.unwrap();
    c.find(Locator::Css(click))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let gone = std::time::Instant::now() + WAIT;
    while old.tag_name().await.is_ok() && std::time::Instant::now() < gone {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(then))
        .await
        .unwrap()
}

/// Clicks the first held action's Approve button; the decision's banner.
async fn approve_first(c: &Client) -> String {
    click_then(c, "tr.pending form.approve button", "#decision")
        .await
        .text()
        .await
        .unwrap()
}

/// The whole page in one image: the window as tall as the document.
async fn screenshot(c: &Client) -> Vec<u8> {
    let h = c
        .execute("return document.documentElement.scrollHeight;", vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(1600);
    c.set_window_size(1280, u32::try_from(h.clamp(800, 6000)).unwrap() + 40)
        .await
        .unwrap();
    c.screenshot().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_approves_a_held_action_in_a_real_browser() {
    let (Some(driver), Some(chromium)) = (which("chromedriver"), which("chromium")) else {
        println!(
            "SKIPPED an_operator_approves_a_held_action_in_a_real_browser: chromium and \
             chromedriver are not installed (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let tenant = import_held_tenant(&db).await;
    let actions = b.collect_actions().await;
    // A stand-in executor reports each action acknowledged and applied, as a real one would:
    // the tenant page then shows the lifecycle.
    let executor = revenue_os::demo::standin::StandIn::start(
        &crate::common::amqp::settings(&b.prefix, &db).amqp,
        &b.topology,
        revenue_os::clock::Clock::system(),
    )
    .await
    .unwrap();

    // The real worker process, with its console writable on a port of its own.
    let (ops_port, console_port) = (free_port(), free_port());
    let worker = worker_command(&b.prefix, &db, ops_port)
        .env(
            "REVENUE_OS__CONSOLE__LISTEN",
            format!("127.0.0.1:{console_port}"),
        )
        .env("REVENUE_OS_CONSOLE_TOKEN", TOKEN)
        .spawn()
        .unwrap();
    let mut worker = KillOnDrop(Some(worker));
    eventually(30, "worker ready", || async {
        matches!(get(ops_port, "/readyz").await, Some((200, _))).then_some(())
    })
    .await;
    b.trigger(tenant, Some(WINDOW), "m-console-browser").await;
    let held = pending_of(&db, tenant).await;
    // Every action but the held one reaches the broker.
    let out = db
        .count(&format!(
            "SELECT count(*) FROM actions WHERE cycle_id = '{}'",
            held.cycle_id
        ))
        .await as usize;
    wait_for_total(&actions, out - 1, 30, "the actions not held").await;

    let driver_port = free_port();
    let chromedriver = Command::new(driver)
        .arg(format!("--port={driver_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _chromedriver = KillOnDrop(Some(chromedriver));
    let c = browser(driver_port, &chromium).await;
    let base = format!("http://127.0.0.1:{console_port}");

    // Sign in.
    c.goto(&format!("{base}/login")).await.unwrap();
    c.find(Locator::Css("input[name=operator]"))
        .await
        .unwrap()
        .send_keys("ana")
        .await
        .unwrap();
    c.find(Locator::Css("input[name=token]"))
        .await
        .unwrap()
        .send_keys(TOKEN)
        .await
        .unwrap();
    click_then(&c, "form[action='/login'] button", "header .who form").await;
    assert!(
        text_of(&c, "header .who")
            .await
            .contains("signed in as ana")
    );

    // The overview lists the tenant with one action waiting; its link opens the tenant page.
    c.goto(&format!("{base}/")).await.unwrap();
    let row = text_of(&c, "main table").await;
    assert!(
        row.contains(&tenant.to_string()) && row.contains("demand"),
        "{row}"
    );
    click_then(&c, &format!("a[href='/tenants/{tenant}']"), "tr.pending").await;
    let page = c.source().await.unwrap();
    assert!(!page.contains(XSS), "outside text is escaped");
    assert!(
        text_of(&c, "main")
            .await
            .contains(&format!("Q4 {XSS} brand"))
    );

    // The action changes after the page showed it: approving what was shown is refused.
    let client = db.client().await;
    client
        .execute(
            "UPDATE actions SET action = jsonb_set(action, '{notes_for_humans}',
                 to_jsonb('edited after review'::text))
             WHERE cycle_id = $1 AND action_id = $2",
            &[&held.cycle_id, &held.action_id],
        )
        .await
        .unwrap();
    let said = approve_first(&c).await;
    assert!(said.contains("stale hash"), "{said}");
    let message_id = format!("{}:{}", held.cycle_id, held.action_id);
    let outbox_sql = format!("SELECT count(*) FROM outbox WHERE message_id = '{message_id}'");
    assert_eq!(db.count(&outbox_sql).await, 0, "nothing released");

    // Reviewed again (the page now shows the edited action): approved, released once.
    c.goto(&format!("{base}/approvals")).await.unwrap();
    assert!(
        text_of(&c, "tr.pending")
            .await
            .contains("edited after review")
    );
    let said = approve_first(&c).await;
    assert!(said.starts_with("Approved"), "{said}");
    assert_eq!(db.count(&outbox_sql).await, 1);
    wait_for_total(&actions, out, 30, "the approved action at its exchange").await;
    let routing = actions
        .iter()
        .find(|(ex, _)| ex.ends_with(".actions.routing"))
        .unwrap()
        .1
        .snapshot();
    assert!(
        routing
            .iter()
            .any(|m| m.message_id.as_deref() == Some(message_id.as_str())),
        "{routing:?}"
    );
    let decided_by: String = client
        .query_one(
            "SELECT decided_by FROM approval_decisions
             WHERE cycle_id = $1 AND action_id = $2 AND decision = 'approved'",
            &[&held.cycle_id, &held.action_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(decided_by, "ana");

    // The tenant page once the executor reported, for people (and the README).
    eventually(30, "the approved action applied", || async {
        (db.count(&format!(
            "SELECT count(*) FROM actions WHERE cycle_id = '{}' AND status = 'applied'",
            held.cycle_id
        ))
        .await as usize
            == out)
            .then_some(())
    })
    .await;
    c.goto(&format!("{base}/tenants/{tenant}")).await.unwrap();
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("svg polyline.series"))
        .await
        .unwrap();
    let png = screenshot(&c).await;
    assert!(png.starts_with(b"\x89PNG"));
    let artifact = target_dir().join("console-tenant.png");
    std::fs::create_dir_all(artifact.parent().unwrap()).unwrap();
    std::fs::write(&artifact, &png).unwrap();
    println!("screenshot: {}", artifact.display());
    if std::env::var_os("UPDATE_CONSOLE_SCREENSHOT").is_some() {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/console-tenant.png");
        std::fs::write(&docs, &png).unwrap();
        println!("screenshot: {}", docs.display());
    }
    c.close().await.unwrap();
    executor.stop().await.unwrap();
    let stopped = sigterm_and_wait(worker.0.take().unwrap()).await;
    assert!(stopped.success(), "{stopped:?}");
    b.cleanup().await;
}

/// Signs in with `token` (and `name`, for the bootstrap token only) on a fresh login page.
async fn sign_in_as(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    c.find(Locator::Css("input[name=token]"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    click_then(c, "form[action='/login'] button", "header .who form").await;
}

async fn sign_out(c: &Client) {
    click_then(c, "header .who form button", "header .who a[href='/login']").await;
}

fn row_css(action_id: &str) -> String {
    format!("tr.pending[data-action='{action_id}']")
}

/// Named operators in the browser (issue 23): a viewer gets no decide forms; an approver
/// signs in with their own token, sees the held budget raise before/after with the spend
/// headroom, bulk-approves two actions while a third is refused as stale; a two-approver
/// action is released only at the second person. Leaves `console-approvals.png` (and, with
/// `UPDATE_CONSOLE_SCREENSHOT=1`, `docs/console-approvals.png`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_operators_decide_in_a_real_browser() {
    use super::operators::{add, find, five_held};
    let (Some(driver), Some(chromium)) = (which("chromedriver"), which("chromium")) else {
        println!("SKIPPED named_operators_decide_in_a_real_browser: no chromium/chromedriver");
        return;
    };
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let (tenant, held) = five_held(&db, &b).await;
    let ana = add(&db, "ana", "approver");
    let bo = add(&db, "bo", "approver");
    let vic = add(&db, "vic", "viewer");
    let (console_port, _console) = super::console::start_console(&db, None).await;
    let base = format!("http://127.0.0.1:{console_port}");

    let driver_port = free_port();
    let chromedriver = Command::new(driver)
        .arg(format!("--port={driver_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _chromedriver = KillOnDrop(Some(chromedriver));
    let c = browser(driver_port, &chromium).await;

    // A viewer reads the queue but gets no forms.
    sign_in_as(&c, &base, &vic).await;
    assert!(
        text_of(&c, "header .who")
            .await
            .contains("signed in as vic (viewer)")
    );
    c.goto(&format!("{base}/approvals")).await.unwrap();
    assert!(c.find(Locator::Css("form.approve")).await.is_err());
    assert!(
        text_of(&c, "tr.pending")
            .await
            .contains("your role cannot decide")
    );
    sign_out(&c).await;

    // An approver, with their own token, sees the raise at a glance.
    sign_in_as(&c, &base, &ana).await;
    assert!(
        text_of(&c, "header .who")
            .await
            .contains("signed in as ana (approver)")
    );
    c.goto(&format!("{base}/approvals")).await.unwrap();
    let raise = find(&held, "campaigns.scale.cmp_002");
    let glance = text_of(&c, &format!("{} td.glance", row_css(&raise.action_id))).await;
    for needle in ["517.85", "621.41", "+20.0%", "spend headroom:", "before →"] {
        assert!(glance.contains(needle), "{needle} in {glance}");
    }
    let png = screenshot(&c).await;
    let artifact = target_dir().join("console-approvals.png");
    std::fs::write(&artifact, &png).unwrap();
    if std::env::var_os("UPDATE_CONSOLE_SCREENSHOT").is_some() {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/console-approvals.png");
        std::fs::write(&docs, &png).unwrap();
    }

    // Bulk: select three; one changes before the click, so it is refused as stale.
    let pause = find(&held, "campaigns.pause.cmp_007");
    let other = find(&held, "campaigns.scale.cmp_006");
    for p in [raise, pause, other] {
        c.find(Locator::Css(&format!(
            "{} input.pick",
            row_css(&p.action_id)
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    }
    db.client()
        .await
        .execute(
            "UPDATE actions SET action = jsonb_set(action, '{notes_for_humans}',
                 to_jsonb('edited after review'::text))
             WHERE cycle_id = $1 AND action_id = $2",
            &[&other.cycle_id, &other.action_id],
        )
        .await
        .unwrap();
    let said = click_then(&c, "button.bulk-approve", "#decision")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(said, "2 of 3 approved; 1 refused.");
    let results = text_of(&c, "#bulk-results").await;
    assert!(results.contains("stale hash"), "{results}");
    let released = |id: &str| {
        format!(
            "SELECT count(*) FROM outbox WHERE message_id = '{}:{id}'",
            raise.cycle_id
        )
    };
    assert_eq!(db.count(&released(&raise.action_id)).await, 1);
    assert_eq!(db.count(&released(&pause.action_id)).await, 1);
    assert_eq!(db.count(&released(&other.action_id)).await, 0);

    // Two approvers: ana's approval holds it; bo's releases it.
    let routing = find(&held, "routing.");
    let approve_routing = format!("{} form.approve button", row_css(&routing.action_id));
    let said = click_then(&c, &approve_routing, "#decision")
        .await
        .text()
        .await
        .unwrap();
    assert!(said.contains("waits for another approver"), "{said}");
    assert_eq!(db.count(&released(&routing.action_id)).await, 0);
    sign_out(&c).await;
    sign_in_as(&c, &base, &bo).await;
    c.goto(&format!("{base}/approvals")).await.unwrap();
    assert!(
        text_of(&c, &row_css(&routing.action_id))
            .await
            .contains("1 of 2 approvals (ana)")
    );
    let said = click_then(&c, &approve_routing, "#decision")
        .await
        .text()
        .await
        .unwrap();
    assert!(said.starts_with("Approved"), "{said}");
    assert_eq!(db.count(&released(&routing.action_id)).await, 1);

    // The tenant page says what waits for whom, and who set it.
    c.goto(&format!("{base}/tenants/{tenant}")).await.unwrap();
    let policy = text_of(&c, "#policy").await;
    assert!(
        policy.contains("two distinct approvers: routing:*"),
        "{policy}"
    );
    assert!(policy.contains("Set by ada"), "{policy}");
    c.close().await.unwrap();
    b.cleanup().await;
}
