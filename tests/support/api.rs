//! The orders the tests place, a REST client of one service, and the checks that the
//! store and the sandbox tell the same story.

use std::time::{Duration, Instant};

use license_facade::sandbox::SandboxHandle;
use serde_json::{Value, json};

use super::sandbox::{TestSandbox, UPSTREAM_ACTIVE, live_on};
use super::{DEADLINE, TOKEN};

/// The service's log message when recovery finds an order upstream and adopts it.
pub const ADOPTED_LOG: &str = "found the order upstream; adopted it";

/// One order the tests place: a server, its IP, a panel.
#[derive(Debug, Clone)]
pub struct Order {
    pub server: String,
    pub ip: String,
}

impl Order {
    pub fn new(n: usize) -> Self {
        Self {
            server: format!("srv-{n}"),
            ip: format!("203.0.{}.{}", 113 + n / 250, 1 + n % 250),
        }
    }

    pub fn body(&self) -> Value {
        json!({"server": {"id": self.server, "ip": self.ip}, "panel": "ISPmanager 6 Pro"})
    }
}

/// The headers that send `token` with every request.
fn bearer(token: &str) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    headers
}

/// A REST client of one service instance.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    client: reqwest::Client,
}

impl Api {
    pub fn new(base: String) -> Self {
        Self::with_token(base, TOKEN)
    }

    /// A client of `base` that calls as the client whose token is `token`.
    pub fn with_token(base: String, token: &str) -> Self {
        Self {
            base,
            client: super::http_client()
                .default_headers(bearer(token))
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        }
    }

