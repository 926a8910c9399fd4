//! A cluster's nodes: the order a process tries them in. The first connection starts at a
//! random node (so a fleet of workers spreads over the cluster); each later one starts at
//! the node after the one last connected to, so a dead node is not the first one tried again.

use super::BrokerError;
use crate::config::AmqpSettings;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The node URLs of `amqp.url` (comma-separated) and `amqp.urls`; at least one.
pub fn node_urls(settings: &AmqpSettings) -> Result<Vec<String>, BrokerError> {
    let urls = crate::config::amqp_urls(settings);
    if urls.is_empty() {
        return Err(BrokerError::Url(
            "amqp.url and amqp.urls name no node".into(),
        ));
    }
    Ok(urls)
}

/// Where the next connection starts. `usize::MAX`: no connection yet, pick at random.
pub(crate) struct Rotation(AtomicUsize);

/// This process's rotation: every connection it opens shares it.
pub(crate) static ROTATION: Rotation = Rotation::new();

impl Rotation {
    pub(crate) const fn new() -> Self {
        Self(AtomicUsize::new(usize::MAX))
    }

    /// Node indices in the order to try: every node once, from the start point on.
    pub(crate) fn order(&self, nodes: usize) -> Vec<usize> {
        if nodes == 0 {
            return vec![];
        }
        let start = match self.0.load(Ordering::Relaxed) {
            usize::MAX => random_below(nodes),
            n => n % nodes,
        };
        (0..nodes).map(|i| (start + i) % nodes).collect()
    }

    /// A connection to node `i` opened: the next attempt (once it breaks) starts after it.
    pub(crate) fn connected(&self, i: usize, nodes: usize) {
        self.0.store((i + 1) % nodes.max(1), Ordering::Relaxed);
    }
}

/// A number below `n` from the v4 UUID generator (no other random source is linked in).
fn random_below(n: usize) -> usize {
    (uuid::Uuid::new_v4().as_u128() % n as u128) as usize
}

/// Each node's share of the connect deadline: a node that accepts TCP but never speaks costs
/// its share, not the whole deadline, so the next node still gets its turn. One node keeps the
/// whole deadline (nothing else to try).
pub(crate) fn per_node_budget(connect_timeout_secs: u64, nodes: usize) -> Option<Duration> {
    if nodes <= 1 {
        return None;
    }
    let total = Duration::from_secs(connect_timeout_secs.max(1));
    Some((total / nodes as u32).max(Duration::from_secs(1)))
}

/// The one address `pause` may watch between attempts: only with a single node (with several,
/// the next attempt goes to another node anyway).
pub fn watch_address(settings: &AmqpSettings) -> Option<(String, u16)> {
    match node_urls(settings).ok()?.as_slice() {
        [one] => super::address(one),
        _ => None,
    }
}

