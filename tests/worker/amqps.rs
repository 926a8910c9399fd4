//! amqps with `amqp.tls_ca_file`: the shared broker has no TLS listener, so the test puts a
//! TLS-terminating relay (a certificate from a CA the test makes) in front of it.

use crate::common::amqp::amqp_url;
use crate::common::tls::{TempDir, TestCa, tls_relay};
use lapin::uri::AMQPUri;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use revenue_os::broker;
use revenue_os::config::Settings;
use std::net::ToSocketAddrs;

#[tokio::test]
async fn amqps_trusts_the_configured_ca_and_refuses_an_unknown_one() {
    let ca = TestCa::new("revenue-os test CA");
    let dir = TempDir::new("ros-amqps");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let plain: AMQPUri = amqp_url().parse().expect("TEST_AMQP_URL");
    let upstream = (plain.authority.host.as_str(), plain.authority.port)
        .to_socket_addrs()
        .expect("resolve the broker")
        .next()
        .expect("a broker address");
    let port = tls_relay(&ca.server_cert(&["localhost"]), upstream).await;

    let mut s = Settings::load_from(&[]).expect("defaults").amqp;
    let user = &plain.authority.userinfo;
    s.url = format!(
        "amqps://{}:{}@localhost:{port}/{}",
        utf8_percent_encode(&user.username, NON_ALPHANUMERIC),
        utf8_percent_encode(&user.password, NON_ALPHANUMERIC),
        utf8_percent_encode(&plain.vhost, NON_ALPHANUMERIC),
    );
    s.tls_ca_file = ca_file.display().to_string();
    let name = broker::connection_name("revenue_os_test_amqps", "tls");
    let conn = broker::connect(&s, &name)
        .await
        .expect("amqps with the test CA");
    let ch = conn.create_channel().await.expect("a channel over amqps");
    ch.close(200, "done".into()).await.expect("close channel");
    conn.close(200, "done".into())
        .await
        .expect("close connection");

    // The system roots alone do not know the test CA.
    s.tls_ca_file = String::new();
    let shown = match broker::connect(&s, &name).await {
        Ok(_) => panic!("connected without the CA"),
        Err(e) => e.to_string(),
    };
    assert!(
        shown.contains("invalid peer certificate") && shown.contains("UnknownIssuer"),
        "{shown}"
    );
}
