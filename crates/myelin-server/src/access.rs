//! Access control: who a caller is and what it may do where.
//!
//! Callers are identified by the admin token from the configuration (everything), the shared
//! `accesscontrol.token` (`READ@*` and `WRITE@*`, as Axon Server SE gives it), an application token (roles per context, stored as a
//! SHA-256 hash), or a user's name and password (argon2 hash; HTTP Basic or a GUI session).
//! Applications and users live in the replicated `_admin` state (`UpdateAdminState` log entries),
//! so every node of a cluster knows them. `Permission` is what an rpc or endpoint needs;
//! `Role::grants` is the one table of what each of Axon's roles allows. Tokens and passwords are
//! never logged; failed logins are counted per (user, address) and locked out for a while.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use myelin_protocol::log::{AdminEntry, UpdateAdminState};
use myelin_storage::Store;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api_error::ApiError;

/// The pseudo-context of cluster-wide roles.
pub const ADMIN_CONTEXT: &str = "_admin";
/// Failed logins for one (user, address) before further attempts are refused for a while.
const FREE_LOGIN_FAILURES: u32 = 3;
/// The first lockout; each further failure doubles it, up to `MAX_LOCKOUT`.
const FIRST_LOCKOUT: Duration = Duration::from_secs(2);
const MAX_LOCKOUT: Duration = Duration::from_secs(300);
/// Failures older than this are forgotten.
const FAILURE_MEMORY: Duration = Duration::from_secs(900);
/// How long a GUI session lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Verified Basic credentials kept so that each request does not pay for argon2 again.
const VERIFIED_CACHE_LIMIT: usize = 1024;

/// Axon Server's roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    Admin,
    ViewConfiguration,
    ContextAdmin,
    Monitor,
    ReadEvents,
    PublishEvents,
    DispatchCommands,
    SubscribeCommandHandler,
    DispatchQuery,
    SubscribeQueryHandler,
    UseContext,
    TransformAdmin,
    /// Deprecated shorthand: read events, send and handle queries, monitor.
    Read,
    /// Deprecated shorthand: append events, send and handle commands.
    Write,
}

impl Role {
    pub const ALL: [Role; 14] = [
        Role::Admin,
        Role::ViewConfiguration,
        Role::ContextAdmin,
        Role::Monitor,
        Role::ReadEvents,
        Role::PublishEvents,
        Role::DispatchCommands,
        Role::SubscribeCommandHandler,
        Role::DispatchQuery,
        Role::SubscribeQueryHandler,
        Role::UseContext,
        Role::TransformAdmin,
        Role::Read,
        Role::Write,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::ViewConfiguration => "VIEW_CONFIGURATION",
            Role::ContextAdmin => "CONTEXT_ADMIN",
            Role::Monitor => "MONITOR",
            Role::ReadEvents => "READ_EVENTS",
            Role::PublishEvents => "PUBLISH_EVENTS",
            Role::DispatchCommands => "DISPATCH_COMMANDS",
            Role::SubscribeCommandHandler => "SUBSCRIBE_COMMAND_HANDLER",
            Role::DispatchQuery => "DISPATCH_QUERY",
            Role::SubscribeQueryHandler => "SUBSCRIBE_QUERY_HANDLER",
            Role::UseContext => "USE_CONTEXT",
            Role::TransformAdmin => "TRANSFORM_ADMIN",
            Role::Read => "READ",
            Role::Write => "WRITE",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Role::Admin => "Everything, including applications, users and cluster nodes",
            Role::ViewConfiguration => "View nodes, contexts, applications and users",
            Role::ContextAdmin => "Control event processors and reconnect clients",
            Role::Monitor => "View clients, handlers, processors and metrics",
            Role::ReadEvents => "Read events, snapshots and tokens",
            Role::PublishEvents => "Append events and snapshots, schedule events",
            Role::DispatchCommands => "Send commands",
            Role::SubscribeCommandHandler => "Handle commands",
            Role::DispatchQuery => "Send queries and subscription queries",
            Role::SubscribeQueryHandler => "Handle queries",
            Role::UseContext => "Everything an application does in a context",
            Role::TransformAdmin => "Event transformations (not available in Myelin)",
            Role::Read => "Deprecated: read events, send and handle queries",
            Role::Write => "Deprecated: append events, send and handle commands",
        }
    }

    pub fn parse(text: &str) -> Result<Role, ApiError> {
        let wanted = text.trim().to_ascii_uppercase();
        Role::ALL
            .into_iter()
            .find(|r| r.name() == wanted)
            .ok_or_else(|| ApiError::UnknownRole(text.to_string()))
    }

    /// The one table of what each role allows (the context is checked separately).
    pub fn grants(self, permission: Permission) -> bool {
        use Permission as P;
        match self {
            Role::Admin => true,
            Role::ViewConfiguration => matches!(permission, P::ViewConfiguration | P::Monitor),
            Role::ContextAdmin => matches!(permission, P::ControlProcessors | P::Monitor),
            Role::Monitor => permission == P::Monitor,
            Role::ReadEvents => permission == P::ReadEvents,
            Role::PublishEvents => permission == P::PublishEvents,
            Role::DispatchCommands => permission == P::DispatchCommands,
            Role::SubscribeCommandHandler => permission == P::HandleCommands,
            Role::DispatchQuery => permission == P::DispatchQueries,
            Role::SubscribeQueryHandler => permission == P::HandleQueries,
            Role::UseContext => !matches!(permission, P::ViewConfiguration | P::Admin),
            Role::TransformAdmin => false,
            Role::Read => matches!(
                permission,
                P::ReadEvents | P::DispatchQueries | P::HandleQueries | P::Monitor
            ),
            Role::Write => matches!(
                permission,
                P::PublishEvents | P::DispatchCommands | P::HandleCommands
            ),
        }
    }
}

