//! Helpers for Myelin's tests and benchmarks: `TestNode` runs a node in-process on loopback
//! listeners bound before it starts (no port races) over a temporary data directory, and can be
//! restarted on the same data; `TestCluster` runs three such nodes as a raft cluster on fixed
//! loopback ports, with links that tests can cut; `AxonClient` is a set of tonic clients that send
//! Axon's headers.

pub mod certs;
mod cluster;

pub use cluster::TestCluster;

use std::path::{Path, PathBuf};
use std::time::Duration;

use myelin_protocol::grpc::command::command_service_client::CommandServiceClient;
use myelin_protocol::grpc::control::platform_service_client::PlatformServiceClient;
use myelin_protocol::grpc::event::event_scheduler_client::EventSchedulerClient;
use myelin_protocol::grpc::event::event_store_client::EventStoreClient;
use myelin_protocol::grpc::event::Event;
use myelin_protocol::grpc::query::query_service_client::QueryServiceClient;
use myelin_protocol::grpc::SerializedObject;
use myelin_server::config::NodeConfig;
use myelin_server::{Listeners, NodeHandle};
use tokio::net::TcpListener;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// A node running inside the test process.
pub struct TestNode {
    handle: Option<NodeHandle>,
    config: NodeConfig,
    data: DataDir,
}

enum DataDir {
    Temporary(tempfile::TempDir),
    Given(PathBuf),
}

impl DataDir {
    fn path(&self) -> &Path {
        match self {
            DataDir::Temporary(dir) => dir.path(),
            DataDir::Given(path) => path,
        }
    }
}

impl TestNode {
    /// A node with default settings over a fresh temporary directory.
    pub async fn start() -> TestNode {
        TestNode::start_with(|_| {}).await
    }

    /// A node whose configuration `adjust` may change (data directory and ports are set here).
    pub async fn start_with(adjust: impl FnOnce(&mut NodeConfig)) -> TestNode {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot create a temporary directory: {e}"),
        };
        TestNode::start_in(DataDir::Temporary(dir), adjust).await
    }

    /// A node over an existing data directory (kept after the test).
    pub async fn start_at(path: &Path, adjust: impl FnOnce(&mut NodeConfig)) -> TestNode {
        TestNode::start_in(DataDir::Given(path.to_path_buf()), adjust).await
    }

    async fn start_in(data: DataDir, adjust: impl FnOnce(&mut NodeConfig)) -> TestNode {
        let mut config = NodeConfig {
            event_storage: data.path().to_path_buf(),
            snapshot_storage: data.path().to_path_buf(),
            ..NodeConfig::default()
        };
        adjust(&mut config);
        let handle = launch(config.clone()).await;
        TestNode {
            handle: Some(handle),
            config,
            data,
        }
    }

    fn handle(&self) -> &NodeHandle {
        match &self.handle {
            Some(h) => h,
            None => panic!("node is stopped"),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.handle().grpc_addr())
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{}", self.handle().http_addr(), path)
    }

    pub fn node(&self) -> &NodeHandle {
        self.handle()
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// A client for context `default`, without a token.
    pub async fn client(&self) -> AxonClient {
        AxonClient::connect(&self.endpoint(), "default", None).await
    }

    /// Shuts the node down cleanly and starts it again on the same data (on new ports).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.handle = Some(launch(self.config.clone()).await);
    }

    pub async fn stop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown().await;
        }
    }
}

async fn launch(config: NodeConfig) -> NodeHandle {
    let bind = || async {
        match TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("cannot bind a loopback port: {e}"),
        }
    };
    let listeners = Listeners {
        grpc: bind().await,
        http: bind().await,
        internal: bind().await,
    };
    match myelin_server::start(config, listeners).await {
        Ok(handle) => handle,
        Err(e) => panic!("node did not start: {e}"),
    }
}

/// Adds Axon's headers (context, access token) to every call.
#[derive(Clone)]
pub struct AxonHeaders {
    context: String,
    token: Option<String>,
}

impl AxonHeaders {
    pub fn new(context: &str, token: Option<&str>) -> AxonHeaders {
        AxonHeaders {
            context: context.to_string(),
            token: token.map(str::to_string),
        }
    }
}

