//! `cargo xtask …`: the project's own commands, so a fresh machine needs nothing but cargo.
//!
//! - `serve`: build the web app (frontend/ → dist/) and the optimised `rollwatch` with it
//!   built in (`dist`), then run it on the embedded default (SQLite + blob folder under
//!   ./data).
//! - `dist`: build that one binary and print its path.
//! - `test`: every check and test — formatting, lints, unit and integration tests on SQLite
//!   and PostgreSQL (the machine's server, started here when it is down), the Python client's
//!   tests (sdk/python), Python's stock Sentry SDK against the server (a pinned venv in
//!   ~/.cache/rollwatch/venv-sentry), then the browser tests in e2e/.
//! - `bench`: the ingestion benchmark — release builds of `rollwatch` and `loadgen`, then
//!   `loadgen` runs every scenario on SQLite and PostgreSQL and prints the table; with
//!   `--read [--scale N]`, the read-path benchmark (dashboard and gate queries) instead.
//! - `fuzz --minutes N [target…]`: every fuzz target in fuzz/ (or the ones named) for N
//!   minutes each, with `cargo fuzz` (installed when missing). Not part of `test`.

mod e2e;
mod frontend;
mod tools;

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("dist") => dist().map(|binary| println!("{}", binary.display())),
        Some("test") => test(),
        Some("bench") => bench(&args[1..]),
        Some("fuzz") => fuzz(&args[1..]),
        _ => Err(
            "usage: cargo xtask <serve [rollwatch serve args…] | dist | test | \
             bench [loadgen args…] | fuzz --minutes N [target…]>"
                .to_owned(),
        ),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The clone `cargo xtask` was run in.
///
/// Read at run time: `cargo run` sets `CARGO_MANIFEST_DIR` for the program it runs. The value
/// compiled in names the clone that built the binary, and with a target dir shared between
/// clones (CI's) cargo reuses a binary built in another clone, which would then test that one.
fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(workspace_root());
    command
}

/// Runs `command`, failing with its description when it does not succeed.
fn run(command: &mut Command) -> Result {
    let shown = format!("{command:?}");
    eprintln!("xtask: running {shown}");
    let status = command
        .status()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed: {status}"))
    }
}

/// What a new user judges Rollwatch by: the optimised build, web app and all.
fn serve(extra: &[String]) -> Result {
    let binary = dist()?;
    run(Command::new(binary)
        .current_dir(workspace_root())
        .arg("serve")
        .args(extra))
}

/// Builds the web app, then the release `rollwatch` with it built in (the backend's
/// `embedded-web` feature), so the binary serves it from any working directory. Its path.
fn dist() -> Result<PathBuf> {
    frontend::build()?;
    let staged = target_dir()?.join("embedded-web");
    stage(&workspace_root().join("dist"), &staged)?;
    run(cargo()
        .args([
            "build",
            "--release",
            "--package",
            "rollwatch",
            "--features",
            "rollwatch/embedded-web",
        ])
        .env("ROLLWATCH_EMBED_WEB_DIR", &staged))?;
    let binary = target_dir()?.join("release/rollwatch");
    let size = std::fs::metadata(&binary)
        .map_err(|e| format!("{}: {e}", binary.display()))?
        .len();
    eprintln!(
        "xtask: {} ({:.1} MiB, web app built in)",
        binary.display(),
        size as f64 / (1024.0 * 1024.0)
    );
    Ok(binary)
}

const POSTGRES_ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 5432);

fn postgres_is_up() -> bool {
    TcpStream::connect_timeout(&SocketAddr::from(POSTGRES_ADDR), Duration::from_secs(1)).is_ok()
}

/// The tests need the machine's PostgreSQL: start its cluster when it is not listening.
fn ensure_postgres() -> Result {
    if std::env::var_os("TEST_DATABASE_URL").is_some() || postgres_is_up() {
        return Ok(());
    }
    eprintln!("xtask: PostgreSQL is not listening on 127.0.0.1:5432; starting it");
    let versions = std::fs::read_dir("/etc/postgresql").map_err(|e| {
        format!("no PostgreSQL installed (/etc/postgresql: {e}); set TEST_DATABASE_URL")
    })?;
    for version in versions.flatten() {
        let version = version.file_name().to_string_lossy().into_owned();
        let _ = run(Command::new("pg_ctlcluster").args([
            "--skip-systemctl-redirect",
            &version,
            "main",
            "start",
        ]));
    }
    for _ in 0..30 {
        if postgres_is_up() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    Err("PostgreSQL did not come up on 127.0.0.1:5432".to_owned())
}

fn test() -> Result {
    ensure_postgres()?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo().args(["test", "--workspace"]).env(
        "TEST_DATABASE_URL",
        std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
    ))?;
    python_sdk_tests()?;
    sentry_python_tests()?;
    e2e::run_suite()
}

