//! Authentication (who is calling) and authorisation (may they do this).
//!
//! A middleware resolves the credential once per request into a [`Principal`] kept in the
//! request's extensions; handlers state what they need in their signature with
//! [`Authed<N>`], where `N` names the permission. Missing, unknown or expired credentials
//! are 401; a valid token without the permission is 403.

use std::marker::PhantomData;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sauti_core::{Permission, clock, secret};
use sauti_store::Principal;

use crate::AppState;
use crate::cache::TtlCache;
use crate::error::ApiError;

/// The outcome of reading the credential, stored in request extensions by [`resolve`].
#[derive(Clone)]
pub(crate) enum Credential {
    None,
    Invalid(&'static str),
    Valid(std::sync::Arc<Caller>),
}

/// An authenticated caller.
#[derive(Debug)]
pub struct Caller {
    pub token_id: i64,
    pub account_id: i64,
    pub user_id: Option<i64>,
    pub super_admin: bool,
    pub permissions: Vec<Permission>,
}

impl Caller {
    pub fn has(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }
}

/// Extract the token from `Authorization: Bearer <t>`, `Key <t>` or Basic `<t>:`.
fn token_from_headers(headers: &HeaderMap) -> Result<Option<String>, &'static str> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| "Malformed Authorization header")?.trim();
    let (scheme, rest) = value.split_once(' ').ok_or("Malformed Authorization header")?;
    let rest = rest.trim();
    let token = match scheme.to_ascii_lowercase().as_str() {
        "bearer" | "key" | "token" => rest.to_string(),
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or("Malformed Basic credentials")?;
            // The token is the user name; any password is ignored.
            decoded.split_once(':').map(|(u, _)| u.to_string()).unwrap_or(decoded)
        }
        _ => return Err("Unsupported authorization scheme (use Bearer, Key or Basic)"),
    };
    if token.is_empty() {
        Err("Empty access token")
    } else {
        Ok(Some(token))
    }
}

/// Recently resolved tokens (by digest): when each expires, and the parsed caller.
/// Expiry is checked on every use, cached or not.
pub(crate) type AuthCache = TtlCache<String, (Option<chrono::DateTime<chrono::Utc>>, std::sync::Arc<Caller>)>;

