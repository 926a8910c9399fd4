//! `schema`: the JSON Schemas of the wire documents.

use super::{Output, json};
use crate::contract::schema;
use crate::error::Error;

#[derive(clap::Args)]
pub struct Args {
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(
        schema::Document::ALL.map(|d| d.name())))]
    document: String,
}

pub fn run(args: Args) -> Result<Output, Error> {
    let doc = schema::Document::parse(&args.document)
        .ok_or_else(|| Error::Usage(format!("unknown schema {}", args.document)))?;
    json(&schema::schema(doc))
}
