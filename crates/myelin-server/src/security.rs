//! Managing applications and users: the operations REST (`http/security.rs`) and the admin gRPC
//! services share — each proposes one `UpdateAdminState` to the replication group, so every node
//! sees the change once it is committed — and those gRPC services on 8124
//! (`ApplicationAdminService`, `UserAdminService`, `AuthenticationService`). Changes are written
//! to the `AUDIT` log target with who made them; tokens and passwords never are.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use myelin_protocol::log::log_command::Command;
use myelin_protocol::wire::admin::application_admin_service_server::ApplicationAdminService;
use myelin_protocol::wire::admin::authentication_service_server::AuthenticationService;
use myelin_protocol::wire::admin::user_admin_service_server::UserAdminService;
use myelin_protocol::wire::admin::{
    ApplicationContextRole, ApplicationId, ApplicationOverview, ApplicationRequest,
    ApplicationRoles, AuthenticateUserRequest, Client, ClientApplication,
    ConnectedApplicationOverview, ContextId, ContextRole as WireContextRole,
    CreateOrUpdateUserRequest, DeleteUserRequest, Token, UserOverview, UserRoleOverview, UserRoles,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::access::{self, ApplicationRecord, ContextRole, Principal, UserRecord};
use crate::api_error::ApiError;
use crate::gateway::call_context;
use crate::node::Shared;

/// An application as an admin describes it.
pub(crate) struct ApplicationChange {
    pub name: String,
    pub description: String,
    pub roles: Vec<ContextRole>,
    pub meta_data: BTreeMap<String, String>,
    /// The token to use; `None` keeps an existing application's token or makes a new one.
    pub token: Option<String>,
}

fn check_name(kind: &str, name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.@".contains(c));
    if valid {
        Ok(())
    } else {
        Err(ApiError::InvalidRequest(format!(
            "{kind} name {name:?} must be 1 to 128 letters, digits, '-', '_', '.' or '@'"
        )))
    }
}

async fn commit(
    shared: &Shared,
    update: myelin_protocol::log::UpdateAdminState,
) -> Result<(), ApiError> {
    shared.propose(Command::UpdateAdminState(update)).await?;
    Ok(())
}

/// Creates or updates an application; returns its token when a new one was set.
pub(crate) async fn save_application(
    shared: &Shared,
    change: ApplicationChange,
    by: &str,
) -> Result<Option<String>, ApiError> {
    check_name("application", &change.name)?;
    let existed = shared.access.application(&change.name)?.is_some();
    let token = match change.token.filter(|t| !t.is_empty()) {
        Some(token) => Some(token),
        None if existed => None,
        None => Some(access::new_token()),
    };
    let record = ApplicationRecord {
        name: change.name.clone(),
        description: change.description,
        token_hash: String::new(),
        roles: change.roles,
        meta_data: change.meta_data,
    };
    let roles: Vec<String> = record.roles.iter().map(ContextRole::text).collect();
    let update = shared.access.save_application(record, token.as_deref())?;
    commit(shared, update).await?;
    tracing::info!(target: "AUDIT", by, application = %change.name, ?roles, new_token = token.is_some(),
        "{}", if existed { "application updated" } else { "application created" });
    Ok(token)
}

pub(crate) async fn renew_token(shared: &Shared, name: &str, by: &str) -> Result<String, ApiError> {
    let app = shared
        .access
        .application(name)?
        .ok_or_else(|| ApiError::NoSuchApplicationRecord(name.to_string()))?;
    let token = access::new_token();
    let update = shared.access.save_application(app, Some(&token))?;
    commit(shared, update).await?;
    tracing::info!(target: "AUDIT", by, application = name, "application token renewed");
    Ok(token)
}

pub(crate) async fn delete_application(
    shared: &Shared,
    name: &str,
    by: &str,
) -> Result<(), ApiError> {
    let update = shared.access.delete_application(name)?;
    commit(shared, update).await?;
    tracing::info!(target: "AUDIT", by, application = name, "application deleted");
    Ok(())
}

/// Creates or updates a user. `None` as password keeps an existing user's password (a new user
/// without one cannot log in with a password).
pub(crate) async fn save_user(
    shared: &Shared,
    name: &str,
    password: Option<String>,
    roles: Vec<ContextRole>,
    by: &str,
) -> Result<(), ApiError> {
    check_name("user", name)?;
    let existing = shared.access.user(name)?;
    let password_hash = match password.filter(|p| !p.is_empty()) {
        Some(password) => Some(
            tokio::task::spawn_blocking(move || access::hash_password(&password))
                .await
                .map_err(|e| ApiError::Internal(format!("password hashing failed: {e}")))??,
        ),
        None => existing.as_ref().and_then(|u| u.password_hash.clone()),
    };
    let texts: Vec<String> = roles.iter().map(ContextRole::text).collect();
    let update = shared.access.save_user(&UserRecord {
        name: name.to_string(),
        password_hash,
        roles,
    })?;
    commit(shared, update).await?;
    tracing::info!(target: "AUDIT", by, user = name, roles = ?texts,
        "{}", if existing.is_some() { "user updated" } else { "user created" });
    Ok(())
}

pub(crate) async fn delete_user(shared: &Shared, name: &str, by: &str) -> Result<(), ApiError> {
    let update = shared.access.delete_user(name)?;
    commit(shared, update).await?;
    tracing::info!(target: "AUDIT", by, user = name, "user deleted");
    Ok(())
}

/// Parses `ROLE@context` texts.
pub(crate) fn parse_roles<'a>(
    texts: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<ContextRole>, ApiError> {
    texts.into_iter().map(ContextRole::parse).collect()
}

/// Roles given per context (Axon's application messages): `(context, role names)` pairs.
pub(crate) fn roles_in_contexts<'a>(
    per_context: impl IntoIterator<Item = (&'a str, &'a [String])>,
) -> Result<Vec<ContextRole>, ApiError> {
    let mut roles = Vec::new();
    for (context, names) in per_context {
        for name in names {
            roles.push(ContextRole {
                role: access::Role::parse(name)?,
                context: context.to_string(),
            });
        }
    }
    Ok(roles)
}