    /// Sends `request`; the status and the JSON body.
    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<(u16, Value), String> {
        let response = request.send().await.map_err(|e| {
            // reqwest's own message hides why (refused, reset, timed out): its sources say.
            let mut why = format!("not sent: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                why.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            why
        })?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.map_err(|e| format!("no body: {e}"))?;
        Ok((status, body))
    }

    /// POSTs `body` to `path` (with an `Idempotency-Key` when given); the status and
    /// the body.
    pub async fn post(
        &self,
        path: &str,
        body: &Value,
        key: Option<&str>,
    ) -> Result<(u16, Value), String> {
        let mut request = self.client.post(format!("{}{path}", self.base)).json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        self.exchange(request).await
    }

    /// GETs `path`; the status and the body.
    pub async fn get(&self, path: &str) -> Result<(u16, Value), String> {
        self.exchange(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    /// DELETEs `path` (with an `Idempotency-Key` when given); the status and the body.
    pub async fn delete(&self, path: &str, key: Option<&str>) -> Result<(u16, Value), String> {
        let mut request = self.client.delete(format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        self.exchange(request).await
    }

    /// Places (or repeats) an order; `Ok(id)` when the service acknowledged it (2xx).
    pub async fn order(&self, order: &Order) -> Result<String, String> {
        let (status, body) = self.post("/v1/licenses", &order.body(), None).await?;
        if !(200..300).contains(&status) {
            return Err(format!("{status}: {body}"));
        }
        Ok(body["id"].as_str().expect("an id").to_owned())
    }

    /// Repeats an order until the service acknowledges it (it may still be starting,
    /// or dying under the test).
    pub async fn order_until_acknowledged(&self, order: &Order) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.order(order).await {
                Ok(id) => return id,
                Err(e) => assert!(Instant::now() < deadline, "never acknowledged: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Posts an order `body` with an `Idempotency-Key`; the status and the body.
    pub async fn post_order(
        &self,
        body: &Value,
        key: Option<&str>,
    ) -> Result<(u16, Value), String> {
        self.post("/v1/licenses", body, key).await
    }

    /// Renews license `id` for a month; the status and the body.
    pub async fn renew(&self, id: &str) -> Result<(u16, Value), String> {
        let path = format!("/v1/licenses/{id}/renew");
        self.post(&path, &json!({"periodMonths": 1}), None).await
    }

    /// Resolves license `id` (`RETRY`, `BIND` with `upstream_id`, `ABANDON`) as the
    /// admin; the status and the body.
    pub async fn resolve(
        &self,
        id: &str,
        action: &str,
        upstream_id: Option<u64>,
    ) -> Result<(u16, Value), String> {
        let mut body = json!({"action": action, "reason": "model step"});
        if let Some(up) = upstream_id {
            body["upstreamId"] = json!(up.to_string());
        }
        self.post(&format!("/v1/licenses/{id}/resolve"), &body, None)
            .await
    }

    /// How many audit entries have `action` and an outcome naming `outcome`.
    pub async fn audit_count(&self, action: &str, outcome: &str) -> usize {
        self.audit_entries(action, outcome).await.len()
    }

    /// The audit entries that have `action` and an outcome naming `outcome` (with
    /// their detail: a failure message names the upstream's refusal).
    pub async fn audit_entries(&self, action: &str, outcome: &str) -> Vec<Value> {
        let page: Value = self
            .client
            .get(format!("{}/v1/audit?pageSize=1000", self.base))
            .send()
            .await
            .expect("the service answers")
            .json()
            .await
            .expect("a JSON page");
        page["entries"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| {
                        e["action"] == action
                            && e["outcome"].as_str().is_some_and(|o| o.contains(outcome))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Polls until an audit entry has `action` and an outcome naming `outcome`;
    /// returns those entries.
    async fn audit_appears(&self, action: &str, outcome: &str) -> Vec<Value> {
        loop {
            let entries = self.audit_entries(action, outcome).await;
            if !entries.is_empty() {
                return entries;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until an audit entry has `action` and an outcome naming `outcome` (an
    /// operation ended so; a license can show a change's state from the commit of
    /// its confirmation, before the one that closes the step); returns those entries.
    pub async fn audit_until(&self, action: &str, outcome: &str) -> Vec<Value> {
        tokio::time::timeout(DEADLINE, self.audit_appears(action, outcome))
            .await
            .unwrap_or_else(|_| panic!("no {action} {outcome} in the audit log"))
    }

    /// [`audit_until`](Self::audit_until) for an operation on license `id`; returns
    /// the license then.
    pub async fn license_after_audit(&self, id: &str, action: &str, outcome: &str) -> Value {
        if tokio::time::timeout(DEADLINE, self.audit_appears(action, outcome))
            .await
            .is_err()
        {
            panic!(
                "no {action} {outcome} in the audit log; license: {}",
                self.license(id).await
            );
        }
        self.license(id).await
    }

    /// Runs a reconciliation (`POST /v1/reconcile`) and returns its drift report.
    pub async fn reconcile(&self) -> Result<Value, String> {
        let request = self.client.post(format!("{}/v1/reconcile", self.base));
        let (status, body) = self.exchange(request).await?;
        if !(200..300).contains(&status) {
            return Err(format!("{status}: {body}"));
        }
        Ok(body)
    }

    pub async fn license(&self, id: &str) -> Value {
        self.client
            .get(format!("{}/v1/licenses/{id}", self.base))
            .send()
            .await
            .expect("the service answers")
            .json()
            .await
            .expect("a license")
    }

    /// Reads the license until `done` holds for it.
    pub async fn license_when(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let license = self.license(id).await;
            if done(&license) {
                return license;
            }
            assert!(
                Instant::now() < deadline,
                "license {id} never reached {what}: {license}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Reads the license until its state is one of `states`.
    pub async fn license_until(&self, id: &str, states: &[&str]) -> Value {
        self.license_when(id, &format!("{states:?}"), |l| {
            states.iter().any(|s| l["state"] == *s)
        })
        .await
    }

    /// `GET /readyz`'s status code.
    pub async fn ready_status(&self) -> Result<u16, reqwest::Error> {
        let response = self
            .client
            .get(format!("{}/readyz", self.base))
            .send()
            .await?;
        Ok(response.status().as_u16())
    }

    /// Waits until `/readyz` answers 200 (the first upstream probe has run).
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + DEADLINE;
        while !matches!(self.ready_status().await, Ok(200)) {
            assert!(
                Instant::now() < deadline,
                "{} never became ready",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Reads every license through `api` until each is ACTIVE; returns them.
pub async fn wait_all_active(api: &Api, ids: &[String]) -> Vec<Value> {
    let mut done = Vec::with_capacity(ids.len());
    for id in ids {
        done.push(api.license_until(id, &["ACTIVE"]).await);
    }
    done
}

/// Asserts that the store and the sandbox tell the same story about an ACTIVE order:
/// exactly one live upstream license on the IP, and it is the one the store holds.
pub fn assert_agree(sandbox: &SandboxHandle, order: &Order, license: &Value) {
    let live = live_on(sandbox, &order.ip);
    assert_eq!(
        live.len(),
        1,
        "exactly one upstream license for {}: {live:?}",
        order.ip
    );
    let upstream = &live[0];
    assert_eq!(upstream.status, UPSTREAM_ACTIVE, "{upstream:?}");
    assert_eq!(license["state"], "ACTIVE", "{license}");
    assert_eq!(
        license["upstreamId"].as_str(),
        Some(upstream.id.to_string().as_str()),
        "store and sandbox agree on the upstream id: {license}"
    );
    assert_eq!(
        license["licenseKey"].as_str(),
        Some(upstream.license_key.as_str()),
        "store and sandbox agree on the key"
    );
    assert_eq!(
        license["id"].as_str(),
        Some(upstream.remote_id.as_str()),
        "the upstream license carries our id as remoteid"
    );
}

/// Every order was bought exactly once upstream, and its ACTIVE license holds that
/// purchase: one purchase per order in all and one upstream license on each order's IP,
/// both counted with deleted licenses included (a duplicate that was cancelled
/// afterwards was still paid for).
pub fn assert_exactly_once(sandbox: &TestSandbox, orders: &[Order], licenses: &[Value]) {
    assert_eq!(
        sandbox.purchases(),
        orders.len() as u64,
        "exactly one upstream purchase per server ({} servers)",
        orders.len()
    );
    for (order, license) in orders.iter().zip(licenses) {
        let bought = sandbox.purchased_on(&order.ip);
        assert_eq!(
            bought.len(),
            1,
            "one upstream license ever on {}, deleted ones included: {bought:?}",
            order.ip
        );
        assert_agree(&sandbox.handle, order, license);
    }
}

/// A count field of a JSON answer (protobuf JSON writes 64-bit integers as strings and
/// leaves zero values out).
pub fn count(value: &Value) -> u64 {
    match value {
        Value::Null => 0,
        Value::Number(n) => n.as_u64().expect("a count"),
        Value::String(s) => s.parse().expect("a count"),
        other => panic!("not a count: {other}"),
    }
}
