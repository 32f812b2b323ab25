//! Finding and installing the tools the web app's build and tests need. Each is installed
//! only when the right version is missing, from crates.io (`cargo install`) or Debian
//! (`apt-get`); nothing downloads a prebuilt binary from anywhere else.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{Result, cargo, run};

/// Where `cargo install` puts binaries.
fn cargo_bin_dir() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"))
        .join("bin")
}

/// `PATH` with cargo's bin dir in it, so tools find what `cargo install` just put there.
pub fn search_path() -> OsString {
    let mut dirs = vec![cargo_bin_dir()];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).unwrap_or_default()
}

/// The program's first line of `--version` (`trunk 0.21.14`), or `None` when it is not there.
pub fn version_of(program: &str) -> Option<String> {
    let output = Command::new(program)
        .arg("--version")
        .env("PATH", search_path())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    output
        .status
        .success()
        .then(|| text.lines().next().unwrap_or_default().trim().to_owned())
}

/// `cargo install crate --version requirement` when `program --version` does not start with
/// `wanted` (e.g. "trunk 0.21."). `--locked` first; without it when the crate's own lock file
/// names a version crates.io no longer has.
pub fn ensure_cargo_install(program: &str, krate: &str, requirement: &str, wanted: &str) -> Result {
    if version_of(program).is_some_and(|found| found.starts_with(wanted)) {
        return Ok(());
    }
    eprintln!(
        "xtask: {program} ({wanted}…) is missing; installing {krate} {requirement} from crates.io"
    );
    let install = |locked: bool| {
        let mut command = cargo();
        command.args(["install", krate, "--version", requirement]);
        if locked {
            command.arg("--locked");
        }
        run(&mut command)
    };
    install(true).or_else(|_| install(false))
}

static APT_UPDATED: AtomicBool = AtomicBool::new(false);

/// `apt-get install -y package` when `program` cannot be found.
pub fn ensure_debian_package(program: &str, package: &str) -> Result {
    if which(program).is_some() {
        return Ok(());
    }
    eprintln!("xtask: {program} is missing; installing Debian's {package}");
    if !APT_UPDATED.swap(true, Ordering::SeqCst) {
        run(Command::new("apt-get").arg("update"))?;
    }
    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", package])
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// The program's path on the search path.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&search_path())
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
