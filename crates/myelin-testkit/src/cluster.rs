//! `TestCluster`: nodes in one process forming a raft cluster over loopback. Each node keeps its
//! ports across restarts (as a StatefulSet pod keeps its name); node 0 is `autocluster.first`. A
//! shared link filter isolates nodes from each other without touching client traffic.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use myelin_server::config::NodeConfig;
use myelin_server::{Listeners, NodeHandle, StartOptions};
use tokio::net::TcpListener;

use crate::{eventually, AxonClient};

pub struct TestCluster {
    members: Vec<Member>,
    /// Raft ids of isolated nodes: no traffic to or from them on the internal port.
    isolated: Arc<RwLock<HashSet<u64>>>,
}

struct Member {
    handle: Option<NodeHandle>,
    config: NodeConfig,
    dir: tempfile::TempDir,
    ports: [u16; 3],
}

impl TestCluster {
    /// Starts `size` nodes (node 0 creates the cluster) and waits until all are voters with one
    /// leader. `adjust` may change each node's configuration.
    pub async fn start(size: usize, adjust: impl Fn(usize, &mut NodeConfig)) -> TestCluster {
        // Logs go to the test output (shown for failing tests); RUST_LOG picks the level.
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,raft=warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
        let mut listeners = Vec::new();
        for _ in 0..size {
            listeners.push([bind(0).await, bind(0).await, bind(0).await]);
        }
        let port = |l: &TcpListener| l.local_addr().map_or(0, |a| a.port());
        let first = format!("127.0.0.1:{}", port(&listeners[0][2]));
        let mut members = Vec::new();
        for (index, [grpc, http, internal]) in listeners.into_iter().enumerate() {
            let dir = match tempfile::tempdir() {
                Ok(dir) => dir,
                Err(e) => panic!("cannot create a temporary directory: {e}"),
            };
            let mut config = NodeConfig {
                name: format!("node-{index}"),
                hostname: "127.0.0.1".to_string(),
                internal_hostname: Some("127.0.0.1".to_string()),
                autocluster_first: Some(first.clone()),
                event_storage: dir.path().to_path_buf(),
                snapshot_storage: dir.path().to_path_buf(),
                wait_for_leader_timeout_ms: 2000,
                ..NodeConfig::default()
            };
            adjust(index, &mut config);
            members.push(Member {
                handle: None,
                config,
                dir,
                ports: [port(&grpc), port(&http), port(&internal)],
            });
            // The ports are known now; each node binds its own again when it starts.
            drop((grpc, http, internal));
        }
        let mut cluster = TestCluster {
            members,
            isolated: Arc::new(RwLock::new(HashSet::new())),
        };
        for index in 0..size {
            cluster.launch(index).await;
        }
        cluster.wait_until_formed().await;
        cluster
    }

    async fn launch(&mut self, index: usize) {
        let isolated = self.isolated.clone();
        let member = &mut self.members[index];
        let [grpc, http, internal] = member.ports;
        let listeners = Listeners {
            grpc: bind(grpc).await,
            http: bind(http).await,
            internal: bind(internal).await,
        };
        let filter: myelin_server::LinkFilter = Arc::new(move |from, to| {
            let cut = isolated.read().unwrap_or_else(|p| p.into_inner());
            !cut.contains(&from) && !cut.contains(&to)
        });
        let options = StartOptions {
            link_filter: Some(filter),
        };
        match myelin_server::start_with(member.config.clone(), listeners, options).await {
            Ok(handle) => member.handle = Some(handle),
            Err(e) => panic!("node {index} did not start: {e}"),
        }
    }

    pub fn size(&self) -> usize {
        self.members.len()
    }

    pub fn node(&self, index: usize) -> &NodeHandle {
        match &self.members[index].handle {
            Some(handle) => handle,
            None => panic!("node {index} is stopped"),
        }
    }

    pub fn is_running(&self, index: usize) -> bool {
        self.members[index].handle.is_some()
    }

    pub fn grpc_addr(&self, index: usize) -> SocketAddr {
        self.node(index).grpc_addr()
    }

    pub fn endpoint(&self, index: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[index].ports[0])
    }

    pub fn http_url(&self, index: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.members[index].ports[1], path)
    }

    pub async fn client(&self, index: usize) -> AxonClient {
        AxonClient::connect(&self.endpoint(index), "default", None).await
    }

    /// The index of the node every running node names as leader, once they agree.
    pub async fn leader(&self) -> usize {
        eventually(
            "the running nodes agree on a leader",
            Duration::from_secs(30),
            || async {
                let mut leaders = HashSet::new();
                for member in self.members.iter().filter_map(|m| m.handle.as_ref()) {
                    leaders.insert(member.raft_status().leader_id?);
                }
                if leaders.len() != 1 {
                    return None;
                }
                let leader = leaders.into_iter().next()?;
                self.members
                    .iter()
                    .position(|m| m.handle.as_ref().is_some_and(|h| h.node_id() == leader))
            },
        )
        .await
    }

    /// Waits until every node is a voter, one is leader, and all have applied the same index.
    pub async fn wait_until_formed(&self) {
        let size = self.members.len();
        eventually("the cluster forms", Duration::from_secs(60), || async {
            let statuses: Vec<_> = self
                .members
                .iter()
                .filter_map(|m| m.handle.as_ref())
                .map(|h| h.raft_status())
                .collect();
            let ids: HashSet<u64> = self
                .members
                .iter()
                .filter_map(|m| m.handle.as_ref())
                .map(|h| h.node_id())
                .collect();
            tracing::debug!(?statuses, "waiting for the cluster to form");
            let formed = statuses.iter().all(|s| {
                s.voters.len() == size
                    && s.voters.iter().all(|v| ids.contains(v))
                    && s.leader_id.is_some()
            });
            formed.then_some(())
        })
        .await;
    }

    /// Waits until every running node has applied everything the leader committed.
    pub async fn wait_until_caught_up(&self) {
        let leader = self.leader().await;
        eventually("all nodes catch up", Duration::from_secs(60), || async {
            let commit = self.node(leader).raft_status().commit_index;
            self.members
                .iter()
                .filter_map(|m| m.handle.as_ref())
                .all(|h| h.raft_status().applied_index >= commit)
                .then_some(())
        })
        .await;
    }

    /// Stops a node cleanly (its data stays).
    pub async fn stop(&mut self, index: usize) {
        if let Some(handle) = self.members[index].handle.take() {
            handle.shutdown().await;
        }
    }

    /// Starts a stopped node again on its data and ports.
    pub async fn restart(&mut self, index: usize) {
        self.stop(index).await;
        self.launch(index).await;
    }

    /// Stops a node, deletes all its data, and starts it again: it joins as a new node.
    pub async fn wipe_and_restart(&mut self, index: usize) {
        self.stop(index).await;
        let dir = self.members[index].dir.path().to_path_buf();
        if let Err(e) = std::fs::remove_dir_all(&dir).and_then(|_| std::fs::create_dir_all(&dir)) {
            panic!("cannot wipe {}: {e}", dir.display());
        }
        self.launch(index).await;
    }

    /// Cuts every internal link of a node (client traffic still reaches it).
    pub fn isolate(&self, index: usize) {
        let id = self.node(index).node_id();
        self.isolated
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id);
    }

    pub fn heal(&self) {
        self.isolated
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

async fn bind(port: u16) -> TcpListener {
    // A port given back by a stopped node may take a moment to be free again.
    for _ in 0..50 {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => return listener,
            Err(_) if port != 0 => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("cannot bind a loopback port: {e}"),
        }
    }
    panic!("loopback port {port} stays busy")
}
