//! End to end against the real `rollwatch serve`.

mod support;

use std::process::Command;
use std::time::Duration;

use rollwatch_client::{Client, Config};
use support::{Responder, Server, TlsRelay};

const APP: &str = "desktop";

fn row(kind: &str, reason: &str, n: i64) -> (String, String, i64) {
    (kind.to_owned(), reason.to_owned(), n)
}

struct Setup {
    server: Server,
    key: String,
    queue: tempfile::TempDir,
}

fn setup() -> Setup {
    let server = Server::start();
    let key = server.create_app(APP);
    Setup {
        server,
        key,
        queue: tempfile::tempdir().expect("queue dir"),
    }
}

impl Setup {
    fn config(&self, endpoint: &str) -> Config {
        let mut config = Config::new(endpoint, &self.key, APP, "1.4.2", "stable");
        config.queue_dir = Some(self.queue.path().to_path_buf());
        config.backoff_initial = Duration::from_millis(100);
        config.backoff_max = Duration::from_millis(500);
        config
    }

    fn client(&self) -> Client {
        Client::new(self.config(&self.server.url))
    }
}

#[test]
fn all_three_event_types_land_in_their_groups_and_usage_is_summed() {
    let s = setup();
    let c = s.client();
    c.crash("NullPointer", Some("at main.rs:1"));
    c.crash("NullPointer", None);
    c.update_failed("DiskFull", Some("no space left"));
    c.install_failed("AccessDenied", None);
    c.session_started();
    c.session_started();
    c.session_started();
    c.update_succeeded();
    c.install_succeeded();
    assert!(c.flush(Duration::from_secs(20)));
    assert_eq!(
        s.server.groups(APP),
        vec![
            row("crash", "NullPointer", 2),
            row("install_failed", "AccessDenied", 1),
            row("update_failed", "DiskFull", 1),
        ]
    );
    assert_eq!(
        s.server.usage(APP),
        vec![
            row("install_succeeded", "", 1),
            row("session", "", 3),
            row("update_succeeded", "", 1),
        ]
    );
    assert_eq!(c.pending(), 0);
}

/// Run by `a_panic_in_a_child_is_reported_on_the_next_start` in a child process only.
#[test]
fn child_that_panics() {
    let Ok(queue) = std::env::var("ROLLWATCH_TEST_CHILD_QUEUE") else {
        return;
    };
    // A closed port: the crash cannot be sent now and must wait on disk.
    let endpoint = format!("http://127.0.0.1:{}", support::free_port());
    let mut config = Config::new(endpoint, "rpk_unused", APP, "1.4.2", "stable");
    config.queue_dir = Some(queue.into());
    config.crash_flush_timeout = Duration::from_millis(100);
    let client = Client::new(config);
    client.install_panic_hook();
    panic!("index out of bounds in the updater");
}

#[test]
fn a_panic_in_a_child_is_reported_on_the_next_start() {
    let s = setup();
    let status = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child_that_panics", "--test-threads=1"])
        .env("ROLLWATCH_TEST_CHILD_QUEUE", s.queue.path())
        .status()
        .expect("child runs");
    assert!(!status.success(), "the child panicked");
    assert!(s.server.groups(APP).is_empty());

    let c = s.client();
    assert!(c.flush(Duration::from_secs(20)));
    assert_eq!(
        s.server.groups(APP),
        vec![row("crash", "index out of bounds in the updater", 1)]
    );
    let blobs = s.server.blobs();
    assert_eq!(blobs.len(), 1);
    assert!(blobs[0].contains("panicked at"), "{}", blobs[0]);
    assert!(blobs[0].contains("stack backtrace"), "{}", blobs[0]);
}

#[test]
fn reports_queue_while_the_server_is_down_survive_a_restart_and_count_once() {
    let mut s = setup();
    s.server.stop();
    let c = s.client();
    for _ in 0..3 {
        c.update_failed("Timeout", Some("download stalled"));
        c.session_started();
    }
    assert!(!c.flush(Duration::from_millis(300)));
    drop(c); // the app exits with everything unsent

    let again = s.client(); // the app starts again, the server still down
    again.crash("AfterRestart", None);
    assert!(!again.flush(Duration::from_millis(300)));
    assert_eq!(again.pending(), 7);
    drop(again);

    s.server.restart();
    let c = s.client();
    assert!(c.flush(Duration::from_secs(20)));
    assert_eq!(
        s.server.groups(APP),
        vec![
            row("crash", "AfterRestart", 1),
            row("update_failed", "Timeout", 3)
        ]
    );
    assert_eq!(s.server.usage(APP), vec![row("session", "", 3)]);
}

