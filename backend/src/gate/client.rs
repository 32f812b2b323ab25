//! `rollwatch gate`: asks a Rollwatch server's GraphQL API for a release's verdict, prints it
//! for a CI log (or as JSON), and says it in the exit code — 0 PASS, 1 FAIL,
//! 2 INSUFFICIENT_DATA, 3 anything else.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::evaluate::{GateResult, MetricResult, MetricStatus, Verdict};
use super::policy::BaselineExposure;
use super::{confidence_text, percent};
use crate::model::Metric;

/// The exit code of a run that could not reach a verdict.
pub const EXIT_ERROR: u8 = 3;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, clap::Args)]
pub struct GateArgs {
    /// The server's base URL, e.g. https://rollwatch.example.com
    #[arg(long, env = "ROLLWATCH_URL")]
    pub url: String,
    /// A CI token (rwt_…) that may read the app; best passed as ROLLWATCH_TOKEN.
    #[arg(long, env = "ROLLWATCH_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The app's name, or its numeric id.
    #[arg(long)]
    pub app: String,
    /// The version to judge, as the app reports it.
    #[arg(long)]
    pub version: String,
    /// The channel it is released on, e.g. stable or beta.
    #[arg(long)]
    pub channel: String,
    /// Only this platform (windows, macos, linux, android, ios, web, other).
    #[arg(long)]
    pub platform: Option<String>,
    /// Only this architecture (x86_64, aarch64, x86, armv7, universal, wasm32, other).
    #[arg(long)]
    pub arch: Option<String>,
    /// Compare with this version instead of the previous one with enough data.
    #[arg(long)]
    pub baseline: Option<String>,
    /// Print the result as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--url must start with http:// or https://, not {0:?}")]
    BadUrl(String),
    #[error("cannot reach {url}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{url} answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("the answer of {url} is not a release gate result: {reason}")]
    Unexpected { url: String, reason: String },
    #[error("the server refused: {message} ({code})")]
    Refused { code: String, message: String },
    #[error("no app named or numbered {0:?} can be read with this token")]
    UnknownApp(String),
}

/// Runs the command: prints the verdict (or the error) and returns its exit code.
pub async fn run(args: &GateArgs) -> ExitCode {
    match fetch(args).await {
        Ok(Answer { result, history }) => {
            if args.json {
                match serde_json::to_string_pretty(&result) {
                    Ok(json) => println!("{json}"),
                    Err(e) => {
                        eprintln!("rollwatch gate: {e}");
                        return ExitCode::from(EXIT_ERROR);
                    }
                }
            } else {
                print!("{}", render(args, &result));
                print!("{}", render_history(&history));
            }
            ExitCode::from(exit_code(result.verdict))
        }
        Err(e) => {
            // The causes too: "connection refused" or a certificate problem is what helps.
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                let _ = write!(message, ": {cause}");
                source = cause.source();
            }
            eprintln!("rollwatch gate: {message}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

pub fn exit_code(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Pass => 0,
        Verdict::Fail => 1,
        Verdict::InsufficientData => 2,
    }
}

/// Every field of `GateResult`, in the shape it deserialises from.
const RELEASE_GATE: &str = "query ReleaseGate($appId: ID!, $version: String!, $channel: String!, \
    $platform: String, $arch: String, $baseline: String) {
  verdictHistory(appId: $appId, version: $version, channel: $channel, limit: 10) {
    verdict previous evaluatedAt
  }
  releaseGate(appId: $appId, version: $version, channel: $channel, platform: $platform, \
    arch: $arch, baseline: $baseline) {
    verdict reasons baselineVersion confidence failConfidence baselineExposure
    window { from to }
    baselineWindow { from to }
    throttled { reports usage }
    metrics { ...Metric }
    slices { platform arch name verdict confidence metrics { ...Metric } }
  }
}
fragment Metric on GateMetricResult {
  metric status relativeChange maxRate maxRegression minSample test ratioLower ratioUpper reasons
  current { events trials rate lower upper }
  baseline { events trials rate lower upper }
}";

const APPS: &str = "query { apps { id name } }";

/// A change of the release's verdict in the server's background evaluation.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerdictChange {
    pub verdict: String,
    pub previous: Option<String>,
    pub evaluated_at: chrono::DateTime<chrono::Utc>,
}

/// What the gate command prints: the verdict, and how it changed as the server watched.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub result: GateResult,
    pub history: Vec<VerdictChange>,
}