/// The Python client's tests (sdk/python, standard library only) against the debug
/// `rollwatch` binary the cargo test step just built.
fn python_sdk_tests() -> Result {
    let binary = target_dir()?.join("debug/rollwatch");
    run(Command::new("python3")
        .current_dir(workspace_root())
        .args([
            "-m",
            "unittest",
            "discover",
            "-s",
            "sdk/python/tests",
            "-t",
            "sdk/python",
            "-v",
        ])
        .env("ROLLWATCH_BIN", binary))
}

/// Python's stock `sentry-sdk` against the debug `rollwatch` binary
/// (backend/tests/sentry_python), with the venv made from its requirements.txt.
fn sentry_python_tests() -> Result {
    let tests = workspace_root().join("backend/tests/sentry_python");
    let python = sentry_venv(&tests.join("requirements.txt"))?;
    let binary = target_dir()?.join("debug/rollwatch");
    run(Command::new(python)
        .current_dir(&tests)
        .args(["-m", "unittest", "-v", "test_sentry_python"])
        .env("ROLLWATCH_BIN", binary))
}

/// The venv at ~/.cache/rollwatch/venv-sentry holding exactly `requirements`; made again when
/// it is missing or was made from other pins. Its Python.
fn sentry_venv(requirements: &std::path::Path) -> Result<PathBuf> {
    let wanted = std::fs::read_to_string(requirements)
        .map_err(|e| format!("cannot read {}: {e}", requirements.display()))?;
    let home = std::env::var_os("HOME").ok_or("HOME is not set")?;
    let venv = PathBuf::from(home).join(".cache/rollwatch/venv-sentry");
    let python = venv.join("bin/python");
    let stamp = venv.join("rollwatch-requirements.txt");
    if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|made| made == wanted) {
        return Ok(python);
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv)
            .map_err(|e| format!("cannot remove the old {}: {e}", venv.display()))?;
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(requirements))?;
    std::fs::write(&stamp, wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    Ok(python)
}

fn bench(extra: &[String]) -> Result {
    ensure_postgres()?;
    // One build of both, so they share the feature-unified dependencies; `cargo run` of
    // loadgen alone would resolve other features and rebuild half the tree.
    run(cargo().args([
        "build",
        "--release",
        "--package",
        "rollwatch",
        "--package",
        "loadgen",
    ]))?;
    let release_dir = target_dir()?.join("release");
    run(Command::new(release_dir.join("loadgen"))
        .arg("--rollwatch")
        .arg(release_dir.join("rollwatch"))
        .args(extra))
}

/// The fuzz targets of fuzz/, with the libFuzzer options each needs.
const FUZZ_TARGETS: &[(&str, &[&str])] = &[
    ("payload", &[]),
    // Room for a gzip bomb: 64 KiB of gzip inflates to tens of MiB.
    ("details", &["-max_len=70000"]),
];

fn fuzz(args: &[String]) -> Result {
    let (minutes, named) = match args {
        [flag, minutes, named @ ..] if flag == "--minutes" => (
            minutes
                .parse::<u64>()
                .ok()
                .filter(|&m| m > 0)
                .ok_or_else(|| {
                    format!("--minutes wants a whole number above 0, not {minutes:?}")
                })?,
            named,
        ),
        _ => return Err("usage: cargo xtask fuzz --minutes N [target…]".to_owned()),
    };
    if let Some(unknown) = named
        .iter()
        .find(|name| !FUZZ_TARGETS.iter().any(|(target, _)| target == name))
    {
        return Err(format!("no fuzz target {unknown:?}"));
    }
    tools::ensure_cargo_install("cargo-fuzz", "cargo-fuzz", "~0.13", "cargo-fuzz 0.13.")?;
    let fuzz_dir = workspace_root().join("fuzz");
    for (target, options) in FUZZ_TARGETS {
        if !named.is_empty() && !named.iter().any(|name| name == target) {
            continue;
        }
        // Stable rustc: RUSTC_BOOTSTRAP lets it take the -Z flags cargo-fuzz passes. No
        // sanitizer: the code is safe Rust, and the targets count allocations themselves.
        // Four codegen units: the first build (the whole server, instrumented) is a quarter
        // of an hour on 2 cores with cargo-fuzz's default of one.
        run(cargo()
            .current_dir(&fuzz_dir)
            .env("PATH", tools::search_path())
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", "--sanitizer", "none", "--codegen-units", "4"])
            .args([target, "--"])
            .arg(format!("-max_total_time={}", minutes * 60))
            .args(["-print_final_stats=1", "-rss_limit_mb=1024"])
            .args(*options))?;
    }
    Ok(())
}

