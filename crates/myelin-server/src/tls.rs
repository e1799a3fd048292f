//! TLS on the three ports with rustls (ring provider, no OpenSSL): PEM certificate chains and keys
//! loaded from the files Axon Server's `ssl.*` and `server.ssl.*` keys name, reloaded without a
//! restart when the files change (`CertificateFiles` behind a `ResolvesServerCert`), one accept
//! loop per port that does handshakes off the accept path (`accept_loop`), and the client side
//! nodes use to dial each other (`PeerConnector`), which trusts the configured CA file.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long a client may take to finish its TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Accepted connections waiting to be picked up by the server.
const ACCEPT_BACKLOG: usize = 128;
/// The CA bundle used to verify peers when no trust file is configured.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Why TLS material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {reason}")]
    Read {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("the private key in {key} does not belong to the certificate in {chain}: {reason}")]
    KeyMismatch {
        chain: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider every config here is built with (ring; no process-wide default needed).
/// rustls marks ring's provider deprecated because it lacks post-quantum key exchange; the
/// provider that has it (aws-lc-rs) needs cmake and a C build we keep out of the project.
#[allow(deprecated)]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain file and its private key file (both PEM).
#[derive(Debug, Clone, PartialEq)]
pub struct PemFiles {
    pub cert_chain: PathBuf,
    pub private_key: PathBuf,
}

/// Reads every certificate in a PEM file.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_error = |reason: String| TlsError::Read {
        what: "certificate file",
        path: path.to_path_buf(),
        reason,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| read_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_error(e.to_string()))?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certificates)
}

fn load_certified_key(files: &PemFiles) -> Result<CertifiedKey, TlsError> {
    let chain = read_certificates(&files.cert_chain)?;
    let key = PrivateKeyDer::from_pem_file(&files.private_key).map_err(|e| TlsError::Read {
        what: "private key file",
        path: files.private_key.clone(),
        reason: e.to_string(),
    })?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::KeyMismatch {
        chain: files.cert_chain.clone(),
        key: files.private_key.clone(),
        reason: e.to_string(),
    })
}

/// What tells that a file changed: its write time, its inode (a file replaced by a rename, as
/// rotations and Kubernetes Secret updates do, is a new one even within one timestamp tick) and
/// its size; `None` if it cannot be read.
type Stamp = Option<(SystemTime, u64, u64)>;

fn modified(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.ino(), meta.len()))
}

/// A server certificate that follows its files: `reload_if_changed` swaps in the new pair once
/// both parse and match, so a rotation caught halfway (new certificate, old key) keeps serving the
/// old pair until the key arrives.
#[derive(Debug)]
pub struct CertificateFiles {
    files: PemFiles,
    current: RwLock<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    stamps: [Stamp; 2],
}

impl CertificateFiles {
    pub fn load(files: PemFiles) -> Result<CertificateFiles, TlsError> {
        let stamps = [modified(&files.cert_chain), modified(&files.private_key)];
        let key = Arc::new(load_certified_key(&files)?);
        Ok(CertificateFiles {
            files,
            current: RwLock::new(Loaded { key, stamps }),
        })
    }

    /// Reloads when either file changed since the last load; `Ok(true)` when a new pair is in use.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let stamps = [
            modified(&self.files.cert_chain),
            modified(&self.files.private_key),
        ];
        let unchanged = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .stamps
            == stamps;
        if unchanged {
            return Ok(false);
        }
        let key = Arc::new(load_certified_key(&self.files)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Loaded { key, stamps };
        Ok(true)
    }

    pub fn files(&self) -> &PemFiles {
        &self.files
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .key
            .clone()
    }
}

