//! The deployment material agrees with the service: every manifest in
//! deploy/kubernetes parses (and passes the Kubernetes schema when `kubernetes-validate`
//! is installed; with `CI=true` it must be), the probes use the ports and paths the service serves by default,
//! the grace period covers the drain, and the ConfigMap's config file is accepted by
//! `serve`.

use std::path::{Path, PathBuf};
use std::process::Command;

use license_facade::api::pb::v1::license_service_server::LicenseServiceServer;
use license_facade::config::{ServeArgs, Settings};
use license_facade::grpc::GrpcLicenses;
use serde_norway::Value;
use tonic::server::NamedService;

#[path = "support/skip.rs"]
mod skip;

fn manifest_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

/// Every manifest file, parsed, by file name.
fn manifests() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifest_dir())
        .expect("deploy/kubernetes exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("readable");
            let value: Value = serde_norway::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                value,
            )
        })
        .collect()
}

fn of_kind(kind: &str) -> Value {
    named(kind, "license-facade")
}

fn named(kind: &str, name: &str) -> Value {
    manifests()
        .into_iter()
        .map(|(_, v)| v)
        .find(|v| v["kind"] == kind && v["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("a {kind} manifest named {name}"))
}

/// The service's defaults, from the same code that resolves `serve`'s flags.
fn defaults() -> Settings {
    Settings::from_args(ServeArgs {
        sandbox: true,
        ..ServeArgs::default()
    })
    .expect("default settings")
}

fn config_map_data() -> Value {
    of_kind("ConfigMap")["data"].clone()
}

fn port_of(addr: &str) -> u16 {
    addr.parse::<std::net::SocketAddr>()
        .expect("a socket address")
        .port()
}

#[test]
fn every_manifest_parses_and_has_the_basic_fields() {
    let all = manifests();
    let kinds: Vec<&str> = all.iter().filter_map(|(_, v)| v["kind"].as_str()).collect();
    for kind in [
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ConfigMap",
        "Secret",
    ] {
        assert!(kinds.contains(&kind), "a {kind} manifest: {kinds:?}");
    }
    for (name, value) in &all {
        assert!(value["apiVersion"].is_string(), "{name}: apiVersion");
        let object = value["metadata"]["name"].as_str().unwrap_or_default();
        assert!(
            object.starts_with("license-facade"),
            "{name}: metadata.name {object}"
        );
    }
}

#[test]
fn manifests_pass_the_kubernetes_schema_when_a_validator_is_installed() {
    let files: Vec<PathBuf> = std::fs::read_dir(manifest_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    let output = match Command::new("kubernetes-validate")
        .arg("--strict")
        .args(&files)
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            skip::skip_unless_ci(
                "kubernetes-validate is not installed (pip install kubernetes-validate)",
            );
            return;
        }
        Err(e) => panic!("cannot run kubernetes-validate: {e}"),
    };
    assert!(
        output.status.success(),
        "kubernetes-validate failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_probes_use_the_ports_and_paths_the_service_serves() {
    let settings = defaults();
    let (http_port, grpc_port) = (settings.http_addr.port(), settings.grpc_addr.port());
    assert_eq!((http_port, grpc_port), (8080, 50051));
    let data = config_map_data();
    assert_eq!(
        port_of(data["LICENSE_FACADE_HTTP_ADDR"].as_str().unwrap()),
        http_port
    );
    assert_eq!(
        port_of(data["LICENSE_FACADE_GRPC_ADDR"].as_str().unwrap()),
        grpc_port
    );

    let deployment = of_kind("Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let ports = container["ports"].as_sequence().expect("container ports");
    let port_named = |name: &str| {
        ports
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("a container port named {name}"))
    };
    assert_eq!(port_named("http"), u64::from(http_port));
    assert_eq!(port_named("grpc"), u64::from(grpc_port));

    let readiness = &container["readinessProbe"]["grpc"];
    assert_eq!(readiness["port"].as_u64(), Some(u64::from(grpc_port)));
    assert_eq!(
        readiness["service"].as_str(),
        Some(<LicenseServiceServer<GrpcLicenses> as NamedService>::NAME),
        "readiness asks the health of the license service"
    );
    for probe in ["livenessProbe", "startupProbe"] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], "/healthz", "{probe}");
        assert_eq!(get["port"].as_u64(), Some(u64::from(http_port)), "{probe}");
    }
    assert!(container["resources"]["requests"].is_mapping());
    assert!(container["resources"]["limits"].is_mapping());

    let service = of_kind("Service");
    let service_ports = service["spec"]["ports"].as_sequence().unwrap();
    for (name, port) in [("http", http_port), ("grpc", grpc_port)] {
        let p = service_ports
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("a service port named {name}"));
        assert_eq!(p["port"].as_u64(), Some(u64::from(port)));
        assert_eq!(p["targetPort"], name);
    }
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["template"]["metadata"]["labels"]
    );
    let pdb = of_kind("PodDisruptionBudget");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn the_grace_period_covers_the_drain() {
    let data = config_map_data();
    let delay_ms: u64 = data["LICENSE_FACADE_DRAIN_DELAY_MS"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let timeout_secs: u64 = data["LICENSE_FACADE_DRAIN_TIMEOUT_SECS"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let deployment = of_kind("Deployment");
    let grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds");
    assert!(
        grace * 1000 > delay_ms + timeout_secs * 1000,
        "grace {grace}s must exceed drain delay {delay_ms}ms + drain timeout {timeout_secs}s"
    );
    // The drain delay must outlast one failed readiness probe, or endpoints may still
    // route here when the listeners close.
    let probe = &deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"];
    let period = probe["periodSeconds"].as_u64().unwrap_or(10);
    let failures = probe["failureThreshold"].as_u64().unwrap_or(3);
    assert!(
        delay_ms >= period * failures * 1000,
        "drain delay {delay_ms}ms shorter than readiness detection ({period}s x {failures})"
    );
}

#[test]
fn the_deployment_runs_as_non_root_with_the_database_url_from_the_secret() {
    let deployment = of_kind("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let env = pod["containers"][0]["env"].as_sequence().unwrap();
    let url = env
        .iter()
        .find(|e| e["name"] == "LICENSE_FACADE_DATABASE_URL")
        .expect("LICENSE_FACADE_DATABASE_URL is set");
    assert_eq!(url["valueFrom"]["secretKeyRef"]["name"], "license-facade");
    let secret = of_kind("Secret");
    let key = url["valueFrom"]["secretKeyRef"]["key"].as_str().unwrap();
    let example = secret["stringData"][key]
        .as_str()
        .expect("the example has it");
    assert!(example.starts_with("postgres://"), "{example}");
}

#[test]
fn the_config_maps_config_file_is_accepted_by_serve() {
    let data = config_map_data();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, data["config.toml"].as_str().expect("config.toml")).unwrap();
    let settings = Settings::from_args(ServeArgs {
        sandbox: true,
        config: Some(path),
        drain_delay_ms: data["LICENSE_FACADE_DRAIN_DELAY_MS"]
            .as_str()
            .and_then(|s| s.parse().ok()),
        drain_timeout_secs: data["LICENSE_FACADE_DRAIN_TIMEOUT_SECS"]
            .as_str()
            .and_then(|s| s.parse().ok()),
        ..ServeArgs::default()
    });
    assert!(settings.is_ok(), "{:?}", settings.err());
}

#[test]
fn the_example_clients_file_is_accepted_and_mounted_where_the_config_map_points() {
    let secret = named("Secret", "license-facade-clients");
    let text = secret["stringData"]["clients.toml"]
        .as_str()
        .expect("clients.toml");
    let clients = license_facade::auth::Clients::from_toml(text);
    assert!(clients.is_ok(), "{:?}", clients.err());

    let path = config_map_data()["LICENSE_FACADE_CLIENTS_FILE"]
        .as_str()
        .expect("LICENSE_FACADE_CLIENTS_FILE")
        .to_owned();
    let deployment = of_kind("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["secret"]["secretName"] == "license-facade-clients")
        .expect("a volume of the clients Secret");
    let mount = pod["containers"][0]["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .expect("the clients volume is mounted");
    let file = volume["secret"]["items"][0]["path"].as_str().unwrap();
    assert_eq!(
        format!("{}/{file}", mount["mountPath"].as_str().unwrap()),
        path
    );
}
