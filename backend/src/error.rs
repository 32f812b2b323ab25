//! REST errors: one type, mapped to a status and the JSON shape of DESIGN §5 in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::model::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing report key: send Authorization: Bearer rpk_…")]
    MissingKey,
    #[error(
        "missing report key: use the DSN's key (X-Sentry-Auth sentry_key, the sentry_key query parameter or the envelope's dsn)"
    )]
    MissingSentryKey,
    #[error("invalid report key")]
    InvalidKey,
    #[error("reports are disabled for this app")]
    ReportsDisabled,
    #[error("{what} is larger than the limit of {limit} bytes")]
    TooLarge {
        what: &'static str,
        limit: u64,
        field: Option<&'static str>,
    },
    #[error("a batch holds at most {max} reports")]
    BatchTooLarge { max: usize },
    #[error("an envelope holds at most {max} sessions")]
    TooManySessions { max: usize },
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("{message}")]
    InvalidField { field: String, message: String },
    #[error("rate limit exceeded; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("the store is unavailable; retry later")]
    StoreUnavailable,
    #[error("not found")]
    NotFound,
    #[error("this download link is invalid or has expired")]
    LinkRefused,
    #[error("sign in first: send Authorization: Bearer <session token or rwt_ token>")]
    Unauthenticated,
    /// Not allowed, or no such app: the same answer, so ids cannot be probed.
    #[error("not allowed")]
    Forbidden,
    #[error("{0}")]
    BodyTimeout(crate::listen::BodyTimeout),
    #[error("this endpoint needs Authorization: Bearer <METRICS_TOKEN>")]
    MetricsTokenRequired,
}

/// The `code` of an error answer, left in the response's extensions so middleware can count
/// refusals by code without parsing the body (`scrape::TrackRequests`).
#[derive(Clone, Copy, Debug)]
pub struct ErrorCode(pub &'static str);

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingKey
            | ApiError::MissingSentryKey
            | ApiError::InvalidKey
            | ApiError::MetricsTokenRequired => StatusCode::UNAUTHORIZED,
            ApiError::ReportsDisabled => StatusCode::FORBIDDEN,
            ApiError::TooLarge { .. }
            | ApiError::BatchTooLarge { .. }
            | ApiError::TooManySessions { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MalformedJson(_) | ApiError::Malformed(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidField { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::LinkRefused => StatusCode::FORBIDDEN,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingKey | ApiError::MissingSentryKey => "missing_key",
            ApiError::InvalidKey => "invalid_key",
            ApiError::ReportsDisabled => "reports_disabled",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::BatchTooLarge { .. } => "batch_too_large",
            ApiError::TooManySessions { .. } => "too_large",
            ApiError::Malformed(_) => "malformed",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::InvalidField { .. } => "invalid_field",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::StoreUnavailable => "store_unavailable",
            ApiError::NotFound => "not_found",
            ApiError::LinkRefused => "forbidden",
            ApiError::BodyTimeout(_) => "request_timeout",
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::Forbidden => "forbidden",
            ApiError::MetricsTokenRequired => "unauthorized",
        }
    }

    /// A request body that could not be read: too slow (408), or broken off (400).
    pub fn unreadable_body(err: axum::Error) -> Self {
        let err = err.into_inner();
        match crate::listen::body_timeout(&*err) {
            Some(timeout) => ApiError::BodyTimeout(*timeout),
            None => ApiError::MalformedJson(format!("could not read the body: {err}")),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            ApiError::InvalidField { field, .. } => Some(field),
            ApiError::TooLarge { field, .. } => *field,
            ApiError::BatchTooLarge { .. } => Some("reports"),
            ApiError::TooManySessions { .. } => Some("sessions"),
            _ => None,
        }
    }

    /// `{"error": {"code", "message", "field"?}}`
    pub fn body(&self) -> Value {
        let mut error = json!({ "code": self.code(), "message": self.to_string() });
        if let Some(field) = self.field() {
            error["field"] = json!(field);
        }
        json!({ "error": error })
    }
}

/// Failures of the operations shared by the CLI and the API (accounts, apps, keys).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("{0}")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The actor may not do this, or the target is not of its account: the same answer, so
    /// ids of other accounts cannot be probed.
    #[error("not allowed")]
    Forbidden,
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("blob storage: {0}")]
    Blobs(#[from] crate::blobs::BlobError),
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("session signing failed: {0}")]
    Signing(String),
    #[error("server secret: {0}")]
    Secret(String),
}

impl From<FieldError> for ApiError {
    fn from(err: FieldError) -> Self {
        ApiError::InvalidField {
            field: err.field,
            message: err.message,
        }
    }
}

impl ServiceError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ServiceError::Invalid(FieldError::new(field, message))
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(err: crate::auth::AuthError) -> Self {
        use crate::auth::AuthError;
        match err {
            AuthError::Missing | AuthError::Invalid | AuthError::BadCredentials => {
                ApiError::Unauthenticated
            }
            AuthError::Forbidden | AuthError::Service(ServiceError::Forbidden) => {
                ApiError::Forbidden
            }
            AuthError::RateLimited { retry_after_secs } => {
                ApiError::RateLimited { retry_after_secs }
            }
            AuthError::Service(ServiceError::Database(e)) => e.into(),
            AuthError::Service(e) => {
                tracing::warn!(error = %e, "authentication failed on the server's side");
                ApiError::StoreUnavailable
            }
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        tracing::warn!(error = %err, "database error on the request path");
        ApiError::StoreUnavailable
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        response.extensions_mut().insert(ErrorCode(self.code()));
        match self {
            ApiError::RateLimited { retry_after_secs } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            ApiError::StoreUnavailable => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::MetricsTokenRequired => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
