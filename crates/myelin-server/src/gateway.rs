//! `GatewayLayer`: the first stop of every gRPC call on 8124. With access control on it finds
//! the caller behind the access token and checks that the caller may make this call in the
//! context it names (`PERMISSIONS`, the one table of rpc → permission); it resolves the
//! `axoniq-context` header to a context this node has, handing the services a `CallContext`.
//! Refusals are answered here, before any service runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use myelin_storage::DEFAULT_CONTEXT;
use tonic::Status;

use crate::access::{self, AccessControl, Permission, Principal};
use crate::api_error::ApiError;

const CONTEXT_HEADERS: [&str; 2] = ["axoniq-context", "context"];
const TOKEN_HEADERS: [&str; 2] = ["axoniq-access-token", "access-token"];
const GET_PLATFORM_SERVER_PATH: &str =
    "/io.axoniq.axonserver.grpc.control.PlatformService/GetPlatformServer";

/// What each rpc needs, by service and method (`*` = every method of the service not listed).
/// Calls to anything not in the table need `Permission::Admin`.
#[rustfmt::skip]
const PERMISSIONS: &[(&str, &str, Permission)] = {
    use Permission::*;
    &[
        ("control.PlatformService", "*", Connect),
        ("event.EventStore", "AppendEvent", PublishEvents),
        ("event.EventStore", "AppendSnapshot", PublishEvents),
        ("event.EventStore", "ListAggregateEvents", ReadEvents),
        ("event.EventStore", "ListAggregateSnapshots", ReadEvents),
        ("event.EventStore", "ListEvents", ReadEvents),
        ("event.EventStore", "ReadHighestSequenceNr", ReadEvents),
        ("event.EventStore", "QueryEvents", ReadEvents),
        ("event.EventStore", "GetFirstToken", ReadEvents),
        ("event.EventStore", "GetLastToken", ReadEvents),
        ("event.EventStore", "GetTokenAt", ReadEvents),
        ("event.EventScheduler", "*", PublishEvents),
        ("command.CommandService", "Dispatch", DispatchCommands),
        ("command.CommandService", "OpenStream", HandleCommands),
        ("query.QueryService", "Query", DispatchQueries),
        ("query.QueryService", "Subscription", DispatchQueries),
        ("query.QueryService", "OpenStream", HandleQueries),
        ("admin.EventProcessorAdminService", "GetAllEventProcessors", Monitor),
        ("admin.EventProcessorAdminService", "GetEventProcessorsByComponent", Monitor),
        ("admin.EventProcessorAdminService", "GetBalancingStrategies", Monitor),
        ("admin.EventProcessorAdminService", "*", ControlProcessors),
        ("admin.ApplicationAdminService", "GetApplication", ViewConfiguration),
        ("admin.ApplicationAdminService", "GetApplications", ViewConfiguration),
        ("admin.ApplicationAdminService", "GetConnectedApplicationsByContext", Monitor),
        ("admin.ApplicationAdminService", "*", Admin),
        ("admin.UserAdminService", "GetUsers", ViewConfiguration),
        ("admin.UserAdminService", "*", Admin),
        ("admin.AuthenticationService", "*", Admin),
    ]
};

/// What the rpc at `path` (`/io.axoniq.axonserver.grpc.<service>/<method>`) needs.
pub fn permission_of(path: &str) -> Permission {
    let Some((service, method)) = path
        .strip_prefix("/io.axoniq.axonserver.grpc.")
        .and_then(|rest| rest.split_once('/'))
    else {
        return Permission::Admin;
    };
    let of_service = || PERMISSIONS.iter().filter(|(s, _, _)| *s == service);
    of_service()
        .find(|(_, m, _)| *m == method)
        .or_else(|| of_service().find(|(_, m, _)| *m == "*"))
        .map_or(Permission::Admin, |(_, _, p)| *p)
}

/// The context a call addresses, resolved by the gateway, and who makes it (`None` when access
/// control is off).
#[derive(Debug, Clone)]
pub struct CallContext {
    pub context: String,
    pub caller: Option<Principal>,
}

/// What the gateway checks calls against.
pub struct GatewayRules {
    pub access: Arc<AccessControl>,
    pub contexts: Vec<String>,
}

impl GatewayRules {
    fn admit<B>(&self, request: &http::Request<B>) -> Result<CallContext, ApiError> {
        let path = request.uri().path();
        let header = |names: &[&str]| {
            names
                .iter()
                .find_map(|name| request.headers().get(*name))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let context = header(&CONTEXT_HEADERS)
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| DEFAULT_CONTEXT.to_string());
        let permission = permission_of(path);
        let caller = if self.access.enabled {
            let method = path.trim_start_matches('/').to_string();
            let Some(token) = header(&TOKEN_HEADERS) else {
                return Err(ApiError::TokenMissing { method });
            };
            let Some(caller) = self.access.by_token(&token)? else {
                return Err(ApiError::InvalidToken { method });
            };
            access::authorize(&caller, permission, &context, &method)?;
            Some(caller)
        } else {
            None
        };
        // Cluster-wide services do not address a context of their own.
        if !permission.cluster_wide() && !self.contexts.contains(&context) {
            return Err(if path == GET_PLATFORM_SERVER_PATH {
                ApiError::NoServerForContext(context)
            } else {
                ApiError::ContextNotFound(context)
            });
        }
        Ok(CallContext { context, caller })
    }
}

/// Reads the `CallContext` the gateway attached to a request.
pub fn call_context<T>(request: &tonic::Request<T>) -> Result<CallContext, Status> {
    request
        .extensions()
        .get::<CallContext>()
        .cloned()
        .ok_or_else(|| Status::internal("call did not pass the gateway"))
}

#[derive(Clone)]
pub struct GatewayLayer {
    rules: Arc<GatewayRules>,
}

impl GatewayLayer {
    pub fn new(rules: GatewayRules) -> GatewayLayer {
        GatewayLayer {
            rules: Arc::new(rules),
        }
    }
}

impl<S> tower::Layer<S> for GatewayLayer {
    type Service = Gateway<S>;

    fn layer(&self, inner: S) -> Gateway<S> {
        Gateway {
            inner,
            rules: self.rules.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Gateway<S> {
    inner: S,
    rules: Arc<GatewayRules>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Gateway<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        match self.rules.admit(&request) {
            Ok(context) => {
                request.extensions_mut().insert(context);
                Box::pin(self.inner.call(request))
            }
            Err(error) => {
                let status: Status = error.into();
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}
