//! Myelin's node configuration as Axon Server users know it: the same property
//! names (`axoniq.axonserver.port`, `server.port`, ...), the same
//! `axonserver.properties` file and the same `AXONIQ_AXONSERVER_*` environment
//! variables. Values are layered, later wins: built-in defaults <
//! `axonserver.properties` < `AXONIQ_AXONSERVER_*` environment < command-line
//! overrides. Every supported property is one entry in a single key table,
//! which drives parsing, defaults, environment names and documentation.
//!
//! Loading is pure: the caller gathers the file text, the environment and the
//! overrides into [`ConfigSources`]; nothing here reads the process
//! environment or the working directory.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// File name Axon Server reads its properties from.
pub const PROPERTIES_FILE_NAME: &str = "axonserver.properties";

/// Environment variables with this prefix are expected to name a known property.
const ENV_PREFIX: &str = "AXONIQ_AXONSERVER_";

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
const GIB: usize = 1024 * MIB;
const MIN_MESSAGE_SIZE: usize = 64 * KIB;
const MAX_MESSAGE_SIZE: usize = 256 * MIB;

// Property names that `validate` refers to as well as the key table.
const GRPC_PORT: &str = "axoniq.axonserver.port";
const INTERNAL_PORT: &str = "axoniq.axonserver.internal-port";
const HTTP_PORT: &str = "server.port";
const MAX_MESSAGE_SIZE_KEY: &str = "axoniq.axonserver.max-message-size";
const ACCESS_CONTROL_ENABLED: &str = "axoniq.axonserver.accesscontrol.enabled";
const ACCESS_CONTROL_TOKEN: &str = "axoniq.axonserver.accesscontrol.token";
const ACCESS_CONTROL_ADMIN_TOKEN: &str = "axoniq.axonserver.accesscontrol.admin-token";
const SSL_ENABLED: &str = "axoniq.axonserver.ssl.enabled";
const SSL_CERT_CHAIN_FILE: &str = "axoniq.axonserver.ssl.cert-chain-file";
const SSL_PRIVATE_KEY_FILE: &str = "axoniq.axonserver.ssl.private-key-file";
const HTTP_SSL_ENABLED: &str = "server.ssl.enabled";
const HTTP_SSL_CERTIFICATE: &str = "server.ssl.certificate";
const HTTP_SSL_PRIVATE_KEY: &str = "server.ssl.certificate-private-key";
/// Spring's keystore keys: named so that setting one gets a clear refusal, not "unknown property".
const HTTP_KEYSTORE_KEYS: [&str; 4] = [
    "server.ssl.key-store",
    "server.ssl.key-store-password",
    "server.ssl.key-store-type",
    "server.ssl.key-alias",
];

/// Settings of one Myelin node. Each field's doc names its property.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// `axoniq.axonserver.name`
    pub name: String,
    /// `axoniq.axonserver.hostname`
    pub hostname: String,
    /// `axoniq.axonserver.port`
    pub grpc_port: u16,
    /// `axoniq.axonserver.internal-port`
    pub internal_port: u16,
    /// `server.port`
    pub http_port: u16,
    /// `axoniq.axonserver.event.storage`
    pub event_storage: PathBuf,
    /// `axoniq.axonserver.snapshot.storage`
    pub snapshot_storage: PathBuf,
    /// `axoniq.axonserver.max-message-size`
    pub max_message_size_bytes: usize,
    /// `axoniq.axonserver.accesscontrol.enabled`
    pub access_control_enabled: bool,
    /// `axoniq.axonserver.accesscontrol.token`
    pub access_control_token: Option<String>,
    /// `axoniq.axonserver.accesscontrol.admin-token`
    pub access_control_admin_token: Option<String>,
    /// `axoniq.axonserver.min-keep-alive-time`
    pub min_keep_alive_time_ms: u64,
    /// `axoniq.axonserver.default-command-timeout`
    pub default_command_timeout_ms: u64,
    /// `axoniq.axonserver.internal-hostname`; empty means `hostname`.
    pub internal_hostname: Option<String>,
    /// `axoniq.axonserver.autocluster.first`: the internal `host[:port]` of the node that creates
    /// the cluster; empty means this node runs alone.
    pub autocluster_first: Option<String>,
    /// `axoniq.axonserver.autocluster.contexts`
    pub autocluster_contexts: Vec<String>,
    /// `axoniq.axonserver.accesscontrol.internal-token`
    pub internal_token: Option<String>,
    /// `axoniq.axonserver.replication.wait-for-leader-timeout`
    pub wait_for_leader_timeout_ms: u64,
    /// `axoniq.axonserver.replication.log-keep-entries`
    pub log_keep_entries: u64,
    /// `axoniq.axonserver.ssl.enabled`: TLS on the gRPC port and between nodes.
    pub ssl_enabled: bool,
    /// `axoniq.axonserver.ssl.cert-chain-file`
    pub ssl_cert_chain_file: Option<PathBuf>,
    /// `axoniq.axonserver.ssl.private-key-file`
    pub ssl_private_key_file: Option<PathBuf>,
    /// `axoniq.axonserver.ssl.internal-cert-chain-file`; `None` means the client-facing chain.
    pub ssl_internal_cert_chain_file: Option<PathBuf>,
    /// `axoniq.axonserver.ssl.internal-private-key-file`; `None` means the client-facing key.
    pub ssl_internal_private_key_file: Option<PathBuf>,
    /// `axoniq.axonserver.ssl.internal-trust-manager-file` (alias `ssl.trusted-certificates`):
    /// the CA certificates a node trusts when it dials another; `None` means the system bundle.
    pub ssl_trusted_certificates: Option<PathBuf>,
    /// `axoniq.axonserver.ssl.reload-interval`: how often certificate files are checked, in ms.
    pub ssl_reload_interval_ms: u64,
    /// `server.ssl.enabled`; `None` follows `ssl.enabled` or `server.ssl.certificate`.
    pub http_ssl_enabled: Option<bool>,
    /// `server.ssl.certificate`; `None` means the gRPC certificate chain.
    pub http_ssl_certificate: Option<PathBuf>,
    /// `server.ssl.certificate-private-key`; `None` means the gRPC private key.
    pub http_ssl_certificate_private_key: Option<PathBuf>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: "myelin".to_string(),
            hostname: "localhost".to_string(),
            grpc_port: 8124,
            internal_port: 8224,
            http_port: 8024,
            event_storage: PathBuf::from("./data"),
            snapshot_storage: PathBuf::from("./data"),
            max_message_size_bytes: 4 * MIB,
            access_control_enabled: false,
            access_control_token: None,
            access_control_admin_token: None,
            min_keep_alive_time_ms: 1000,
            default_command_timeout_ms: 300_000,
            internal_hostname: None,
            autocluster_first: None,
            autocluster_contexts: vec!["_admin".to_string(), "default".to_string()],
            internal_token: None,
            wait_for_leader_timeout_ms: 5000,
            log_keep_entries: 20_000,
            ssl_enabled: false,
            ssl_cert_chain_file: None,
            ssl_private_key_file: None,
            ssl_internal_cert_chain_file: None,
            ssl_internal_private_key_file: None,
            ssl_trusted_certificates: None,
            ssl_reload_interval_ms: 60_000,
            http_ssl_enabled: None,
            http_ssl_certificate: None,
            http_ssl_certificate_private_key: None,
        }
    }
}