impl ResolvesServerCert for CertificateFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A rustls server config that serves `certificate` and offers `alpn` protocols.
pub fn server_config(
    certificate: Arc<CertificateFiles>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// ALPN for gRPC: HTTP/2 only (gRPC Java refuses a TLS server that does not offer `h2`).
pub const ALPN_GRPC: &[&[u8]] = &[b"h2"];
/// ALPN for the HTTP port: HTTP/1.1 (browsers, curl, probes).
pub const ALPN_HTTP: &[&[u8]] = &[b"http/1.1"];

/// A client config that trusts the CA certificates in `trust` (or the system bundle) and offers
/// the `alpn` protocols.
pub fn client_config(trust: Option<&Path>, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    let bundle = trust.unwrap_or(Path::new(SYSTEM_CA_BUNDLE));
    for certificate in read_certificates(bundle)? {
        // A bundle may hold certificates rustls cannot use as anchors; the rest still count.
        let _ = roots.add(certificate);
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A client config for talking to this node itself (`myelin healthcheck`): it accepts exactly the
/// leaf certificate of the node's own chain file, whatever name it carries, so a probe on
/// 127.0.0.1 works with certificates issued for the node's public names.
pub fn own_certificate_client_config(chain: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let leaf = read_certificates(chain)?
        .into_iter()
        .next()
        .ok_or_else(|| TlsError::NoCertificate {
            path: chain.to_path_buf(),
        })?;
    let provider = provider();
    let verifier = Arc::new(OwnCertificate {
        leaf,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = ALPN_HTTP.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Accepts one known certificate (checked byte for byte), with valid handshake signatures.
#[derive(Debug)]
struct OwnCertificate {
    leaf: CertificateDer<'static>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for OwnCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The trust side for dialling other nodes: the CA file, reloaded when it changes.
#[derive(Debug)]
pub struct TrustFile {
    path: Option<PathBuf>,
    current: RwLock<(Arc<ClientConfig>, Stamp)>,
}

impl TrustFile {
    pub fn load(path: Option<PathBuf>) -> Result<TrustFile, TlsError> {
        let stamp = path.as_deref().and_then(modified);
        let config = client_config(path.as_deref(), ALPN_GRPC)?;
        Ok(TrustFile {
            path,
            current: RwLock::new((config, stamp)),
        })
    }

    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let stamp = modified(path);
        if self.current.read().unwrap_or_else(|p| p.into_inner()).1 == stamp {
            return Ok(false);
        }
        let config = client_config(Some(path), ALPN_GRPC)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (config, stamp);
        Ok(true)
    }

    fn config(&self) -> Arc<ClientConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }
}

/// Dials `host:port` of a URI over TLS, verifying the server against the trust file. Used as a
/// tonic connector (`Endpoint::connect_with_connector_lazy`) with an `http://` endpoint URI.
#[derive(Clone)]
pub struct PeerConnector {
    trust: Arc<TrustFile>,
}

impl PeerConnector {
    pub fn new(trust: Arc<TrustFile>) -> PeerConnector {
        PeerConnector { trust }
    }
}

type TlsClientStream = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<http::Uri> for PeerConnector {
    type Response = TlsClientStream;
    type Error = io::Error;
    type Future = BoxFuture<io::Result<TlsClientStream>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let config = self.trust.config();
        Box::pin(async move {
            let invalid =
                |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_string());
            let host = uri
                .host()
                .ok_or_else(|| invalid("address without a host"))?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri
                .port_u16()
                .ok_or_else(|| invalid("address without a port"))?;
            let name = ServerName::try_from(host.clone())
                .map_err(|_| invalid("host is not a valid TLS server name"))?;
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(hyper_util::rt::TokioIo::new(stream))
        })
    }
}

/// One accepted connection: plain TCP, or TLS on top of it.
pub enum Connection {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Connection {
    fn tcp(&self) -> &TcpStream {
        match self {
            Connection::Plain(tcp) => tcp,
            Connection::Tls(tls) => tls.get_ref().0,
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Connection::Plain(s) => s.is_write_vectored(),
            Connection::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_flush(cx),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl tonic::transport::server::Connected for Connection {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.tcp().connect_info()
    }
}

/// Accepts connections on `listener` until `shutdown`, doing the TLS handshake (when `tls` is
/// given) in a task per connection so a slow or plaintext client never holds up the others.
/// Connections that fail the handshake are logged at debug level and dropped.
pub fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    port_name: &'static str,
    shutdown: CancellationToken,
) -> mpsc::Receiver<(Connection, SocketAddr)> {
    let (sender, receiver) = mpsc::channel(ACCEPT_BACKLOG);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.cancelled() => return,
                _ = sender.closed() => return,
            };
            let (tcp, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off a little, keep serving.
                    tracing::warn!(port = port_name, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let Some(acceptor) = acceptor.clone() else {
                if sender.send((Connection::Plain(tcp), remote)).await.is_err() {
                    return;
                }
                continue;
            };
            let sender = sender.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = sender
                            .send((Connection::Tls(Box::new(stream)), remote))
                            .await;
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(port = port_name, %remote, "TLS handshake failed: {e}")
                    }
                    Err(_) => {
                        tracing::debug!(port = port_name, %remote, "TLS handshake timed out")
                    }
                }
            });
        }
    });
    receiver
}

/// The accepted connections of one port as an axum listener.
pub struct AcceptedListener {
    pub connections: mpsc::Receiver<(Connection, SocketAddr)>,
    pub local_addr: SocketAddr,
}

impl axum::serve::Listener for AcceptedListener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        match self.connections.recv().await {
            Some(accepted) => accepted,
            // The accept loop ended (shutdown): wait for the server's own shutdown signal.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}

/// The remote address of an HTTP connection (axum's `ConnectInfo` for `AcceptedListener`).
#[derive(Debug, Clone, Copy)]
pub struct RemoteAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, AcceptedListener>>
    for RemoteAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, AcceptedListener>) -> RemoteAddr {
        RemoteAddr(*stream.remote_addr())
    }
}

/// The accepted connections of one port as a tonic incoming stream.
pub fn incoming(
    connections: mpsc::Receiver<(Connection, SocketAddr)>,
) -> impl tokio_stream::Stream<Item = io::Result<Connection>> {
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::ReceiverStream::new(connections).map(|(connection, _)| Ok(connection))
}