/// What an rpc or endpoint needs. Context permissions are checked against the context the call
/// names; `ViewConfiguration` and `Admin` are cluster-wide (roles at `_admin` or `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// No credentials needed (probes, the GUI's files, `/v1/public/me`, login).
    Open,
    /// Any valid credentials (the GUI's own listings, who am I).
    Authenticated,
    /// Any role in the context: the platform handshake and instruction stream.
    Connect,
    ReadEvents,
    PublishEvents,
    DispatchCommands,
    HandleCommands,
    DispatchQueries,
    HandleQueries,
    /// Clients, handlers, processors and metrics of the context.
    Monitor,
    /// Event processor control and client reconnects.
    ControlProcessors,
    /// Applications, users and the cluster's configuration (read).
    ViewConfiguration,
    /// Applications, users and cluster nodes (change).
    Admin,
}

impl Permission {
    pub fn cluster_wide(self) -> bool {
        matches!(self, Permission::ViewConfiguration | Permission::Admin)
    }
}

/// A role in a context (`*` means every context, present and future).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContextRole {
    pub role: Role,
    pub context: String,
}

impl ContextRole {
    /// Reads `ROLE@context`; a role without a context applies to every context.
    pub fn parse(text: &str) -> Result<ContextRole, ApiError> {
        let (role, context) = text.split_once('@').unwrap_or((text, "*"));
        let context = context.trim();
        if context.is_empty() {
            return Err(ApiError::InvalidRequest(format!(
                "role {text:?} names no context after @"
            )));
        }
        Ok(ContextRole {
            role: Role::parse(role)?,
            context: context.to_string(),
        })
    }

    pub fn text(&self) -> String {
        format!("{}@{}", self.role.name(), self.context)
    }

    fn covers(&self, context: &str) -> bool {
        self.context == "*" || self.context == context
    }
}

/// Who is calling, once credentials are checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    /// The configured admin token: everything.
    AdminToken,
    /// The shared `accesscontrol.token`: `READ` and `WRITE` on every context (what an application
    /// does), no processor control, nothing cluster-wide.
    SharedToken,
    Application {
        name: String,
        roles: Vec<ContextRole>,
    },
    User {
        name: String,
        roles: Vec<ContextRole>,
    },
}

impl Principal {
    pub fn name(&self) -> &str {
        match self {
            Principal::AdminToken => "admin token",
            Principal::SharedToken => "application token",
            Principal::Application { name, .. } | Principal::User { name, .. } => name,
        }
    }

    pub fn roles(&self) -> Vec<ContextRole> {
        match self {
            Principal::AdminToken => vec![ContextRole {
                role: Role::Admin,
                context: "*".into(),
            }],
            Principal::SharedToken => vec![
                ContextRole {
                    role: Role::Read,
                    context: "*".into(),
                },
                ContextRole {
                    role: Role::Write,
                    context: "*".into(),
                },
            ],
            Principal::Application { roles, .. } | Principal::User { roles, .. } => roles.clone(),
        }
    }