impl NodeConfig {
    /// Checks rules that span fields or limit a value's range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ports = [
            (GRPC_PORT, self.grpc_port),
            (INTERNAL_PORT, self.internal_port),
            (HTTP_PORT, self.http_port),
        ];
        for (property, port) in ports {
            if port == 0 {
                return Err(ConfigError::ZeroPort { property });
            }
        }
        for (index, (first, port)) in ports.iter().enumerate() {
            for (second, other_port) in &ports[index + 1..] {
                if port == other_port {
                    return Err(ConfigError::PortClash {
                        first,
                        second,
                        port: *port,
                    });
                }
            }
        }

        let has_token = |token: &Option<String>| token.as_deref().is_some_and(|t| !t.is_empty());
        if self.access_control_enabled
            && !has_token(&self.access_control_token)
            && !has_token(&self.access_control_admin_token)
        {
            return Err(ConfigError::AccessControlWithoutToken);
        }
        // With access control on, an open cluster port would let anyone who reaches it act as a node.
        if self.access_control_enabled
            && self.autocluster_first.is_some()
            && !has_token(&self.internal_token)
        {
            return Err(ConfigError::ClusterWithoutInternalToken);
        }

        if !(MIN_MESSAGE_SIZE..=MAX_MESSAGE_SIZE).contains(&self.max_message_size_bytes) {
            return Err(ConfigError::MessageSizeOutOfRange {
                bytes: self.max_message_size_bytes,
            });
        }
        self.tls_files().map(|_| ())
    }

    /// The TLS files of each port, or why they are incomplete. gRPC and cluster traffic use TLS
    /// when `ssl.enabled`; HTTP when `server.ssl.certificate` is set or (unless
    /// `server.ssl.enabled=false`) when `ssl.enabled`, then with the gRPC pair by default.
    pub fn tls_files(&self) -> Result<crate::tls::TlsFiles, ConfigError> {
        use crate::tls::{PemFiles, TlsFiles};
        let grpc = if self.ssl_enabled {
            let (Some(cert_chain), Some(private_key)) =
                (&self.ssl_cert_chain_file, &self.ssl_private_key_file)
            else {
                return Err(ConfigError::MissingTlsFile {
                    enabled: SSL_ENABLED,
                    needed: "axoniq.axonserver.ssl.cert-chain-file and axoniq.axonserver.ssl.private-key-file",
                });
            };
            Some(PemFiles {
                cert_chain: cert_chain.clone(),
                private_key: private_key.clone(),
            })
        } else {
            None
        };
        let internal = grpc.as_ref().map(|pem| PemFiles {
            cert_chain: self
                .ssl_internal_cert_chain_file
                .clone()
                .unwrap_or_else(|| pem.cert_chain.clone()),
            private_key: self
                .ssl_internal_private_key_file
                .clone()
                .unwrap_or_else(|| pem.private_key.clone()),
        });
        let http_on = self
            .http_ssl_enabled
            .unwrap_or(self.ssl_enabled || self.http_ssl_certificate.is_some());
        let http = if http_on {
            let chain = self
                .http_ssl_certificate
                .clone()
                .or_else(|| grpc.as_ref().map(|p| p.cert_chain.clone()));
            let key = self
                .http_ssl_certificate_private_key
                .clone()
                .or_else(|| grpc.as_ref().map(|p| p.private_key.clone()));
            let (Some(cert_chain), Some(private_key)) = (chain, key) else {
                return Err(ConfigError::MissingTlsFile {
                    enabled: HTTP_SSL_ENABLED,
                    needed: "server.ssl.certificate and server.ssl.certificate-private-key",
                });
            };
            Some(PemFiles {
                cert_chain,
                private_key,
            })
        } else {
            None
        };
        Ok(TlsFiles {
            grpc,
            http,
            internal,
            trust: self.ssl_trusted_certificates.clone(),
        })
    }
}

/// Parses a value and stores it in its field, or returns what was expected.
type Setter = fn(&mut NodeConfig, &str) -> Result<(), &'static str>;

/// One supported property: its name, what it means, and how to read and
/// render its field. The default text is the rendering of `NodeConfig::default()`.
pub struct ConfigKey {
    /// Property name as written in `axonserver.properties`.
    pub property: &'static str,
    /// One-line description for docs and the example file.
    pub doc: &'static str,
    set: Setter,
    render: fn(&NodeConfig) -> String,
}

impl ConfigKey {
    /// The default value as it would be written in `axonserver.properties`.
    pub fn default_text(&self) -> String {
        (self.render)(&NodeConfig::default())
    }

    /// The Spring Boot environment variable name, e.g. `SERVER_PORT`.
    pub fn env_name(&self) -> String {
        env_name(self.property)
    }

    /// Environment names accepted for this key: the Spring name first, then
    /// the spelling with `-` turned into `_`, if that differs.
    pub fn env_names(&self) -> Vec<String> {
        let spring_name = env_name(self.property);
        let underscore_name = env_name(&self.property.replace('-', "_"));
        if underscore_name == spring_name {
            vec![spring_name]
        } else {
            vec![spring_name, underscore_name]
        }
    }

    fn apply(
        &self,
        config: &mut NodeConfig,
        value: &str,
        origin: ValueOrigin,
    ) -> Result<(), ConfigError> {
        if let Err(expected) = (self.set)(config, value.trim()) {
            return Err(ConfigError::InvalidValue {
                property: self.property,
                value: value.to_string(),
                origin,
                expected,
            });
        }
        // The value itself is not logged: it may be a token.
        tracing::debug!(property = self.property, origin = %origin, "configuration value set");
        Ok(())
    }
}