/// A 429 whose `Retry-After` is `value` (about two seconds from now) is waited out, and the
/// retry carries the same `Idempotency-Key`.
fn retry_after_is_honoured(value: &str) {
    let s = setup();
    let body = "{\"error\":{\"code\":\"rate_limited\",\"message\":\"slow\"}}\n";
    let responder = Responder::start(
        &s.server.url,
        format!(
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: {value}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    let c = Client::new(s.config(&responder.url));
    c.update_failed("RateLimited", None);
    // The next attempt is due after Retry-After (the backoff alone would retry within
    // 500 ms), so a short flush gives up at once.
    assert!(!c.flush(Duration::from_millis(500)));
    assert_eq!(responder.requests(), 1);
    assert!(c.flush(Duration::from_secs(20)));
    let seen = responder.seen.lock().expect("log");
    assert_eq!(seen.len(), 2);
    let key = seen[0].header("Idempotency-Key");
    assert!(key.is_some());
    assert_eq!(key, seen[1].header("Idempotency-Key"));
    drop(seen);
    assert_eq!(
        s.server.groups(APP),
        vec![row("update_failed", "RateLimited", 1)]
    );
}

#[test]
fn retry_after_on_429_is_honoured_with_the_same_idempotency_key() {
    retry_after_is_honoured("2");
}

#[test]
fn retry_after_given_as_an_http_date_is_honoured() {
    let at = std::time::SystemTime::now() + Duration::from_secs(3);
    retry_after_is_honoured(&httpdate::fmt_http_date(at));
}

#[test]
fn reports_reach_an_https_endpoint_whose_private_ca_is_trusted() {
    let s = setup();
    let relay = TlsRelay::start(&s.server.url);
    let mut config = s.config(&relay.url);
    config.root_certificates = vec![support::TEST_CA.to_vec()];
    let c = Client::new(config);
    c.update_failed("OverTls", None);
    c.session_started();
    assert!(c.flush(Duration::from_secs(20)));
    assert_eq!(
        s.server.groups(APP),
        vec![row("update_failed", "OverTls", 1)]
    );
    assert_eq!(s.server.usage(APP), vec![row("session", "", 1)]);
    assert!(*relay.handshakes.lock().expect("count") >= 1);
}

#[test]
fn an_untrusted_certificate_sends_nothing_and_keeps_the_reports() {
    let s = setup();
    let relay = TlsRelay::start(&s.server.url);
    let untrusting = Client::new(s.config(&relay.url));
    untrusting.crash("BehindTls", None);
    assert!(!untrusting.flush(Duration::from_secs(1)));
    assert_eq!(untrusting.pending(), 1);
    drop(untrusting);
    assert_eq!(*relay.handshakes.lock().expect("count"), 0);
    assert!(s.server.groups(APP).is_empty());

    let mut config = s.config(&relay.url);
    config.root_certificates = vec![support::TEST_CA.to_vec()];
    let trusting = Client::new(config);
    assert!(trusting.flush(Duration::from_secs(20)));
    assert_eq!(s.server.groups(APP), vec![row("crash", "BehindTls", 1)]);
}

#[test]
fn a_full_queue_drops_the_oldest() {
    let s = setup();
    let mut config = s.config(&s.server.url);
    config.send = false;
    config.max_queue_files = 5;
    let queued = Client::new(config);
    for i in 0..8 {
        queued.crash(&format!("Report{i}"), None);
    }
    assert_eq!(queued.pending(), 5);
    drop(queued);
    let c = s.client();
    assert!(c.flush(Duration::from_secs(20)));
    let expected: Vec<_> = (3..8)
        .map(|i| row("crash", &format!("Report{i}"), 1))
        .collect();
    assert_eq!(s.server.groups(APP), expected);
}

#[test]
fn personal_data_never_reaches_the_server() {
    let s = setup();
    let mut config = s.config(&s.server.url);
    config.deny_list = vec!["Project Falcon".into()];
    let c = Client::new(config);
    c.crash(
        "failed for alice@example.com from 10.20.30.40 in project falcon",
        None,
    );
    let details = "user alice@example.com\nconnect 10.20.30.40:443 failed, then \
                   [2001:db8:85a3::8a2e:370:7334]:443 and fe80::1ff:fe23:4567:890a\n\
                   at /home/alice/app/src/main.rs:3\n\
                   at /Users/bob/Library/app.rs:4\n\
                   loading C:\\Users\\carol\\AppData\\Local\\app\\x.dll for Project Falcon\n\
                   json {\"path\":\"C:\\\\Users\\\\dave\\\\Downloads\\\\setup.exe\"}\n";
    c.update_failed("PathLeak", Some(details));
    assert!(c.flush(Duration::from_secs(20)));
    let groups = s.server.groups(APP);
    assert!(groups.contains(&row(
        "crash",
        "failed for <email> from <ip> in <redacted>",
        1
    )));
    let blobs = s.server.blobs();
    assert_eq!(blobs.len(), 1);
    let text = blobs[0].clone();
    for pii in [
        "alice@example.com",
        "10.20.30.40",
        "2001:db8:85a3::8a2e:370:7334",
        "fe80::1ff:fe23:4567:890a",
        "alice",
        "bob",
        "carol",
        "dave",
        "Project Falcon",
    ] {
        assert!(!text.contains(pii), "{pii} leaked: {text}");
    }
    for kept in [
        "/home/<user>/app/src/main.rs",
        "/Users/<user>/Library",
        "C:\\Users\\<user>\\AppData",
        "C:\\\\Users\\\\<user>\\\\Downloads",
        "[<ip>]:443 and <ip>",
        "connect <ip>:443",
        "for <redacted>",
    ] {
        assert!(text.contains(kept), "{kept} missing: {text}");
    }
}
