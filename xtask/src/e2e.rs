//! The browser tests: Playwright Test in e2e/ drives Debian's Chromium against the freshly
//! built `rollwatch` binary and web app (e2e/global-setup.ts starts the server on a fresh
//! data dir and a free port).

use std::path::Path;
use std::process::Command;

use crate::tools::{self, ensure_debian_package};
use crate::{Result, cargo, frontend, run, target_dir, workspace_root};

pub fn run_suite() -> Result {
    ensure_debian_package("chromium", "chromium")?;
    ensure_debian_package("npm", "npm")?;
    frontend::build()?;
    run(cargo().args(["build", "--package", "rollwatch"]))?;
    let e2e = workspace_root().join("e2e");
    install_packages(&e2e)?;
    run(Command::new("npx")
        .args(["playwright", "test"])
        .current_dir(&e2e)
        .env("PATH", tools::search_path())
        .env(
            "ROLLWATCH_BIN",
            target_dir()?.join("debug").join("rollwatch"),
        )
        .env("ROLLWATCH_WEB_DIR", workspace_root().join("dist")))
}

/// `npm ci` when node_modules is missing or older than package-lock.json; never a browser
/// download (the tests use Debian's Chromium).
fn install_packages(e2e: &Path) -> Result {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let lock = modified(&e2e.join("package-lock.json"));
    let installed = modified(&e2e.join("node_modules").join(".package-lock.json"));
    if matches!((lock, installed), (Some(lock), Some(installed)) if installed >= lock) {
        return Ok(());
    }
    run(Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(e2e)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"))
}
