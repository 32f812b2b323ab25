//! The signed-in user's session: the JWT from `login`, kept in local storage so it survives
//! reloads and is shared by tabs, until it expires or the server refuses it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::browser;
use crate::view_state::Choice;

const STORAGE_KEY: &str = "rollwatch.session";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub token: String,
    /// RFC 3339, as the server sent it.
    pub expires_at: String,
    pub email: String,
    pub is_admin: bool,
}

impl Session {
    /// An expiry the browser cannot read counts as expired: the server decides anyway.
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        DateTime::parse_from_rfc3339(&self.expires_at).map_or(true, |expires| expires <= now)
    }
}

/// What the browser holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Stored {
    None,
    Expired,
    Active(Session),
}

pub fn current() -> Stored {
    let Some(session) =
        browser::stored(STORAGE_KEY).and_then(|text| serde_json::from_str::<Session>(&text).ok())
    else {
        return Stored::None;
    };
    if session.is_expired_at(browser::now()) {
        browser::forget(STORAGE_KEY);
        return Stored::Expired;
    }
    Stored::Active(session)
}

pub fn token() -> Option<String> {
    match current() {
        Stored::Active(session) => Some(session.token),
        Stored::None | Stored::Expired => None,
    }
}

pub fn start(session: &Session) {
    if let Ok(text) = serde_json::to_string(session) {
        browser::store(STORAGE_KEY, &text);
    }
}

/// Why the user is back on the sign-in page; carried in its URL (`?reason=expired`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    Expired,
    SignedOut,
}

pub const REASON_PARAM: &str = "reason";

impl Choice for EndReason {
    const ALL: &'static [Self] = &[EndReason::Expired, EndReason::SignedOut];
    fn url_value(self) -> &'static str {
        match self {
            EndReason::Expired => "expired",
            EndReason::SignedOut => "signed-out",
        }
    }
    /// The message the sign-in page shows.
    fn label(self) -> &'static str {
        match self {
            EndReason::Expired => "Your session expired or was revoked. Please sign in again.",
            EndReason::SignedOut => "You have signed out.",
        }
    }
}

impl EndReason {
    pub fn sign_in_path(self) -> String {
        format!("/sign-in?{REASON_PARAM}={}", self.url_value())
    }
}

/// Forgets the session and reloads at sign-in, so no state of the old session survives.
pub fn end(reason: EndReason) {
    browser::forget(STORAGE_KEY);
    browser::reload_at(&reason.sign_in_path());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(expires_at: &str) -> Session {
        Session {
            token: "jwt".to_owned(),
            expires_at: expires_at.to_owned(),
            email: "admin@example.com".to_owned(),
            is_admin: true,
        }
    }

    #[test]
    fn a_session_expires_at_its_time_and_unreadable_times_count_as_expired() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
            .expect("time")
            .to_utc();
        assert!(!session("2026-11-22T12:00:01+00:00").is_expired_at(now));
        assert!(session("2026-11-22T12:00:00+00:00").is_expired_at(now));
        assert!(session("soon").is_expired_at(now));
    }

    #[test]
    fn end_reasons_round_trip_through_the_url() {
        for reason in [EndReason::Expired, EndReason::SignedOut] {
            let path = reason.sign_in_path();
            let value = path.rsplit('=').next().expect("value");
            assert_eq!(EndReason::from_url_value(value), Some(reason));
        }
        assert_eq!(EndReason::from_url_value("bored"), None);
    }
}
