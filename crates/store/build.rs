// `sqlx::migrate!` embeds the migration files at compile time; without this, adding a
// migration and nothing else would not rebuild the crate (sqlx's documented build script).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
