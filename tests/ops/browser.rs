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
    c.find(Locator::Css("form[action='/login'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("header .who form"))
        .await
        .unwrap();
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
    c.find(Locator::Css(&format!("a[href='/tenants/{tenant}']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("tr.pending"))
        .await
        .unwrap();
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
    c.find(Locator::Css("tr.pending form.approve button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let banner = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#decision"))
        .await
        .unwrap();
    let said = banner.text().await.unwrap();
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
    c.find(Locator::Css("tr.pending form.approve button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let said = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#decision"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
