//! REST for applications (API tokens), users and roles, in Axon Server's shapes: applications
//! carry `roles` as `[{context, roles: [..]}]` and `POST` answers the new token as plain text
//! (shown once); users carry `roles` as `["ROLE@context", ..]`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use crate::access::{ApplicationRecord, ContextRole, Role};
use crate::api_error::ApiError;
use crate::node::Shared;
use crate::security::{self, ApplicationChange};

fn by(caller: &Caller) -> String {
    security::caller_name(&caller.0)
}

fn application_json(app: &ApplicationRecord) -> Value {
    json!({
        "applicationName": app.name,
        "description": app.description,
        "roles": security::roles_per_context(&app.roles)
            .into_iter()
            .map(|(context, roles)| json!({ "context": context, "roles": roles }))
            .collect::<Vec<_>>(),
        "metaData": app.meta_data,
    })
}

/// `GET /v1/roles/user` and `/v1/roles/application`.
pub(crate) async fn roles() -> Json<Value> {
    Json(Value::Array(
        Role::ALL
            .iter()
            .map(|r| json!({ "role": r.name(), "description": r.description() }))
            .collect(),
    ))
}

pub(crate) async fn list_applications(
    State(shared): State<Arc<Shared>>,
) -> Result<Json<Value>, ApiError> {
    let apps = shared.access.applications()?;
    Ok(Json(Value::Array(
        apps.iter().map(application_json).collect(),
    )))
}

pub(crate) async fn get_application(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let app = shared
        .access
        .application(&name)?
        .ok_or(ApiError::NoSuchApplicationRecord(name))?;
    Ok(Json(application_json(&app)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApplicationBody {
    application_name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    roles: Vec<ContextRoles>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    meta_data: BTreeMap<String, String>,
}

#[derive(Deserialize)]
pub(crate) struct ContextRoles {
    context: String,
    roles: Vec<String>,
}

/// `POST /v1/applications`: creates or updates; answers the token when a new one was made.
pub(crate) async fn save_application(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<ApplicationBody>,
) -> Result<Response, ApiError> {
    let roles = security::roles_in_contexts(
        body.roles
            .iter()
            .map(|c| (c.context.as_str(), c.roles.as_slice())),
    )?;
    let change = ApplicationChange {
        name: body.application_name,
        description: body.description,
        roles,
        meta_data: body.meta_data,
        token: body.token,
    };
    let token = security::save_application(&shared, change, &by(&caller)).await?;
    Ok(token.unwrap_or_default().into_response())
}

/// `PATCH /v1/applications/{name}`: a new token, answered as plain text.
pub(crate) async fn renew_token(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<String, ApiError> {
    security::renew_token(&shared, &name, &by(&caller)).await
}

pub(crate) async fn delete_application(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    security::delete_application(&shared, &name, &by(&caller)).await?;
    Ok(StatusCode::OK)
}

pub(crate) async fn list_users(State(shared): State<Arc<Shared>>) -> Result<Json<Value>, ApiError> {
    let users = shared.access.users()?;
    Ok(Json(Value::Array(
        users
            .iter()
            .map(|u| {
                json!({
                    "userName": u.name,
                    "enabled": true,
                    "roles": u.roles.iter().map(ContextRole::text).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserBody {
    user_name: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

/// `POST /v1/users`: creates or updates; a missing password keeps the current one.
pub(crate) async fn save_user(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<UserBody>,
) -> Result<StatusCode, ApiError> {
    let roles = security::parse_roles(body.roles.iter().map(String::as_str))?;
    security::save_user(&shared, &body.user_name, body.password, roles, &by(&caller)).await?;
    Ok(StatusCode::OK)
}

pub(crate) async fn delete_user(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    security::delete_user(&shared, &name, &by(&caller)).await?;
    Ok(StatusCode::OK)
}
