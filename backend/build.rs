//! With the `embedded-web` feature, builds the web app (Trunk's `dist/`, or the folder named
//! by `ROLLWATCH_EMBED_WEB_DIR`) into the binary: `cargo xtask dist` and `cargo xtask serve`
//! build that way. Without it (debug builds, tests) nothing is embedded and `dist/` need not
//! exist.

#[path = "src/web_embed_gen.rs"]
mod web_embed_gen;

use std::path::PathBuf;

const DIR_VAR: &str = "ROLLWATCH_EMBED_WEB_DIR";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/web_embed_gen.rs");
    println!("cargo:rerun-if-env-changed={DIR_VAR}");
    if std::env::var_os("CARGO_FEATURE_EMBEDDED_WEB").is_none() {
        return;
    }
    let dir = std::env::var_os(DIR_VAR).map_or_else(
        || {
            PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default())
                .join("../dist")
        },
        PathBuf::from,
    );
    // A directory: cargo reruns this when any file under it changes, appears or goes.
    println!("cargo:rerun-if-changed={}", dir.display());
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("embedded_web.rs");
    let written = web_embed_gen::generate(&dir).and_then(|code| std::fs::write(&out, code));
    if let Err(e) = written {
        eprintln!(
            "the embedded-web feature builds the web app into the binary: {e} \
             (`cargo xtask dist` builds it; {DIR_VAR} names another folder)"
        );
        std::process::exit(1);
    }
}
