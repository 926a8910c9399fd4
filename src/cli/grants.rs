//! `grants`: the SQL that gives a role the worker's privileges. Connects to nothing.

use super::Output;
use crate::error::Error;
use crate::store;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = store::WORKER_ROLE)]
    role: String,
    #[arg(long)]
    create_role: bool,
}

pub fn run(args: Args) -> Result<Output, Error> {
    let mut sql = String::new();
    if args.create_role {
        sql.push_str(&store::worker_role_sql(&args.role)?);
    }
    sql.push_str(&store::worker_grants_sql(&args.role)?);
    Ok(Output::Line(sql.trim_end().to_owned()))
}
