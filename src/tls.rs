//! TLS on the API listeners (rustls with ring): the server certificate from PEM files,
//! reloaded when the files change or on SIGHUP, and optional client certificates
//! verified against a CA file. A verified client certificate's names reach the auth
//! layer ([`crate::auth::PeerCertificate`]) through the connection (`listener.rs`).
//!
//! A reload that fails (unreadable file, a key that does not match the certificate)
//! keeps the certificate in use and logs an error: a half-copied pair never takes the
//! listeners down. Connections already open keep the certificate they were made with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::auth::PeerCertificate;

/// How often the certificate files are checked for a change.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Whether the listeners ask for client certificates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificates are asked for.
    #[default]
    Off,
    /// A client may present a certificate; if it does, it must verify against the CA.
    /// Bearer tokens work as without TLS.
    Optional,
    /// Every connection must present a certificate that verifies against the CA.
    Required,
}

/// The TLS settings of both API listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file of the server certificate chain (leaf first).
    pub cert_file: PathBuf,
    /// PEM file of the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM file of the CA certificates client certificates must chain to.
    pub client_ca_file: Option<PathBuf>,
    /// Whether client certificates are asked for.
    pub client_auth: ClientAuth,
}

/// TLS of the API listeners: one certificate (reloadable), and the server
/// configurations of the REST and gRPC listeners, which differ only in ALPN.
pub struct Tls {
    resolver: Arc<CertResolver>,
    rest: Arc<ServerConfig>,
    grpc: Arc<ServerConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert_file", &self.resolver.cert_file)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the certificate, its key and the client CA; any error stops the start.
    pub fn new(settings: &TlsSettings) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let resolver = Arc::new(CertResolver::load(
            settings.cert_file.clone(),
            settings.key_file.clone(),
            provider.clone(),
        )?);
        let verifier = match (settings.client_auth, &settings.client_ca_file) {
            (ClientAuth::Off, _) => None,
            (_, None) => bail!("tls.client_auth optional or required needs tls.client_ca_file"),
            (mode, Some(path)) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs(path)? {
                    roots.add(cert).with_context(|| {
                        format!("{}: not a usable CA certificate", path.display())
                    })?;
                }
                let builder =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                let builder = if mode == ClientAuth::Optional {
                    builder.allow_unauthenticated()
                } else {
                    builder
                };
                Some(
                    builder
                        .build()
                        .context("cannot build the client verifier")?,
                )
            }
        };
        let config = |alpn: &[&[u8]]| -> anyhow::Result<Arc<ServerConfig>> {
            let builder = ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .context("TLS protocol versions")?;
            let builder = match &verifier {
                Some(v) => builder.with_client_cert_verifier(v.clone()),
                None => builder.with_no_client_auth(),
            };
            let mut config = builder.with_cert_resolver(resolver.clone());
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok(Arc::new(config))
        };
        Ok(Self {
            rest: config(&[b"h2", b"http/1.1"])?,
            grpc: config(&[b"h2"])?,
            resolver,
        })
    }

    /// The REST listener's acceptor (HTTP/2 or HTTP/1.1 by ALPN).
    pub fn rest_acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.rest.clone())
    }

    /// The gRPC listener's acceptor (HTTP/2 only).
    pub fn grpc_acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.grpc.clone())
    }

    /// The certificate in use.
    pub fn resolver(&self) -> Arc<CertResolver> {
        self.resolver.clone()
    }
}

/// The server certificate in use, swapped whole by a reload.
pub struct CertResolver {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// Counts successful reloads, for whoever waits for one.
    reloads: watch::Sender<u64>,
}

impl std::fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertResolver")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("never poisoned").clone())
    }
}

