//! A Myelin node: `start` opens storage, starts the replication group, and serves gRPC (8124),
//! HTTP (8024) and the cluster port (8224) on listeners the caller bound — the CLI and the tests
//! start nodes the same way.
//! `NodeHandle::shutdown` stops accepting, ends open streams, drains the group and closes RocksDB.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use myelin_protocol::cluster::cluster_server::ClusterServer;
use myelin_protocol::log::{log_command::Command, LogCommand};
use myelin_protocol::wire::admin::application_admin_service_server::ApplicationAdminServiceServer;
use myelin_protocol::wire::admin::authentication_service_server::AuthenticationServiceServer;
use myelin_protocol::wire::admin::event_processor_admin_service_server::EventProcessorAdminServiceServer;
use myelin_protocol::wire::admin::user_admin_service_server::UserAdminServiceServer;
use myelin_protocol::wire::command::command_service_server::CommandServiceServer;
use myelin_protocol::wire::control::platform_service_server::PlatformServiceServer;
use myelin_protocol::wire::event::event_scheduler_server::EventSchedulerServer;
use myelin_protocol::wire::event::event_store_server::EventStoreServer;
use myelin_protocol::wire::query::query_service_server::QueryServiceServer;
use myelin_replication::{GroupConfig, ReplicationGroup};
use myelin_storage::{ApplyOutcome, Context, Store};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::access::AccessControl;
use crate::admin::ProcessorAdmin;
use crate::api_error::ApiError;
use crate::clients::ClientRegistry;
use crate::cluster::{self, Cluster, ClusterService, GrpcTransport, LinkFilter, TransportHandle};
use crate::commands::{self, CommandRouter, CommandServiceImpl};
use crate::config::NodeConfig;
use crate::event_store::EventStoreService;
use crate::gateway::{GatewayLayer, GatewayRules};
use crate::metrics::Metrics;
use crate::platform::{self, Platform};
use crate::queries::{self, QueryRouter, QueryServiceImpl};
use crate::scheduler::{self, SchedulerService};
use crate::security::SecurityAdmin;
use crate::tls::{self, NodeTls};
use crate::topology::TopologyWatchers;

/// The replication group that holds every context (and the cluster's address book).
const DEFAULT_GROUP_ID: u32 = 0;
/// How often the metrics timeline takes a sample.
const METRICS_SAMPLE_EVERY_MS: u64 = 1000;
/// How long shutdown waits for open calls to finish before it cuts them.
const SHUTDOWN_DRAIN_MS: u64 = 5000;

/// The listeners a node serves on, bound by the caller so tests never race for ports.
pub struct Listeners {
    pub grpc: TcpListener,
    pub http: TcpListener,
    pub internal: TcpListener,
}

impl Listeners {
    /// Binds the configured ports on all interfaces.
    pub async fn bind(config: &NodeConfig) -> std::io::Result<Listeners> {
        Ok(Listeners {
            grpc: TcpListener::bind(("0.0.0.0", config.grpc_port)).await?,
            http: TcpListener::bind(("0.0.0.0", config.http_port)).await?,
            internal: TcpListener::bind(("0.0.0.0", config.internal_port)).await?,
        })
    }
}

/// Start-up choices that are not configuration.
#[derive(Default)]
pub struct StartOptions {
    /// Cuts links between nodes (tests of partitions); `None` lets all traffic through.
    pub link_filter: Option<LinkFilter>,
}

/// How this node presents itself to clients.
pub(crate) struct Advertised {
    pub name: String,
    pub hostname: String,
    pub grpc_port: u16,
    pub http_port: u16,
}

