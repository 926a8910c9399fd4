//! A fresh, uniquely named PostgreSQL database per test, migrated, dropped afterwards.
//!
//! ```ignore
//! let db = TestDb::new().await;          // CREATE DATABASE ros_test_<uuid> + migrations
//! db.store().import(&input, &catalog).await?;
//! db.cleanup().await;                    // or just let it drop
//! ```
//! The server is `TEST_DATABASE_ADMIN_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! the test database lives on the same server.

use revenue_os::config::DatabaseSettings;
use revenue_os::store::{Store, url_with_database};
use tokio_postgres::NoTls;

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_ADMIN_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// `admin_url` with its database name replaced.
pub fn url_for(database: &str) -> String {
    url_with_database(&admin_url(), database)
}

pub struct TestDb {
    pub name: String,
    pub settings: DatabaseSettings,
    store: Store,
    dropped: bool,
}

impl TestDb {
    /// A new migrated database with a pool of 16.
    pub async fn new() -> TestDb {
        Self::with_pool_size(16).await
    }

    pub async fn with_pool_size(pool_size: usize) -> TestDb {
        let db = Self::unmigrated(pool_size).await;
        db.store.migrate().await.expect("migrate test database");
        db
    }

    /// A new empty database (no migrations applied).
    pub async fn unmigrated(pool_size: usize) -> TestDb {
        let name = format!("ros_test_{}", uuid::Uuid::new_v4().simple());
        admin_execute(&format!("CREATE DATABASE {name}")).await;
        let settings = DatabaseSettings {
            url: url_for(&name),
            pool_size,
            connect_timeout_secs: 5,
            keepalive_idle_secs: 30,
            call_timeout_secs: 30,
            keepalive_interval_secs: 10,
            keepalive_retries: 3,
            tcp_user_timeout_secs: 20,
            statement_timeout_ms: 30_000,
            idle_in_transaction_timeout_ms: 60_000,
            migrate_on_start: false,
        };
        let store = Store::connect(&settings)
            .await
            .expect("connect test database");
        TestDb {
            name,
            settings,
            store,
            dropped: false,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn url(&self) -> &str {
        &self.settings.url
    }

    /// A plain client on the test database, for assertions in SQL.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(self.url()).await
    }

    /// The single number a query returns, e.g. `SELECT count(*) FROM cycles`.
    pub async fn count(&self, sql: &str) -> i64 {
        self.client()
            .await
            .query_one(sql, &[])
            .await
            .unwrap()
            .get(0)
    }

    /// Drops the database now (Drop does the same, from a helper thread).
    pub async fn cleanup(mut self) {
        self.store.pool().close();
        admin_execute(&drop_sql(&self.name)).await;
        self.dropped = true;
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        self.store.pool().close();
        let sql = drop_sql(&self.name);
        // Drop may run inside a runtime; do the async work on a thread with its own.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(admin_execute(&sql));
            }
        })
        .join();
    }
}

fn drop_sql(name: &str) -> String {
    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

pub async fn admin_execute(sql: &str) {
    let client = connect(&admin_url()).await;
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}
