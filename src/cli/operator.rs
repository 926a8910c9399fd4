//! `revenue-os operator add|list|revoke`: named console operators. `add` prints the token
//! once; only its SHA-256 is stored.

use crate::app;
use crate::config::Settings;
use crate::error::Error;
use crate::store::OperatorRole;
use clap::Subcommand;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: OperatorAction,
}

#[derive(Subcommand)]
enum OperatorAction {
    /// Add an operator; prints their sign-in token once.
    Add {
        name: String,
        /// viewers read, approvers also decide held actions, admins also manage policies
        /// and operators.
        #[arg(long, value_parser = ["viewer", "approver", "admin"])]
        role: String,
    },
    /// Every operator, live and revoked.
    List,
    /// Revoke an operator: their token stops working and their sessions end.
    Revoke { name: String },
}

async fn execute(args: Args) -> Result<serde_json::Value, Error> {
    let settings = Settings::load()?;
    let store = app::store(&settings, false).await?;
    match args.action {
        OperatorAction::Add { name, role } => {
            let name = name.trim().to_owned();
            if name.is_empty() || name.chars().count() > 64 {
                return Err(Error::Usage(
                    "an operator's name has 1 to 64 characters".into(),
                ));
            }
            let role = OperatorRole::parse(&role)
                .ok_or_else(|| Error::Usage(format!("'{role}' is not a role")))?;
            let token = crate::console::new_token();
            let hash = crate::console::token_hash(&token);
            if !store.add_operator(&name, role, &hash).await? {
                return Err(Error::Usage(format!(
                    "operator '{name}' exists; revoke it first to give it a new token"
                )));
            }
            eprintln!("the token below is shown once: give it to {name}; only its hash is kept");
            Ok(serde_json::json!({ "operator": name, "role": role, "token": token }))
        }
        OperatorAction::List => {
            Ok(serde_json::to_value(store.operators().await?).map_err(|e| Error::Io(e.into()))?)
        }
        OperatorAction::Revoke { name } => {
            if !store.revoke_operator(&name).await? {
                return Err(Error::Usage(format!("no live operator '{name}'")));
            }
            Ok(serde_json::json!({ "revoked": name }))
        }
    }
}

pub fn run(args: Args) -> Result<super::Output, Error> {
    super::runtime(async move { super::json(&execute(args).await?) })
}