/// What every service of the node shares.
pub(crate) struct Shared {
    pub advertised: Advertised,
    pub data_dir: String,
    pub max_message_size_bytes: usize,
    pub store: Arc<Store>,
    pub group: Arc<ReplicationGroup>,
    pub cluster: Arc<Cluster>,
    /// Where raft snapshot checkpoints are written and received.
    pub checkpoint_dir: PathBuf,
    /// How long a call waits for a leader (`replication.wait-for-leader-timeout`).
    pub wait_for_leader_ms: u64,
    /// Who may do what (`accesscontrol.*`, applications and users).
    pub access: Arc<AccessControl>,
    /// Whether client-facing ports use TLS (`/v1/public/me` reports it).
    pub ssl: bool,
    pub clients: Arc<ClientRegistry>,
    pub commands: Arc<CommandRouter>,
    pub queries: QueryRouter,
    pub topology: TopologyWatchers,
    pub metrics: Metrics,
    pub scheduler_wake: Notify,
    pub shutdown: CancellationToken,
}

impl Shared {
    pub fn context(&self, name: &str) -> Result<Arc<Context>, ApiError> {
        self.store
            .context(name)
            .ok_or_else(|| ApiError::ContextNotFound(name.to_string()))
    }

    /// Before a read on a leader that was just elected: waits (at most the leader wait) until it
    /// committed an entry of its own term, so every write acknowledged before the election is
    /// applied here and visible. Followers and settled leaders pass at once.
    pub async fn read_barrier(&self) {
        let mut status = self.group.status();
        let settled = |s: &myelin_replication::GroupStatus| !s.is_leader() || s.committed_in_term;
        if settled(&status.borrow()) {
            return;
        }
        let wait = Duration::from_millis(self.wait_for_leader_ms);
        let _ = tokio::time::timeout(wait, status.wait_for(settled)).await;
    }

