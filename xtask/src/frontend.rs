//! The web app's build: Trunk compiles frontend/ to wasm and writes dist/, which
//! `rollwatch serve` serves. The tools come first, each only when the right one is missing.

use std::process::Command;

use crate::tools::{self, ensure_cargo_install};
use crate::{Result, run, workspace_root};

const WASM_TARGET: &str = "wasm32-unknown-unknown";

pub fn build() -> Result {
    ensure_wasm_target()?;
    ensure_cargo_install("trunk", "trunk", "~0.21", "trunk 0.21.")?;
    let bindgen = wasm_bindgen_version()?;
    ensure_cargo_install(
        "wasm-bindgen",
        "wasm-bindgen-cli",
        &format!("={bindgen}"),
        &format!("wasm-bindgen {bindgen}"),
    )?;
    run(Command::new("trunk")
        .args(["build", "--release"])
        .current_dir(workspace_root())
        .env("PATH", tools::search_path()))
}

fn ensure_wasm_target() -> Result {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("cannot run rustup to check for {WASM_TARGET}: {e}"))?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|target| target.trim() == WASM_TARGET)
    {
        return Ok(());
    }
    run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

/// The wasm-bindgen version Cargo.lock pins: the CLI must be exactly that one.
fn wasm_bindgen_version() -> Result<String> {
    let lock = std::fs::read_to_string(workspace_root().join("Cargo.lock"))
        .map_err(|e| format!("cannot read Cargo.lock: {e}"))?;
    locked_version(&lock, "wasm-bindgen")
        .ok_or_else(|| "Cargo.lock has no wasm-bindgen; is frontend/ in the workspace?".to_owned())
}

fn locked_version(lock: &str, package: &str) -> Option<String> {
    let name_line = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    lines.find(|line| line.trim() == name_line)?;
    let version = lines.next()?.trim().strip_prefix("version = \"")?;
    Some(version.trim_end_matches('"').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_locked_version_is_read_for_the_exact_package() {
        let lock = "[[package]]\nname = \"wasm-bindgen-futures\"\nversion = \"0.4.80\"\n\n\
                    [[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\n";
        assert_eq!(
            locked_version(lock, "wasm-bindgen").as_deref(),
            Some("0.2.130")
        );
        assert_eq!(locked_version(lock, "trunk"), None);
    }
}