impl CertResolver {
    fn load(
        cert_file: PathBuf,
        key_file: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> anyhow::Result<Self> {
        let key = certified_key(&cert_file, &key_file, &provider)?;
        Ok(Self {
            cert_file,
            key_file,
            provider,
            current: RwLock::new(Arc::new(key)),
            reloads: watch::Sender::new(0),
        })
    }

    /// Reads the files again; on success new handshakes use the new certificate, on
    /// failure the old one stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let key = certified_key(&self.cert_file, &self.key_file, &self.provider)?;
        *self.current.write().expect("never poisoned") = Arc::new(key);
        self.reloads.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Successful reloads so far; changes with each.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.reloads.subscribe()
    }

    /// When the files were last changed, as far as their metadata tells.
    fn stamp(&self) -> Option<(SystemTime, SystemTime, u64, u64)> {
        let cert = std::fs::metadata(&self.cert_file).ok()?;
        let key = std::fs::metadata(&self.key_file).ok()?;
        Some((
            cert.modified().ok()?,
            key.modified().ok()?,
            cert.len(),
            key.len(),
        ))
    }

    fn reload_logged(&self, why: &'static str) {
        match self.reload() {
            Ok(()) => tracing::info!(
                reason = why,
                cert_file = %self.cert_file.display(),
                "TLS certificate reloaded"
            ),
            Err(e) => tracing::error!(
                reason = why,
                error.message = %format!("{e:#}"),
                "cannot reload the TLS certificate; the one in use stays"
            ),
        }
    }

    /// Reloads on SIGHUP (`hangup`, from [`hangup_signal`]) and when the files'
    /// modification time or size changes, until `stop`.
    pub async fn run_reloads(
        self: Arc<Self>,
        mut hangup: Option<tokio::signal::unix::Signal>,
        stop: CancellationToken,
    ) {
        let mut seen = self.stamp();
        let mut check = tokio::time::interval(RELOAD_CHECK_INTERVAL);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let hangup_received = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = hangup_received => {
                    seen = self.stamp();
                    self.reload_logged("SIGHUP");
                }
                _ = check.tick() => {
                    let now = self.stamp();
                    if now.is_some() && now != seen {
                        seen = now;
                        self.reload_logged("files changed");
                    }
                }
            }
        }
    }
}

/// A SIGHUP listener, made when the application is built so that a SIGHUP sent once
/// it is up reloads rather than ends the process.
pub fn hangup_signal() -> Option<tokio::signal::unix::Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::warn!(error.message = %e, "cannot listen for SIGHUP; TLS reloads follow file changes only");
            None
        }
    }
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: invalid PEM", path.display()))?;
    if certs.is_empty() {
        bail!("{}: no certificate", path.display());
    }
    Ok(certs)
}

