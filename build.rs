//! Compiles the SQLite system-call replacements that give the engine's copy of
//! SQLite locks no other copy in the process can drop (src/storage/sqlite_locks.c).

fn main() {
    println!("cargo:rerun-if-changed=src/storage/sqlite_locks.c");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        cc::Build::new().file("src/storage/sqlite_locks.c").warnings(true).compile("kernia_sqlite_locks");
    }
}
