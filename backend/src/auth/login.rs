//! Sign-in: rate-limited per email and per client address, and answering a wrong email
//! exactly like a wrong password, after the same argon2 work.

use std::net::IpAddr;

use entity::users;
use governor::clock::DefaultClock;
use governor::{DefaultKeyedRateLimiter, RateLimiter};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::{Actor, AuthError};
use crate::accounts;
use crate::audit::{self, Change};
use crate::db::Store;
use crate::error::ServiceError;
use crate::ratelimit::{NotUntil, per_minute, retry_after_secs};

/// Attempts per minute for one email, whatever the address: slows password guessing.
const PER_EMAIL_PER_MINUTE: u32 = 10;
/// Attempts per minute from one address, whatever the email: slows credential stuffing.
const PER_ADDRESS_PER_MINUTE: u32 = 30;

pub struct Logins {
    per_email: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    /// Verified against when the email is unknown, so that answer takes as long as a wrong
    /// password; hashed here with the same parameters as real passwords.
    dummy_hash: String,
}

impl Logins {
    pub fn new() -> Result<Self, ServiceError> {
        Ok(Logins {
            per_email: RateLimiter::keyed(per_minute(PER_EMAIL_PER_MINUTE)),
            per_address: RateLimiter::keyed(per_minute(PER_ADDRESS_PER_MINUTE)),
            clock: DefaultClock::default(),
            dummy_hash: accounts::hash_password(&accounts::generate_password()?)?,
        })
    }

    fn check_limits(&self, email: &str, address: Option<IpAddr>) -> Result<(), AuthError> {
        let limited = |not_until: NotUntil| AuthError::RateLimited {
            retry_after_secs: retry_after_secs(&self.clock, &not_until),
        };
        if let Some(address) = address {
            self.per_address.check_key(&address).map_err(limited)?;
        }
        self.per_email.check_key(&email.to_owned()).map_err(limited)
    }

    /// The user whose email and password these are, with the sign-in in the audit log;
    /// every failure is the same `BadCredentials`, a disabled user's included.
    pub async fn verify(
        &self,
        db: &Store,
        email: &str,
        password: &str,
        address: Option<IpAddr>,
    ) -> Result<users::Model, AuthError> {
        let email = email.trim().to_lowercase();
        self.check_limits(&email, address)?;
        let user = users::Entity::find()
            .filter(users::Column::Email.eq(email.as_str()))
            .one(db)
            .await?;
        let hash = user
            .as_ref()
            .map_or_else(|| self.dummy_hash.clone(), |u| u.password_hash.clone());
        let password = password.to_owned();
        // argon2 is deliberately slow: keep it off the async workers.
        let matches =
            tokio::task::spawn_blocking(move || accounts::verify_password(&password, &hash))
                .await
                .unwrap_or(false);
        match user {
            Some(user) if matches && !user.disabled => {
                let id = user.id;
                let actor = Actor::User(user);
                let txn = db.begin_write().await?;
                audit::record(&txn, &actor, Change::new("login", "user", id)).await?;
                txn.commit().await?;
                actor.user().cloned()
            }
            _ => Err(AuthError::BadCredentials),
        }
    }

    /// Forgets emails and addresses that are back to a full allowance.
    pub fn forget_idle(&self) {
        self.per_email.retain_recent();
        self.per_email.shrink_to_fit();
        self.per_address.retain_recent();
        self.per_address.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_email_limit_holds_across_addresses_and_the_address_limit_across_emails() {
        let logins = Logins::new().expect("rng");
        for i in 0..PER_EMAIL_PER_MINUTE {
            let address = IpAddr::from([10, 0, 0, i as u8]);
            logins.check_limits("a@x", Some(address)).expect("within");
        }
        assert!(matches!(
            logins.check_limits("a@x", Some(IpAddr::from([10, 0, 1, 1]))),
            Err(AuthError::RateLimited { retry_after_secs }) if retry_after_secs >= 1
        ));
        let address = IpAddr::from([10, 9, 9, 9]);
        for i in 0..PER_ADDRESS_PER_MINUTE {
            logins
                .check_limits(&format!("u{i}@x"), Some(address))
                .expect("within");
        }
        assert!(logins.check_limits("fresh@x", Some(address)).is_err());
    }
}