    /// For a read that must see everything the leader committed (`force_read_from_leader`): on a
    /// follower, asks the leader for its commit index and waits until this node applied it.
    pub async fn catch_up_with_leader(&self) -> Result<(), ApiError> {
        let mut status = self.group.status();
        let current = status.borrow().clone();
        if current.is_leader() {
            return Ok(());
        }
        let no_leader = || {
            ApiError::Replication(myelin_replication::ReplicationError::NoLeader {
                group: DEFAULT_GROUP_ID,
                waited_ms: self.wait_for_leader_ms,
            })
        };
        let client = current.leader_id.and_then(|id| self.cluster.client(id));
        let Some(mut client) = client else {
            return Err(no_leader());
        };
        let reply = client
            .commit_index(self.cluster.request(myelin_protocol::cluster::Ack {}))
            .await
            .map_err(|_| no_leader())?
            .into_inner();
        if !reply.leader {
            return Err(no_leader());
        }
        let wait = Duration::from_millis(self.wait_for_leader_ms);
        let caught_up = tokio::time::timeout(
            wait,
            status.wait_for(|s| s.applied_index >= reply.commit_index),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        if caught_up {
            Ok(())
        } else {
            Err(no_leader())
        }
    }

    /// Proposes a command to the replication group and waits for its outcome.
    pub async fn propose(&self, command: Command) -> Result<ApplyOutcome, ApiError> {
        if self.shutdown.is_cancelled() {
            return Err(ApiError::ShuttingDown);
        }
        let entry = LogCommand {
            command: Some(command),
        }
        .encode_to_vec();
        Ok(self.group.propose(entry).await?)
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open storage in {path}: {source}")]
    Storage {
        path: String,
        source: myelin_storage::StorageError,
    },
    #[error("cannot start replication: {0}")]
    Replication(#[from] myelin_replication::StartError),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// A running node.
pub struct NodeHandle {
    shared: Arc<Shared>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    internal_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts a node with `config` on `listeners`.
pub async fn start(config: NodeConfig, listeners: Listeners) -> Result<NodeHandle, StartError> {
    start_with(config, listeners, StartOptions::default()).await
}

/// Starts a node with `config` on `listeners`, with test hooks.
pub async fn start_with(
    config: NodeConfig,
    listeners: Listeners,
    options: StartOptions,
) -> Result<NodeHandle, StartError> {
    let grpc_addr = listeners.grpc.local_addr()?;
    let http_addr = listeners.http.local_addr()?;
    let internal_addr = listeners.internal.local_addr()?;
    let tls = Arc::new(NodeTls::load(&config.tls_files()?)?);
    let data_dir = config.event_storage.display().to_string();
    tracing::info!(events = %data_dir, snapshots = %config.snapshot_storage.display(), "opening storage");
    let store = Store::open_with_contexts(
        &config.event_storage,
        &config.snapshot_storage,
        &config.autocluster_contexts,
    )
    .map_err(|source| StartError::Storage {
        path: data_dir.clone(),
        source,
    })?;
    let store = Arc::new(store);
    let node_id = store
        .local_node_id()
        .map_err(|source| StartError::Storage {
            path: data_dir.clone(),
            source,
        })?;
    let cluster = Arc::new(Cluster::new(
        &config,
        node_id,
        (grpc_addr.port(), http_addr.port(), internal_addr.port()),
        options.link_filter,
        tls.peers.clone(),
    ));
    let _ = cluster.learn_address_book(&store);
    let alone = config.autocluster_first.is_none();
    let checkpoint_dir = config.event_storage.join("checkpoints");
    let transport = GrpcTransport::new(cluster.clone(), tokio::runtime::Handle::current());
    let mut group_config =
        GroupConfig::single_node(DEFAULT_GROUP_ID, node_id, checkpoint_dir.clone());
    group_config.initial_voters = if cluster.creates_cluster() {
        vec![node_id]
    } else {
        Vec::new()
    };
    group_config.wait_for_leader_ms = config.wait_for_leader_timeout_ms;
    group_config.log_keep_entries = config.log_keep_entries;
    group_config.transport = Arc::new(TransportHandle(transport.clone()));
    tracing::info!(
        node = %config.name,
        id = node_id,
        internal = %cluster.me.internal_address,
        creates_cluster = cluster.creates_cluster(),
        "starting replication group {DEFAULT_GROUP_ID}"
    );
    let group = Arc::new(ReplicationGroup::start(store.clone(), group_config)?);
    transport.attach(&group);
    if alone && !group.wait_until_replayed(Duration::from_secs(10)).await {
        tracing::warn!(
            "replication group {DEFAULT_GROUP_ID} has not replayed its log yet; appends wait for it"
        );
    }

    let access = Arc::new(AccessControl::new(
        config.access_control_enabled,
        config.access_control_admin_token.clone(),
        config.access_control_token.clone(),
        store.clone(),
    ));
    let rules = GatewayRules {
        access: access.clone(),
        contexts: store.context_names(),
    };
    let shared = Arc::new(Shared {
        advertised: Advertised {
            name: config.name.clone(),
            hostname: config.hostname.clone(),
            grpc_port: grpc_addr.port(),
            http_port: http_addr.port(),
        },
        data_dir,
        max_message_size_bytes: config.max_message_size_bytes,
        store,
        group,
        cluster,
        checkpoint_dir,
        wait_for_leader_ms: config.wait_for_leader_timeout_ms,
        access,
        ssl: tls.grpc.is_some() || tls.http.is_some(),
        clients: Arc::new(ClientRegistry::default()),
        commands: Arc::new(CommandRouter::new(Duration::from_millis(
            config.default_command_timeout_ms,
        ))),
        queries: QueryRouter::default(),
        topology: TopologyWatchers::default(),
        metrics: Metrics::new(&config.name),
        scheduler_wake: Notify::new(),
        shutdown: CancellationToken::new(),
    });

    // Room above the limit so an oversized event reaches our own check (AXONIQ-2001) instead of
    // being cut off by the transport.
    let decode_limit = config.max_message_size_bytes.saturating_mul(2);
    let encode_limit = config.max_message_size_bytes.saturating_mul(2);
    let platform = PlatformServiceServer::new(Platform::new(shared.clone()))
        .max_decoding_message_size(decode_limit)
        .max_encoding_message_size(encode_limit);
    let event_store = EventStoreServer::new(EventStoreService::new(shared.clone()))
        .max_decoding_message_size(decode_limit)
        .max_encoding_message_size(encode_limit);
    let scheduler = EventSchedulerServer::new(SchedulerService::new(shared.clone()))
        .max_decoding_message_size(decode_limit)
        .max_encoding_message_size(encode_limit);

    let commands = CommandServiceServer::new(CommandServiceImpl::new(shared.clone()))
        .max_decoding_message_size(decode_limit)
        .max_encoding_message_size(encode_limit);

    let queries = QueryServiceServer::new(QueryServiceImpl::new(shared.clone()))
        .max_decoding_message_size(decode_limit)
        .max_encoding_message_size(encode_limit);

    let admin = EventProcessorAdminServiceServer::new(ProcessorAdmin::new(shared.clone()));
    let applications = ApplicationAdminServiceServer::new(SecurityAdmin::new(shared.clone()));
    let users = UserAdminServiceServer::new(SecurityAdmin::new(shared.clone()));
    let authentication = AuthenticationServiceServer::new(SecurityAdmin::new(shared.clone()));

    let shutdown = shared.shutdown.clone();
    let grpc = tonic::transport::Server::builder()
        // Axon Framework pings every second; answer them, never GOAWAY a client for pinging.
        .http2_keepalive_interval(Some(Duration::from_millis(2500)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .layer(GatewayLayer::new(rules))
        .add_service(platform)
        .add_service(event_store)
        .add_service(scheduler)
        .add_service(commands)
        .add_service(queries)
        .add_service(admin)
        .add_service(applications)
        .add_service(users)
        .add_service(authentication)
        .serve_with_incoming_shutdown(
            tls::incoming(tls::accept_loop(
                listeners.grpc,
                tls.grpc.clone(),
                "gRPC",
                shared.shutdown.clone(),
            )),
            async move { shutdown.cancelled().await },
        );
    let grpc_task = tokio::spawn(async move {
        if let Err(e) = grpc.await {
            tracing::error!("gRPC server failed: {e}");
        }
    });
    tracing::info!(
        tls = tls.grpc.is_some(),
        "gRPC (Axon client protocol) listening on {grpc_addr}"
    );

    let shutdown = shared.shutdown.clone();
    let http_listener = tls::AcceptedListener {
        connections: tls::accept_loop(
            listeners.http,
            tls.http.clone(),
            "HTTP",
            shared.shutdown.clone(),
        ),
        local_addr: http_addr,
    };
    let http = axum::serve(
        http_listener,
        crate::http::router(shared.clone())
            .into_make_service_with_connect_info::<tls::RemoteAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await });
    let http_task = tokio::spawn(async move {
        if let Err(e) = http.await {
            tracing::error!("HTTP server failed: {e}");
        }
    });
    tracing::info!(
        tls = tls.http.is_some(),
        "HTTP (REST API, GUI, actuator) listening on {http_addr}"
    );

    let shutdown = shared.shutdown.clone();
    let internal = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(5)))
        .add_service(
            ClusterServer::new(ClusterService::new(shared.clone()))
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
        )
        .serve_with_incoming_shutdown(
            tls::incoming(tls::accept_loop(
                listeners.internal,
                tls.internal.clone(),
                "cluster",
                shared.shutdown.clone(),
            )),
            async move { shutdown.cancelled().await },
        );
    let internal_task = tokio::spawn(async move {
        if let Err(e) = internal.await {
            tracing::error!("cluster server failed: {e}");
        }
    });
    tracing::info!(
        tls = tls.internal.is_some(),
        "cluster traffic listening on {internal_addr}"
    );
    let certificate_watch = tokio::spawn(tls.clone().watch(
        Duration::from_millis(config.ssl_reload_interval_ms),
        shared.shutdown.clone(),
    ));

    let publisher = tokio::spawn(scheduler::run_publisher(shared.clone()));
    let membership = tokio::spawn(cluster::run_membership(shared.clone()));
    let announcer = tokio::spawn(commands::run_announcer(shared.clone()));
    let forwarder = tokio::spawn(commands::run_forwarder(shared.clone()));
    let reconnects = tokio::spawn(platform::run_leader_watch(shared.clone()));
    let command_timeouts = tokio::spawn(commands::run_timeouts(shared.clone()));
    let query_timeouts = tokio::spawn(queries::run_timeouts(shared.clone()));
    let sampler = tokio::spawn(run_metrics_sampler(shared.clone()));
    tracing::info!(node = %config.name, "node started");
    Ok(NodeHandle {
        shared,
        grpc_addr,
        http_addr,
        internal_addr,
        tasks: vec![
            grpc_task,
            http_task,
            internal_task,
            membership,
            announcer,
            forwarder,
            reconnects,
            publisher,
            command_timeouts,
            query_timeouts,
            sampler,
            certificate_watch,
        ],
    })
}

/// Takes a metrics timeline sample every second, for the GUI's charts, and forgets the counts of
/// handler clients that are gone.
async fn run_metrics_sampler(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(Duration::from_millis(METRICS_SAMPLE_EVERY_MS));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shared.shutdown.cancelled() => return,
        }
        let status = shared.group.status().borrow().clone();
        let lag = status.commit_index.saturating_sub(status.applied_index);
        let clients = shared.clients.count() as u64;
        shared
            .metrics
            .sample(crate::scheduler::now_ms(), lag, clients);
        let handlers: HashSet<String> = shared
            .commands
            .registrations()
            .into_iter()
            .chain(shared.queries.registrations())
            .filter(|r| r.node.is_none())
            .map(|r| r.client_id)
            .collect();
        shared.metrics.retain_clients(&handlers);
    }
}

impl NodeHandle {
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn internal_addr(&self) -> SocketAddr {
        self.internal_addr
    }

    /// This node's raft id.
    pub fn node_id(&self) -> u64 {
        self.shared.cluster.me.id
    }

    /// The group's state as this node sees it.
    pub fn raft_status(&self) -> myelin_replication::GroupStatus {
        self.shared.group.status().borrow().clone()
    }

    /// The applications connected to this node.
    pub fn clients(&self) -> Arc<ClientRegistry> {
        self.shared.clients.clone()
    }

    /// Stops accepting calls, ends open streams, waits for the servers (at most a few seconds),
    /// then stops the replication group (queued proposals are refused, none is half-done) and
    /// syncs storage. RocksDB closes when the last reader lets go of it.
    pub async fn shutdown(self) {
        tracing::info!("shutting down: no new calls, ending open streams");
        self.shared.shutdown.cancel();
        let drain = futures::future::join_all(self.tasks);
        if tokio::time::timeout(Duration::from_millis(SHUTDOWN_DRAIN_MS), drain)
            .await
            .is_err()
        {
            tracing::warn!("calls still open after {SHUTDOWN_DRAIN_MS} ms; closing anyway");
        }
        let shared = self.shared.clone();
        let stopped = tokio::task::spawn_blocking(move || {
            shared.group.shutdown();
            shared.store.flush()
        })
        .await;
        match stopped {
            Ok(Ok(())) => tracing::info!("replication stopped, storage synced"),
            Ok(Err(e)) => tracing::error!("syncing storage at shutdown failed: {e}"),
            Err(e) => tracing::error!("shutdown task failed: {e}"),
        }
        // Stream tasks end on their own once their connections are gone; RocksDB closes (and its
        // lock is released) with the last of them.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(SHUTDOWN_DRAIN_MS);
        while Arc::strong_count(&self.shared) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        match Arc::try_unwrap(self.shared) {
            Ok(shared) => {
                drop(shared);
                tracing::info!("storage closed; node stopped");
            }
            Err(_) => tracing::warn!("node state still in use after {SHUTDOWN_DRAIN_MS} ms; storage closes when released"),
        }
    }

    /// The data directory of this node (for tests and logs).
    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(&self.shared.data_dir)
    }
}