/// The TLS side of a node, built from its configuration; `None` marks a port in plaintext.
pub struct NodeTls {
    /// Certificates in use, one per distinct pair of files, watched for changes.
    certificates: Vec<Arc<CertificateFiles>>,
    pub grpc: Option<Arc<ServerConfig>>,
    pub http: Option<Arc<ServerConfig>>,
    pub internal: Option<Arc<ServerConfig>>,
    /// How this node verifies the nodes it dials; set when cluster traffic uses TLS.
    pub peers: Option<Arc<TrustFile>>,
}

/// Which files the node's TLS uses, as configured; `None` keeps a port in plaintext.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsFiles {
    pub grpc: Option<PemFiles>,
    pub http: Option<PemFiles>,
    pub internal: Option<PemFiles>,
    /// CA certificates for verifying other nodes; the system bundle when `None`.
    pub trust: Option<PathBuf>,
}

impl NodeTls {
    pub fn load(files: &TlsFiles) -> Result<NodeTls, TlsError> {
        let mut certificates: Vec<Arc<CertificateFiles>> = Vec::new();
        let mut server = |pem: &Option<PemFiles>,
                          alpn: &[&[u8]]|
         -> Result<Option<Arc<ServerConfig>>, TlsError> {
            let Some(pem) = pem else {
                return Ok(None);
            };
            let known = certificates.iter().find(|c| c.files() == pem).cloned();
            let certificate = match known {
                Some(known) => known,
                None => {
                    let loaded = Arc::new(CertificateFiles::load(pem.clone())?);
                    certificates.push(loaded.clone());
                    loaded
                }
            };
            Ok(Some(server_config(certificate, alpn)?))
        };
        let grpc = server(&files.grpc, ALPN_GRPC)?;
        let http = server(&files.http, ALPN_HTTP)?;
        let internal = server(&files.internal, ALPN_GRPC)?;
        let peers = match &internal {
            Some(_) => Some(Arc::new(TrustFile::load(files.trust.clone())?)),
            None => None,
        };
        Ok(NodeTls {
            certificates,
            grpc,
            http,
            internal,
            peers,
        })
    }

    /// Checks the files every `every` until `shutdown`, and swaps in what changed.
    pub async fn watch(self: Arc<Self>, every: Duration, shutdown: CancellationToken) {
        if self.certificates.is_empty() && self.peers.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            for certificate in &self.certificates {
                let files = certificate.files();
                match certificate.reload_if_changed() {
                    Ok(true) => tracing::info!(
                        chain = %files.cert_chain.display(),
                        key = %files.private_key.display(),
                        "TLS certificate reloaded"
                    ),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(
                        "TLS certificate not reloaded, the previous one stays in use: {e}"
                    ),
                }
            }
            let Some(peers) = &self.peers else {
                continue;
            };
            match peers.reload_if_changed() {
                Ok(true) => tracing::info!("trusted certificates for cluster traffic reloaded"),
                Ok(false) => {}
                Err(e) => tracing::warn!(
                    "trusted certificates not reloaded, the previous ones stay in use: {e}"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a fresh self-signed pair for `localhost` to `chain` and `key`.
    fn write_pair(chain: &Path, key: &Path) -> Vec<u8> {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        std::fs::write(chain, certified.cert.pem()).expect("write chain");
        std::fs::write(key, certified.signing_key.serialize_pem()).expect("write key");
        certified.cert.der().to_vec()
    }

    fn served(files: &CertificateFiles) -> Vec<u8> {
        files.current().cert[0].as_ref().to_vec()
    }

    #[test]
    fn a_rotated_pair_is_swapped_in_and_a_mismatched_one_is_not() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (chain, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let first = write_pair(&chain, &key);
        let files = CertificateFiles::load(PemFiles {
            cert_chain: chain.clone(),
            private_key: key.clone(),
        })
        .expect("loads");
        assert_eq!(served(&files), first);
        assert!(
            !files.reload_if_changed().expect("unchanged"),
            "nothing changed"
        );

        // A new pair written by a rotation: both files move on together.
        let staged = dir.path().join("staged");
        std::fs::create_dir(&staged).expect("staging directory");
        let second = write_pair(&staged.join("tls.crt"), &staged.join("tls.key"));
        std::fs::rename(staged.join("tls.key"), &key).expect("replace key");
        std::fs::rename(staged.join("tls.crt"), &chain).expect("replace chain");
        assert!(files.reload_if_changed().expect("reloads"));
        assert_eq!(served(&files), second);

        // Only the key replaced (a rotation caught halfway): refused, the working pair stays.
        write_pair(&staged.join("tls.crt"), &staged.join("tls.key"));
        std::fs::rename(staged.join("tls.key"), &key).expect("replace key only");
        assert!(matches!(
            files.reload_if_changed(),
            Err(TlsError::KeyMismatch { .. })
        ));
        assert_eq!(served(&files), second);
    }
}
