//! Named operators: a name, a role, and the SHA-256 of the token they sign in with. What a
//! role may do is the approvals rules' business; this keeps the rows.

use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What a person may do in the console; the rules that gate on it are in `approvals`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorRole {
    Viewer,
    Approver,
    Admin,
}

impl OperatorRole {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Self::Viewer),
            "approver" => Some(Self::Approver),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Approver => "approver",
            Self::Admin => "admin",
        }
    }
}

impl std::fmt::Display for OperatorRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorRow {
    pub name: String,
    pub role: OperatorRole,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

fn row(r: &tokio_postgres::Row) -> Result<OperatorRow, StoreError> {
    let role: String = r.try_get(1)?;
    Ok(OperatorRow {
        name: r.try_get(0)?,
        role: OperatorRole::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("operator role '{role}'")))?,
        created_at: r.try_get(2)?,
        revoked_at: r.try_get(3)?,
    })
}

impl Store {
    /// Adds an operator (or gives a revoked name a new role and token); `false` when the
    /// name is taken by a live operator.
    pub async fn add_operator(
        &self,
        name: &str,
        role: OperatorRole,
        token_hash: &str,
    ) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "INSERT INTO operators (name, role, token_hash) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET role = EXCLUDED.role,
                    token_hash = EXCLUDED.token_hash, created_at = now(), revoked_at = NULL
                 WHERE operators.revoked_at IS NOT NULL",
                &[&name, &role.as_str(), &token_hash],
            )
            .await?;
        Ok(n == 1)
    }

    /// Every operator, live and revoked, by name.
    pub async fn operators(&self) -> Result<Vec<OperatorRow>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query(
                "SELECT name, role, created_at, revoked_at FROM operators ORDER BY name",
                &[],
            )
            .await?
            .iter()
            .map(row)
            .collect()
    }

    /// Revokes a live operator; `false` when there is none by that name.
    pub async fn revoke_operator(&self, name: &str) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "UPDATE operators SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL",
                &[&name],
            )
            .await?;
        Ok(n == 1)
    }

    /// The live operator whose token hashes to `token_hash`.
    pub async fn operator_by_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<OperatorRow>, StoreError> {
        self.live_operator_by("token_hash", token_hash).await
    }

    /// The live operator named `name`.
    pub async fn live_operator(&self, name: &str) -> Result<Option<OperatorRow>, StoreError> {
        self.live_operator_by("name", name).await
    }

    /// The live operator whose `column` (one of ours, never outside text) equals `value`.
    async fn live_operator_by(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<Option<OperatorRow>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query_opt(
                &format!(
                    "SELECT name, role, created_at, revoked_at FROM operators
                     WHERE {column} = $1 AND revoked_at IS NULL"
                ),
                &[&value],
            )
            .await?
            .as_ref()
            .map(row)
            .transpose()
    }

    /// Whether any operator may sign in.
    pub async fn has_operators(&self) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM operators WHERE revoked_at IS NULL)",
                &[],
            )
            .await?
            .try_get(0)?)
    }

    /// Records a console sign-in (`operator_sign_ins`, V13), for the audit trail; `named`
    /// false: the bootstrap token under a typed name.
    pub async fn record_sign_in(
        &self,
        name: &str,
        role: OperatorRole,
        named: bool,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO operator_sign_ins (operator, role, named) VALUES ($1, $2, $3)",
                &[&name, &role.as_str(), &named],
            )
            .await?;
        Ok(())
    }
}