/// Makes `to` hold exactly the files of `from`, rewriting only those whose content differs.
///
/// Trunk rewrites every file of dist/ on each build, identical or not, and a newer file is
/// one cargo re-embeds: built from dist/ directly, each `cargo xtask serve` spent minutes
/// recompiling the release binary for a web app that had not changed.
fn stage(from: &std::path::Path, to: &std::path::Path) -> Result {
    let failed = |path: &std::path::Path, e: std::io::Error| format!("{}: {e}", path.display());
    std::fs::create_dir_all(to).map_err(|e| failed(to, e))?;
    let mut wanted = std::collections::HashSet::new();
    for entry in std::fs::read_dir(from).map_err(|e| failed(from, e))? {
        let source = entry.map_err(|e| failed(from, e))?.path();
        if !source.is_file() {
            return Err(format!(
                "{}: the web app is expected to be flat files",
                source.display()
            ));
        }
        let Some(name) = source.file_name().map(std::ffi::OsStr::to_os_string) else {
            continue;
        };
        let target = to.join(&name);
        let bytes = std::fs::read(&source).map_err(|e| failed(&source, e))?;
        if std::fs::read(&target).ok().as_deref() != Some(bytes.as_slice()) {
            std::fs::write(&target, &bytes).map_err(|e| failed(&target, e))?;
        }
        wanted.insert(name);
    }
    for entry in std::fs::read_dir(to).map_err(|e| failed(to, e))? {
        let staged = entry.map_err(|e| failed(to, e))?.path();
        if staged
            .file_name()
            .is_some_and(|name| !wanted.contains(name))
        {
            std::fs::remove_file(&staged).map_err(|e| failed(&staged, e))?;
        }
    }
    Ok(())
}

/// Cargo's target directory, wherever `CARGO_TARGET_DIR` or a config file put it.
fn target_dir() -> Result<PathBuf> {
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    const FIELD: &str = "\"target_directory\":\"";
    let metadata = String::from_utf8_lossy(&output.stdout);
    metadata
        .split_once(FIELD)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(dir, _)| PathBuf::from(dir))
        .ok_or_else(|| "cargo metadata did not name the target directory".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_rewrites_only_what_changed_and_drops_what_is_gone() {
        let root = std::env::temp_dir().join(format!("xtask-stage-{}", std::process::id()));
        let (dist, staged) = (root.join("dist"), root.join("staged"));
        std::fs::create_dir_all(&dist).expect("dist");
        for (name, text) in [
            ("index.html", "<html>"),
            ("app-1.js", "one"),
            ("old.css", "x"),
        ] {
            std::fs::write(dist.join(name), text).expect("file");
        }
        stage(&dist, &staged).expect("first stage");
        let modified = |name: &str| {
            std::fs::metadata(staged.join(name))
                .and_then(|m| m.modified())
                .expect("staged file")
        };
        let index_first = modified("index.html");
        std::thread::sleep(Duration::from_millis(20));
        // Trunk's next build: the same index rewritten, an asset changed, one gone.
        std::fs::write(dist.join("index.html"), "<html>").expect("file");
        std::fs::write(dist.join("app-1.js"), "two").expect("file");
        std::fs::remove_file(dist.join("old.css")).expect("remove");
        stage(&dist, &staged).expect("second stage");
        assert_eq!(modified("index.html"), index_first, "unchanged, untouched");
        assert_eq!(
            std::fs::read_to_string(staged.join("app-1.js")).expect("file"),
            "two"
        );
        assert!(!staged.join("old.css").exists());
        let _ = std::fs::remove_dir_all(&root);
    }
}
