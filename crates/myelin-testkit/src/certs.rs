//! Throwaway certificates for TLS tests: a CA, and server certificates it signs for `localhost`
//! and `127.0.0.1`, written as PEM files the way an operator would hand them to a node.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A certificate authority that can sign server certificates.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// The files of one server certificate.
#[derive(Debug, Clone)]
pub struct ServerFiles {
    pub cert_chain: PathBuf,
    pub private_key: PathBuf,
}

fn fail<T>(what: &str, e: impl std::fmt::Display) -> T {
    panic!("{what}: {e}")
}

impl TestCa {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new())
            .unwrap_or_else(|e| fail("CA parameters", e));
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap_or_else(|e| fail("CA key", e));
        let cert = params
            .self_signed(&key)
            .unwrap_or_else(|e| fail("CA certificate", e));
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes the CA certificate to `path`.
    pub fn write_pem(&self, path: &Path) -> PathBuf {
        std::fs::write(path, &self.pem).unwrap_or_else(|e| fail("write CA", e));
        path.to_path_buf()
    }

    /// Signs a server certificate for `localhost` and `127.0.0.1` and writes the chain (leaf,
    /// then this CA) and key into `dir` as `<stem>.crt` and `<stem>.key`.
    pub fn server_files(&self, dir: &Path, stem: &str) -> ServerFiles {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap_or_else(|e| fail("server parameters", e));
        params.distinguished_name.push(DnType::CommonName, stem);
        let key = KeyPair::generate().unwrap_or_else(|e| fail("server key", e));
        let cert = params
            .signed_by(&key, &self.issuer)
            .unwrap_or_else(|e| fail("server certificate", e));
        let files = ServerFiles {
            cert_chain: dir.join(format!("{stem}.crt")),
            private_key: dir.join(format!("{stem}.key")),
        };
        let chain = format!("{}{}", cert.pem(), self.pem);
        std::fs::write(&files.cert_chain, chain).unwrap_or_else(|e| fail("write chain", e));
        std::fs::write(&files.private_key, key.serialize_pem())
            .unwrap_or_else(|e| fail("write key", e));
        files
    }
}
