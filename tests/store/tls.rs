//! PostgreSQL over TLS against real servers: each test starts its own private PostgreSQL
//! (initdb into a temp dir, a free port, a certificate from a CA the test makes) and stops it
//! at the end, also when an assertion fails. The shared server on 5432 is not touched.

use crate::common::tls::{ServerCert, TempDir, TestCa};
use revenue_os::config::{DatabaseSettings, Settings};
use revenue_os::store::{Store, StoreError};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A private PostgreSQL cluster, stopped and removed on drop.
struct PgServer {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    run_as_postgres: bool,
    dir: TempDir,
}

/// The server binaries: `TEST_PG_BIN`, else the newest /usr/lib/postgresql/*/bin.
fn pg_bin() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("TEST_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl PgServer {
    /// A started cluster with TLS on `cert` (or ssl=off), trust auth. `None` (the test is
    /// skipped, loudly) only when no PostgreSQL server binaries are installed.
    fn start(cert: Option<&ServerCert>) -> Option<PgServer> {
        let Some(bin) = pg_bin() else {
            eprintln!("SKIPPED: no PostgreSQL server binaries (set TEST_PG_BIN)");
            return None;
        };
        let dir = TempDir::new("ros-pg");
        let data = dir.path().join("data");
        let server = PgServer {
            bin,
            data,
            port: free_port(),
            // initdb refuses to run as root.
            run_as_postgres: is_root(),
            dir,
        };
        let base = server.dir.path();
        if let Some(cert) = cert {
            std::fs::write(base.join("server.crt"), &cert.cert_pem).expect("server.crt");
            std::fs::write(base.join("server.key"), &cert.key_pem).expect("server.key");
            chmod(&base.join("server.key"), 0o600);
        }
        if server.run_as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(base)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown {} to postgres", base.display());
        }
        server.run(
            "initdb",
            &[
                "-D",
                path_str(&server.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
        );
        let ssl = match cert {
            Some(_) => format!(
                "ssl = on\nssl_cert_file = '{0}/server.crt'\nssl_key_file = '{0}/server.key'\n",
                base.display()
            ),
            None => "ssl = off\n".to_owned(),
        };
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n{ssl}\
             fsync = off\nmax_connections = 20\nshared_buffers = 16MB\n",
            server.port,
            base.display()
        );
        let conf_path = server.data.join("postgresql.conf");
        let mut all = std::fs::read_to_string(&conf_path).expect("read postgresql.conf");
        all.push_str(&conf);
        std::fs::write(&conf_path, all).expect("write postgresql.conf");
        let log = base.join("server.log");
        server.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&server.data),
                "-l",
                path_str(&log),
                "-w",
                "-t",
                "30",
                "-s",
                "start",
            ],
        );
        Some(server)
    }

    /// Runs a server binary (as postgres when we are root); panics with its output on failure.
    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = if self.run_as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd.args(args).output().expect("run a PostgreSQL binary");
        if !out.status.success() {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            panic!(
                "{tool} {args:?} failed: {}{}\n{log}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{query}", self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // Immediate: nothing here needs a clean shutdown, and the test should not wait.
        let data = self.data.display().to_string();
        let exe = self.bin.join("pg_ctl");
        let args = ["-D", &data, "-m", "immediate", "-w", "-s", "stop"];
        let _ = if self.run_as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .output()
        } else {
            Command::new(&exe).args(args).output()
        };
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn settings(url: &str) -> DatabaseSettings {
    let mut s = Settings::load_from(&[]).expect("defaults").database;
    s.url = url.to_owned();
    s.pool_size = 1;
    s.connect_timeout_secs = 3;
    s
}

/// Connects through the store's pool and asks the server whether this session is encrypted.
async fn ssl_in_use(url: &str) -> Result<bool, StoreError> {
    let store = Store::connect(&settings(url)).await?;
    let client = store.pool().get().await?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

async fn refused(url: &str) -> String {
    match ssl_in_use(url).await {
        Ok(ssl) => panic!("{url} connected (ssl {ssl}); it should have been refused"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_tls_server_is_trusted_as_far_as_sslmode_says() {
    let ca = TestCa::new("revenue-os test CA");
    let other = TestCa::new("some other CA");
    // Valid for localhost only: 127.0.0.1 is the "wrong host name".
    let Some(pg) = PgServer::start(Some(&ca.server_cert(&["localhost"]))) else {
        return;
    };
    let ca_file = ca.write(pg.dir.path(), "ca.pem");
    let other_file = other.write(pg.dir.path(), "other-ca.pem");
    let (ca_file, other_file) = (ca_file.display(), other_file.display());

    // verify-full: chain and name, in both DSN forms.
    let full = pg.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca_file}"),
    );
    assert!(ssl_in_use(&full).await.expect("verify-full"), "{full}");
    let kv = format!(
        "host=localhost port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert='{ca_file}'",
        pg.port
    );
    assert!(
        ssl_in_use(&kv).await.expect("verify-full key=value"),
        "{kv}"
    );
    // Database creation (migrate's first step) goes over the same TLS.
    let create = pg
        .url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca_file}"),
        )
        .replace("/postgres?", "/ros_tls?");
    let created = Store::create_database_if_missing(&settings(&create))
        .await
        .expect("create over verify-full");
    assert!(created);

    // verify-ca checks the chain, not the name; require and prefer encrypt without checking.
    for query in [
        format!("sslmode=verify-ca&sslrootcert={ca_file}"),
        "sslmode=require".to_owned(),
        "sslmode=prefer".to_owned(),
        String::new(),
    ] {
        let url = pg.url("127.0.0.1", &query);
        assert!(ssl_in_use(&url).await.expect(&url), "{url}");
    }

    // The wrong name, another CA, and libpq's rule that a root certificate makes require
    // check the chain.
    let shown = refused(&pg.url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca_file}"),
    ))
    .await;
    assert!(
        shown.contains("error performing TLS handshake") && shown.contains("not valid for name"),
        "{shown}"
    );
    for mode in ["verify-full", "verify-ca", "require"] {
        let shown = refused(&pg.url(
            "localhost",
            &format!("sslmode={mode}&sslrootcert={other_file}"),
        ))
        .await;
        assert!(shown.contains("UnknownIssuer"), "{mode}: {shown}");
    }
}

#[tokio::test]
async fn a_server_without_tls_refuses_require_and_prefer_falls_back() {
    let Some(pg) = PgServer::start(None) else {
        return;
    };
    for mode in ["require", "verify-full"] {
        let shown = refused(&pg.url("localhost", &format!("sslmode={mode}"))).await;
        assert_eq!(
            shown,
            "database: the server does not support TLS, but sslmode is require, verify-ca or verify-full",
            "{mode}"
        );
    }
    for query in ["sslmode=prefer", "", "sslmode=disable"] {
        let url = pg.url("localhost", query);
        assert!(!ssl_in_use(&url).await.expect(&url), "{url}: plaintext");
    }
}

#[tokio::test]
async fn a_bad_sslrootcert_is_a_configuration_error_at_start() {
    let dir = TempDir::new("ros-tls-cfg");
    let missing = dir.path().join("nope.pem");
    let url = format!(
        "postgres://postgres@localhost:1/x?sslmode=verify-full&sslrootcert={}",
        missing.display()
    );
    let e = Store::connect(&settings(&url))
        .await
        .err()
        .expect("refused at start");
    assert!(matches!(e, StoreError::Config(_)), "{e}");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("nope.pem"), "{e}");
}
