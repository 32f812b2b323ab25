//! GraphQL errors: every failure of a resolver becomes one of these, and this is the one
//! place where they get their `extensions.code` (DESIGN §6). Internal details are logged,
//! never sent.

use async_graphql::ErrorExtensions;

use crate::auth::AuthError;
use crate::blobs::BlobError;
use crate::error::ServiceError;
use crate::model::FieldError;

#[derive(Clone, Debug, thiserror::Error)]
pub enum GqlError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("not allowed")]
    Forbidden,
    #[error("{message}")]
    BadInput {
        field: Option<String>,
        message: String,
    },
    /// Only where existence is no secret (e.g. the reports API switched off).
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    /// The request did not complete within its deadline.
    #[error("{0}")]
    Timeout(String),
    #[error("internal error")]
    Internal,
}

pub type GqlResult<T> = Result<T, GqlError>;

impl GqlError {
    pub fn bad_input(field: &str, message: impl Into<String>) -> Self {
        GqlError::BadInput {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    /// Logs what went wrong where operators can see it; the client learns nothing of it.
    pub fn internal(err: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %err, "GraphQL resolver failed");
        GqlError::Internal
    }

    pub fn code(&self) -> &'static str {
        match self {
            GqlError::Unauthenticated(_) => "UNAUTHENTICATED",
            GqlError::Forbidden => "FORBIDDEN",
            GqlError::BadInput { .. } => "BAD_USER_INPUT",
            GqlError::NotFound(_) => "NOT_FOUND",
            GqlError::RateLimited { .. } => "RATE_LIMITED",
            GqlError::Timeout(_) => "TIMEOUT",
            GqlError::Internal => "INTERNAL",
        }
    }
}

impl From<GqlError> for async_graphql::Error {
    fn from(err: GqlError) -> Self {
        async_graphql::Error::new(err.to_string()).extend_with(|_, extensions| {
            extensions.set("code", err.code());
            match &err {
                GqlError::BadInput {
                    field: Some(field), ..
                } => extensions.set("field", field.as_str()),
                GqlError::RateLimited {
                    retry_after_secs, ..
                } => extensions.set("retryAfter", *retry_after_secs),
                _ => {}
            }
        })
    }
}

impl From<ServiceError> for GqlError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Invalid(err) => err.into(),
            ServiceError::Conflict(message) => GqlError::BadInput {
                field: None,
                message,
            },
            // Operations reached through the API find their rows by the caller's account, so a
            // missing one is a denied one: no existence is revealed.
            ServiceError::NotFound(_) | ServiceError::Forbidden => GqlError::Forbidden,
            other => GqlError::internal(&other),
        }
    }
}

impl From<FieldError> for GqlError {
    fn from(err: FieldError) -> Self {
        GqlError::BadInput {
            field: Some(err.field),
            message: err.message,
        }
    }
}

impl From<sea_orm::DbErr> for GqlError {
    fn from(err: sea_orm::DbErr) -> Self {
        GqlError::internal(&err)
    }
}

impl From<BlobError> for GqlError {
    fn from(err: BlobError) -> Self {
        GqlError::internal(&err)
    }
}

impl From<AuthError> for GqlError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Missing | AuthError::Invalid | AuthError::BadCredentials => {
                GqlError::Unauthenticated(err.to_string())
            }
            AuthError::Forbidden => GqlError::Forbidden,
            AuthError::RateLimited { retry_after_secs } => GqlError::RateLimited {
                message: err.to_string(),
                retry_after_secs,
            },
            AuthError::Service(err) => err.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_stay_out_of_the_answer() {
        let err: GqlError = sea_orm::DbErr::Custom("password=hunter2 at db:5432".into()).into();
        let gql = async_graphql::Error::from(err);
        assert_eq!(gql.message, "internal error");
        let extensions = format!("{:?}", gql.extensions);
        assert!(extensions.contains("INTERNAL"), "{extensions}");
        assert!(!extensions.contains("hunter2"));
    }
}
