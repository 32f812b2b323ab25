//! `rollwatch serve` as a child process, configured through its environment as an operator
//! would, plus the operator command that creates the benchmark's app.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::BenchError;

const LISTENING: &str = "Rollwatch listening on http://";
/// Migrations on a fresh database and hashing the first admin's password take a moment.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The `rollwatch` binary and the environment every invocation of it gets.
pub struct Rollwatch {
    pub binary: PathBuf,
    pub env: Vec<(&'static str, String)>,
}

impl Rollwatch {
    fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// `rollwatch apps create NAME`: the new app's report key.
    pub fn create_app(&self, name: &str) -> Result<String, BenchError> {
        let output = self
            .command()
            .args(["apps", "create", name])
            .output()
            .map_err(|source| BenchError::Spawn {
                what: "rollwatch apps create".into(),
                source,
            })?;
        if !output.status.success() {
            return Err(BenchError::Command {
                what: "rollwatch apps create",
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// Starts `rollwatch serve`, its log going to `log`, and waits until it listens.
    pub fn serve(&self, log: &Path) -> Result<Server, BenchError> {
        let log_file = File::create(log)?;
        let mut child = self
            .command()
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|source| BenchError::Spawn {
                what: format!("{} serve", self.binary.display()),
                source,
            })?;
        let stdout = child.stdout.take();
        // From here on, an early return kills the process.
        let process = KillOnDrop(child);
        let (address, listening) = mpsc::channel();
        if let Some(stdout) = stdout {
            // Keeps reading after the address, so the pipe never fills and blocks the server.
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(addr) = line.strip_prefix(LISTENING) {
                        let _ = address.send(addr.trim().to_owned());
                    }
                }
            });
        }
        let not_started = || BenchError::ServerDidNotStart {
            log: log.to_path_buf(),
        };
        let addr = listening
            .recv_timeout(START_TIMEOUT)
            .map_err(|_| not_started())?
            .parse()
            .map_err(|_| not_started())?;
        Ok(Server { process, addr })
    }
}

/// A child process that is killed if it is dropped while still running.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A running `rollwatch serve`.
pub struct Server {
    process: KillOnDrop,
    pub addr: SocketAddr,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.process.0.id()
    }

    /// The peak resident set size so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Result<u64, BenchError> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.0.id()))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or(BenchError::NoPeakRss)
    }

    /// Stops the server as an operator would (SIGTERM) and waits for it to exit.
    pub fn stop(mut self) -> Result<(), BenchError> {
        let pid = self.process.0.id().to_string();
        let signalled = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map_err(|source| BenchError::Spawn {
                what: "kill".into(),
                source,
            })?;
        if !signalled.success() {
            return Err(BenchError::Command {
                what: "kill -TERM",
                stderr: format!("exit status {signalled}"),
            });
        }
        let status = self.process.0.wait()?;
        if !status.success() {
            return Err(BenchError::Command {
                what: "rollwatch serve",
                stderr: format!("exited with {status} after SIGTERM"),
            });
        }
        Ok(())
    }
}
