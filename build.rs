//! Rebuilds the crate when a migration is added: `refinery::embed_migrations!` reads
//! `migrations/` when it expands, and cargo watches only the files it included, so a new
//! `V*.sql` would otherwise be left out of an incremental build (and out of its tests).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