/// Roles grouped per context, as Axon's application messages carry them.
pub(crate) fn roles_per_context(roles: &[ContextRole]) -> Vec<(String, Vec<String>)> {
    let mut grouped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for role in roles {
        grouped
            .entry(role.context.clone())
            .or_default()
            .push(role.role.name().to_string());
    }
    grouped.into_iter().collect()
}

/// Who made a change, for the audit log.
pub(crate) fn caller_name(request_caller: &Option<Principal>) -> String {
    request_caller
        .as_ref()
        .map_or("(access control off)".to_string(), |p| p.name().to_string())
}

fn overview(app: &ApplicationRecord) -> ApplicationOverview {
    ApplicationOverview {
        application_name: app.name.clone(),
        description: app.description.clone(),
        roles_per_context: roles_per_context(&app.roles)
            .into_iter()
            .map(|(context, roles)| ApplicationContextRole { context, roles })
            .collect(),
        meta_data: app.meta_data.clone().into_iter().collect::<HashMap<_, _>>(),
    }
}

/// A finished server stream holding `items`.
fn stream_of<T: Send + 'static>(items: Vec<T>) -> ReceiverStream<Result<T, Status>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(items.len().max(1));
    for item in items {
        // Capacity covers every item, so this never waits.
        let _ = sender.try_send(Ok(item));
    }
    ReceiverStream::new(receiver)
}

/// The admin gRPC services for applications, users and authentication.
pub struct SecurityAdmin {
    shared: Arc<Shared>,
}

impl SecurityAdmin {
    pub(crate) fn new(shared: Arc<Shared>) -> SecurityAdmin {
        SecurityAdmin { shared }
    }
}

type EmptyStream = ReceiverStream<Result<(), Status>>;

#[tonic::async_trait]
impl ApplicationAdminService for SecurityAdmin {
    async fn create_or_update_application(
        &self,
        request: Request<ApplicationRequest>,
    ) -> Result<Response<Token>, Status> {
        let by = caller_name(&call_context(&request)?.caller);
        let request = request.into_inner();
        let roles = roles_in_contexts(
            request
                .roles_per_context
                .iter()
                .map(|c| (c.context.as_str(), c.roles.as_slice())),
        )?;
        let change = ApplicationChange {
            name: request.application_name,
            description: request.description,
            roles,
            meta_data: request.meta_data.into_iter().collect(),
            token: Some(request.token),
        };
        let token = save_application(&self.shared, change, &by).await?;
        Ok(Response::new(Token {
            token: token.unwrap_or_default(),
        }))
    }

    type DeleteApplicationStream = EmptyStream;

    async fn delete_application(
        &self,
        request: Request<ApplicationId>,
    ) -> Result<Response<EmptyStream>, Status> {
        let by = caller_name(&call_context(&request)?.caller);
        delete_application(&self.shared, &request.into_inner().application_name, &by).await?;
        Ok(Response::new(stream_of(Vec::new())))
    }

    async fn get_application(
        &self,
        request: Request<ApplicationId>,
    ) -> Result<Response<ApplicationOverview>, Status> {
        let name = request.into_inner().application_name;
        let app = self
            .shared
            .access
            .application(&name)?
            .ok_or(ApiError::NoSuchApplicationRecord(name))?;
        Ok(Response::new(overview(&app)))
    }

    type GetApplicationsStream = ReceiverStream<Result<ApplicationOverview, Status>>;