static CONFIG_KEYS: &[ConfigKey] = &[
    ConfigKey {
        property: "axoniq.axonserver.name",
        doc: "Unique name of this node.",
        set: |config, value| parse_text(value).map(|name| config.name = name),
        render: |config| config.name.clone(),
    },
    ConfigKey {
        property: "axoniq.axonserver.hostname",
        doc: "Host name that clients are told to connect to.",
        set: |config, value| parse_text(value).map(|host| config.hostname = host),
        render: |config| config.hostname.clone(),
    },
    ConfigKey {
        property: GRPC_PORT,
        doc: "gRPC port for Axon Framework clients.",
        set: |config, value| parse_port(value).map(|port| config.grpc_port = port),
        render: |config| config.grpc_port.to_string(),
    },
    ConfigKey {
        property: INTERNAL_PORT,
        doc: "gRPC port for traffic between cluster nodes.",
        set: |config, value| parse_port(value).map(|port| config.internal_port = port),
        render: |config| config.internal_port.to_string(),
    },
    ConfigKey {
        property: HTTP_PORT,
        doc: "HTTP port for the REST API and the web UI.",
        set: |config, value| parse_port(value).map(|port| config.http_port = port),
        render: |config| config.http_port.to_string(),
    },
    ConfigKey {
        property: "axoniq.axonserver.event.storage",
        doc: "Directory that holds the event files.",
        set: |config, value| parse_path(value).map(|path| config.event_storage = path),
        render: |config| config.event_storage.display().to_string(),
    },
    ConfigKey {
        property: "axoniq.axonserver.snapshot.storage",
        doc: "Directory that holds the snapshot files.",
        set: |config, value| parse_path(value).map(|path| config.snapshot_storage = path),
        render: |config| config.snapshot_storage.display().to_string(),
    },
    ConfigKey {
        property: MAX_MESSAGE_SIZE_KEY,
        doc: "Largest gRPC message, in bytes or with a KB/MB/GB suffix (KB = 1024), 64KB to 256MB.",
        set: |config, value| {
            parse_data_size(value).map(|bytes| config.max_message_size_bytes = bytes)
        },
        render: |config| format_data_size(config.max_message_size_bytes),
    },
    ConfigKey {
        property: "axoniq.axonserver.min-keep-alive-time",
        doc: "Shortest keep-alive interval a client may use, in milliseconds.",
        set: |config, value| parse_millis(value).map(|ms| config.min_keep_alive_time_ms = ms),
        render: |config| config.min_keep_alive_time_ms.to_string(),
    },
    ConfigKey {
        property: "axoniq.axonserver.default-command-timeout",
        doc: "How long a command may wait for its result, in milliseconds.",
        set: |config, value| parse_millis(value).map(|ms| config.default_command_timeout_ms = ms),
        render: |config| config.default_command_timeout_ms.to_string(),
    },
    ConfigKey {
        property: ACCESS_CONTROL_ENABLED,
        doc: "Require a token on every request (true or false).",
        set: |config, value| parse_bool(value).map(|on| config.access_control_enabled = on),
        render: |config| config.access_control_enabled.to_string(),
    },
    ConfigKey {
        property: ACCESS_CONTROL_TOKEN,
        doc: "Token that applications present when access control is on; empty means none.",
        set: |config, value| {
            config.access_control_token = parse_optional_text(value);
            Ok(())
        },
        render: |config| config.access_control_token.clone().unwrap_or_default(),
    },
    ConfigKey {
        property: ACCESS_CONTROL_ADMIN_TOKEN,
        doc: "Token for administrative operations; empty means none.",
        set: |config, value| {
            config.access_control_admin_token = parse_optional_text(value);
            Ok(())
        },
        render: |config| {
            config
                .access_control_admin_token
                .clone()
                .unwrap_or_default()
        },
    },
    ConfigKey {
        property: "axoniq.axonserver.internal-hostname",
        doc: "Host name that other nodes use to reach this one on the internal port; empty means hostname.",
        set: |config, value| {
            config.internal_hostname = parse_optional_text(value);
            Ok(())
        },
        render: |config| config.internal_hostname.clone().unwrap_or_default(),
    },
    ConfigKey {
        property: "axoniq.axonserver.autocluster.first",
        doc: "Internal host[:port] of the node that creates the cluster; the others join it. Empty: run alone.",
        set: |config, value| {
            config.autocluster_first = parse_optional_text(value);
            Ok(())
        },
        render: |config| config.autocluster_first.clone().unwrap_or_default(),
    },
    ConfigKey {
        property: "axoniq.axonserver.autocluster.contexts",
        doc: "Contexts of the cluster (comma-separated, the same on every node); all of them share one replication group.",
        set: |config, value| {
            config.autocluster_contexts = value
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            Ok(())
        },
        render: |config| config.autocluster_contexts.join(","),
    },
    ConfigKey {
        property: "axoniq.axonserver.accesscontrol.internal-token",
        doc: "Token nodes present to each other on the internal port; the same on every node.",
        set: |config, value| {
            config.internal_token = parse_optional_text(value);
            Ok(())
        },
        render: |config| config.internal_token.clone().unwrap_or_default(),
    },
    ConfigKey {
        property: "axoniq.axonserver.replication.wait-for-leader-timeout",
        doc: "How long a write waits for a leader before it fails with AXONIQ-2100, in milliseconds.",
        set: |config, value| parse_millis(value).map(|ms| config.wait_for_leader_timeout_ms = ms),
        render: |config| config.wait_for_leader_timeout_ms.to_string(),
    },
    ConfigKey {
        property: "axoniq.axonserver.replication.log-keep-entries",
        doc: "Raft log entries kept after they are applied, so a lagging node catches up without a snapshot (Myelin).",
        set: |config, value| {
            value
                .parse()
                .map(|n| config.log_keep_entries = n)
                .map_err(|_| "a number of entries")
        },
        render: |config| config.log_keep_entries.to_string(),
    },
    ConfigKey {
        property: SSL_ENABLED,
        doc: "TLS on the gRPC port (8124) and between nodes (8224); HTTP follows unless server.ssl.enabled=false.",
        set: |config, value| parse_bool(value).map(|on| config.ssl_enabled = on),
        render: |config| config.ssl_enabled.to_string(),
    },
    ConfigKey {
        property: SSL_CERT_CHAIN_FILE,
        doc: "PEM file with this node's certificate chain (leaf first) for the gRPC port.",
        set: |config, value| {
            config.ssl_cert_chain_file = parse_optional_path(value);
            Ok(())
        },
        render: |config| render_optional_path(&config.ssl_cert_chain_file),
    },
    ConfigKey {
        property: SSL_PRIVATE_KEY_FILE,
        doc: "PEM file with the private key of that certificate (PKCS#8, PKCS#1 or SEC1).",
        set: |config, value| {
            config.ssl_private_key_file = parse_optional_path(value);
            Ok(())
        },
        render: |config| render_optional_path(&config.ssl_private_key_file),
    },
    ConfigKey {
        property: "axoniq.axonserver.ssl.internal-cert-chain-file",
        doc: "PEM certificate chain for the internal port; empty means ssl.cert-chain-file.",
        set: |config, value| {
            config.ssl_internal_cert_chain_file = parse_optional_path(value);
            Ok(())
        },
        render: |config| render_optional_path(&config.ssl_internal_cert_chain_file),
    },
    ConfigKey {
        property: "axoniq.axonserver.ssl.internal-private-key-file",
        doc: "PEM private key for the internal port; empty means ssl.private-key-file.",
        set: |config, value| {
            config.ssl_internal_private_key_file = parse_optional_path(value);
            Ok(())
        },
        render: |config| render_optional_path(&config.ssl_internal_private_key_file),
    },
    ConfigKey {
        property: "axoniq.axonserver.ssl.internal-trust-manager-file",
        doc: "PEM CA certificates a node trusts when it connects to another; empty means the system CA bundle.",
        set: |config, value| {
            config.ssl_trusted_certificates = parse_optional_path(value);
            Ok(())
        },
        render: |config| render_optional_path(&config.ssl_trusted_certificates),
    },
    ConfigKey {
        property: "axoniq.axonserver.ssl.trusted-certificates",
        doc: "Same as ssl.internal-trust-manager-file (Myelin).",
        set: |config, value| {
            config.ssl_trusted_certificates = parse_optional_path(value);
            Ok(())
        },
        render: |config| render_optional_path(&config.ssl_trusted_certificates),
    },
    ConfigKey {
        property: "axoniq.axonserver.ssl.reload-interval",
        doc: "How often certificate, key and trust files are checked for changes, in milliseconds (Myelin).",
        set: |config, value| {
            parse_millis(value)
                .and_then(|ms| if ms == 0 { Err("a positive number of milliseconds") } else { Ok(ms) })
                .map(|ms| config.ssl_reload_interval_ms = ms)
        },
        render: |config| config.ssl_reload_interval_ms.to_string(),
    },
    ConfigKey {
        property: HTTP_SSL_ENABLED,
        doc: "HTTPS on the HTTP port; empty follows ssl.enabled (or server.ssl.certificate when set).",
        set: |config, value| {
            if value.is_empty() {
                config.http_ssl_enabled = None;
                Ok(())
            } else {
                parse_bool(value).map(|on| config.http_ssl_enabled = Some(on))
            }
        },
        render: |config| config.http_ssl_enabled.map(|on| on.to_string()).unwrap_or_default(),
    },
    ConfigKey {
        property: HTTP_SSL_CERTIFICATE,
        doc: "PEM certificate chain for HTTPS; empty means ssl.cert-chain-file.",
        set: |config, value| {
            config.http_ssl_certificate = parse_optional_path(value);
            Ok(())
        },
        render: |config| render_optional_path(&config.http_ssl_certificate),
    },
    ConfigKey {
        property: HTTP_SSL_PRIVATE_KEY,
        doc: "PEM private key for HTTPS; empty means ssl.private-key-file.",
        set: |config, value| {
            config.http_ssl_certificate_private_key = parse_optional_path(value);
            Ok(())
        },
        render: |config| render_optional_path(&config.http_ssl_certificate_private_key),
    },
];

