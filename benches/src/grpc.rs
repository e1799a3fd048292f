//! Axon Server clients (event store, commands, queries) over a few shared HTTP/2 connections,
//! sending Axon's context header.

use std::time::Duration;

use myelin_protocol::grpc::command::command_service_client::CommandServiceClient;
use myelin_protocol::grpc::event::event_store_client::EventStoreClient;
use myelin_protocol::grpc::event::Event;
use myelin_protocol::grpc::query::query_service_client::QueryServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};

use crate::BoxError;

/// Adds `axoniq-context: default` to every call, as an Axon application does.
#[derive(Clone)]
pub struct DefaultContext(MetadataValue<Ascii>);

impl Interceptor for DefaultContext {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("axoniq-context", self.0.clone());
        Ok(request)
    }
}

pub type Intercepted = InterceptedService<Channel, DefaultContext>;
pub type Client = EventStoreClient<Intercepted>;
pub type Commands = CommandServiceClient<Intercepted>;
pub type Queries = QueryServiceClient<Intercepted>;

/// The clients of one HTTP/2 connection (what `myelin_testkit::AxonClient::connect` opens, with
/// errors instead of panics).
#[derive(Clone)]
pub struct Connection {
    pub events: Client,
    pub commands: Commands,
    pub queries: Queries,
}

impl Connection {
    /// Opens a new HTTP/2 connection to `endpoint`.
    pub async fn open(endpoint: &str) -> Result<Connection, BoxError> {
        let channel = Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| format!("bad endpoint {endpoint}: {e}"))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {endpoint}: {e}"))?;
        let context = DefaultContext(MetadataValue::from_static("default"));
        let size = 64 * 1024 * 1024;
        Ok(Connection {
            events: EventStoreClient::with_interceptor(channel.clone(), context.clone())
                .max_decoding_message_size(size)
                .max_encoding_message_size(size),
            commands: CommandServiceClient::with_interceptor(channel.clone(), context.clone()),
            queries: QueryServiceClient::with_interceptor(channel, context),
        })
    }
}

/// A few HTTP/2 connections; bench clients share them, `per_connection` to each.
pub struct Pool {
    connections: Vec<Connection>,
    per_connection: usize,
}

impl Pool {
    /// Opens enough connections to `endpoint` for `max_clients` clients.
    pub async fn connect(
        endpoint: &str,
        max_clients: usize,
        per_connection: usize,
    ) -> Result<Pool, BoxError> {
        let per_connection = per_connection.max(1);
        let count = max_clients.max(1).div_ceil(per_connection);
        let mut connections = Vec::with_capacity(count);
        for _ in 0..count {
            connections.push(Connection::open(endpoint).await?);
        }
        Ok(Pool {
            connections,
            per_connection,
        })
    }

    /// The event store client (connection) bench client number `index` uses.
    pub fn client(&self, index: usize) -> Client {
        self.connection(index).events
    }

    /// The connection bench client number `index` uses.
    pub fn connection(&self, index: usize) -> Connection {
        let connection = (index / self.per_connection) % self.connections.len();
        self.connections[connection].clone()
    }

    /// How many connections `clients` clients spread over.
    pub fn connections_for(&self, clients: usize) -> usize {
        clients
            .div_ceil(self.per_connection)
            .min(self.connections.len())
    }
}

/// Appends `events` as one transaction (one client stream).
pub async fn append(client: &mut Client, events: Vec<Event>) -> Result<(), BoxError> {
    let confirmation = client
        .append_event(tokio_stream::iter(events))
        .await
        .map_err(|s| format!("append failed: {} ({:?})", s.message(), s.code()))?
        .into_inner();
    if !confirmation.success {
        return Err("append answered success = false".into());
    }
    Ok(())
}

/// Accepts only loopback endpoints: the bench never sends load anywhere else.
pub fn check_loopback(endpoint: &str) -> Result<String, BoxError> {
    let rest = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| format!("--endpoint {endpoint}: expected http://HOST:PORT"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(format!("--endpoint {endpoint}: only loopback addresses are allowed").into());
    }
    Ok(endpoint.trim_end_matches('/').to_string())
}
