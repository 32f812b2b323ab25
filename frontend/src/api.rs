//! Typed GraphQL calls. Every operation is in `frontend/graphql/operations.graphql` and is
//! checked against `backend/schema.graphql` while this crate compiles (graphql_client), so a
//! schema change breaks the frontend build, not the user.

use std::fmt;

use graphql_client::GraphQLQuery;
use serde::{Deserialize, Serialize};

use crate::session;

/// graphql_client reads the schema but does not tell cargo; including it here does, so an
/// edited schema recompiles (and re-checks) every operation.
const _SCHEMA_DEPENDENCY: &str = include_str!("../../backend/schema.graphql");

/// The schema's `DateTime` scalar: RFC 3339 text, formatted by `format::time`.
pub type DateTime = String;

/// The schema's enums, shared by every operation instead of one copy per operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    Crash,
    UpdateFailed,
    InstallFailed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Dimension {
    Version,
    Channel,
    Platform,
    Arch,
    EventType,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Interval {
    Hour,
    Day,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    Admin,
    Member,
}

/// A release's (or a cell's) verdict, as the gate decides it (docs/gating.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GateVerdict {
    Pass,
    Fail,
    InsufficientData,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GateMetricStatus {
    Pass,
    Fail,
    InsufficientData,
    NotMeasured,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(clippy::enum_variant_names)] // the schema's names
pub enum GateMetric {
    CrashRate,
    UpdateFailureRate,
    InstallFailureRate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BaselineExposure {
    LastWindow,
    SameHours,
    FirstSessions,
}

macro_rules! operations {
    ($($operation:ident),* $(,)?) => {$(
        #[derive(GraphQLQuery)]
        #[graphql(
            schema_path = "../backend/schema.graphql",
            query_path = "graphql/operations.graphql",
            response_derives = "Debug, Clone, PartialEq",
            variables_derives = "Debug, Clone",
            extern_enums(
                "EventType",
                "Dimension",
                "Interval",
                "Role",
                "GateVerdict",
                "GateMetricStatus",
                "GateMetric",
                "BaselineExposure"
            ),
            skip_serializing_none
        )]
        pub struct $operation;
    )*};
}

operations!(
    AppAlerts,
    AlertDeliveries,
    CreateAlertDestination,
    DeleteAlertDestination,
    SendTestAlert,
    CreateAlertRule,
    DeleteAlertRule,
    Login,
    Apps,
    AppSummary,
    RolloutPage,
    GroupPage,
    ReleaseGate,
    CreateApp,
    UpdateApp,
    RotateReportKey,
    RevokeReportKey,
    Users,
    CreateUser,
    SetUserRole,
    SetUserDisabled,
    SetUserAccess,
    ApiTokens,
    CreateApiToken,
    RevokeApiToken,
    AuditLog,
);

/// Why a call gave no data, in words a user can act on.
#[derive(Clone, Debug, PartialEq)]
pub enum ApiError {
    /// The server could not be reached, or answered something that is not GraphQL.
    Network(String),
    /// The session expired or was revoked; the app is on its way back to sign-in.
    SessionEnded,
    /// The server refused, with its own message and `extensions.code`.
    Refused {
        code: Option<String>,
        message: String,
    },
}

impl ApiError {
    pub fn is_forbidden(&self) -> bool {
        matches!(self, ApiError::Refused { code: Some(code), .. } if code == "FORBIDDEN")
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Network(why) => write!(f, "Rollwatch could not be reached: {why}"),
            ApiError::SessionEnded => f.write_str("Your session has ended; please sign in again."),
            ApiError::Refused { message, .. } => f.write_str(message),
        }
    }
}

const UNAUTHENTICATED: &str = "UNAUTHENTICATED";

/// Sends `variables` as operation `Q` with the session's token, if any. A refused token ends
/// the session (back to sign-in with a message); a refused sign-in does not.
pub async fn call<Q: GraphQLQuery>(variables: Q::Variables) -> Result<Q::ResponseData, ApiError> {
    let token = session::token();
    let mut request = gloo_net::http::Request::post("/graphql");
    if let Some(token) = &token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let network = |e: gloo_net::Error| ApiError::Network(e.to_string());
    let response = request
        .json(&Q::build_query(variables))
        .map_err(network)?
        .send()
        .await
        .map_err(network)?;
    let text = response.text().await.map_err(network)?;
    let answer = read_answer::<Q::ResponseData>(response.status(), &text);
    if token.is_some() && matches!(answer, Err(Refusal::Unauthenticated)) {
        session::end(session::EndReason::Expired);
        return Err(ApiError::SessionEnded);
    }
    answer.map_err(Refusal::into_error)
}