fn certified_key(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> anyhow::Result<CertifiedKey> {
    let certs = read_certs(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .with_context(|| format!("cannot read a private key from {}", key_file.display()))?;
    CertifiedKey::from_der(certs, key, provider).with_context(|| {
        format!(
            "{} and {} are not a matching certificate and key",
            cert_file.display(),
            key_file.display()
        )
    })
}

/// The names of a verified client certificate (the first of the peer's chain).
pub fn peer_certificate(cert: &CertificateDer<'_>) -> Option<PeerCertificate> {
    let parsed = webpki::EndEntityCert::try_from(cert).ok()?;
    let sans = parsed
        .valid_dns_names()
        .chain(parsed.valid_uri_names())
        .map(str::to_owned)
        .collect();
    Some(PeerCertificate {
        common_name: common_name(parsed.subject()),
        sans,
    })
}

/// The common name (OID 2.5.4.3) of a DER `Name`'s contents (the RDN sequence without
/// its outer tag): the first one, if it is a string.
fn common_name(mut name: &[u8]) -> Option<String> {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    while !name.is_empty() {
        let (tag, set, rest) = der_tlv(name)?;
        name = rest;
        if tag != 0x31 {
            return None;
        }
        let mut set = set;
        while !set.is_empty() {
            let (tag, attribute, rest) = der_tlv(set)?;
            set = rest;
            if tag != 0x30 {
                return None;
            }
            let (oid_tag, oid, value) = der_tlv(attribute)?;
            if oid_tag != 0x06 || oid != CN {
                continue;
            }
            let (value_tag, value, _) = der_tlv(value)?;
            // UTF8String, PrintableString, IA5String, T61String (read as Latin-1
            // would be wrong for non-ASCII; such names are refused).
            return match value_tag {
                0x0c | 0x13 | 0x16 | 0x14 => String::from_utf8(value.to_vec()).ok(),
                _ => None,
            };
        }
    }
    None
}

/// One DER tag-length-value: (tag, value, what follows). Single-byte tags only, which
/// is all a `Name` holds.
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    let (value, rest) = rest.split_at(len);
    Some((tag, value, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SET { SEQUENCE { OID, value } }` for one attribute.
    fn rdn(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
        let mut attr = vec![0x06, oid.len() as u8];
        attr.extend_from_slice(oid);
        attr.extend_from_slice(&[tag, value.len() as u8]);
        attr.extend_from_slice(value);
        let mut seq = vec![0x30, attr.len() as u8];
        seq.extend(attr);
        let mut set = vec![0x31, seq.len() as u8];
        set.extend(seq);
        set
    }

    #[test]
    fn the_common_name_is_read_from_a_subject_of_several_attributes() {
        let mut name = rdn(&[0x55, 0x04, 0x06], 0x13, b"NL");
        name.extend(rdn(&[0x55, 0x04, 0x0a], 0x0c, b"Example"));
        name.extend(rdn(&[0x55, 0x04, 0x03], 0x0c, b"watcher.example"));

        assert_eq!(common_name(&name).as_deref(), Some("watcher.example"));
        assert_eq!(common_name(&rdn(&[0x55, 0x04, 0x0a], 0x0c, b"x")), None);
        assert_eq!(common_name(&name[..name.len() - 3]), None, "truncated");
        assert_eq!(common_name(&[]), None);
    }

    fn write_pair(dir: &Path, cn: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&key).unwrap().pem();
        std::fs::write(dir.join("cert.pem"), &cert).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        cert
    }

    fn served(resolver: &CertResolver) -> CertificateDer<'static> {
        resolver.current.read().unwrap().cert[0].clone()
    }

    #[test]
    fn a_failed_reload_keeps_the_certificate_in_use_and_a_good_one_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_pair(dir.path(), "first");
        let resolver = CertResolver::load(
            dir.path().join("cert.pem"),
            dir.path().join("key.pem"),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .unwrap();
        let reloads = resolver.subscribe();

        // A new certificate with the old key: half of a copy.
        let old_key = std::fs::read(dir.path().join("key.pem")).unwrap();
        let second = write_pair(dir.path(), "second");
        let new_key = std::fs::read(dir.path().join("key.pem")).unwrap();
        std::fs::write(dir.path().join("key.pem"), old_key).unwrap();
        let mismatched = resolver.reload();
        std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
        let garbage = resolver.reload();
        let kept = served(&resolver);
        std::fs::write(dir.path().join("key.pem"), new_key).unwrap();
        let good = resolver.reload();

        let pem = |text: &str| CertificateDer::from_pem_slice(text.as_bytes()).unwrap();
        assert!(mismatched.is_err() && garbage.is_err());
        assert_eq!(kept, pem(&first));
        assert!(good.is_ok());
        assert_eq!(served(&resolver), pem(&second));
        assert_eq!(*reloads.borrow(), 1, "only the good reload counts");
    }

    #[test]
    fn a_long_form_length_is_read() {
        let value = vec![b'a'; 200];
        let mut der = vec![0x04, 0x81, 200];
        der.extend_from_slice(&value);
        der.push(0xff);
        let (tag, v, rest) = der_tlv(&der).unwrap();
        assert_eq!((tag, v.len(), rest), (0x04, 200, &[0xff][..]));
        assert_eq!(der_tlv(&[0x04, 0x81]), None);
    }
}