async fn fetch(args: &GateArgs) -> Result<Answer, ClientError> {
    let api = Api::new(&args.url, &args.token)?;
    let app_id = api.app_id(&args.app).await?;
    let variables = json!({
        "appId": app_id,
        "version": args.version,
        "channel": args.channel,
        "platform": args.platform,
        "arch": args.arch,
        "baseline": args.baseline,
    });
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Data {
        release_gate: GateResult,
        verdict_history: Vec<VerdictChange>,
    }
    let data: Data = api.query(RELEASE_GATE, variables).await?;
    Ok(Answer {
        result: data.release_gate,
        history: data.verdict_history,
    })
}

struct Api {
    http: reqwest::Client,
    endpoint: String,
    token: String,
}

impl Api {
    fn new(url: &str, token: &str) -> Result<Api, ClientError> {
        let base = url.trim().trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::BadUrl(url.to_owned()));
        }
        let endpoint = if base.ends_with("/graphql") {
            base.to_owned()
        } else {
            format!("{base}/graphql")
        };
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("rollwatch-gate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ClientError::Unreachable {
                url: endpoint.clone(),
                source,
            })?;
        Ok(Api {
            http,
            endpoint,
            token: token.trim().to_owned(),
        })
    }

    /// The id of the app named `app`, or numbered `app` when no app has that name.
    async fn app_id(&self, app: &str) -> Result<String, ClientError> {
        #[derive(Deserialize)]
        struct Data {
            apps: Vec<AppRef>,
        }
        #[derive(Deserialize)]
        struct AppRef {
            id: String,
            name: String,
        }
        let wanted = app.trim();
        let data: Data = self.query(APPS, Value::Null).await?;
        let by_name = data.apps.iter().find(|a| a.name == wanted);
        by_name
            .or_else(|| data.apps.iter().find(|a| a.id == wanted))
            .map(|a| a.id.clone())
            .ok_or_else(|| ClientError::UnknownApp(wanted.to_owned()))
    }

    async fn query<T: serde::de::DeserializeOwned>(
        &self,
        query: &str,
        variables: Value,
    ) -> Result<T, ClientError> {
        let unexpected = |reason: String| ClientError::Unexpected {
            url: self.endpoint.clone(),
            reason,
        };
        let response = self
            .http
            .post(&self.endpoint)
            .bearer_auth(&self.token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: self.endpoint.clone(),
                source,
            })?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: self.endpoint.clone(),
                source,
            })?;
        if !status.is_success() {
            return Err(ClientError::Status {
                url: self.endpoint.clone(),
                status: status.as_u16(),
                body: body.chars().take(500).collect(),
            });
        }
        #[derive(Deserialize)]
        struct Answer<T> {
            data: Option<T>,
            #[serde(default)]
            errors: Vec<AnswerError>,
        }
        #[derive(Deserialize)]
        struct AnswerError {
            message: String,
            #[serde(default)]
            extensions: Value,
        }
        let answer: Answer<T> =
            serde_json::from_str(&body).map_err(|e| unexpected(e.to_string()))?;
        if let Some(error) = answer.errors.into_iter().next() {
            let code = error.extensions["code"].as_str().unwrap_or("ERROR");
            return Err(ClientError::Refused {
                code: code.to_owned(),
                message: error.message,
            });
        }
        answer
            .data
            .ok_or_else(|| unexpected("neither data nor errors".to_owned()))
    }
}

