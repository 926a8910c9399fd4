//! The README's first command, `revenue-os demo`, end to end on its own database and prefix.

use crate::common::amqp::TestBroker;
use crate::common::db::TestDb;
use revenue_os::contract::catalog::Catalog;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_turns_a_trigger_into_published_guarded_actions() {
    let db = TestDb::unmigrated(4).await;
    let broker = TestBroker::new().await;
    let settings = crate::common::amqp::settings(&broker.prefix, &db);
    let document = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/valid/demand_bound.json"
    ))
    .unwrap();
    let mut lines = Vec::new();
    let result = revenue_os::demo::run(settings, Catalog::embedded().unwrap(), &document, |l| {
        lines.push(l.to_owned())
    })
    .await;
    broker.cleanup().await;
    let report = lines.join("\n");
    result.unwrap_or_else(|e| panic!("{e}\n{report}"));
    assert!(report.contains("completed: binding constraint"), "{report}");
    assert!(report.contains("why: "), "{report}");
    assert!(report.contains("cycle event on"), "{report}");
    assert!(report.contains("STAND-IN executor"), "{report}");
    let lifecycles: Vec<&str> = report
        .lines()
        .skip_while(|l| !l.starts_with("each action's lifecycle"))
        .skip(1)
        .collect();
    assert!(!lifecycles.is_empty(), "{report}");
    let applied = lifecycles
        .iter()
        .filter(|l| l.contains(": published → acknowledged → applied "))
        .count();
    assert!(applied >= 3, "{report}");
    // The demo tenant's policy holds its routing change for a person.
    assert!(
        lifecycles
            .iter()
            .any(|l| l.contains("routing.") && l.contains(": pending_approval")),
        "{report}"
    );
    assert!(report.contains("revenue-os approve "), "{report}");
    db.cleanup().await;
}

/// `revenue-os demo FILE` as a new user runs it, with these environment variables.
fn demo_binary(file: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_revenue-os"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("demo")
        .arg(file);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn demo_failures_follow_the_exit_code_rule() {
    // 2: a contract outcome, the KernelError as JSON on stdout, before any service is touched.
    let invalid = demo_binary("tests/fixtures/invalid/nan.json", &[]);
    assert_eq!(invalid.status.code(), Some(2), "{invalid:?}");
    let err: serde_json::Value = serde_json::from_slice(&invalid.stdout).unwrap();
    assert_eq!(err["code"], "INVALID_INPUT");
    assert_eq!(err["error"], true);

    // 1: the operator's problem, one line on stderr.
    let missing = demo_binary("tests/fixtures/no-such-file.json", &[]);
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    assert!(missing.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.starts_with("revenue-os: cannot read"), "{stderr}");

    // 1: a service that cannot be reached (nothing listens on port 1).
    let down = demo_binary(
        "tests/fixtures/valid/demand_bound.json",
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/postgres")],
    );
    assert_eq!(down.status.code(), Some(1), "{down:?}");
    assert!(down.stdout.is_empty(), "{down:?}");
}

#[test]
fn usage_errors_exit_1_not_2() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_revenue-os"))
        .args(["trigger", "--tenant", "not-a-uuid"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_revenue-os"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
}

/// The closed loop of `revenue-os demo --loop`: 60 simulated days through the real services.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_closed_loop_reverts_the_harmful_change_and_measures_the_rest() {
    let db = TestDb::unmigrated(8).await;
    let broker = TestBroker::new().await;
    let settings = crate::common::amqp::settings(&broker.prefix, &db);
    let sum = revenue_os::demo::simulation::run(settings, Catalog::embedded().unwrap(), |l| {
        println!("{l}")
    })
    .await
    .unwrap();
    let harmful = "campaigns.scale.cmp_002.budget_daily";
    let first = sum
        .proposed
        .iter()
        .find(|(_, a)| a == harmful)
        .map(|(d, _)| *d)
        .expect("the budget raise is proposed");
    let (reverted_on, _, sentence) = sum
        .reverted
        .iter()
        .find(|(_, a, _)| a == harmful)
        .unwrap_or_else(|| panic!("not reverted: {:#?}", sum.log));
    // Applied on day `first`, CAC up from two days later, three days above the cap: the
    // sweep after the third day's metrics reverts it.
    assert_eq!(*reverted_on, first + 5, "{sentence}");
    assert!(
        !sum.proposed
            .iter()
            .any(|(d, a)| a == harmful && d > reverted_on),
        "re-proposed after the revert: {:#?}",
        sum.proposed
    );
    let outcome = |id: &str| {
        sum.measured
            .iter()
            .find(|(_, a, _)| a == id)
            .map(|(_, _, o)| o.as_str())
    };
    assert_eq!(
        outcome("crm.config_change.follow_up_sla_hours"),
        Some("successful"),
        "{:#?}",
        sum.measured
    );
    assert!(
        sum.measured.iter().any(|(_, _, o)| o == "inconclusive"),
        "{:#?}",
        sum.measured
    );
    broker.cleanup().await;
    db.cleanup().await;
}
