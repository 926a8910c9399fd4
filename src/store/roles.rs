//! Least privilege: the SQL that gives the worker's database role exactly the DML the store
//! runs, and nothing else (no DDL, no TRUNCATE, no REFERENCES or TRIGGER, no BYPASSRLS).
//!
//! The owner (the role `migrate` runs as) owns the schema; the worker's role is granted these
//! privileges by the owner: `revenue-os grants` prints the statements, `revenue-os migrate
//! --grant-to ROLE` applies them. Creating roles is the DBA's job (`role_sql` is the
//! statement a DBA, or the test harness, runs); `migrate --grant-to` creates the role only
//! when the migrating role may.

use super::{Store, StoreError};

/// The suggested name of the worker's role.
pub const WORKER_ROLE: &str = "revenue_os_worker";
/// The suggested name of the role that owns the schema and runs `migrate`.
pub const OWNER_ROLE: &str = "revenue_os_owner";

/// What the worker's role may do per table: only what the store's queries need. Identity
/// columns (outbox, action_reports, watchdog_evaluations, approval_decisions) need no grant on
/// their sequences: an INSERT draws from them without one, and without USAGE the role cannot
/// call nextval() itself.
const WORKER_TABLES: &[(&str, &str)] = &[
    ("tenants", "SELECT, INSERT, UPDATE"),
    ("targets", "SELECT, INSERT, UPDATE"),
    ("guardrails", "SELECT, INSERT, UPDATE"),
    // import deletes the config block a document no longer has.
    ("tenant_config", "SELECT, INSERT, UPDATE, DELETE"),
    // import syncs the catalog's metrics (the snapshots reference them).
    ("metric_dictionary", "SELECT, INSERT, UPDATE"),
    ("metric_snapshots", "SELECT, INSERT, UPDATE"),
    ("revenue_events", "SELECT, INSERT, UPDATE"),
    ("campaigns", "SELECT, INSERT, UPDATE"),
    ("opportunities", "SELECT, INSERT, UPDATE"),
    ("action_results", "SELECT, INSERT, UPDATE"),
    ("cycles", "SELECT, INSERT"),
    ("actions", "SELECT, INSERT, UPDATE"),
    ("data_quality_actions", "SELECT, INSERT"),
    ("rejected_triggers", "SELECT, INSERT"),
    ("outbox", "SELECT, INSERT, UPDATE"),
    ("action_reports", "SELECT, INSERT"),
    ("lever_state", "SELECT, INSERT, UPDATE"),
    ("tenant_settings", "SELECT, INSERT, UPDATE"),
    ("watchdog_evaluations", "SELECT, INSERT"),
    ("approval_policy", "SELECT, INSERT, UPDATE"),
    ("approval_decisions", "SELECT, INSERT"),
    // the console signs operators in; `operator add/revoke` writes them.
    ("operators", "SELECT, INSERT, UPDATE"),
    // ingest records each load and a follow-up service claims it; rejects of --quarantine.
    ("loads", "SELECT, INSERT, UPDATE"),
    ("ingest_rejects", "SELECT, INSERT"),
    // Detections are re-recorded when a day's load runs again.
    ("deviations", "SELECT, INSERT, UPDATE"),
    // Webhook notifications: a tenant's webhooks (`webhook add/remove`), the notifications
    // state changes record, their deliveries; console sign-ins for the audit trail.
    ("webhooks", "SELECT, INSERT, UPDATE, DELETE"),
    ("notifications", "SELECT, INSERT, UPDATE"),
    ("webhook_deliveries", "SELECT, INSERT, UPDATE"),
    ("operator_sign_ins", "SELECT, INSERT"),
    // migrate_on_start reads it to find the schema up to date (and then runs no DDL).
    ("refinery_schema_history", "SELECT"),
];

/// A role name as a quoted identifier, refused unless it is a plain lower-case name (it is
/// spliced into SQL, where a role cannot be a bound parameter).
fn role_ident(role: &str) -> Result<String, StoreError> {
    let ok = !role.is_empty()
        && role.len() <= 63
        && role.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && role
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(StoreError::Config(format!(
            "role name '{role}': use lower-case letters, digits and _ (at most 63)"
        )));
    }
    Ok(format!("\"{role}\""))
}