/// Downloads `path` (an export) with the session's token: its bytes and content type.
pub async fn download(path: &str) -> Result<(Vec<u8>, String), ApiError> {
    let mut request = gloo_net::http::Request::get(path);
    if let Some(token) = session::token() {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let network = |e: gloo_net::Error| ApiError::Network(e.to_string());
    let response = request.send().await.map_err(network)?;
    if !response.ok() {
        let text = response.text().await.map_err(network)?;
        let message = serde_json::from_str::<RestError>(&text)
            .map(|e| e.error.message)
            .unwrap_or_else(|_| format!("the server answered {}", response.status()));
        return Err(ApiError::Refused {
            code: None,
            message,
        });
    }
    let content_type = response
        .headers()
        .get("content-type")
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let bytes = response.binary().await.map_err(network)?;
    Ok((bytes, content_type))
}

#[derive(Debug, PartialEq)]
enum Refusal {
    Unauthenticated,
    Other(ApiError),
}

impl Refusal {
    fn into_error(self) -> ApiError {
        match self {
            Refusal::Unauthenticated => ApiError::Refused {
                code: Some(UNAUTHENTICATED.to_owned()),
                message: "The email or password is not right.".to_owned(),
            },
            Refusal::Other(error) => error,
        }
    }
}

/// The REST error body the server uses outside GraphQL (415, 413, 503 …).
#[derive(Deserialize)]
struct RestError {
    error: RestErrorDetail,
}

#[derive(Deserialize)]
struct RestErrorDetail {
    message: String,
}

/// Reads a `/graphql` answer: data, or the first error with its code and message.
fn read_answer<T: for<'de> Deserialize<'de>>(status: u16, body: &str) -> Result<T, Refusal> {
    if let Ok(rest) = serde_json::from_str::<RestError>(body) {
        return Err(Refusal::Other(ApiError::Network(rest.error.message)));
    }
    let Ok(answer) = serde_json::from_str::<graphql_client::Response<T>>(body) else {
        return Err(Refusal::Other(ApiError::Network(format!(
            "unexpected answer (HTTP {status})"
        ))));
    };
    if let Some(first) = answer.errors.as_deref().and_then(<[_]>::first) {
        let code = first
            .extensions
            .as_ref()
            .and_then(|extensions| extensions.get("code"))
            .and_then(|code| code.as_str())
            .map(str::to_owned);
        if code.as_deref() == Some(UNAUTHENTICATED) {
            return Err(Refusal::Unauthenticated);
        }
        return Err(Refusal::Other(ApiError::Refused {
            code,
            message: first.message.clone(),
        }));
    }
    answer.data.ok_or_else(|| {
        Refusal::Other(ApiError::Network(format!(
            "no data in the answer (HTTP {status})"
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Data = rollout_page::ResponseData;

    #[test]
    fn data_is_read_into_the_generated_types() {
        let cell = r#"{"version":"1.0.0","channel":"stable","platform":null,"arch":null,
              "reports":3,"crashes":2,"updateFailures":1,"installFailures":0,"sessions":100,
              "updatesSucceeded":9,"installsSucceeded":0,"verdict":"INSUFFICIENT_DATA",
              "judged":[{"metric":"CRASH_RATE","status":"INSUFFICIENT_DATA",
                "current":{"lower":0.001,"upper":0.09}}]}"#;
        let body = format!(
            r#"{{"data":{{
            "app":{{"id":"7","name":"editor","reportsEnabled":true,"reportKey":null}},
            "rolloutHealth":[{cell}],
            "totals":[{cell}],
            "throttled":[{{"reports":4,"usage":0}}],
            "timeSeries":[{{"at":"2026-11-22T10:00:00+00:00","reports":3}}],
            "topGroups":{{"nodes":[{{"groupHash":"ab","version":"1.0.0","channel":"stable",
              "platform":"linux","arch":"x86_64","eventType":"CRASH","reason":"SIGSEGV",
              "count":2,"firstSeen":"2026-11-22T10:00:00+00:00",
              "lastSeen":"2026-11-22T10:00:00+00:00","blobCount":1}}]}},
            "allTime":{{"totalCount":1}},
            "gatePolicy":{{"crashRate":{{"maxRate":0.02}},"updateFailureRate":{{"maxRate":0.05}},
              "installFailureRate":{{"maxRate":null}}}}}}}}"#
        );
        let data: Data = read_answer(200, &body).expect("data");
        assert_eq!(data.app.name, "editor");
        assert_eq!(data.totals[0].verdict, GateVerdict::InsufficientData);
        assert_eq!(
            data.rollout_health[0].judged[0].status,
            GateMetricStatus::InsufficientData
        );
        assert_eq!(data.throttled[0].reports, 4);
        assert_eq!(data.top_groups.nodes[0].event_type, Some(EventType::Crash));
        assert_eq!(data.gate_policy.install_failure_rate.max_rate, None);
    }

    #[test]
    fn errors_carry_the_server_message_and_code() {
        let body = r#"{"data":null,"errors":[{"message":"not allowed","extensions":{"code":"FORBIDDEN"}}]}"#;
        let refusal = read_answer::<Data>(200, body).expect_err("refused");
        let error = refusal.into_error();
        assert!(error.is_forbidden());
        assert_eq!(error.to_string(), "not allowed");
    }

    #[test]
    fn an_unauthenticated_answer_is_told_apart() {
        let body =
            r#"{"errors":[{"message":"session expired","extensions":{"code":"UNAUTHENTICATED"}}]}"#;
        assert_eq!(
            read_answer::<Data>(200, body),
            Err(Refusal::Unauthenticated)
        );
    }

    #[test]
    fn a_rest_error_body_gives_its_message() {
        let body = r#"{"error":{"code":"too_large","message":"the GraphQL request is too large"}}"#;
        let error = read_answer::<Data>(413, body)
            .expect_err("refused")
            .into_error();
        assert_eq!(
            error,
            ApiError::Network("the GraphQL request is too large".to_owned())
        );
        let error = read_answer::<Data>(502, "<html>")
            .expect_err("refused")
            .into_error();
        assert_eq!(
            error,
            ApiError::Network("unexpected answer (HTTP 502)".to_owned())
        );
    }
}
