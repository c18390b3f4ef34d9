//! A license that needs a person (NEEDS_ATTENTION), made the way a real one gets
//! there: sandbox faults that leave an order's (or a renewal's) outcome unknown until
//! the workflow gives up and hands it over. For the tests that resolve such licenses,
//! show them, or prove what the workflow sends before it gives up.

use license_facade::sandbox::{Fault, SandboxHandle};
use serde_json::Value;

use super::api::Api;

/// Why an order's outcome stays unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stuck {
    /// Every order request is answered 5xx: nothing is bought upstream, and the
    /// license needs a person once the re-send limit is reached.
    Unbought,
    /// The order is bought upstream but its answer is lost, and the upstream list
    /// fails too: the look-up failure limit hands it to a person.
    Bought,
}

impl Stuck {
    pub fn faults(self) -> Vec<Fault> {
        let specs: &[&str] = match self {
            Self::Unbought => &["soft.order.param:error5xx:1.0"],
            Self::Bought => &[
                "soft.order.param:drop-after-commit:1.0",
                "soft:error5xx:1.0",
            ],
        };
        faults(specs)
    }
}

/// A license that needs a person, as the service shows it.
#[derive(Debug, Clone)]
pub struct StuckLicense {
    pub id: String,
    pub license: Value,
    /// The upstream license its order bought ([`Stuck::Bought`]), which the service
    /// does not know about.
    pub bought: Option<u64>,
}

/// Parses fault specs (`FUNC:KIND:RATE`).
pub fn faults(specs: &[&str]) -> Vec<Fault> {
    specs
        .iter()
        .map(|s| s.parse::<Fault>().expect("a valid fault"))
        .collect()
}

/// Places the order `body` through `api` with `how`'s faults set on the sandbox and
/// waits until it needs a person; the faults are cleared afterwards.
pub async fn stuck_order(
    api: &Api,
    sandbox: &SandboxHandle,
    body: &Value,
    how: Stuck,
) -> StuckLicense {
    sandbox.set_faults(how.faults());
    let (status, placed) = api
        .post("/v1/licenses", body, None)
        .await
        .expect("the order is answered");
    assert!((200..300).contains(&status), "{status}: {placed}");
    let id = placed["id"].as_str().expect("an id").to_owned();
    let license = needs_attention(api, sandbox, &id).await;
    let bought = (how == Stuck::Bought).then(|| {
        sandbox
            .licenses()
            .into_iter()
            .find(|l| l.licname == id)
            .expect("the order was bought upstream")
            .id
    });
    StuckLicense {
        id,
        license,
        bought,
    }
}

/// Renews the active license `id` for a month through `api` while every renewal
/// request is answered 5xx (nothing renewed upstream), and waits until it needs a
/// person; the faults are cleared afterwards.
pub async fn stuck_renewal(api: &Api, sandbox: &SandboxHandle, id: &str) -> Value {
    sandbox.set_faults(faults(&["service.prolong:error5xx:1.0"]));
    let (status, body) = api.renew(id).await.expect("the renewal is answered");
    assert_eq!(status, 202, "the renewal is accepted: {body}");
    needs_attention(api, sandbox, id).await
}

/// Waits until license `id` needs a person, then clears the sandbox's faults.
async fn needs_attention(api: &Api, sandbox: &SandboxHandle, id: &str) -> Value {
    let license = api.license_until(id, &["NEEDS_ATTENTION"]).await;
    sandbox.set_faults(Vec::new());
    assert!(license["lastError"]["code"].is_string(), "{license}");
    license
}
