//! Local accounts of the web UI and API: a name, a role, an Argon2id password hash (PHC string,
//! its own random salt), and room for second factors (`user_factors`, empty for now) so they can
//! be added without changing what exists.
//!
//! [`State::authenticate`] spends the same Argon2id work whether the user exists or not, so the
//! answer time does not tell which names exist; it returns the same `None` for an unknown user,
//! a wrong password and a disabled account.

use crate::{Error, Result, State};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand_core::OsRng;
use rusqlite::OptionalExtension;
use serde::Serialize;
use zeroize::Zeroizing;

/// What an account may do. Ordered: each role may do what the ones before it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Browse snapshots, history and job results.
    Viewer,
    /// Also run jobs, edit tags and comments, restore and download.
    Operator,
    /// Everything, including accounts, locks and deletions.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Role> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            _ => Err(Error::Invalid(format!(
                "role {s:?} is not known; use admin, operator or viewer"
            ))),
        }
    }
}

/// An account as the rest of the daemon sees it (never the hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub created: i64,
    pub disabled: bool,
}

/// The Argon2id cost of new password hashes. The default is OWASP's recommendation for
/// Argon2id (19 MiB, 2 passes, 1 lane); existing hashes keep the cost they were made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub lanes: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        HashCost {
            memory_kib: 19 * 1024,
            iterations: 2,
            lanes: 1,
        }
    }
}

impl HashCost {
    fn hasher(&self) -> Result<Argon2<'static>> {
        let params = Params::new(self.memory_kib, self.iterations, self.lanes, None)
            .map_err(|e| Error::Hash(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Shortest password accepted for a new account.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Account names: 1 to 64 of letters, digits, `.`, `_`, `-`, not starting with `-` or `.`.
pub fn check_user_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['-', '.'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{name:?} is not a valid user name: use 1 to 64 letters, digits, '.', '_' and '-', not starting with '-' or '.'"
        )))
    }
}

fn check_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::Invalid(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

fn hash(password: &str, cost: &HashCost) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    cost.hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Hash(e.to_string()))
}

/// A hash of a password nobody has, verified for unknown users so that they cost the same time.
fn dummy_hash(cost: &HashCost) -> Result<String> {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(h) = DUMMY.get() {
        return Ok(h.clone());
    }
    let h = hash("no user has this password", cost)?;
    Ok(DUMMY.get_or_init(|| h).clone())
}

impl State {
    /// Create an account.
    pub fn add_user(
        &self,
        name: &str,
        role: Role,
        password: &str,
        now: i64,
        cost: &HashCost,
    ) -> Result<User> {
        check_user_name(name)?;
        check_password(password)?;
        let h = Zeroizing::new(hash(password, cost)?);
        let n = self
            .conn()
            .execute(
                "INSERT INTO users (name, role, password_hash, created) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO NOTHING",
                rusqlite::params![name, role.as_str(), h.as_str(), now],
            )
            .map_err(|e| self.db(e))?;
        if n == 0 {
            return Err(Error::UserExists(name.to_owned()));
        }
        tracing::info!(user = name, role = role.as_str(), "account created");
        Ok(User {
            name: name.to_owned(),
            role,
            created: now,
            disabled: false,
        })
    }

    /// Replace an account's password.
    pub fn set_password(&self, name: &str, password: &str, cost: &HashCost) -> Result<()> {
        check_password(password)?;
        let h = Zeroizing::new(hash(password, cost)?);
        let n = self
            .conn()
            .execute(
                "UPDATE users SET password_hash = ?2 WHERE name = ?1",
                rusqlite::params![name, h.as_str()],
            )
            .map_err(|e| self.db(e))?;
        if n == 0 {
            return Err(Error::NoUser(name.to_owned()));
        }
        // A new password ends every session of the old one.
        self.end_sessions_of(name)?;
        Ok(())
    }

    /// Every account, by name.
    pub fn users(&self) -> Result<Vec<User>> {
        let mut st = self
            .conn()
            .prepare("SELECT name, role, created, disabled FROM users ORDER BY name")
            .map_err(|e| self.db(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, bool>(3)?,
                ))
            })
            .map_err(|e| self.db(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, role, created, disabled) = row.map_err(|e| self.db(e))?;
            out.push(User {
                name,
                role: Role::parse(&role)?,
                created,
                disabled,
            });
        }
        Ok(out)
    }

    /// Remove an account (and its second factors).
    pub fn remove_user(&self, name: &str) -> Result<()> {
        let n = self
            .conn()
            .execute("DELETE FROM users WHERE name = ?1", [name])
            .map_err(|e| self.db(e))?;
        if n == 0 {
            return Err(Error::NoUser(name.to_owned()));
        }
        Ok(())
    }

    /// Disable or enable an account without removing it.
    pub fn set_disabled(&self, name: &str, disabled: bool) -> Result<()> {
        let n = self
            .conn()
            .execute(
                "UPDATE users SET disabled = ?2 WHERE name = ?1",
                rusqlite::params![name, disabled],
            )
            .map_err(|e| self.db(e))?;
        if n == 0 {
            return Err(Error::NoUser(name.to_owned()));
        }
        if disabled {
            self.end_sessions_of(name)?;
        }
        Ok(())
    }

    /// The account if `password` is its password and it is enabled; `None` otherwise (unknown
    /// user, wrong password, disabled), after the same amount of work in every case.
    pub fn authenticate(
        &self,
        name: &str,
        password: &str,
        cost: &HashCost,
    ) -> Result<Option<User>> {
        verify_login(self.login_record(name)?, name, password, cost)
    }

    /// What checking a password of `name` needs, read from the database (so that the slow
    /// check itself, [`verify_login`], can run without holding the database).
    pub fn login_record(&self, name: &str) -> Result<Option<LoginRecord>> {
        let row = self
            .conn()
            .query_row(
                "SELECT role, password_hash, created, disabled FROM users WHERE name = ?1",
                [name],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        Zeroizing::new(r.get::<_, String>(1)?),
                        r.get::<_, i64>(2)?,
                        r.get::<_, bool>(3)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.db(e))?;
        Ok(row.map(|(role, hash, created, disabled)| LoginRecord {
            role,
            hash,
            created,
            disabled,
        }))
    }
}

/// An account's stored login data ([`State::login_record`]).
pub struct LoginRecord {
    role: String,
    hash: Zeroizing<String>,
    created: i64,
    disabled: bool,
}

/// Check `password` against `record` (`None`: no such account), spending the same Argon2id
/// work in every case; the account if it matches and is enabled.
pub fn verify_login(
    record: Option<LoginRecord>,
    name: &str,
    password: &str,
    cost: &HashCost,
) -> Result<Option<User>> {
    let stored = match &record {
        Some(r) => r.hash.clone(),
        None => Zeroizing::new(dummy_hash(cost)?),
    };
    let parsed = PasswordHash::new(&stored).map_err(|e| {
        Error::Invalid(format!(
            "the stored password hash of {name:?} is damaged ({e}); set a new password with 'snapguard user passwd'"
        ))
    })?;
    // The hash's own parameters are used to verify, whatever the current cost.
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    match record {
        Some(r) if ok && !r.disabled => Ok(Some(User {
            name: name.to_owned(),
            role: Role::parse(&r.role)?,
            created: r.created,
            disabled: r.disabled,
        })),
        _ => Ok(None),
    }
}