/// The verdict as a table for a CI log.
pub fn render(args: &GateArgs, result: &GateResult) -> String {
    let mut out = String::new();
    let scope: Vec<&str> = [args.platform.as_deref(), args.arch.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let scope = if scope.is_empty() {
        "all platforms".to_owned()
    } else {
        scope.join(", ")
    };
    let _ = writeln!(
        out,
        "Release gate: {} {} on {} ({scope})",
        args.app, args.version, args.channel
    );
    let baseline = result.baseline_version.as_deref().map_or_else(
        || "no baseline".to_owned(),
        |v| {
            format!(
                "baseline {v} ({})",
                exposure_words(result.baseline_exposure)
            )
        },
    );
    let window = result.window.map_or_else(
        || "no data".to_owned(),
        |w| {
            format!(
                "{} – {} UTC",
                w.from.format("%Y-%m-%d %H:%M"),
                w.to.format("%Y-%m-%d %H:%M")
            )
        },
    );
    let _ = writeln!(
        out,
        "{baseline} · window {window} · confidence {}\n",
        confidence_text(result.confidence)
    );
    let bounds = if result.fail_confidence > result.confidence {
        format!(
            "BOUNDS ({} / {})",
            confidence_text(result.fail_confidence),
            confidence_text(result.confidence)
        )
    } else {
        format!("BOUNDS ({})", confidence_text(result.confidence))
    };
    let header = [
        "METRIC",
        "STATUS",
        "RATE",
        bounds.as_str(),
        "EVENTS/TRIALS",
        "BASELINE",
        "CHANGE",
    ];
    let rows: Vec<[String; 7]> = result.metrics.iter().map(row).collect();
    table(&mut out, &header, &rows);
    if !result.slices.is_empty() {
        let header = [
            "SLICE",
            "VERDICT",
            "CRASH RATE",
            "BOUNDS",
            "CRASHES/SESSIONS",
            "BASELINE",
            "CHANGE",
        ];
        let rows: Vec<[String; 7]> = result
            .slices
            .iter()
            .filter_map(|slice| {
                let crash = slice
                    .metrics
                    .iter()
                    .find(|m| m.metric == Metric::CrashRate)?;
                let mut cells = row(crash);
                cells[0] = slice.name.clone();
                cells[1] = verdict_word(slice.verdict).to_owned();
                Some(cells)
            })
            .collect();
        let _ = writeln!(
            out,
            "\nSlices (each at {} confidence, sharing the error budget):",
            result
                .slices
                .first()
                .map_or_else(String::new, |s| confidence_text(s.confidence))
        );
        table(&mut out, &header, &rows);
    }
    let _ = writeln!(out, "\nVerdict: {}", verdict_word(result.verdict));
    for reason in &result.reasons {
        let _ = writeln!(out, "  - {reason}");
    }
    out
}

/// The verdict's changes as the server's background evaluation polled the release.
pub fn render_history(history: &[VerdictChange]) -> String {
    let mut out = String::new();
    if history.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\nVerdict history (background evaluation, newest first):"
    );
    for change in history {
        let _ = writeln!(
            out,
            "  {} UTC  {} → {}",
            change.evaluated_at.format("%Y-%m-%d %H:%M"),
            change.previous.as_deref().unwrap_or("(first)"),
            change.verdict
        );
    }
    out
}

fn exposure_words(exposure: BaselineExposure) -> &'static str {
    match exposure {
        BaselineExposure::LastWindow => "its last window",
        BaselineExposure::SameHours => "the same hours",
        BaselineExposure::FirstSessions => "its first sessions",
    }
}

fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::InsufficientData => "INSUFFICIENT_DATA",
    }
}

/// `rows` under `header`, in columns as wide as their widest cell.
fn table(out: &mut String, header: &[&str; 7], rows: &[[String; 7]]) {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(header));
    for row in rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        let _ = writeln!(out, "{}", line(&cells));
    }
}