/// Every supported property, in the order of the example file.
pub fn documented_keys() -> impl Iterator<Item = &'static ConfigKey> {
    CONFIG_KEYS.iter()
}

fn find_key(property: &str) -> Option<&'static ConfigKey> {
    CONFIG_KEYS.iter().find(|key| key.property == property)
}

/// Spring Boot's environment name for a property: uppercase, `.` becomes `_`
/// and `-` is dropped, so `axoniq.axonserver.accesscontrol.admin-token` is
/// `AXONIQ_AXONSERVER_ACCESSCONTROL_ADMINTOKEN`.
pub fn env_name(property: &str) -> String {
    property
        .to_ascii_uppercase()
        .replace('.', "_")
        .replace('-', "")
}

/// Looks for `axonserver.properties` in `cwd`, then in `cwd/config`, as Axon
/// Server does; the first one found wins.
pub fn find_properties_file(cwd: &Path) -> Option<PathBuf> {
    [
        cwd.join(PROPERTIES_FILE_NAME),
        cwd.join("config").join(PROPERTIES_FILE_NAME),
    ]
    .into_iter()
    .find(|candidate| candidate.is_file())
}

/// Everything `load` reads, gathered by the caller.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// Path and contents of `axonserver.properties`, if one was found.
    pub properties_text: Option<(PathBuf, String)>,
    /// The process environment (only known names and `AXONIQ_AXONSERVER_*` are looked at).
    pub env: HashMap<String, String>,
    /// Property name and value pairs from command-line flags, applied in order.
    pub overrides: Vec<(String, String)>,
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueOrigin {
    File { path: PathBuf, line: usize },
    Env { var: String },
    CommandLine,
}

impl fmt::Display for ValueOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueOrigin::File { path, line } => write!(f, "{} line {line}", path.display()),
            ValueOrigin::Env { var } => write!(f, "environment variable {var}"),
            ValueOrigin::CommandLine => write!(f, "command-line option"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{property}: invalid value {value:?} in {origin}: expected {expected}")]
    InvalidValue {
        property: &'static str,
        value: String,
        origin: ValueOrigin,
        expected: &'static str,
    },
    #[error("unknown property {property:?} given on the command line")]
    UnknownOverride { property: String },
    #[error("{property} must not be 0")]
    ZeroPort { property: &'static str },
    #[error("{first} and {second} are both {port}: each port must be different")]
    PortClash {
        first: &'static str,
        second: &'static str,
        port: u16,
    },
    #[error(
        "{ACCESS_CONTROL_ENABLED} is true but neither {ACCESS_CONTROL_TOKEN} nor {ACCESS_CONTROL_ADMIN_TOKEN} is set"
    )]
    AccessControlWithoutToken,
    #[error(
        "{ACCESS_CONTROL_ENABLED} is true and this node is in a cluster, but axoniq.axonserver.accesscontrol.internal-token is not set: the cluster port would accept anyone"
    )]
    ClusterWithoutInternalToken,
    #[error("{MAX_MESSAGE_SIZE_KEY} is {bytes} bytes: it must be between 64KB and 256MB")]
    MessageSizeOutOfRange { bytes: usize },
    #[error("{enabled} is on but {needed} are not both set (PEM files)")]
    MissingTlsFile {
        enabled: &'static str,
        needed: &'static str,
    },
    #[error("{property} is a keystore setting; Myelin reads PEM files: set {HTTP_SSL_CERTIFICATE} and {HTTP_SSL_PRIVATE_KEY} instead")]
    KeystoreNotSupported { property: String },
}

/// Something odd but harmless found while loading; the caller decides how to report it.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigWarning {
    UnknownProperty {
        property: String,
        path: PathBuf,
        line: usize,
    },
    UnknownEnvVar {
        var: String,
    },
    ConflictingEnvVars {
        used: String,
        ignored: String,
    },
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigWarning::UnknownProperty {
                property,
                path,
                line,
            } => write!(
                f,
                "{} line {line}: unknown property {property:?} ignored",
                path.display()
            ),
            ConfigWarning::UnknownEnvVar { var } => write!(
                f,
                "environment variable {var} matches no known property and is ignored"
            ),
            ConfigWarning::ConflictingEnvVars { used, ignored } => write!(
                f,
                "environment variables {used} and {ignored} disagree; using {used}"
            ),
        }
    }
}