    /// Whether this caller may do `permission` in `context`.
    pub fn may(&self, permission: Permission, context: &str) -> bool {
        let roles = self.roles();
        match permission {
            Permission::Open | Permission::Authenticated => true,
            Permission::Connect => roles.iter().any(|r| {
                r.covers(context) || (r.role == Role::Admin && r.context == ADMIN_CONTEXT)
            }),
            p if p.cluster_wide() => roles
                .iter()
                .any(|r| r.role.grants(p) && (r.context == "*" || r.context == ADMIN_CONTEXT)),
            p => roles.iter().any(|r| {
                r.role.grants(p)
                    && (r.covers(context) || (r.role == Role::Admin && r.context == ADMIN_CONTEXT))
            }),
        }
    }

    /// The contexts this caller has any role in (`*` included as such).
    pub fn contexts(&self) -> Vec<String> {
        let mut contexts: Vec<String> = self.roles().into_iter().map(|r| r.context).collect();
        contexts.sort();
        contexts.dedup();
        contexts
    }
}

/// An application at rest in the `_admin` state (`app/<name>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationRecord {
    pub name: String,
    pub description: String,
    /// Hex SHA-256 of the token; the token itself is shown once and never stored.
    pub token_hash: String,
    pub roles: Vec<ContextRole>,
    #[serde(default)]
    pub meta_data: BTreeMap<String, String>,
}

/// A user at rest in the `_admin` state (`user/<name>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    pub name: String,
    /// argon2id in PHC form; `None` for users whose password is checked elsewhere.
    pub password_hash: Option<String>,
    pub roles: Vec<ContextRole>,
}

const APP_PREFIX: &str = "app/";
const APP_TOKEN_PREFIX: &str = "apptoken/";
const USER_PREFIX: &str = "user/";

fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random token (256 bits, hex).
pub fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Compares two secrets without leaking, through timing, how much of them matches.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Hashes a password with argon2id and a random salt (slow on purpose: run it off the runtime).
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| ApiError::Internal(format!("cannot hash password: {e}")))
}

fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// A GUI session.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    /// Must come back in the `X-XSRF-TOKEN` header of every state-changing request.
    pub csrf_token: String,
    expires: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// The node's access control: configuration, the `_admin` state, sessions and login failures.
pub struct AccessControl {
    pub enabled: bool,
    admin_token: Option<String>,
    shared_token: Option<String>,
    store: Arc<Store>,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<(String, Option<IpAddr>), Failures>>,
    /// SHA-256 of (user, password) → the stored hash it was verified against.
    verified: Mutex<HashMap<[u8; 32], String>>,
}

/// Why credentials were not accepted.
pub enum Refusal {
    Missing,
    Invalid,
}