impl tonic::service::Interceptor for AxonHeaders {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let metadata = request.metadata_mut();
        if let Ok(value) = MetadataValue::try_from(self.context.as_str()) {
            metadata.insert("axoniq-context", value);
        }
        if let Some(token) = &self.token {
            if let Ok(value) = MetadataValue::try_from(token.as_str()) {
                metadata.insert("axoniq-access-token", value);
            }
        }
        Ok(request)
    }
}

pub type Intercepted = InterceptedService<Channel, AxonHeaders>;

/// Tonic clients for one context over one HTTP/2 connection, as an Axon application has.
#[derive(Clone)]
pub struct AxonClient {
    pub events: EventStoreClient<Intercepted>,
    pub scheduler: EventSchedulerClient<Intercepted>,
    pub platform: PlatformServiceClient<Intercepted>,
    pub commands: CommandServiceClient<Intercepted>,
    pub queries: QueryServiceClient<Intercepted>,
}

impl AxonClient {
    pub async fn connect(endpoint: &str, context: &str, token: Option<&str>) -> AxonClient {
        let channel = match Endpoint::from_shared(endpoint.to_string()) {
            Ok(e) => e.connect_timeout(Duration::from_secs(5)),
            Err(e) => panic!("bad endpoint {endpoint}: {e}"),
        };
        let channel = match channel.connect().await {
            Ok(c) => c,
            Err(e) => panic!("cannot connect to {endpoint}: {e}"),
        };
        AxonClient::over(channel, context, token)
    }

    /// Connects over TLS, trusting the CA certificates in `ca`; `endpoint` is `http://host:port`
    /// (the connector adds TLS). Fails like a real client does when the server is not trusted.
    pub async fn connect_tls(
        endpoint: &str,
        ca: &Path,
        context: &str,
        token: Option<&str>,
    ) -> Result<AxonClient, tonic::transport::Error> {
        let trust = match myelin_server::tls::TrustFile::load(Some(ca.to_path_buf())) {
            Ok(trust) => std::sync::Arc::new(trust),
            Err(e) => panic!("cannot load {}: {e}", ca.display()),
        };
        let channel = match Endpoint::from_shared(endpoint.to_string()) {
            Ok(e) => e.connect_timeout(Duration::from_secs(5)),
            Err(e) => panic!("bad endpoint {endpoint}: {e}"),
        };
        let channel = channel
            .connect_with_connector(myelin_server::tls::PeerConnector::new(trust))
            .await?;
        Ok(AxonClient::over(channel, context, token))
    }

    /// The clients over an open channel.
    pub fn over(channel: Channel, context: &str, token: Option<&str>) -> AxonClient {
        let headers = AxonHeaders {
            context: context.to_string(),
            token: token.map(str::to_string),
        };
        let size = 64 * 1024 * 1024;
        AxonClient {
            events: EventStoreClient::with_interceptor(channel.clone(), headers.clone())
                .max_decoding_message_size(size)
                .max_encoding_message_size(size),
            scheduler: EventSchedulerClient::with_interceptor(channel.clone(), headers.clone()),
            platform: PlatformServiceClient::with_interceptor(channel.clone(), headers.clone()),
            commands: CommandServiceClient::with_interceptor(channel.clone(), headers.clone()),
            queries: QueryServiceClient::with_interceptor(channel, headers),
        }
    }
}

/// A domain event of `aggregate` at `sequence`, with a small payload of `payload_type`.
pub fn domain_event(aggregate: &str, sequence: i64, payload_type: &str) -> Event {
    Event {
        message_identifier: uuid::Uuid::new_v4().to_string(),
        aggregate_identifier: aggregate.to_string(),
        aggregate_sequence_number: sequence,
        aggregate_type: "TestAggregate".to_string(),
        timestamp: now_ms(),
        payload: Some(SerializedObject {
            r#type: payload_type.to_string(),
            revision: String::new(),
            data: format!("<{payload_type} aggregate=\"{aggregate}\" seq=\"{sequence}\"/>")
                .into_bytes(),
        }),
        meta_data: Default::default(),
        snapshot: false,
    }
}

/// An event that belongs to no aggregate.
pub fn plain_event(payload_type: &str) -> Event {
    Event {
        aggregate_identifier: String::new(),
        aggregate_sequence_number: 0,
        aggregate_type: String::new(),
        ..domain_event("", 0, payload_type)
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