/// The statements that give `role` the worker's privileges on a migrated database, run as
/// the owner. Re-runnable: it first revokes what the role had on the schema's tables, so the
/// result is exactly this list whatever was granted before.
pub fn worker_grants_sql(role: &str) -> Result<String, StoreError> {
    let r = role_ident(role)?;
    let mut sql = format!(
        "-- Privileges of the revenue-os worker role {r}; run as the schema owner.\n\
         REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {r};\n\
         REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {r};\n\
         GRANT USAGE ON SCHEMA public TO {r};\n"
    );
    for (table, privileges) in WORKER_TABLES {
        sql.push_str(&format!("GRANT {privileges} ON public.{table} TO {r};\n"));
    }
    sql.push_str(&format!(
        "-- The tenant scope of the row-level security policies and the sweep functions.\n\
         GRANT USAGE ON SCHEMA revenue_os TO {r};\n\
         GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA revenue_os TO {r};\n"
    ));
    Ok(sql)
}

/// An idempotent, race-safe `CREATE ROLE` for the worker's role (LOGIN; no superuser, no
/// BYPASSRLS, no role or database creation, inherits nothing): what a DBA runs once per
/// cluster. Concurrent runs take turns on an advisory lock, and a role another session
/// created in between is not an error.
pub fn worker_role_sql(role: &str) -> Result<String, StoreError> {
    create_role_sql(
        role,
        "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION NOINHERIT",
    )
}

/// The same for the owner's role: it logs in to run `migrate`, owns what it creates, and is
/// subject to the row-level security policies like any other role (FORCE).
pub fn owner_role_sql(role: &str) -> Result<String, StoreError> {
    create_role_sql(
        role,
        "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION",
    )
}

/// Serialises role creation on one server (roles are cluster-wide; advisory locks are taken
/// in the database the DBA is connected to).
const ROLE_LOCK: i64 = 0x7265_765f_6f73_726c; // "rev_osrl"

fn create_role_sql(role: &str, attributes: &str) -> Result<String, StoreError> {
    let r = role_ident(role)?;
    Ok(format!(
        "DO $$\n\
         BEGIN\n    \
             PERFORM pg_advisory_xact_lock({ROLE_LOCK});\n    \
             IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN\n        \
                 CREATE ROLE {r} {attributes};\n    \
             END IF;\n\
         EXCEPTION WHEN duplicate_object OR unique_violation THEN\n    \
             NULL; -- created by a concurrent session\n\
         END $$;\n"
    ))
}

impl Store {
    /// Applies `worker_grants_sql(role)` in one transaction, creating the role first when it
    /// is missing and this connection's role may create roles. Needs the schema's owner (or a
    /// superuser).
    pub async fn grant_worker(&self, role: &str) -> Result<(), StoreError> {
        let grants = worker_grants_sql(role)?;
        let mut client = self.pool.get().await?;
        let exists = client
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
            .await?
            .is_some();
        if !exists {
            let may_create: bool = client
                .query_one(
                    "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user",
                    &[],
                )
                .await?
                .try_get(0)?;
            if !may_create {
                return Err(StoreError::Config(format!(
                    "role {role} does not exist and this role cannot create it: a DBA runs \
                     `revenue-os grants --role {role} --create-role` first"
                )));
            }
            client.batch_execute(&worker_role_sql(role)?).await?;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(&grants).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_plain_identifiers() {
        assert!(role_ident("revenue_os_worker").is_ok());
        for bad in [
            "",
            "Worker",
            "a\"; DROP TABLE x; --",
            "a-b",
            "1abc",
            &"a".repeat(64),
        ] {
            assert!(role_ident(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_grants_give_no_ddl_and_no_truncate() {
        let sql = worker_grants_sql(WORKER_ROLE).unwrap();
        for word in [
            "TRUNCATE",
            "CREATE",
            "ALTER",
            "DROP",
            "BYPASSRLS",
            "ALL PRIVILEGES",
        ] {
            assert!(!sql.contains(word), "{word} in {sql}");
        }
        assert!(
            sql.contains("GRANT SELECT, INSERT, UPDATE ON public.outbox TO \"revenue_os_worker\";")
        );
    }
}
