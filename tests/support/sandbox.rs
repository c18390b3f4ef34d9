//! A sandbox BILLmanager served from the test process, so it outlives every service
//! the tests crash, kill or run side by side.

use std::time::Duration;

use license_facade::sandbox::{
    Fault, NewSandboxLicense, Sandbox, SandboxConfig, SandboxHandle, SandboxLicense, SandboxRenewal,
};
use tokio_util::sync::CancellationToken;

/// Upstream status of an active license and of a deleted one.
pub const UPSTREAM_ACTIVE: u32 = 2;
pub const UPSTREAM_DELETED: u32 = 4;

/// The addresses of the licenses [`plant_status_witnesses`] plants start so.
pub const WITNESS_IPS: &str = "192.0.2.24";

/// Plants three licenses bought elsewhere, one in each status a new order may be in
/// (5 processing, 2 active, 1 ordered), on 192.0.2.241–243, and returns their ids. A
/// list that shows a license in each of them can prove an order absent; one that
/// shows none in some status could hide an order there, and the service then hands
/// the order to a person rather than sending it again. For the tests of what follows
/// a proven absence (a re-send); they count their own licenses without these.
pub fn plant_status_witnesses(handle: &SandboxHandle) -> Vec<u64> {
    [5, 2, 1]
        .into_iter()
        .enumerate()
        .map(|(i, status)| {
            handle.insert_license(NewSandboxLicense {
                status,
                licname: format!("bought-elsewhere-{status}"),
                ..NewSandboxLicense::new(format!("{WITNESS_IPS}{}", i + 1), 55227)
            })
        })
        .collect()
}

/// Whether `license` is one of the [`plant_status_witnesses`].
pub fn is_witness(license: &SandboxLicense) -> bool {
    license.ip.starts_with(WITNESS_IPS)
}

/// Upstream licenses, deleted ones included, without the planted witnesses.
pub fn bought(handle: &SandboxHandle) -> Vec<SandboxLicense> {
    handle
        .licenses()
        .into_iter()
        .filter(|l| !is_witness(l))
        .collect()
}

/// A sandbox served until dropped.
pub struct TestSandbox {
    pub handle: SandboxHandle,
    pub url: String,
    pub addr: std::net::SocketAddr,
    stop: CancellationToken,
}

impl Drop for TestSandbox {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Sandbox settings for the crash tests: keys at once, hung requests released soon.
pub fn sandbox_config() -> SandboxConfig {
    SandboxConfig {
        key_delay: Duration::ZERO,
        timeout_hang: Duration::from_secs(2),
        ..SandboxConfig::default()
    }
}

/// A sandbox whose account lists licenses bought elsewhere in every status an order
/// may be in ([`plant_status_witnesses`]), so that a look-up can prove an order
/// unplaced and an order cut before the upstream took it (a kill, a call cut by its
/// timeout on a loaded machine) is sent again, as these suites expect. The tests of
/// what happens without them use [`start_bare_sandbox`].
pub async fn start_sandbox(config: SandboxConfig) -> TestSandbox {
    let sandbox = start_bare_sandbox(config).await;
    plant_status_witnesses(&sandbox.handle);
    sandbox
}

/// A sandbox with an empty account.
pub async fn start_bare_sandbox(config: SandboxConfig) -> TestSandbox {
    super::init();
    let sandbox = Sandbox::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("the sandbox binds");
    let handle = sandbox.handle();
    let url = sandbox.url();
    let addr = sandbox.local_addr();
    let stop = CancellationToken::new();
    tokio::spawn(sandbox.run(stop.clone().cancelled_owned()));
    TestSandbox {
        handle,
        url,
        addr,
        stop,
    }
}

impl TestSandbox {
    /// Upstream licenses that are not deleted, the planted witnesses left out.
    pub fn live(&self) -> Vec<SandboxLicense> {
        live(&self.handle).filter(|l| !is_witness(l)).collect()
    }

    /// Upstream licenses on `ip` that are not deleted.
    pub fn live_on(&self, ip: &str) -> Vec<SandboxLicense> {
        live_on(&self.handle, ip)
    }

    pub fn orders_sent(&self) -> u64 {
        self.handle.call_count("soft.order.param")
    }

    /// Every license the sandbox sold, see [`purchases`].
    pub fn purchases(&self) -> u64 {
        purchases(&self.handle)
    }

    /// Every upstream license on `ip`, deleted ones included, see [`purchased_on`].
    pub fn purchased_on(&self, ip: &str) -> Vec<SandboxLicense> {
        purchased_on(&self.handle, ip)
    }

    pub fn set_fault(&self, fault: &str) {
        self.handle
            .set_faults(vec![fault.parse::<Fault>().expect("a valid fault")]);
    }
}

fn live(handle: &SandboxHandle) -> impl Iterator<Item = SandboxLicense> {
    handle
        .licenses()
        .into_iter()
        .filter(|l| l.status != UPSTREAM_DELETED)
}

pub fn live_on(handle: &SandboxHandle, ip: &str) -> Vec<SandboxLicense> {
    live(handle).filter(|l| l.ip == ip).collect()
}

/// Every license the sandbox sold: the orders (`soft.order.param`) it carried out,
/// whatever became of the licenses since. A duplicate that was cancelled afterwards is
/// still a purchase, so counts of money spent use this, never the live licenses.
pub fn purchases(handle: &SandboxHandle) -> u64 {
    handle.carried_out("soft.order.param")
}

/// Every upstream license on `ip`, deleted ones included (a license keeps its IP when
/// it is deleted, so a cancelled duplicate still shows here).
pub fn purchased_on(handle: &SandboxHandle, ip: &str) -> Vec<SandboxLicense> {
    handle
        .licenses()
        .into_iter()
        .filter(|l| l.ip == ip)
        .collect()
}

/// Asserts that the sandbox carried out exactly one renewal in all, of license
/// `upstream_id` for `months`, and that the license's paid period moved by exactly
/// that; returns the renewal. An expiry that merely moved, or one accepted request,
/// would also pass with two periods bought.
#[track_caller]
pub fn assert_renewed_once(
    handle: &SandboxHandle,
    upstream_id: u64,
    months: i32,
) -> SandboxRenewal {
    let renewals = handle.renewals();
    assert_eq!(
        renewals.len(),
        1,
        "one renewal carried out upstream: {renewals:?}"
    );
    let renewal = renewals[0].clone();
    assert_eq!(
        (renewal.license, renewal.months),
        (upstream_id, months),
        "license {upstream_id} renewed for {months} months: {renewal:?}"
    );
    let license = handle.license(upstream_id).expect("the renewed license");
    assert_eq!(
        license.expire_date, renewal.expire_after,
        "the license is paid until the end of that one period"
    );
    renewal
}

/// A TCP proxy in front of the sandbox that holds every chunk of every answer for
/// `delay` before passing it on: an order is performed at once but its answer is slow,
/// which widens the window in which a killed service has bought a license it has not
/// yet heard about (the window recovery exists for).
pub async fn slow_answer_proxy(target: std::net::SocketAddr, delay: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let requests = async {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                    let _ = server_write.shutdown().await;
                };
                let answers = async {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = server_read.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        tokio::time::sleep(delay).await;
                        if client_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = client_write.shutdown().await;
                };
                // Whichever side ends first ends the connection (a killed client must
                // not keep the sandbox connection open).
                tokio::select! {
                    () = requests => {}
                    () = answers => {}
                }
            });
        }
    });
    format!("http://{addr}/billmgr")
}