/// Builds the configuration from defaults < properties file < environment <
/// overrides, then validates it. Unknown names give warnings; bad values and
/// failed validation give an error.
pub fn load(sources: ConfigSources) -> Result<(NodeConfig, Vec<ConfigWarning>), ConfigError> {
    let mut config = NodeConfig::default();
    let mut warnings = Vec::new();

    if let Some((path, text)) = &sources.properties_text {
        apply_properties_file(&mut config, path, text, &mut warnings)?;
    }
    apply_env(&mut config, &sources.env, &mut warnings)?;
    for (property, _) in &sources.overrides {
        refuse_keystore(property)?;
    }
    for (property, value) in &sources.overrides {
        let key = find_key(property).ok_or_else(|| ConfigError::UnknownOverride {
            property: property.clone(),
        })?;
        key.apply(&mut config, value, ValueOrigin::CommandLine)?;
    }

    config.validate()?;
    Ok((config, warnings))
}

/// Spring's keystore settings are refused by name: a PKCS12 keystore silently ignored would
/// leave HTTP in plaintext.
fn refuse_keystore(property: &str) -> Result<(), ConfigError> {
    if HTTP_KEYSTORE_KEYS.contains(&property) {
        return Err(ConfigError::KeystoreNotSupported {
            property: property.to_string(),
        });
    }
    Ok(())
}

fn apply_properties_file(
    config: &mut NodeConfig,
    path: &Path,
    text: &str,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<(), ConfigError> {
    for entry in parse_properties(text) {
        refuse_keystore(&entry.key)?;
        match find_key(&entry.key) {
            Some(key) => {
                let origin = ValueOrigin::File {
                    path: path.to_path_buf(),
                    line: entry.line,
                };
                key.apply(config, &entry.value, origin)?;
            }
            // Axon Server's file may carry Spring settings that Myelin has no use for.
            None if entry.key.starts_with("logging.") || entry.key.starts_with("spring.") => {}
            None => warnings.push(ConfigWarning::UnknownProperty {
                property: entry.key,
                path: path.to_path_buf(),
                line: entry.line,
            }),
        }
    }
    Ok(())
}

fn apply_env(
    config: &mut NodeConfig,
    env: &HashMap<String, String>,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<(), ConfigError> {
    for property in HTTP_KEYSTORE_KEYS {
        if env.contains_key(&env_name(property)) {
            refuse_keystore(property)?;
        }
    }
    let mut known_vars = HashSet::new();
    for key in CONFIG_KEYS {
        let names = key.env_names();
        let present: Vec<(&String, &String)> = names
            .iter()
            .filter_map(|name| env.get(name).map(|value| (name, value)))
            .collect();
        if let Some((var, value)) = present.first() {
            let origin = ValueOrigin::Env {
                var: var.to_string(),
            };
            key.apply(config, value, origin)?;
        }
        let spellings_disagree = present.len() == 2 && present[0].1 != present[1].1;
        if spellings_disagree {
            warnings.push(ConfigWarning::ConflictingEnvVars {
                used: present[0].0.clone(),
                ignored: present[1].0.clone(),
            });
        }
        known_vars.extend(names);
    }

    let mut unknown: Vec<&String> = env
        .keys()
        .filter(|var| var.starts_with(ENV_PREFIX) && !known_vars.contains(*var))
        .collect();
    unknown.sort();
    warnings.extend(
        unknown
            .into_iter()
            .map(|var| ConfigWarning::UnknownEnvVar { var: var.clone() }),
    );
    Ok(())
}

/// One `key=value` entry of a properties file, with the line it starts on.
#[derive(Debug, PartialEq)]
struct PropertyEntry {
    key: String,
    value: String,
    line: usize,
}

/// Reads Java `.properties` text: `key=value`, `key: value` or `key value`;
/// `#` and `!` comments; backslash line continuation; escapes such as `\t`,
/// `\n`, `\\`, `\=`, `\:`. Unlike Java, trailing whitespace of a value is dropped.
fn parse_properties(text: &str) -> Vec<PropertyEntry> {
    let mut entries = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, raw_line)) = lines.next() {
        let line = raw_line.trim_start_matches(is_properties_whitespace);
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let mut logical_line = line.to_string();
        while ends_with_continuation(&logical_line) {
            logical_line.pop();
            match lines.next() {
                Some((_, next)) => {
                    logical_line.push_str(next.trim_start_matches(is_properties_whitespace))
                }
                None => break,
            }
        }
        let (key, value) = split_key_value(&logical_line);
        entries.push(PropertyEntry {
            key,
            value,
            line: index + 1,
        });
    }
    entries
}

fn is_properties_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0c')
}

/// A line continues when it ends in an odd number of backslashes.
fn ends_with_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

fn split_key_value(line: &str) -> (String, String) {
    let mut chars = line.chars();
    let mut key = String::new();
    let mut separator_seen = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => key.extend(chars.next().map(unescape)),
            '=' | ':' => {
                separator_seen = true;
                break;
            }
            c if is_properties_whitespace(c) => break,
            c => key.push(c),
        }
    }
    let rest = chars.as_str().trim_start_matches(is_properties_whitespace);
    // `key = value`: the separator may follow whitespace after the key.
    let rest = match rest.strip_prefix(['=', ':']) {
        Some(after) if !separator_seen => after.trim_start_matches(is_properties_whitespace),
        _ => rest,
    };
    (key, decode_escapes(rest).trim_end().to_string())
}

fn decode_escapes(text: &str) -> String {
    let mut decoded = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            decoded.extend(chars.next().map(unescape));
        } else {
            decoded.push(c);
        }
    }
    decoded
}

/// The character that `\c` stands for; any other escaped character is itself.
fn unescape(c: char) -> char {
    match c {
        't' => '\t',
        'n' => '\n',
        'r' => '\r',
        'f' => '\x0c',
        other => other,
    }
}

fn parse_text(value: &str) -> Result<String, &'static str> {
    if value.is_empty() {
        Err("a non-empty name")
    } else {
        Ok(value.to_string())
    }
}

fn parse_optional_text(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_string())
}

fn parse_optional_path(value: &str) -> Option<PathBuf> {
    (!value.is_empty()).then(|| PathBuf::from(value))
}

fn render_optional_path(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn parse_path(value: &str) -> Result<PathBuf, &'static str> {
    if value.is_empty() {
        Err("a directory path")
    } else {
        Ok(PathBuf::from(value))
    }
}

fn parse_port(value: &str) -> Result<u16, &'static str> {
    match value.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err("a port number 1-65535"),
    }
}

fn parse_millis(value: &str) -> Result<u64, &'static str> {
    value.parse().map_err(|_| "a whole number of milliseconds")
}

/// Accepts what Spring accepts for booleans, in any letter case.
fn parse_bool(value: &str) -> Result<bool, &'static str> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Ok(true),
        "false" | "no" | "off" => Ok(false),
        _ => Err("true or false"),
    }
}

/// A Spring data size: a byte count with an optional B, KB, MB or GB suffix
/// (any case, binary multiples).
fn parse_data_size(value: &str) -> Result<usize, &'static str> {
    const EXPECTED: &str = "a size in bytes, optionally with a KB, MB or GB suffix (e.g. 4MB)";
    let digits_end = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(digits_end);
    let number: usize = number.parse().map_err(|_| EXPECTED)?;
    let multiplier = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" => KIB,
        "MB" => MIB,
        "GB" => GIB,
        _ => return Err(EXPECTED),
    };
    number.checked_mul(multiplier).ok_or(EXPECTED)
}