/// Of the errors of every node, the one to report: a permanent one (refused credentials, a
/// clashing declare) if any node gave one, so the operator sees it; else the last.
pub(crate) fn worst(errors: Vec<BrokerError>) -> BrokerError {
    let mut last = None;
    for e in errors {
        if !e.is_retryable() {
            return e;
        }
        last = Some(e);
    }
    last.unwrap_or(BrokerError::Timeout("broker connect"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn amqp(url: &str, urls: &[&str]) -> AmqpSettings {
        let mut s = Settings::load_from(&[]).unwrap().amqp;
        s.url = url.into();
        s.urls = urls.iter().map(|u| u.to_string()).collect();
        s
    }

    #[test]
    fn a_comma_list_and_the_urls_list_are_one_ordered_list_without_repeats() {
        let s = amqp(
            " amqp://a:5672/%2f, amqp://b:5673/%2f ,,amqp://a:5672/%2f",
            &["amqp://c:5674/%2f", "amqp://b:5673/%2f,amqp://d:5675/%2f"],
        );
        assert_eq!(
            node_urls(&s).unwrap(),
            [
                "amqp://a:5672/%2f",
                "amqp://b:5673/%2f",
                "amqp://c:5674/%2f",
                "amqp://d:5675/%2f"
            ]
        );
        assert_eq!(
            node_urls(&amqp("amqp://only:5672/%2f", &[])).unwrap(),
            ["amqp://only:5672/%2f"]
        );
        assert!(matches!(
            node_urls(&amqp(" , ", &[])),
            Err(BrokerError::Url(_))
        ));
        // From the environment: AMQP_URL with commas, REVENUE_OS__AMQP__URLS as a list.
        let env = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let s = Settings::load_from(&[
            env("AMQP_URL", "amqp://u:pw1@a/%2f,amqp://u:pw2@b/%2f"),
            env("REVENUE_OS__AMQP__URLS", "amqp://u:pw3@c/%2f,amqp://d/%2f"),
        ])
        .unwrap();
        assert_eq!(node_urls(&s.amqp).unwrap().len(), 4);
        let shown = format!("{:?}", s.redacted().amqp);
        for pw in ["pw1", "pw2", "pw3"] {
            assert!(!shown.contains(pw), "{shown}");
        }
    }

    #[test]
    fn defaults_and_a_password_in_a_files_node_list_is_refused() {
        let s = Settings::load_from(&[]).unwrap().amqp;
        assert!(s.urls.is_empty());
        assert_eq!(s.quorum_initial_group_size, 3);
        let dir = std::env::temp_dir().join(format!("ros-nodes-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "[amqp]\nurl = \"amqp://a/%2f,amqp://u:secret@b/%2f\"\n",
        )
        .unwrap();
        let env = [("REVENUE_OS_CONFIG".to_owned(), file.display().to_string())];
        let e = Settings::load_from(&env).unwrap_err();
        assert!(e.to_string().contains("AMQP_URL"), "{e}");
        std::fs::write(&file, "[amqp]\nurls = [\"amqp://u:secret@c/%2f\"]\n").unwrap();
        assert!(Settings::load_from(&env).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn every_node_is_tried_once_and_the_next_connection_starts_after_the_last_one() {
        let r = Rotation::new();
        let first = r.order(3);
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2], "each node once");
        assert!(
            first.windows(2).all(|w| w[1] == (w[0] + 1) % 3),
            "{first:?}"
        );
        // Connected to node 1; it dies: the next attempt starts at 2, then 0, then 1.
        r.connected(1, 3);
        assert_eq!(r.order(3), [2, 0, 1]);
        r.connected(2, 3);
        assert_eq!(r.order(3), [0, 1, 2]);
        // A list that shrank (settings of another caller) still yields valid indices.
        r.connected(2, 3);
        assert_eq!(r.order(2), [0, 1]);
        assert_eq!(r.order(1), [0]);
        assert!(r.order(0).is_empty());
    }

    #[test]
    fn the_first_node_is_chosen_at_random() {
        let starts: std::collections::BTreeSet<usize> =
            (0..200).map(|_| Rotation::new().order(3)[0]).collect();
        assert_eq!(starts.len(), 3, "{starts:?}");
    }

    #[test]
    fn the_deadline_is_shared_between_nodes_and_one_node_keeps_it_whole() {
        assert_eq!(per_node_budget(10, 1), None);
        assert_eq!(per_node_budget(9, 3), Some(Duration::from_secs(3)));
        assert_eq!(per_node_budget(1, 3), Some(Duration::from_secs(1)));
        assert_eq!(
            watch_address(&amqp("amqp://h:5999/%2f", &[])),
            Some(("h".into(), 5999))
        );
        assert_eq!(
            watch_address(&amqp("amqp://h:1/%2f,amqp://g:2/%2f", &[])),
            None
        );
    }

    #[test]
    fn a_permanent_error_of_any_node_is_the_one_reported() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = worst(vec![
            BrokerError::Amqp(refused.into()),
            BrokerError::Url("bad".into()),
            BrokerError::Timeout("x"),
        ]);
        assert!(matches!(e, BrokerError::Url(_)), "{e}");
        let e = worst(vec![BrokerError::Timeout("a"), BrokerError::Timeout("b")]);
        assert!(matches!(e, BrokerError::Timeout("b")), "{e}");
    }
}
