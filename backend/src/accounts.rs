//! Accounts and their users: argon2id password hashes, generated passwords shown once, and
//! the first admin of a fresh install (DESIGN §2). No default password exists anywhere.

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Argon2, PasswordHash, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use entity::{accounts, users};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use crate::config::{Config, ExposeSecret};
use crate::db::Store;
use crate::error::ServiceError;
use crate::model::Role;
use crate::secrets;

pub const MIN_PASSWORD_CHARS: usize = 12;
/// The account a fresh install starts with.
pub const FIRST_ACCOUNT_NAME: &str = "default";
/// The first admin's email when `ROLLWATCH_ADMIN_EMAIL` is unset.
pub const FIRST_ADMIN_EMAIL: &str = "admin@localhost";

/// 24 characters from 18 random bytes: 144 bits.
pub fn generate_password() -> Result<String, ServiceError> {
    Ok(URL_SAFE_NO_PAD.encode(secrets::random_bytes::<18>()?))
}

pub fn hash_password(password: &str) -> Result<String, ServiceError> {
    let salt = SaltString::encode_b64(&secrets::random_bytes::<16>()?)
        .map_err(|e| ServiceError::Hashing(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| ServiceError::Hashing(e.to_string()))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

fn check_email(email: &str) -> Result<String, ServiceError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !email.chars().any(char::is_whitespace)
        });
    if !valid {
        return Err(ServiceError::invalid(
            "email",
            format!("{email:?} is not an email address"),
        ));
    }
    Ok(email)
}

pub fn check_password(password: &str) -> Result<(), ServiceError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ServiceError::invalid(
            "password",
            format!("a password needs at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

/// A user created with a password; `generated_password` is set when the password was
/// generated here and must be shown to the operator, once.
pub struct CreatedUser {
    pub user: users::Model,
    pub generated_password: Option<String>,
}

/// A user checked and with its password hashed, ready to be inserted: prepared before the
/// write transaction, so the slow argon2 hash never holds up other writers.
pub struct NewUser {
    email: String,
    password_hash: String,
    role: Role,
    generated_password: Option<String>,
}

impl NewUser {
    /// Checks the email and the password (generated when `None`) and hashes the password.
    pub fn prepare(email: &str, password: Option<&str>, role: Role) -> Result<Self, ServiceError> {
        let email = check_email(email)?;
        let (password, generated_password) = match password {
            Some(p) => {
                check_password(p)?;
                (p.to_owned(), None)
            }
            None => {
                let p = generate_password()?;
                (p.clone(), Some(p))
            }
        };
        Ok(NewUser {
            email,
            password_hash: hash_password(&password)?,
            role,
            generated_password,
        })
    }
}

pub async fn create_user(
    db: &impl ConnectionTrait,
    account_id: i64,
    new: NewUser,
) -> Result<CreatedUser, ServiceError> {
    let NewUser {
        email,
        password_hash,
        role,
        generated_password,
    } = new;
    if users::Entity::find()
        .filter(users::Column::Email.eq(email.as_str()))
        .count(db)
        .await?
        > 0
    {
        return Err(ServiceError::Conflict(format!(
            "a user with email {email} already exists"
        )));
    }
    let user = users::ActiveModel {
        account_id: Set(account_id),
        email: Set(email),
        password_hash: Set(password_hash),
        role: Set(role.as_str().to_owned()),
        token_version: Set(0),
        disabled: Set(false),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(CreatedUser {
        user,
        generated_password,
    })
}

/// `rollwatch accounts create NAME --admin-email E`: the account and its first admin.
pub async fn create_account(
    db: &Store,
    name: &str,
    admin_email: &str,
    admin_password: Option<&str>,
) -> Result<(accounts::Model, CreatedUser), ServiceError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            "name",
            "an account name has 1 to 64 printable characters".to_owned(),
        ));
    }
    let admin = NewUser::prepare(admin_email, admin_password, Role::Admin)?;
    let txn = db.begin_write().await?;
    if accounts::Entity::find()
        .filter(accounts::Column::Name.eq(name))
        .count(&txn)
        .await?
        > 0
    {
        return Err(ServiceError::Conflict(format!(
            "an account named {name:?} already exists"
        )));
    }
    let account = accounts::ActiveModel {
        name: Set(name.to_owned()),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let admin = create_user(&txn, account.id, admin).await?;
    txn.commit().await?;
    Ok((account, admin))
}

/// Finds an account by name, or the only account when no name is given.
pub async fn find_account(
    db: &impl ConnectionTrait,
    name: Option<&str>,
) -> Result<accounts::Model, ServiceError> {
    match name {
        Some(name) => accounts::Entity::find()
            .filter(accounts::Column::Name.eq(name))
            .one(db)
            .await?
            .ok_or(ServiceError::NotFound("account")),
        None => {
            let mut all = accounts::Entity::find()
                .order_by_asc(accounts::Column::Id)
                .limit(2)
                .all(db)
                .await?;
            match all.len() {
                1 => Ok(all.remove(0)),
                0 => Err(ServiceError::NotFound("account")),
                _ => Err(ServiceError::invalid(
                    "account",
                    "several accounts exist: name one with --account".to_owned(),
                )),
            }
        }
    }
}

/// The first admin, created on the first start of an install with no users.
pub struct FirstAdmin {
    pub email: String,
    pub generated_password: Option<String>,
}

pub async fn ensure_first_admin(
    db: &Store,
    config: &Config,
) -> Result<Option<FirstAdmin>, ServiceError> {
    if users::Entity::find().count(db).await? > 0 {
        return Ok(None);
    }
    let email = config
        .auth
        .admin_email
        .clone()
        .unwrap_or_else(|| FIRST_ADMIN_EMAIL.to_owned());
    let (_, admin) = create_account(
        db,
        FIRST_ACCOUNT_NAME,
        &email,
        config
            .auth
            .admin_password
            .as_ref()
            .map(ExposeSecret::expose_secret),
    )
    .await?;
    Ok(Some(FirstAdmin {
        email: admin.user.email,
        generated_password: admin.generated_password,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let hash = hash_password("correct horse battery").expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password("anything", "not a hash"));
    }

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let a = generate_password().expect("rng");
        let b = generate_password().expect("rng");
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
        assert!(check_password(&a).is_ok());
        assert!(check_password("short").is_err());
    }
}
