//! A fresh, uniquely named PostgreSQL database per test, migrated, dropped afterwards.
//!
//! ```ignore
//! let db = TestDb::new().await;          // CREATE DATABASE ros_test_<uuid> + migrations
//! db.store().import(&input, &catalog).await?;
//! db.cleanup().await;                    // or just let it drop
//! ```
//! The server is `TEST_DATABASE_ADMIN_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! the test database lives on the same server.
//!
//! Roles as in production, so every test runs under row-level security: the database is
//! owned by `revenue_os_owner`, which migrates it and grants `revenue_os_worker` its
//! privileges; `store()`, `url()` and `settings` of a migrated database are the worker's
//! (a role with no DDL and no BYPASSRLS). `client()` and `count()` stay the admin's (a
//! superuser, which RLS does not restrict), for assertions. The roles log in without a
//! password: the server trusts 127.0.0.1.

use revenue_os::config::DatabaseSettings;
use revenue_os::store::{
    OWNER_ROLE, Store, WORKER_ROLE, owner_role_sql, url_with_database, worker_role_sql,
};
use tokio_postgres::NoTls;

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_ADMIN_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// `admin_url` with its database name replaced.
pub fn url_for(database: &str) -> String {
    url_with_database(&admin_url(), database)
}

/// `url_for(database)` as `role` (no password: trust on 127.0.0.1).
pub fn url_as(role: &str, database: &str) -> String {
    url_as_on(&admin_url(), role, database)
}

/// `url_as` on the server of `admin` (a URL, possibly naming several hosts).
pub fn url_as_on(admin: &str, role: &str, database: &str) -> String {
    let url = url_with_database(admin, database);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url;
    };
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{role}@{host}")
}

pub struct TestDb {
    pub name: String,
    /// The server's superuser URL (`admin_url()` unless made `on` another server).
    pub admin: String,
    /// What the application connects with: the worker's role once migrated, the owner's
    /// before (an unmigrated database is for tests that migrate it themselves).
    pub settings: DatabaseSettings,
    store: Store,
    dropped: bool,
}

impl TestDb {
    /// A new migrated database with a pool of 16.
    pub async fn new() -> TestDb {
        Self::with_pool_size(16).await
    }

    /// Migrated by the owner, the worker granted its privileges, then handed to the test as
    /// the worker.
    pub async fn with_pool_size(pool_size: usize) -> TestDb {
        Self::on(&admin_url(), pool_size).await
    }

    /// `with_pool_size` on the server `admin` names (a test's own cluster).
    pub async fn on(admin: &str, pool_size: usize) -> TestDb {
        let mut db = Self::unmigrated_on(admin, pool_size).await;
        db.store.migrate().await.expect("migrate test database");
        db.store
            .grant_worker(WORKER_ROLE)
            .await
            .expect("grant the worker role");
        db.store.pool().close();
        db.settings.url = url_as_on(admin, WORKER_ROLE, &db.name);
        db.store = Store::connect(&db.settings)
            .await
            .expect("connect test database as the worker");
        db
    }

    /// A new empty database (no migrations applied), owned by the owner's role and
    /// connected as it.
    pub async fn unmigrated(pool_size: usize) -> TestDb {
        Self::unmigrated_on(&admin_url(), pool_size).await
    }

    async fn unmigrated_on(admin: &str, pool_size: usize) -> TestDb {
        ensure_roles_on(admin).await;
        let name = format!("ros_test_{}", uuid::Uuid::new_v4().simple());
        admin_execute_on(admin, &format!("CREATE DATABASE {name} OWNER {OWNER_ROLE}")).await;
        // The defaults, on this test's database as its owner.
        let settings = DatabaseSettings {
            url: url_as_on(admin, OWNER_ROLE, &name),
            pool_size,
            migrate_on_start: false,
            ..revenue_os::config::Settings::load_from(&[])
                .expect("default settings")
                .database
        };
        let store = Store::connect(&settings)
            .await
            .expect("connect test database");
        TestDb {
            name,
            admin: admin.to_owned(),
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

    /// The test database as the owner's role (what `revenue-os migrate` runs as).
    pub fn owner_url(&self) -> String {
        url_as_on(&self.admin, OWNER_ROLE, &self.name)
    }

    /// The test database as the worker's role.
    pub fn worker_url(&self) -> String {
        url_as_on(&self.admin, WORKER_ROLE, &self.name)
    }

    /// A plain client on the test database as the admin (a superuser), for assertions in
    /// SQL: it sees every tenant's rows.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&url_with_database(&self.admin, &self.name)).await
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
        admin_execute_on(&self.admin, &drop_sql(&self.name)).await;
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
        let admin = self.admin.clone();
        // Drop may run inside a runtime; do the async work on a thread with its own.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(admin_execute_on(&admin, &sql));
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

/// The owner's and the worker's roles, created once per server; every test runs this, at
/// the same time as others, so it must be (and is) idempotent and race-safe.
pub async fn ensure_roles() {
    ensure_roles_on(&admin_url()).await;
}

async fn ensure_roles_on(admin: &str) {
    admin_execute_on(admin, &owner_role_sql(OWNER_ROLE).unwrap()).await;
    admin_execute_on(admin, &worker_role_sql(WORKER_ROLE).unwrap()).await;
}

pub async fn admin_execute(sql: &str) {
    admin_execute_on(&admin_url(), sql).await;
}

pub async fn admin_execute_on(admin: &str, sql: &str) {
    let client = connect(admin).await;
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}