/// Paths whose writes can revoke or change a credential.
fn touches_credentials(path: &str) -> bool {
    ["/api/access_tokens", "/api/users", "/api/account", "/api/logout"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// Resolve the request's credential once, before routing to handlers.
pub(crate) async fn resolve(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let credential = match token_from_headers(req.headers()) {
        Ok(None) => Credential::None,
        Err(why) => Credential::Invalid(why),
        Ok(Some(token)) => {
            let digest = secret::token_digest(&token);
            match state.auth_cache.get(&digest) {
                Some((expires_at, caller)) => credential(expires_at, caller),
                None => match state.store.principal_for_digest(&digest).await {
                    Ok(Some(p)) => {
                        let expires_at = p.expires_at;
                        let caller = caller_from(p);
                        state.auth_cache.put(digest, (expires_at, caller.clone()));
                        credential(expires_at, caller)
                    }
                    Ok(None) => Credential::Invalid("Invalid access token"),
                    Err(e) => return ApiError::from(e).into_response(),
                },
            }
        }
    };
    req.extensions_mut().insert(credential);
    let writes_credentials =
        !matches!(*req.method(), Method::GET | Method::HEAD) && touches_credentials(req.uri().path());
    let resp = next.run(req).await;
    if writes_credentials && resp.status().is_success() {
        // Account writes change settings as well as who may call.
        state.auth_cache.clear();
        state.accounts.clear();
    }
    resp
}

fn caller_from(p: Principal) -> std::sync::Arc<Caller> {
    let permissions = p.permissions.0.iter().filter_map(|s| Permission::parse(s)).collect();
    std::sync::Arc::new(Caller {
        token_id: p.token_id,
        account_id: p.account_id,
        user_id: p.user_id,
        super_admin: p.super_admin,
        permissions,
    })
}

/// Expiry is checked on every use, cached or not.
fn credential(expires_at: Option<chrono::DateTime<chrono::Utc>>, caller: std::sync::Arc<Caller>) -> Credential {
    if expires_at.is_some_and(|t| t <= clock::now()) {
        Credential::Invalid("Access token has expired")
    } else {
        Credential::Valid(caller)
    }
}

/// What a handler requires of its caller.
pub trait Need: Send + Sync + 'static {
    /// The permission the token must hold, if any.
    const PERMISSION: Option<Permission>;
    /// Whether the caller's account must be a platform super admin.
    const SUPER_ADMIN: bool = false;
}

/// Any valid token.
pub struct AnyToken;
impl Need for AnyToken {
    const PERMISSION: Option<Permission> = None;
}

macro_rules! needs {
    ($($name:ident => $perm:ident $(, super_admin = $sa:literal)?;)+) => {
        $(
            pub struct $name;
            impl Need for $name {
                const PERMISSION: Option<Permission> = Some(Permission::$perm);
                $(const SUPER_ADMIN: bool = $sa;)?
            }
        )+
    };
}

needs! {
    AccessTokensRead => AccessTokensRead;
    AccessTokensWrite => AccessTokensWrite;
    AccountRead => AccountsRead;
    AccountWrite => AccountsWrite;
    AccountsAdminRead => AccountsRead, super_admin = true;
    AccountsAdminWrite => AccountsWrite, super_admin = true;
    UsersRead => UsersRead;
    UsersWrite => UsersWrite;
    ContactsRead => ContactsRead;
    ContactsWrite => ContactsWrite;
    GroupsRead => GroupsRead;
    GroupsWrite => GroupsWrite;
    ClientsRead => ClientsRead;
    ClientsWrite => ClientsWrite;
    ContactImportsRead => ContactImportsRead;
    ContactImportsWrite => ContactImportsWrite;
    TransmissionsRead => TransmissionsRead;
    VerificationsRead => VerificationsRead;
    VerificationsWrite => VerificationsWrite;
    SignupsRead => SignupsRead;
    SignupsWrite => SignupsWrite;
    TransmissionsWrite => TransmissionsWrite;
    ProvidersRead => ProvidersRead;
    ProvidersWrite => ProvidersWrite;
    WebhookEndpointsRead => WebhookEndpointsRead;
    WebhookEndpointsWrite => WebhookEndpointsWrite;
    TextsRead => TextsRead;
    TextsWrite => TextsWrite;
    TemplatesRead => TemplatesRead;
    TemplatesWrite => TemplatesWrite;
    CalloutsRead => CalloutsRead;
    CalloutsWrite => CalloutsWrite;
    CalloutParticipationsRead => CalloutParticipationsRead;
    CalloutParticipationsWrite => CalloutParticipationsWrite;
    BatchOperationsRead => BatchOperationsRead;
    BatchOperationsWrite => BatchOperationsWrite;
    RecordingsRead => RecordingsRead;
    RecordingsWrite => RecordingsWrite;
    PhoneCallsRead => PhoneCallsRead;
    RemotePhoneCallEventsRead => RemotePhoneCallEventsRead;
    RemotePhoneCallEventsWrite => RemotePhoneCallEventsWrite;
}

/// An authenticated caller who satisfies `N`. Its `account_id` is the tenant every query
/// of the handler is scoped to.
pub struct Authed<N: Need> {
    pub caller: std::sync::Arc<Caller>,
    _need: PhantomData<N>,
}

impl<N: Need> std::ops::Deref for Authed<N> {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.caller
    }
}

impl<S: Send + Sync, N: Need> FromRequestParts<S> for Authed<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let caller = match parts.extensions.get::<Credential>() {
            Some(Credential::Valid(c)) => c.clone(),
            Some(Credential::Invalid(why)) => return Err(ApiError::Unauthorized(why)),
            _ => return Err(ApiError::Unauthorized("Missing access token")),
        };
        if let Some(p) = N::PERMISSION
            && !caller.has(p)
        {
            return Err(ApiError::Forbidden(format!(
                "this access token lacks the {p} permission"
            )));
        }
        if N::SUPER_ADMIN && !caller.super_admin {
            return Err(ApiError::Forbidden("only super admins can manage accounts".into()));
        }
        Ok(Authed {
            caller,
            _need: PhantomData,
        })
    }
}

/// The caller's account id and token id if the request carries a valid token (for
/// idempotency scope).
pub(crate) fn account_of(req: &Request) -> Option<(i64, i64)> {
    match req.extensions().get::<Credential>() {
        Some(Credential::Valid(c)) => Some((c.account_id, c.token_id)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn reads_bearer_key_and_basic() {
        assert_eq!(
            token_from_headers(&headers("Bearer abc")).unwrap().as_deref(),
            Some("abc")
        );
        assert_eq!(token_from_headers(&headers("Key abc")).unwrap().as_deref(), Some("abc"));
        let basic = base64::engine::general_purpose::STANDARD.encode("abc:");
        assert_eq!(
            token_from_headers(&headers(&format!("Basic {basic}")))
                .unwrap()
                .as_deref(),
            Some("abc")
        );
        assert!(token_from_headers(&headers("Digest abc")).is_err());
        assert!(token_from_headers(&headers("Bearer")).is_err());
        assert_eq!(token_from_headers(&HeaderMap::new()).unwrap(), None);
    }
}
