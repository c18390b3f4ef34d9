//! `license-facade healthcheck`: asks a running `serve` for `GET /readyz` over plain
//! HTTP and turns the answer into an exit code, so a container HEALTHCHECK needs no
//! shell, curl or wget in the image.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Flags of `license-facade healthcheck`.
#[derive(clap::Args, Debug, Clone)]
pub struct HealthcheckArgs {
    /// The REST address of the instance to check; an unspecified address (0.0.0.0 or
    /// [::], as `serve` is told to listen on in a container) means loopback.
    #[arg(
        long,
        env = "LICENSE_FACADE_HTTP_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub http_addr: SocketAddr,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
}

/// The address to connect to for a listen address: unspecified becomes loopback.
pub fn target(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// Runs the check; returns the exit code: 0 when `/readyz` answers 200, else 1.
pub async fn run(args: HealthcheckArgs) -> i32 {
    let url = format!("http://{}/readyz", target(args.http_addr));
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_millis(args.timeout_ms))
        .no_proxy()
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            eprintln!("healthcheck: cannot build an HTTP client: {e}");
            return 1;
        }
    };
    match client.get(&url).send().await {
        Ok(response) if response.status() == reqwest::StatusCode::OK => 0,
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            eprintln!("healthcheck: {url} answered {status}: {body}");
            1
        }
        Err(e) => {
            eprintln!("healthcheck: {url} did not answer: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::target;

    #[test]
    fn an_unspecified_listen_address_is_checked_on_loopback() {
        assert_eq!(
            target("0.0.0.0:8080".parse().unwrap()),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            target("[::]:9000".parse().unwrap()),
            "[::1]:9000".parse().unwrap()
        );
        assert_eq!(
            target("10.0.0.5:8080".parse().unwrap()),
            "10.0.0.5:8080".parse().unwrap()
        );
    }
}