    async fn get_applications(
        &self,
        _: Request<()>,
    ) -> Result<Response<Self::GetApplicationsStream>, Status> {
        let apps = self.shared.access.applications()?;
        Ok(Response::new(stream_of(
            apps.iter().map(overview).collect(),
        )))
    }

    async fn refresh_token(
        &self,
        request: Request<ApplicationId>,
    ) -> Result<Response<Token>, Status> {
        let by = caller_name(&call_context(&request)?.caller);
        let token = renew_token(&self.shared, &request.into_inner().application_name, &by).await?;
        Ok(Response::new(Token { token }))
    }

    async fn get_connected_applications_by_context(
        &self,
        request: Request<ContextId>,
    ) -> Result<Response<ConnectedApplicationOverview>, Status> {
        let context = request.into_inner().context_name;
        let mut by_component: BTreeMap<String, Vec<Client>> = BTreeMap::new();
        for client in self.shared.clients.list() {
            if client.context != context {
                continue;
            }
            by_component
                .entry(client.component_name.clone())
                .or_default()
                .push(Client {
                    name: client.client_id.clone(),
                    node: self.shared.advertised.name.clone(),
                    processors: client.processors.values().cloned().collect(),
                });
        }
        Ok(Response::new(ConnectedApplicationOverview {
            nodes: vec![self.shared.advertised.name.clone()],
            applications: by_component
                .into_iter()
                .map(|(name, clients)| ClientApplication {
                    name,
                    clients,
                    commands: Vec::new(),
                    queries: Vec::new(),
                })
                .collect(),
        }))
    }
}

#[tonic::async_trait]
impl UserAdminService for SecurityAdmin {
    type CreateOrUpdateUserStream = EmptyStream;

    async fn create_or_update_user(
        &self,
        request: Request<CreateOrUpdateUserRequest>,
    ) -> Result<Response<EmptyStream>, Status> {
        let by = caller_name(&call_context(&request)?.caller);
        let request = request.into_inner();
        let mut roles = Vec::new();
        for role in &request.user_roles {
            roles.push(ContextRole {
                role: access::Role::parse(&role.role)?,
                context: if role.context.is_empty() {
                    "*".to_string()
                } else {
                    role.context.clone()
                },
            });
        }
        save_user(
            &self.shared,
            &request.user_name,
            Some(request.password),
            roles,
            &by,
        )
        .await?;
        Ok(Response::new(stream_of(Vec::new())))
    }

    type DeleteUserStream = EmptyStream;

    async fn delete_user(
        &self,
        request: Request<DeleteUserRequest>,
    ) -> Result<Response<EmptyStream>, Status> {
        let by = caller_name(&call_context(&request)?.caller);
        delete_user(&self.shared, &request.into_inner().user_name, &by).await?;
        Ok(Response::new(stream_of(Vec::new())))
    }

    type GetUsersStream = ReceiverStream<Result<UserOverview, Status>>;

    async fn get_users(&self, _: Request<()>) -> Result<Response<Self::GetUsersStream>, Status> {
        let users = self.shared.access.users()?;
        Ok(Response::new(stream_of(
            users
                .into_iter()
                .map(|user| UserOverview {
                    user_name: user.name,
                    enabled: true,
                    user_roles: user
                        .roles
                        .iter()
                        .map(|r| UserRoleOverview {
                            role: r.role.name().to_string(),
                            context: r.context.clone(),
                        })
                        .collect(),
                })
                .collect(),
        )))
    }
}

fn wire_roles(roles: &[ContextRole]) -> Vec<WireContextRole> {
    roles
        .iter()
        .map(|r| WireContextRole {
            role: r.role.name().to_string(),
            context: r.context.clone(),
        })
        .collect()
}

#[tonic::async_trait]
impl AuthenticationService for SecurityAdmin {
    async fn authenticate_user(
        &self,
        request: Request<AuthenticateUserRequest>,
    ) -> Result<Response<UserRoles>, Status> {
        let request = request.into_inner();
        let principal = self
            .shared
            .access
            .login(&request.user_name, &request.password, None)
            .await?;
        Ok(Response::new(UserRoles {
            user_name: principal.name().to_string(),
            user_roles: wire_roles(&principal.roles()),
        }))
    }

    async fn authenticate_token(
        &self,
        request: Request<Token>,
    ) -> Result<Response<ApplicationRoles>, Status> {
        let principal = self
            .shared
            .access
            .by_token(&request.into_inner().token)?
            .ok_or(ApiError::InvalidToken {
                method: "AuthenticateToken".into(),
            })?;
        Ok(Response::new(ApplicationRoles {
            application_name: principal.name().to_string(),
            application_role: wire_roles(&principal.roles()),
        }))
    }
}
