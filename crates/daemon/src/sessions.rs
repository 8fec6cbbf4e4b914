//! Web sessions: a random 256-bit token in the client's cookie, and only its BLAKE3 hash in the
//! database, so a copy of `state.db` does not let anyone log in. Each session has its own CSRF
//! token (sent by the client in a header on every change), an idle timeout and an absolute
//! expiry. The account is looked up on every use: a removed or disabled account, or one whose
//! password changed, has no sessions left.

use crate::users::{Role, User};
use crate::{Result, State};
use rand_core::{OsRng, RngCore};
use rusqlite::OptionalExtension;
use zeroize::Zeroizing;

/// How long sessions live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// A session unused for this long ends.
    pub idle_secs: i64,
    /// A session ends this long after login however it is used.
    pub absolute_secs: i64,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            idle_secs: 2 * 3600,
            absolute_secs: 24 * 3600,
        }
    }
}

/// A new session: the token goes to the client (and nowhere else).
#[derive(Debug)]
pub struct NewSession {
    pub token: Zeroizing<String>,
    pub csrf: String,
    pub expires: i64,
}

/// A session in use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub user: User,
    pub csrf: String,
    pub expires: i64,
}

fn random_hex() -> String {
    let mut b = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(&mut *b);
    hex::encode(*b)
}

fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

impl State {
    /// Start a session for `user` (already authenticated); `client` is recorded for the audit.
    pub fn create_session(
        &self,
        user: &str,
        client: &str,
        now: i64,
        limits: &SessionLimits,
    ) -> Result<NewSession> {
        let token = Zeroizing::new(random_hex());
        let csrf = random_hex();
        let expires = now + limits.absolute_secs;
        // Ended sessions are swept at each login, so the table stays small.
        self.conn()
            .execute(
                "DELETE FROM sessions WHERE expires <= ?1 OR last_seen <= ?2",
                rusqlite::params![now, now - limits.idle_secs],
            )
            .map_err(|e| self.db(e))?;
        self.conn()
            .execute(
                "INSERT INTO sessions (token_hash, user, csrf, created, last_seen, expires, client)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)",
                rusqlite::params![token_hash(&token), user, csrf, now, expires, client],
            )
            .map_err(|e| self.db(e))?;
        Ok(NewSession {
            token,
            csrf,
            expires,
        })
    }

    /// The session of `token` if it is valid at `now` and its account is enabled; marks it used.
    pub fn session(
        &self,
        token: &str,
        now: i64,
        limits: &SessionLimits,
    ) -> Result<Option<Session>> {
        let h = token_hash(token);
        let row = self
            .conn()
            .query_row(
                "SELECT s.csrf, s.expires, s.last_seen, u.name, u.role, u.created, u.disabled
                 FROM sessions s JOIN users u ON u.name = s.user WHERE s.token_hash = ?1",
                [&h],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, bool>(6)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.db(e))?;
        let Some((csrf, expires, last_seen, name, role, created, disabled)) = row else {
            return Ok(None);
        };
        if disabled || now >= expires || now - last_seen >= limits.idle_secs {
            self.conn()
                .execute("DELETE FROM sessions WHERE token_hash = ?1", [&h])
                .map_err(|e| self.db(e))?;
            return Ok(None);
        }
        // Written at most once a minute: every API call would otherwise be a database write.
        if now - last_seen >= 60 {
            self.conn()
                .execute(
                    "UPDATE sessions SET last_seen = ?2 WHERE token_hash = ?1",
                    rusqlite::params![h, now],
                )
                .map_err(|e| self.db(e))?;
        }
        Ok(Some(Session {
            user: User {
                name,
                role: Role::parse(&role)?,
                created,
                disabled,
            },
            csrf,
            expires,
        }))
    }

    /// End one session (logout).
    pub fn end_session(&self, token: &str) -> Result<()> {
        self.conn()
            .execute(
                "DELETE FROM sessions WHERE token_hash = ?1",
                [token_hash(token)],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// End every session of an account.
    pub fn end_sessions_of(&self, user: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM sessions WHERE user = ?1", [user])
            .map_err(|e| self.db(e))?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::users::HashCost;

    fn cheap() -> HashCost {
        HashCost {
            memory_kib: 64,
            iterations: 1,
            lanes: 1,
        }
    }

    fn state() -> (tempfile::TempDir, State) {
        let d = tempfile::tempdir().unwrap();
        let s = State::open(&d.path().join("state")).unwrap();
        s.add_user("alice", Role::Operator, "a long password", 100, &cheap())
            .unwrap();
        (d, s)
    }

    #[test]
    fn a_session_is_found_by_its_token_only_and_ends_on_logout() {
        let (_d, s) = state();
        let l = SessionLimits::default();
        let n = s.create_session("alice", "127.0.0.1", 1000, &l).unwrap();
        let got = s.session(&n.token, 1001, &l).unwrap().unwrap();
        assert_eq!(got.user.name, "alice");
        assert_eq!(got.user.role, Role::Operator);
        assert_eq!(got.csrf, n.csrf);
        assert_ne!(n.csrf, *n.token);
        assert!(s
            .session("0".repeat(64).as_str(), 1001, &l)
            .unwrap()
            .is_none());
        // The token itself is not in the database, only its hash.
        let stored: String = s
            .conn()
            .query_row("SELECT token_hash FROM sessions", [], |r| r.get(0))
            .unwrap();
        assert_ne!(stored, *n.token);
        s.end_session(&n.token).unwrap();
        assert!(s.session(&n.token, 1002, &l).unwrap().is_none());
    }

    #[test]
    fn sessions_end_when_idle_expired_disabled_or_the_password_changes() {
        let (_d, s) = state();
        let l = SessionLimits {
            idle_secs: 100,
            absolute_secs: 1000,
        };
        let a = s.create_session("alice", "c", 0, &l).unwrap();
        assert!(s.session(&a.token, 99, &l).unwrap().is_some());
        assert!(
            s.session(&a.token, 99 + 61, &l).unwrap().is_some(),
            "use within the idle time keeps it"
        );
        let b = s.create_session("alice", "c", 0, &l).unwrap();
        assert!(s.session(&b.token, 100, &l).unwrap().is_none(), "idle");
        let c = s.create_session("alice", "c", 0, &l).unwrap();
        // Used every 40 s (last use is written at most once a minute).
        for t in (40..1000).step_by(40) {
            assert!(s.session(&c.token, t, &l).unwrap().is_some());
        }
        assert!(
            s.session(&c.token, 1000, &l).unwrap().is_none(),
            "absolute expiry"
        );
        let d = s.create_session("alice", "c", 2000, &l).unwrap();
        s.set_disabled("alice", true).unwrap();
        s.set_disabled("alice", false).unwrap();
        assert!(s.session(&d.token, 2001, &l).unwrap().is_none(), "disabled");
        let e = s.create_session("alice", "c", 3000, &l).unwrap();
        s.set_password("alice", "another long one", &cheap())
            .unwrap();
        assert!(
            s.session(&e.token, 3001, &l).unwrap().is_none(),
            "password changed"
        );
        let f = s.create_session("alice", "c", 4000, &l).unwrap();
        s.remove_user("alice").unwrap();
        assert!(s.session(&f.token, 4001, &l).unwrap().is_none(), "removed");
    }
}