impl AccessControl {
    pub fn new(
        enabled: bool,
        admin_token: Option<String>,
        shared_token: Option<String>,
        store: Arc<Store>,
    ) -> AccessControl {
        AccessControl {
            enabled,
            admin_token: admin_token.filter(|t| !t.is_empty()),
            shared_token: shared_token.filter(|t| !t.is_empty()),
            store,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The caller a token stands for, if any.
    pub fn by_token(&self, token: &str) -> Result<Option<Principal>, ApiError> {
        if self
            .admin_token
            .as_deref()
            .is_some_and(|t| secrets_equal(t, token))
        {
            return Ok(Some(Principal::AdminToken));
        }
        if self
            .shared_token
            .as_deref()
            .is_some_and(|t| secrets_equal(t, token))
        {
            return Ok(Some(Principal::SharedToken));
        }
        // Looked up by hash: a guess learns nothing from timing about the stored tokens.
        let Some(name) = self
            .store
            .admin_entry(&format!("{APP_TOKEN_PREFIX}{}", token_hash(token)))?
        else {
            return Ok(None);
        };
        let name = String::from_utf8_lossy(&name).into_owned();
        Ok(self.application(&name)?.map(|app| Principal::Application {
            name: app.name,
            roles: app.roles,
        }))
    }

    pub fn application(&self, name: &str) -> Result<Option<ApplicationRecord>, ApiError> {
        self.record(&format!("{APP_PREFIX}{name}"))
    }

    pub fn applications(&self) -> Result<Vec<ApplicationRecord>, ApiError> {
        self.records(APP_PREFIX)
    }

    pub fn user(&self, name: &str) -> Result<Option<UserRecord>, ApiError> {
        self.record(&format!("{USER_PREFIX}{name}"))
    }

    pub fn users(&self) -> Result<Vec<UserRecord>, ApiError> {
        self.records(USER_PREFIX)
    }

    fn record<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Result<Option<T>, ApiError> {
        match self.store.admin_entry(key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ApiError::Internal(format!("unreadable admin entry {key}: {e}"))),
        }
    }

    fn records<T: for<'de> Deserialize<'de>>(&self, prefix: &str) -> Result<Vec<T>, ApiError> {
        self.store
            .admin_entries(prefix)?
            .into_iter()
            .map(|(key, bytes)| {
                serde_json::from_slice(&bytes)
                    .map_err(|e| ApiError::Internal(format!("unreadable admin entry {key}: {e}")))
            })
            .collect()
    }

    /// The change that saves `app` and (when given) makes `token` its token, retiring the old one.
    pub fn save_application(
        &self,
        mut app: ApplicationRecord,
        token: Option<&str>,
    ) -> Result<UpdateAdminState, ApiError> {
        let old = self.application(&app.name)?;
        let mut update = UpdateAdminState::default();
        if let Some(token) = token {
            if let Some(old) = &old {
                update
                    .delete
                    .push(format!("{APP_TOKEN_PREFIX}{}", old.token_hash));
            }
            app.token_hash = token_hash(token);
            update.put.push(AdminEntry {
                key: format!("{APP_TOKEN_PREFIX}{}", app.token_hash),
                value: app.name.clone().into_bytes(),
            });
        } else if let Some(old) = &old {
            app.token_hash = old.token_hash.clone();
        }
        update
            .put
            .push(entry(&format!("{APP_PREFIX}{}", app.name), &app)?);
        Ok(update)
    }

    pub fn delete_application(&self, name: &str) -> Result<UpdateAdminState, ApiError> {
        let app = self
            .application(name)?
            .ok_or_else(|| ApiError::NoSuchApplicationRecord(name.to_string()))?;
        Ok(UpdateAdminState {
            put: Vec::new(),
            delete: vec![
                format!("{APP_PREFIX}{name}"),
                format!("{APP_TOKEN_PREFIX}{}", app.token_hash),
            ],
        })
    }

    pub fn save_user(&self, user: &UserRecord) -> Result<UpdateAdminState, ApiError> {
        Ok(UpdateAdminState {
            put: vec![entry(&format!("{USER_PREFIX}{}", user.name), user)?],
            delete: Vec::new(),
        })
    }

    pub fn delete_user(&self, name: &str) -> Result<UpdateAdminState, ApiError> {
        if self.user(name)?.is_none() {
            return Err(ApiError::NoSuchUser(name.to_string()));
        }
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, s| s.user != name);
        Ok(UpdateAdminState {
            put: Vec::new(),
            delete: vec![format!("{USER_PREFIX}{name}")],
        })
    }

    /// Checks a user's password. Repeated failures for the same (user, address) lock that pair
    /// out for a growing while (`TooManyLoginAttempts`); failures are logged without the secret.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        from: Option<IpAddr>,
    ) -> Result<Principal, ApiError> {
        let key = (user.to_string(), from);
        if let Some(wait) = self.locked_for(&key) {
            tracing::warn!(user, address = ?from, "login refused: locked out after repeated failures");
            return Err(ApiError::TooManyLoginAttempts {
                user: user.to_string(),
                retry_after_s: wait.as_secs().max(1),
            });
        }
        let record = self.user(user)?;
        let stored = record.as_ref().and_then(|u| u.password_hash.clone());
        let fingerprint = credentials_fingerprint(user, password);
        let cached = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fingerprint)
            .cloned();
        let ok = match &stored {
            Some(stored) if cached.as_deref() == Some(stored.as_str()) => true,
            Some(stored) => {
                let (password, hash) = (password.to_string(), stored.clone());
                tokio::task::spawn_blocking(move || verify_password(&password, &hash))
                    .await
                    .unwrap_or(false)
            }
            None => {
                // Pay for a verification anyway, so timing does not tell which user names exist.
                let password = password.to_string();
                tokio::task::spawn_blocking(move || verify_password(&password, stand_in_hash()))
                    .await
                    .unwrap_or(false);
                false
            }
        };
        match (ok, record, stored) {
            (true, Some(record), Some(stored)) => {
                self.failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
                let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
                if verified.len() >= VERIFIED_CACHE_LIMIT {
                    verified.clear();
                }
                verified.insert(fingerprint, stored);
                Ok(Principal::User {
                    name: record.name,
                    roles: record.roles,
                })
            }
            _ => {
                let count = self.record_failure(key);
                tracing::warn!(user, address = ?from, failures = count, "login failed: wrong user name or password");
                Err(ApiError::InvalidToken {
                    method: "login".to_string(),
                })
            }
        }
    }

    fn locked_for(&self, key: &(String, Option<IpAddr>)) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let f = failures.get(key)?;
        if f.count < FREE_LOGIN_FAILURES {
            return None;
        }
        let doublings = (f.count - FREE_LOGIN_FAILURES).min(16);
        let lockout = FIRST_LOCKOUT
            .saturating_mul(1 << doublings)
            .min(MAX_LOCKOUT);
        lockout.checked_sub(f.last.elapsed())
    }

    fn record_failure(&self, key: (String, Option<IpAddr>)) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        failures.retain(|_, f| now.duration_since(f.last) < FAILURE_MEMORY);
        let f = failures.entry(key).or_insert(Failures {
            count: 0,
            last: now,
        });
        f.count += 1;
        f.last = now;
        f.count
    }

    /// Starts a GUI session for `user`; returns the session id and its CSRF token.
    pub fn open_session(&self, user: &str) -> (String, String) {
        let id = new_token();
        let csrf = new_token();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(
            id.clone(),
            Session {
                user: user.to_string(),
                csrf_token: csrf.clone(),
                expires: now + SESSION_LIFETIME,
            },
        );
        (id, csrf)
    }

    pub fn session(&self, id: &str) -> Option<Session> {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .get(id)
            .filter(|s| s.expires > Instant::now())
            .cloned()
    }

    pub fn close_session(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// The principal behind a live session (roles as stored now, so changes apply at once).
    pub fn session_principal(&self, session: &Session) -> Result<Option<Principal>, ApiError> {
        Ok(self.user(&session.user)?.map(|u| Principal::User {
            name: u.name,
            roles: u.roles,
        }))
    }
}

