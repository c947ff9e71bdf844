//! `sqlx::migrate!` embeds the migrations at compile time, but cargo does not see a new file in
//! `migrations/` as a change: without this, adding a migration leaves a stale catalog schema in
//! the build (sqlx's documented remedy).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
