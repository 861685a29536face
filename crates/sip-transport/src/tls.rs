//! TLS configuration for the `sips` transports (TLS and WSS): a server
//! certificate for the listeners, a root store for connecting out. rustls
//! with the `ring` provider: pure Rust and assembly, no C toolchain.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::TransportError;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_error(what: &'static str) -> impl FnOnce(rustls::pki_types::pem::Error) -> TransportError {
    move |source| TransportError::Pem { what, source }
}

/// A certificate chain and key to serve TLS and WSS with. Cheap to clone.
#[derive(Clone)]
pub struct TlsServer {
    config: Arc<ServerConfig>,
}

impl fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServer").finish_non_exhaustive()
    }
}

impl TlsServer {
    /// Reads a PEM certificate chain (leaf first) and a PEM private key
    /// (PKCS#8, PKCS#1 or SEC1) from files.
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<TlsServer, TransportError> {
        let chain = CertificateDer::pem_file_iter(cert_chain)
            .map_err(pem_error("certificate"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_error("certificate"))?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(pem_error("private key"))?;
        TlsServer::from_der(chain, key)
    }

    /// Like [`TlsServer::from_pem_files`] with the PEM text in memory.
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<TlsServer, TransportError> {
        let chain = CertificateDer::pem_slice_iter(cert_chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_error("certificate"))?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(pem_error("private key"))?;
        TlsServer::from_der(chain, key)
    }

    /// A DER certificate chain (leaf first) and its private key.
    pub fn from_der(
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<TlsServer, TransportError> {
        if cert_chain.is_empty() {
            return Err(TransportError::Pem {
                what: "certificate",
                source: rustls::pki_types::pem::Error::NoItemsFound,
            });
        }
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(cert_chain, key)?;
        Ok(TlsServer::from_config(Arc::new(config)))
    }

    /// A rustls configuration built by the caller (client certificates,
    /// several certificates chosen by SNI, session resumption settings).
    #[must_use]
    pub fn from_config(config: Arc<ServerConfig>) -> TlsServer {
        TlsServer { config }
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config))
    }
}

/// How to verify servers when connecting out over TLS or WSS. Cheap to
/// clone.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient").finish_non_exhaustive()
    }
}

impl TlsClient {
    /// Trusts the given root certificates.
    pub fn with_roots(roots: RootCertStore) -> Result<TlsClient, TransportError> {
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsClient::from_config(Arc::new(config)))
    }

    /// Trusts the CA certificates in a PEM text.
    pub fn from_ca_pem(pem: &[u8]) -> Result<TlsClient, TransportError> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_error("CA certificate"))?;
        TlsClient::from_ca_der(certs)
    }

    /// Trusts the given DER CA certificates.
    pub fn from_ca_der(
        certs: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Result<TlsClient, TransportError> {
        let mut roots = RootCertStore::empty();
        for cert in certs {
            roots.add(cert)?;
        }
        if roots.is_empty() {
            return Err(TransportError::Pem {
                what: "CA certificate",
                source: rustls::pki_types::pem::Error::NoItemsFound,
            });
        }
        TlsClient::with_roots(roots)
    }

    /// A rustls configuration built by the caller (client certificates,
    /// platform roots, ALPN).
    #[must_use]
    pub fn from_config(config: Arc<ClientConfig>) -> TlsClient {
        TlsClient { config }
    }

    pub(crate) fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(Arc::clone(&self.config))
    }
}

/// The name a TLS peer's certificate must carry: the given DNS name or IP
/// address, or the peer's IP address when none is given.
pub(crate) fn server_name(
    name: Option<&str>,
    addr: std::net::SocketAddr,
) -> Result<ServerName<'static>, TransportError> {
    match name {
        Some(name) => {
            ServerName::try_from(name.to_owned()).map_err(|_| TransportError::InvalidServerName {
                name: name.to_owned(),
            })
        }
        None => Ok(ServerName::IpAddress(addr.ip().into())),
    }
}