/// A hash to verify against when the user does not exist (made once).
fn stand_in_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password(&new_token()).unwrap_or_default())
}

fn credentials_fingerprint(user: &str, password: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(user.as_bytes());
    hasher.update([0u8]);
    hasher.update(password.as_bytes());
    hasher.finalize().into()
}

fn entry<T: Serialize>(key: &str, value: &T) -> Result<AdminEntry, ApiError> {
    Ok(AdminEntry {
        key: key.to_string(),
        value: serde_json::to_vec(value)
            .map_err(|e| ApiError::Internal(format!("cannot encode {key}: {e}")))?,
    })
}

/// Checks that `principal` may do `permission` in `context`; `method` names the call in errors.
pub fn authorize(
    principal: &Principal,
    permission: Permission,
    context: &str,
    method: &str,
) -> Result<(), ApiError> {
    if principal.may(permission, context) {
        Ok(())
    } else {
        tracing::debug!(
            caller = principal.name(),
            ?permission,
            context,
            method,
            "not allowed"
        );
        Err(ApiError::InvalidToken {
            method: method.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(roles: &[&str]) -> Principal {
        Principal::Application {
            name: "a".into(),
            roles: roles
                .iter()
                .map(|r| ContextRole::parse(r).expect("role"))
                .collect(),
        }
    }

    #[test]
    fn roles_parse_as_axon_writes_them() {
        let role = ContextRole::parse("read_events@orders").expect("parses");
        assert_eq!(role.role, Role::ReadEvents);
        assert_eq!(role.context, "orders");
        assert_eq!(ContextRole::parse("ADMIN").expect("parses").context, "*");
        assert!(matches!(
            ContextRole::parse("SUPERUSER@default"),
            Err(ApiError::UnknownRole(_))
        ));
        assert_eq!(role.text(), "READ_EVENTS@orders");
    }

    #[test]
    fn a_role_in_one_context_does_not_reach_another() {
        let reader = app(&["READ_EVENTS@orders"]);
        assert!(reader.may(Permission::ReadEvents, "orders"));
        assert!(!reader.may(Permission::ReadEvents, "billing"));
        assert!(!reader.may(Permission::PublishEvents, "orders"));
        assert!(reader.may(Permission::Connect, "orders"));
        assert!(!reader.may(Permission::Connect, "billing"));
    }

    #[test]
    fn cluster_wide_permissions_need_a_role_at_admin_or_everywhere() {
        assert!(!app(&["ADMIN@default"]).may(Permission::Admin, "default"));
        assert!(app(&["ADMIN@_admin"]).may(Permission::Admin, "default"));
        assert!(app(&["ADMIN@_admin"]).may(Permission::ReadEvents, "orders"));
        assert!(app(&["VIEW_CONFIGURATION@*"]).may(Permission::ViewConfiguration, "x"));
        assert!(!app(&["USE_CONTEXT@*"]).may(Permission::ViewConfiguration, "x"));
        assert!(!app(&["USE_CONTEXT@*"]).may(Permission::Admin, "x"));
    }

    #[test]
    fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
    }
}
