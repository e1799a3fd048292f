//! Who is calling over HTTP: a token (`AxonIQ-Access-Token` or `Authorization: Bearer`), a user's
//! password (`Authorization: Basic`), or a GUI session (cookie `MYELIN_SESSION`, HttpOnly,
//! SameSite=Strict) whose state-changing requests must echo the CSRF token of cookie `XSRF-TOKEN`
//! in header `X-XSRF-TOKEN`. Also the login, logout and "who am I" endpoints.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine;
use serde_json::json;

use super::ACCESS_TOKEN_HEADER;
use crate::access::{secrets_equal, Principal};
use crate::api_error::ApiError;
use crate::node::Shared;

const SESSION_COOKIE: &str = "MYELIN_SESSION";
const CSRF_COOKIE: &str = "XSRF-TOKEN";
const CSRF_HEADER: &str = "X-XSRF-TOKEN";
/// Largest login body read.
const LOGIN_BODY_LIMIT: usize = 16 * 1024;

/// The checked caller of a request; `None` when access control is off or the endpoint is open.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub Option<Principal>);

impl Caller {
    /// Whether listings that span contexts may show this caller what happens in `context`.
    pub(crate) fn sees(&self, context: &str) -> bool {
        self.0
            .as_ref()
            .is_none_or(|p| p.may(crate::access::Permission::Monitor, context))
    }

    /// Whether the caller has any role in `context`.
    pub(crate) fn uses(&self, context: &str) -> bool {
        self.0
            .as_ref()
            .is_none_or(|p| p.may(crate::access::Permission::Connect, context))
    }
}

/// Finds and checks the caller's credentials. `method` names the request in errors.
pub(crate) async fn caller(
    shared: &Shared,
    verb: &Method,
    headers: &HeaderMap,
    from: Option<IpAddr>,
    method: &str,
) -> Result<Principal, ApiError> {
    let invalid = || ApiError::InvalidToken {
        method: method.to_string(),
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = headers
        .get(ACCESS_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .or_else(|| authorization.and_then(|v| v.strip_prefix("Bearer ")));
    if let Some(token) = token {
        return shared.access.by_token(token.trim())?.ok_or_else(invalid);
    }
    if let Some(basic) = authorization.and_then(|v| v.strip_prefix("Basic ")) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(invalid)?;
        let (user, password) = decoded.split_once(':').ok_or_else(invalid)?;
        return shared.access.login(user, password, from).await;
    }
    if let Some(id) = cookie(headers, SESSION_COOKIE) {
        let session = shared.access.session(&id).ok_or_else(invalid)?;
        let safe = matches!(*verb, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let echoed = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if !echoed.is_some_and(|t| secrets_equal(t, &session.csrf_token)) {
                tracing::warn!(user = %session.user, method, "request refused: missing or wrong CSRF token");
                return Err(invalid());
            }
        }
        return shared
            .access
            .session_principal(&session)?
            .ok_or_else(invalid);
    }
    Err(ApiError::TokenMissing {
        method: method.to_string(),
    })
}

/// The value of cookie `name`.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

/// `POST /login`: a user name and password, as a form (`username`, `password`) or JSON
/// (`userName`, `password`). Opens a session and sets its cookies.
pub(crate) async fn login(
    State(shared): State<Arc<Shared>>,
    request: Request,
) -> Result<Response, ApiError> {
    if !shared.access.enabled {
        return Err(ApiError::InvalidRequest(
            "access control is off: there is nothing to log in to".into(),
        ));
    }
    let from = request
        .extensions()
        .get::<axum::extract::ConnectInfo<crate::tls::RemoteAddr>>()
        .map(|info| info.0 .0.ip());
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = axum::body::to_bytes(request.into_body(), LOGIN_BODY_LIMIT)
        .await
        .map_err(|e| ApiError::InvalidRequest(format!("cannot read the login: {e}")))?;
    let (user, password) = if json {
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::InvalidRequest(format!("login is not JSON: {e}")))?;
        let field = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| value[*n].as_str())
                .unwrap_or_default()
                .to_string()
        };
        (field(&["userName", "username"]), field(&["password"]))
    } else {
        let form = String::from_utf8_lossy(&body).into_owned();
        let field = |name: &str| {
            form.split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(key, _)| *key == name)
                .map(|(_, value)| form_decode(value))
                .unwrap_or_default()
        };
        (field("username"), field("password"))
    };
    let principal = shared.access.login(&user, &password, from).await?;
    let (session, csrf) = shared.access.open_session(principal.name());
    tracing::info!(user = principal.name(), address = ?from, "user logged in");
    let secure = if shared.ssl { "; Secure" } else { "" };
    let mut response = Json(json!({
        "user": principal.name(),
        "roles": principal.roles().iter().map(|r| r.text()).collect::<Vec<_>>(),
        "csrfToken": csrf,
    }))
    .into_response();
    for cookie in [
        format!("{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict{secure}"),
        format!("{CSRF_COOKIE}={csrf}; Path=/; SameSite=Strict{secure}"),
    ] {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    Ok(response)
}

/// `POST /logout`: ends the session and clears its cookies.
pub(crate) async fn logout(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        shared.access.close_session(&id);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        let cleared = format!("{name}=; Path=/; Max-Age=0; SameSite=Strict");
        if let Ok(value) = HeaderValue::from_str(&cleared) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// `GET /v1/public/user`: the caller and its roles.
pub(crate) async fn current_user(Extension(caller): Extension<Caller>) -> Json<serde_json::Value> {
    Json(match caller.0 {
        Some(principal) => json!({
            "user": principal.name(),
            "roles": principal.roles().iter().map(|r| r.text()).collect::<Vec<_>>(),
            "adminUser": principal.may(crate::access::Permission::Admin, crate::access::ADMIN_CONTEXT),
        }),
        None => json!({ "user": null, "roles": [], "adminUser": true }),
    })
}

/// Decodes one `application/x-www-form-urlencoded` value.
fn form_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_decode() {
        assert_eq!(form_decode("a+b%21%3D"), "a b!=");
        assert_eq!(form_decode("100%"), "100%");
        assert_eq!(form_decode("%zz"), "%zz");
    }
}