/// Renders a byte count with the largest suffix that divides it exactly.
fn format_data_size(bytes: usize) -> String {
    for (suffix, size) in [("GB", GIB), ("MB", MIB), ("KB", KIB)] {
        if bytes != 0 && bytes.is_multiple_of(size) {
            return format!("{}{suffix}", bytes / size);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE_FILE: &str = include_str!("../../../config/axonserver.properties");

    fn from_file(text: &str) -> Result<(NodeConfig, Vec<ConfigWarning>), ConfigError> {
        load(ConfigSources {
            properties_text: Some((PathBuf::from("./axonserver.properties"), text.to_string())),
            ..ConfigSources::default()
        })
    }

    fn from_env(vars: &[(&str, &str)]) -> Result<(NodeConfig, Vec<ConfigWarning>), ConfigError> {
        load(ConfigSources {
            env: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..ConfigSources::default()
        })
    }

    #[test]
    fn example_file_parses_to_defaults_without_warnings() {
        let (config, warnings) = from_file(EXAMPLE_FILE).unwrap();
        assert_eq!(config, NodeConfig::default());
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn example_file_lists_every_key_with_its_default_and_env_name() {
        let lines: Vec<&str> = EXAMPLE_FILE.lines().collect();
        for key in documented_keys() {
            let setting = format!("{}={}", key.property, key.default_text());
            let position = lines
                .iter()
                .position(|line| *line == setting)
                .unwrap_or_else(|| panic!("example file lacks the line {setting:?}"));
            let comments: Vec<&str> = lines[..position]
                .iter()
                .rev()
                .take_while(|line| line.starts_with('#'))
                .copied()
                .collect();
            for env in key.env_names() {
                assert!(
                    comments.iter().any(|line| line.contains(&env)),
                    "comment above {} should name {env}",
                    key.property
                );
            }
        }
    }

    #[test]
    fn every_default_text_parses_back_to_the_default() {
        for key in documented_keys() {
            let mut config = NodeConfig::default();
            (key.set)(&mut config, &key.default_text()).unwrap();
            assert_eq!(config, NodeConfig::default(), "{}", key.property);
        }
    }

    #[test]
    fn key_table_has_no_duplicates_and_every_setter_reaches_a_field() {
        let mut seen = HashSet::new();
        for key in documented_keys() {
            assert!(seen.insert(key.property), "duplicate {}", key.property);
        }
        assert_eq!(seen.len(), 30);
        // A setter wired to the wrong field would leave this key's rendering unchanged.
        let changed = [
            ("axoniq.axonserver.name", "other"),
            ("axoniq.axonserver.hostname", "example.org"),
            (GRPC_PORT, "9124"),
            (INTERNAL_PORT, "9224"),
            (HTTP_PORT, "9024"),
            ("axoniq.axonserver.event.storage", "/events"),
            ("axoniq.axonserver.snapshot.storage", "/snapshots"),
            (MAX_MESSAGE_SIZE_KEY, "8MB"),
            (ACCESS_CONTROL_ENABLED, "true"),
            (ACCESS_CONTROL_TOKEN, "secret"),
            (ACCESS_CONTROL_ADMIN_TOKEN, "admin-secret"),
            ("axoniq.axonserver.min-keep-alive-time", "500"),
            ("axoniq.axonserver.default-command-timeout", "60000"),
            (
                "axoniq.axonserver.internal-hostname",
                "myelin-0.myelin-headless",
            ),
            (
                "axoniq.axonserver.autocluster.first",
                "myelin-0.myelin-headless:8224",
            ),
            ("axoniq.axonserver.autocluster.contexts", "default"),
            (
                "axoniq.axonserver.accesscontrol.internal-token",
                "peer-secret",
            ),
            (
                "axoniq.axonserver.replication.wait-for-leader-timeout",
                "2500",
            ),
            ("axoniq.axonserver.replication.log-keep-entries", "100"),
            (SSL_ENABLED, "true"),
            (SSL_CERT_CHAIN_FILE, "/tls/tls.crt"),
            (SSL_PRIVATE_KEY_FILE, "/tls/tls.key"),
            (
                "axoniq.axonserver.ssl.internal-cert-chain-file",
                "/tls/internal.crt",
            ),
            (
                "axoniq.axonserver.ssl.internal-private-key-file",
                "/tls/internal.key",
            ),
            (
                "axoniq.axonserver.ssl.internal-trust-manager-file",
                "/tls/ca.crt",
            ),
            ("axoniq.axonserver.ssl.trusted-certificates", "/tls/ca.crt"),
            ("axoniq.axonserver.ssl.reload-interval", "1000"),
            (HTTP_SSL_ENABLED, "false"),
            (HTTP_SSL_CERTIFICATE, "/tls/http.crt"),
            (HTTP_SSL_PRIVATE_KEY, "/tls/http.key"),
        ];
        for (property, value) in changed {
            let key = find_key(property).unwrap();
            let mut config = NodeConfig::default();
            (key.set)(&mut config, value).unwrap();
            assert_eq!((key.render)(&config), value, "{property}");
        }
    }

    #[test]
    fn autocluster_comes_from_the_statefulset_environment() {
        let (config, warnings) = from_env(&[
            (
                "AXONIQ_AXONSERVER_AUTOCLUSTER_FIRST",
                "myelin-0.myelin-headless",
            ),
            ("AXONIQ_AXONSERVER_AUTOCLUSTER_CONTEXTS", "_admin, default"),
            ("AXONIQ_AXONSERVER_ACCESSCONTROL_INTERNALTOKEN", "t0k3n"),
        ])
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            config.autocluster_first.as_deref(),
            Some("myelin-0.myelin-headless")
        );
        assert_eq!(config.autocluster_contexts, ["_admin", "default"]);
        assert_eq!(config.internal_token.as_deref(), Some("t0k3n"));
    }

    #[test]
    fn later_sources_win_for_the_same_key() {
        let file = Some((
            PathBuf::from("a.properties"),
            "axoniq.axonserver.port=1001\naxoniq.axonserver.internal-port=2001\nserver.port=3001\n"
                .to_string(),
        ));
        let env: HashMap<String, String> = [
            ("AXONIQ_AXONSERVER_INTERNALPORT", "2002"),
            ("SERVER_PORT", "3002"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let overrides = vec![("server.port".to_string(), "3003".to_string())];

        let (config, warnings) = load(ConfigSources {
            properties_text: file,
            env,
            overrides,
        })
        .unwrap();
        assert_eq!(config.grpc_port, 1001, "file beats default");
        assert_eq!(config.internal_port, 2002, "env beats file");
        assert_eq!(config.http_port, 3003, "override beats env");
        assert!(warnings.is_empty());
    }

    #[test]
    fn env_accepts_both_spellings() {
        let (config, _) = from_env(&[
            ("AXONIQ_AXONSERVER_ACCESSCONTROL_ADMINTOKEN", "a"),
            ("AXONIQ_AXONSERVER_ACCESSCONTROL_ENABLED", "true"),
        ])
        .unwrap();
        assert_eq!(config.access_control_admin_token.as_deref(), Some("a"));

        let (config, warnings) = from_env(&[
            ("AXONIQ_AXONSERVER_ACCESSCONTROL_ADMIN_TOKEN", "b"),
            ("AXONIQ_AXONSERVER_MAX_MESSAGE_SIZE", "8MB"),
            ("AXONIQ_AXONSERVER_EVENT_STORAGE", "/var/events"),
        ])
        .unwrap();
        assert_eq!(config.access_control_admin_token.as_deref(), Some("b"));
        assert_eq!(config.max_message_size_bytes, 8 * MIB);
        assert_eq!(config.event_storage, PathBuf::from("/var/events"));
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn env_spellings_that_disagree_warn_and_the_spring_name_wins() {
        let (config, warnings) = from_env(&[
            ("AXONIQ_AXONSERVER_MINKEEPALIVETIME", "10"),
            ("AXONIQ_AXONSERVER_MIN_KEEP_ALIVE_TIME", "20"),
        ])
        .unwrap();
        assert_eq!(config.min_keep_alive_time_ms, 10);
        assert_eq!(
            warnings,
            vec![ConfigWarning::ConflictingEnvVars {
                used: "AXONIQ_AXONSERVER_MINKEEPALIVETIME".to_string(),
                ignored: "AXONIQ_AXONSERVER_MIN_KEEP_ALIVE_TIME".to_string(),
            }]
        );
    }

    #[test]
    fn env_names_follow_spring_relaxed_binding() {
        assert_eq!(env_name("server.port"), "SERVER_PORT");
        assert_eq!(
            env_name("axoniq.axonserver.accesscontrol.admin-token"),
            "AXONIQ_AXONSERVER_ACCESSCONTROL_ADMINTOKEN"
        );
        let admin_token = find_key(ACCESS_CONTROL_ADMIN_TOKEN).unwrap();
        assert_eq!(
            admin_token.env_names(),
            vec![
                "AXONIQ_AXONSERVER_ACCESSCONTROL_ADMINTOKEN",
                "AXONIQ_AXONSERVER_ACCESSCONTROL_ADMIN_TOKEN"
            ]
        );
        assert_eq!(
            find_key(HTTP_PORT).unwrap().env_names(),
            vec!["SERVER_PORT"]
        );
    }

    #[test]
    fn unknown_axonserver_env_vars_warn_and_others_are_ignored() {
        let (config, warnings) = from_env(&[
            ("AXONIQ_AXONSERVER_PORTT", "1"),
            ("AXONIQ_AXONSERVER_DEVMODE_ENABLED", "true"),
            ("PATH", "/usr/bin"),
        ])
        .unwrap();
        assert_eq!(config, NodeConfig::default());
        assert_eq!(
            warnings,
            vec![
                ConfigWarning::UnknownEnvVar {
                    var: "AXONIQ_AXONSERVER_DEVMODE_ENABLED".to_string()
                },
                ConfigWarning::UnknownEnvVar {
                    var: "AXONIQ_AXONSERVER_PORTT".to_string()
                },
            ]
        );
    }

    #[test]
    fn data_sizes_accept_plain_bytes_and_binary_suffixes() {
        assert_eq!(parse_data_size("4194304"), Ok(4 * MIB));
        assert_eq!(parse_data_size("4MB"), Ok(4 * MIB));
        assert_eq!(parse_data_size("512KB"), Ok(512 * KIB));
        assert_eq!(parse_data_size("8MB"), Ok(8 * MIB));
        assert_eq!(parse_data_size("1GB"), Ok(GIB));
        assert_eq!(parse_data_size("100B"), Ok(100));
        assert_eq!(parse_data_size("16mb"), Ok(16 * MIB));
        assert_eq!(parse_data_size("2 MB"), Ok(2 * MIB));
        for bad in ["", "MB", "4XB", "-1", "4.5MB", "99999999999999999999GB"] {
            assert!(parse_data_size(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(format_data_size(4 * MIB), "4MB");
        assert_eq!(format_data_size(1000), "1000");

        let (config, _) = from_file("axoniq.axonserver.max-message-size = 512KB").unwrap();
        assert_eq!(config.max_message_size_bytes, 512 * KIB);
    }

    #[test]
    fn properties_syntax_separators_comments_and_blank_lines() {
        let text = "# comment\n! also a comment\n\n   \n\
                    a=1\n  b : 2\nc 3\nd\t=\t4\ne    5  \nf\ng=\n  # indented comment\n";
        let entries: Vec<(String, String)> = parse_properties(text)
            .into_iter()
            .map(|entry| (entry.key, entry.value))
            .collect();
        let expected = [
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d", "4"),
            ("e", "5"),
            ("f", ""),
            ("g", ""),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(entries, expected);
    }

    #[test]
    fn properties_continuation_lines_and_escapes() {
        let text = "name = first\\\n       second\\\n   third\n\
                    escaped\\=key\\:x = tab\\there\\nnew\\\\line\\=\\:\n\
                    even = ends in backslash\\\\\n\
                    # comment ending in backslash \\\n\
                    next = 1\n";
        let entries = parse_properties(text);
        assert_eq!(
            entries,
            vec![
                PropertyEntry {
                    key: "name".to_string(),
                    value: "firstsecondthird".to_string(),
                    line: 1
                },
                PropertyEntry {
                    key: "escaped=key:x".to_string(),
                    value: "tab\there\nnew\\line=:".to_string(),
                    line: 4
                },
                PropertyEntry {
                    key: "even".to_string(),
                    value: "ends in backslash\\".to_string(),
                    line: 5
                },
                PropertyEntry {
                    key: "next".to_string(),
                    value: "1".to_string(),
                    line: 7
                },
            ]
        );
    }

    #[test]
    fn continued_value_reaches_its_field() {
        let (config, _) =
            from_file("axoniq.axonserver.event.storage = /var/lib/\\\n    myelin/events\n")
                .unwrap();
        assert_eq!(
            config.event_storage,
            PathBuf::from("/var/lib/myelin/events")
        );
    }

    #[test]
    fn unknown_file_key_warns_with_key_and_line_but_spring_and_logging_are_silent() {
        let text =
            "logging.level.root=INFO\nspring.profiles.active=x\n\naxoniq.axonserver.prot=1\n";
        let (config, warnings) = from_file(text).unwrap();
        assert_eq!(config, NodeConfig::default());
        assert_eq!(
            warnings,
            vec![ConfigWarning::UnknownProperty {
                property: "axoniq.axonserver.prot".to_string(),
                path: PathBuf::from("./axonserver.properties"),
                line: 4,
            }]
        );
        let message = warnings[0].to_string();
        assert!(message.contains("axoniq.axonserver.prot") && message.contains("line 4"));
    }

    #[test]
    fn bad_file_value_names_key_value_file_line_and_expectation() {
        let text = "# ports\naxoniq.axonserver.name=n\naxoniq.axonserver.port=abc\n";
        let error = from_file(text).unwrap_err();
        assert_eq!(
            error.to_string(),
            "axoniq.axonserver.port: invalid value \"abc\" in ./axonserver.properties line 3: \
             expected a port number 1-65535"
        );
    }

    #[test]
    fn bad_env_and_override_values_name_their_origin() {
        let error = from_env(&[("AXONIQ_AXONSERVER_ACCESSCONTROL_ENABLED", "maybe")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "axoniq.axonserver.accesscontrol.enabled: invalid value \"maybe\" in environment \
             variable AXONIQ_AXONSERVER_ACCESSCONTROL_ENABLED: expected true or false"
        );

        let error = load(ConfigSources {
            overrides: vec![(
                "axoniq.axonserver.default-command-timeout".to_string(),
                "5s".to_string(),
            )],
            ..ConfigSources::default()
        })
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "axoniq.axonserver.default-command-timeout: invalid value \"5s\" in command-line \
             option: expected a whole number of milliseconds"
        );
    }

    #[test]
    fn unknown_override_is_an_error() {
        let error = load(ConfigSources {
            overrides: vec![("axoniq.axonserver.nope".to_string(), "1".to_string())],
            ..ConfigSources::default()
        })
        .unwrap_err();
        assert!(
            matches!(error, ConfigError::UnknownOverride { property } if property == "axoniq.axonserver.nope")
        );
    }

    #[test]
    fn empty_token_means_none() {
        let (config, _) = from_file(
            "axoniq.axonserver.accesscontrol.token=\naxoniq.axonserver.accesscontrol.admin-token = s3cret\n\
             axoniq.axonserver.accesscontrol.enabled=TRUE\n",
        )
        .unwrap();
        assert_eq!(config.access_control_token, None);
        assert_eq!(config.access_control_admin_token.as_deref(), Some("s3cret"));
        assert!(config.access_control_enabled);
    }

    #[test]
    fn validate_checks_ports_tokens_and_message_size() {
        assert!(NodeConfig::default().validate().is_ok());

        let config = NodeConfig {
            internal_port: 0,
            ..NodeConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::ZeroPort {
                property: INTERNAL_PORT
            })
        ));

        let config = NodeConfig {
            http_port: 8124,
            ..NodeConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::PortClash {
                first: GRPC_PORT,
                second: HTTP_PORT,
                port: 8124
            })
        ));

        let mut config = NodeConfig {
            access_control_enabled: true,
            ..NodeConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::AccessControlWithoutToken)
        ));
        config.access_control_token = Some(String::new());
        assert!(matches!(
            config.validate(),
            Err(ConfigError::AccessControlWithoutToken)
        ));
        config.access_control_token = Some("t".to_string());
        assert!(config.validate().is_ok());
        config.access_control_token = None;
        config.access_control_admin_token = Some("a".to_string());
        assert!(config.validate().is_ok());
        config.autocluster_first = Some("node-0:8224".to_string());
        assert!(matches!(
            config.validate(),
            Err(ConfigError::ClusterWithoutInternalToken)
        ));
        config.internal_token = Some("i".to_string());
        assert!(config.validate().is_ok());

        for (bytes, valid) in [
            (MIN_MESSAGE_SIZE, true),
            (MAX_MESSAGE_SIZE, true),
            (MIN_MESSAGE_SIZE - 1, false),
            (MAX_MESSAGE_SIZE + 1, false),
        ] {
            let config = NodeConfig {
                max_message_size_bytes: bytes,
                ..NodeConfig::default()
            };
            assert_eq!(config.validate().is_ok(), valid, "{bytes} bytes");
        }
    }

    #[test]
    fn tls_needs_both_files_and_http_follows_grpc_unless_told_otherwise() {
        let error = from_file("axoniq.axonserver.ssl.enabled=true\n").unwrap_err();
        assert!(
            matches!(error, ConfigError::MissingTlsFile { .. }),
            "{error}"
        );
        let (config, _) = from_file(
            "axoniq.axonserver.ssl.enabled=true\n\
             axoniq.axonserver.ssl.cert-chain-file=/tls/tls.crt\n\
             axoniq.axonserver.ssl.private-key-file=/tls/tls.key\n\
             axoniq.axonserver.ssl.internal-private-key-file=/tls/internal.key\n",
        )
        .unwrap();
        let files = config.tls_files().unwrap();
        let grpc = files.grpc.clone().unwrap();
        assert_eq!(files.http.as_ref(), Some(&grpc), "HTTPS with the gRPC pair");
        let internal = files.internal.unwrap();
        assert_eq!(internal.cert_chain, grpc.cert_chain);
        assert_eq!(internal.private_key, PathBuf::from("/tls/internal.key"));

        let mut plain_http = config.clone();
        plain_http.http_ssl_enabled = Some(false);
        assert_eq!(plain_http.tls_files().unwrap().http, None);

        let (only_http, _) = from_file(
            "server.ssl.certificate=/tls/http.crt\nserver.ssl.certificate-private-key=/tls/http.key\n",
        )
        .unwrap();
        let files = only_http.tls_files().unwrap();
        assert!(files.grpc.is_none() && files.internal.is_none());
        assert_eq!(
            files.http.unwrap().cert_chain,
            PathBuf::from("/tls/http.crt")
        );
    }

    #[test]
    fn keystores_are_refused_with_directions() {
        let error = from_file("server.ssl.key-store=/tls/keystore.p12\n").unwrap_err();
        assert!(matches!(error, ConfigError::KeystoreNotSupported { .. }));
        assert!(
            error.to_string().contains("server.ssl.certificate"),
            "{error}"
        );
    }

    #[test]
    fn load_validates_the_result() {
        let error = from_file("axoniq.axonserver.accesscontrol.enabled=true\n").unwrap_err();
        assert!(matches!(error, ConfigError::AccessControlWithoutToken));
        let error = from_file("axoniq.axonserver.max-message-size=1GB\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "axoniq.axonserver.max-message-size is 1073741824 bytes: it must be between 64KB and 256MB"
        );
    }

    #[test]
    fn properties_file_is_found_in_cwd_before_config_dir() {
        let cwd = std::env::temp_dir().join(format!("myelin-config-test-{}", std::process::id()));
        let config_dir = cwd.join("config");
        std::fs::create_dir_all(&config_dir).unwrap();

        assert_eq!(find_properties_file(&cwd), None);
        std::fs::write(config_dir.join(PROPERTIES_FILE_NAME), "").unwrap();
        assert_eq!(
            find_properties_file(&cwd),
            Some(config_dir.join(PROPERTIES_FILE_NAME))
        );
        std::fs::write(cwd.join(PROPERTIES_FILE_NAME), "").unwrap();
        assert_eq!(
            find_properties_file(&cwd),
            Some(cwd.join(PROPERTIES_FILE_NAME))
        );

        std::fs::remove_dir_all(&cwd).unwrap();
    }
}
