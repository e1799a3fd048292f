//! `GatewayLayer`: the first stop of every gRPC call on 8124. It checks the access token (when
//! access control is on) and resolves the `axoniq-context` header to a context this node has,
//! handing the services a `CallContext`. Refusals are answered here, before any service runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use myelin_storage::DEFAULT_CONTEXT;
use tonic::Status;

use crate::api_error::ApiError;

const CONTEXT_HEADERS: [&str; 2] = ["axoniq-context", "context"];
const TOKEN_HEADERS: [&str; 2] = ["axoniq-access-token", "access-token"];
const GET_PLATFORM_SERVER_PATH: &str =
    "/io.axoniq.axonserver.grpc.control.PlatformService/GetPlatformServer";

/// The context a call addresses, resolved by the gateway.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub context: String,
}

/// What the gateway checks calls against.
pub struct GatewayRules {
    /// Accepted tokens; `None` when access control is off.
    pub tokens: Option<Vec<String>>,
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
        if let Some(tokens) = &self.tokens {
            let method = path.trim_start_matches('/').to_string();
            match header(&TOKEN_HEADERS) {
                None => return Err(ApiError::TokenMissing { method }),
                Some(given)
                    if !tokens
                        .iter()
                        .any(|t| constant_time_eq(t.as_bytes(), given.as_bytes())) =>
                {
                    return Err(ApiError::InvalidToken { method });
                }
                Some(_) => {}
            }
        }
        let context = header(&CONTEXT_HEADERS)
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| DEFAULT_CONTEXT.to_string());
        if !self.contexts.contains(&context) {
            return Err(if path == GET_PLATFORM_SERVER_PATH {
                ApiError::NoServerForContext(context)
            } else {
                ApiError::ContextNotFound(context)
            });
        }
        Ok(CallContext { context })
    }
}

/// Compares two tokens without leaking, through timing, how much of them matches.
pub(crate) fn tokens_equal(a: &str, b: &str) -> bool {
    constant_time_eq(a.as_bytes(), b.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
