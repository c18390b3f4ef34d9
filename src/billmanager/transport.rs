//! The HTTP layer under the client: building the one `reqwest::Client` (rustls with the
//! ring provider), posting a form with a capped response, and classifying failures.
//!
//! Classification, on which money safety depends (see [`UpstreamError::is_definite`]):
//! - connect failure (refused, DNS, TLS handshake, connect timeout): the request never
//!   left, so nothing happened upstream → `Unavailable`;
//! - timeout after connecting, connection reset or closed mid-request, an error while
//!   reading the body: the upstream may have carried the call out → `Indeterminate`;
//! - HTTP 5xx: a gateway or the application failed at an unknown point → `Indeterminate`;
//! - other non-2xx (3xx, 4xx: wrong path, rejected by a proxy): the request was not
//!   handed to BILLmanager's function → `Unavailable`, naming the status;
//! - a body over the size cap → `Indeterminate`.
//!
//! No error names the URL (reqwest's errors carry it; `without_url` strips it), the
//! credentials or the body.

use std::error::Error as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use super::UpstreamError;

/// Where Linux and BSD distributions keep their CA bundle (the list `openssl-probe` and
/// `rustls-native-certs` search), tried after `SSL_CERT_FILE` / `SSL_CERT_DIR`.
const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/etc/pki/tls/cacert.pem",
    "/usr/local/etc/openssl/cert.pem",
    "/usr/local/share/certs/ca-root-nss.crt",
];

/// Builds the HTTP client: no redirects, both timeouts, and TLS through rustls with the
/// ring provider. `https` selects whether system CA roots are required.
pub(crate) fn http_client(
    connect_timeout: Duration,
    request_timeout: Duration,
    https: bool,
) -> anyhow::Result<reqwest::Client> {
    // reqwest's own rustls setup would need a process-wide crypto provider (it panics
    // without one under `rustls-no-provider`), so the TLS config is built here instead.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    if https {
        let certs = system_roots();
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            bail!(
                "no CA certificates found for the BILLmanager https URL \
                 (set SSL_CERT_FILE or install the system CA bundle)"
            );
        }
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        // A redirect would turn our POST into a GET elsewhere; treat it as a failure.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the BILLmanager HTTP client")
}

/// System CA certificates: `SSL_CERT_FILE`, else `SSL_CERT_DIR`, else the first known
/// bundle file that yields certificates.
pub(crate) fn system_roots() -> Vec<CertificateDer<'static>> {
    if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
        return pem_file(Path::new(&file));
    }
    if let Some(dir) = std::env::var_os("SSL_CERT_DIR") {
        let certs: Vec<_> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|entry| pem_file(&entry.path()))
            .collect();
        if !certs.is_empty() {
            return certs;
        }
    }
    CA_BUNDLES
        .iter()
        .map(|path| pem_file(Path::new(path)))
        .find(|certs| !certs.is_empty())
        .unwrap_or_default()
}

fn pem_file(path: &Path) -> Vec<CertificateDer<'static>> {
    match CertificateDer::pem_file_iter(path) {
        Ok(iter) => iter.filter_map(Result::ok).collect(),
        Err(_) => Vec::new(),
    }
}

/// POSTs `form` as `application/x-www-form-urlencoded` and returns the body of a 2xx
/// answer, read up to `max_bytes`.
pub(crate) async fn post_form(
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
    max_bytes: usize,
) -> Result<Vec<u8>, UpstreamError> {
    let mut request = http.post(url).form(form);
    // The trace continues upstream (W3C trace context), when traces are exported.
    if let Some(traceparent) = crate::telemetry::otlp::traceparent() {
        request = request.header("traceparent", traceparent);
    }
    let mut response = request.send().await.map_err(request_error)?;
    let status = response.status();
    if status.is_server_error() {
        return Err(UpstreamError::Indeterminate(format!("HTTP {status}")));
    }
    if !status.is_success() {
        return Err(UpstreamError::Unavailable(format!("HTTP {status}")));
    }
    let too_large =
        || UpstreamError::Indeterminate(format!("response larger than {max_bytes} bytes"));
    if response
        .content_length()
        .is_some_and(|len| len > max_bytes as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(request_error)? {
        if body.len() + chunk.len() > max_bytes {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Classifies a reqwest failure (see the module docs).
fn request_error(error: reqwest::Error) -> UpstreamError {
    let error = error.without_url();
    if error.is_connect() {
        // Includes a connect timeout: no connection, so no request.
        UpstreamError::Unavailable(format!("could not connect: {}", cause(&error)))
    } else if error.is_timeout() {
        UpstreamError::Indeterminate("timed out waiting for the answer".into())
    } else {
        UpstreamError::Indeterminate(format!("connection failed mid-request: {}", cause(&error)))
    }
}

/// A short description of the innermost cause: an I/O error's kind (it never names an
/// address) or its wrapped error, else the innermost error's message.
fn cause(error: &reqwest::Error) -> String {
    let mut innermost: &dyn std::error::Error = error;
    let mut current = error.source();
    while let Some(source) = current {
        if let Some(io) = source.downcast_ref::<std::io::Error>() {
            // An OS error has no inner error; a TLS failure arrives as an I/O error
            // wrapping rustls's, which is the informative part.
            return io
                .get_ref()
                .map_or_else(|| io.kind().to_string(), |inner| inner.to_string());
        }
        innermost = source;
        current = source.source();
    }
    innermost.to_string()
}