fn row(metric: &MetricResult) -> [String; 7] {
    let dash = || "–".to_owned();
    let status = match metric.status {
        MetricStatus::Pass => "PASS",
        MetricStatus::Fail => "FAIL",
        MetricStatus::InsufficientData => "INSUFFICIENT_DATA",
        MetricStatus::NotMeasured => "NOT_MEASURED",
    };
    let current = &metric.current;
    [
        metric.metric.label().to_owned(),
        status.to_owned(),
        current.rate.map_or_else(dash, percent),
        match (current.lower, current.upper) {
            (Some(lower), Some(upper)) => format!("{} – {}", percent(lower), percent(upper)),
            _ => dash(),
        },
        format!("{}/{}", current.events, current.trials),
        metric
            .baseline
            .and_then(|b| b.rate)
            .map_or_else(dash, percent),
        metric
            .relative_change
            .map_or_else(dash, |change| format!("{:+.0}%", change * 100.0)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::evaluate::{Baseline, Measured, evaluate};
    use crate::gate::policy::GatePolicy;

    fn args() -> GateArgs {
        GateArgs {
            url: "http://127.0.0.1:8080".to_owned(),
            token: "rwt_x".to_owned(),
            app: "editor".to_owned(),
            version: "1.5.0".to_owned(),
            channel: "stable".to_owned(),
            platform: Some("linux".to_owned()),
            arch: None,
            baseline: None,
            json: false,
        }
    }

    #[test]
    fn the_table_shows_each_metric_the_verdict_and_why() {
        let baseline = Baseline {
            measured: Measured::of_crashes("1.4.0", 20_000, 40),
            requested: false,
        };
        let result = evaluate(
            &GatePolicy::default(),
            &Measured::of_crashes("1.5.0", 20_000, 120),
            Some(&baseline),
        );
        let table = render(&args(), &result);
        assert!(
            table.starts_with("Release gate: editor 1.5.0 on stable (linux)\n"),
            "{table}"
        );
        assert!(table.contains("baseline 1.4.0"), "{table}");
        let crash_row = table.lines().find(|l| l.starts_with("crash rate")).unwrap();
        for cell in ["FAIL", "0.600%", "120/20000", "0.200%", "+200%"] {
            assert!(crash_row.contains(cell), "{cell} in {crash_row}");
        }
        assert!(table.contains("NOT_MEASURED"));
        assert!(
            table.contains("\nVerdict: FAIL\n  - crash rate 0.600% is +200%"),
            "{table}"
        );
    }

    #[test]
    fn the_table_shows_each_slice_and_the_throttling_caveat() {
        use crate::gate::evaluate::{Evidence, SliceEvidence, SliceKey, evaluate_with};
        use crate::model::{Arch, Platform};
        use crate::throttled::Throttled;
        let slice = |platform, arch, sessions, crashes| SliceEvidence {
            key: SliceKey {
                platform: Some(platform),
                arch: Some(arch),
            },
            release: Measured::of_crashes("1.5.0", sessions, crashes),
            baseline: None,
        };
        let slices = [
            slice(Platform::Windows, Arch::X86_64, 100_000, 300),
            slice(Platform::Linux, Arch::Aarch64, 5000, 250),
        ];
        let release = Measured::of_crashes("1.5.0", 105_000, 550);
        let result = evaluate_with(
            &GatePolicy::default(),
            &Evidence {
                release: &release,
                baseline: None,
                baseline_exposure: BaselineExposure::LastWindow,
                throttled: Throttled {
                    reports: 7,
                    usage: 0,
                },
                slices: Some(&slices),
            },
        );
        let table = render(
            &GateArgs {
                platform: None,
                ..args()
            },
            &result,
        );
        assert!(table.contains("BOUNDS (97.5% / 95%)"), "{table}");
        assert!(
            table.contains("Slices (each at 99.96% confidence"),
            "{table}"
        );
        let broken = table
            .lines()
            .find(|l| l.starts_with("linux/aarch64"))
            .unwrap_or_else(|| panic!("{table}"));
        for cell in ["FAIL", "5.00%", "250/5000"] {
            assert!(broken.contains(cell), "{cell} in {broken}");
        }
        assert!(table.contains("\nVerdict: FAIL\n"), "{table}");
        assert!(
            table.contains("  - on linux/aarch64: crash rate 5.00%"),
            "{table}"
        );
        assert!(
            table.contains("7 reports of the app were refused"),
            "{table}"
        );
    }

    #[test]
    fn the_result_round_trips_through_json_as_the_api_sends_it() {
        let result = evaluate(
            &GatePolicy::default(),
            &Measured::of_crashes("1.5.0", 500, 3),
            None,
        );
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(json["verdict"], "INSUFFICIENT_DATA");
        assert_eq!(json["metrics"][0]["metric"], "CRASH_RATE");
        assert_eq!(json["metrics"][0]["current"]["trials"], 500);
        let back: GateResult = serde_json::from_value(json).unwrap();
        assert_eq!(back, result);
    }

    #[test]
    fn the_history_lists_each_change_newest_first() {
        let at = |hour: i64| {
            chrono::DateTime::<chrono::Utc>::from_timestamp(1_764_000_000 + hour * 3600, 0).unwrap()
        };
        let history = [
            VerdictChange {
                verdict: "FAIL".to_owned(),
                previous: Some("INSUFFICIENT_DATA".to_owned()),
                evaluated_at: at(5),
            },
            VerdictChange {
                verdict: "INSUFFICIENT_DATA".to_owned(),
                previous: None,
                evaluated_at: at(0),
            },
        ];
        let text = render_history(&history);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[2], "  2025-11-24 21:00 UTC  INSUFFICIENT_DATA → FAIL");
        assert_eq!(
            lines[3],
            "  2025-11-24 16:00 UTC  (first) → INSUFFICIENT_DATA"
        );
        assert_eq!(render_history(&[]), "");
    }

    #[test]
    fn each_verdict_has_its_exit_code() {
        assert_eq!(exit_code(Verdict::Pass), 0);
        assert_eq!(exit_code(Verdict::Fail), 1);
        assert_eq!(exit_code(Verdict::InsufficientData), 2);
    }

    #[test]
    fn a_url_without_a_scheme_is_refused() {
        assert!(matches!(
            Api::new("rollwatch.example.com", "rwt_x"),
            Err(ClientError::BadUrl(_))
        ));
        let api = Api::new("https://rollwatch.example.com/", "rwt_x").unwrap();
        assert_eq!(api.endpoint, "https://rollwatch.example.com/graphql");
    }
}
