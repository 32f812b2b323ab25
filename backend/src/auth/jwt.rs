//! User sessions: HS256 JWTs carrying the user's `token_version`, so bumping it (disable,
//! password change) ends every session at once. The key comes from `JWT_SECRET`, else it is
//! generated once and kept in the data dir.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use entity::users;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::{Config, ExposeSecret};
use crate::error::ServiceError;
use crate::secrets;

/// How long a sign-in lasts; the web app returns to sign-in afterwards.
pub const SESSION_TTL: Duration = Duration::hours(12);
/// The file in the data dir that keeps the generated key.
pub const SECRET_FILE: &str = "jwt_secret";
const GENERATED_SECRET_BYTES: usize = 32;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, as a string (the JWT convention for `sub`).
    pub sub: String,
    pub acc: i64,
    pub ver: i32,
    pub iat: i64,
    pub exp: i64,
}

impl Claims {
    pub fn user_id(&self) -> Option<i64> {
        self.sub.parse().ok()
    }
}

/// A session as handed to the client once signed in.
pub struct Session {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

pub struct SessionKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl SessionKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        SessionKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn issue(&self, user: &users::Model) -> Result<Session, ServiceError> {
        let now = Utc::now();
        let expires_at = now + SESSION_TTL;
        let claims = Claims {
            sub: user.id.to_string(),
            acc: user.account_id,
            ver: user.token_version,
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ServiceError::Signing(e.to_string()))?;
        Ok(Session { token, expires_at })
    }

    /// The claims of a well-signed, unexpired token.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims)
    }
}

/// The signing secret: `JWT_SECRET`, else the data dir's generated key (created on first use,
/// readable by the owner only).
pub fn load_or_create_secret(config: &Config) -> Result<Vec<u8>, ServiceError> {
    if let Some(secret) = &config.auth.jwt_secret {
        return Ok(secret.expose_secret().as_bytes().to_vec());
    }
    let path = config.data_dir.join(SECRET_FILE);
    let secret_error = |e: std::io::Error| ServiceError::Secret(format!("{}: {e}", path.display()));
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let secret = hex::decode(text.trim()).unwrap_or_default();
            if secret.len() < GENERATED_SECRET_BYTES {
                return Err(ServiceError::Secret(format!(
                    "{} does not hold a key of {GENERATED_SECRET_BYTES} hex-encoded bytes",
                    path.display()
                )));
            }
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = secrets::random_bytes::<GENERATED_SECRET_BYTES>()?.to_vec();
            write_private(&path, hex::encode(&secret).as_bytes()).map_err(secret_error)?;
            Ok(secret)
        }
        Err(e) => Err(secret_error(e)),
    }
}

/// Creates `path` with mode 0600; fails rather than overwrite a key another process just wrote.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(version: i32) -> users::Model {
        users::Model {
            id: 7,
            account_id: 3,
            email: "a@example.com".to_owned(),
            password_hash: String::new(),
            role: "member".to_owned(),
            token_version: version,
            disabled: false,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn a_session_verifies_only_with_its_key_and_untouched() {
        let keys = SessionKeys::new(&[1u8; 32]);
        let session = keys.issue(&user(4)).expect("signs");
        let claims = keys.verify(&session.token).expect("verifies");
        assert_eq!((claims.user_id(), claims.acc, claims.ver), (Some(7), 3, 4));
        assert!(
            SessionKeys::new(&[2u8; 32])
                .verify(&session.token)
                .is_none()
        );
        let mut tampered = session.token.clone();
        let last = tampered.pop().expect("non-empty");
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(keys.verify(&tampered).is_none());
    }

    #[test]
    fn the_generated_secret_is_kept_private_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir_text = dir.path().display().to_string();
        let config =
            Config::from_lookup(|var| (var == "ROLLWATCH_DATA_DIR").then(|| dir_text.clone()))
                .expect("config");
        let first = load_or_create_secret(&config).expect("created");
        let second = load_or_create_secret(&config).expect("reused");
        assert_eq!(first, second);
        assert_eq!(first.len(), GENERATED_SECRET_BYTES);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
