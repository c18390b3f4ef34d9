//! Logging: JSON lines when the output is not a terminal (or when asked), readable text
//! on a terminal. The level comes from `LICENSE_FACADE_LOG` (or `RUST_LOG`), default info.
//! With an OTLP endpoint, spans are also exported as OpenTelemetry traces
//! ([`otlp`]) and each JSON line carries the `trace_id` of its request.

mod json;
mod lines;
pub mod otlp;

use std::io::IsTerminal;
use std::os::fd::AsFd;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Installs the subscriber of the long-running commands (`serve`, `sandbox`): as
/// [`init`], but lines are gathered in a buffer that a writer thread writes out a few
/// milliseconds after its first line ([`lines`]), so a request neither waits for a
/// system call nor wakes a thread to log its access line. Nothing is dropped. Keep
/// the guard until exit; dropping it writes out what is gathered (and the spans not
/// yet exported, when `otlp_endpoint` is given: see [`otlp`]).
pub fn init_serving(otlp_endpoint: Option<&str>) -> ServingGuard {
    let tracer = otlp_endpoint.and_then(|endpoint| match otlp::Tracing::new(endpoint) {
        Ok(tracing) => Some(tracing),
        Err(e) => {
            // Logging is not up yet; the service runs on without traces.
            eprintln!("license-facade: cannot export traces to {endpoint}: {e:#}");
            None
        }
    });
    let layer = tracer.as_ref().map(otlp::Tracing::layer);
    // A handle of our own on stdout, written in whole batches (std's stdout flushes
    // at every newline).
    let started = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .and_then(|fd| lines::start(std::fs::File::from(fd), "license-facade-log"));
    let json = json_for(std::io::stdout().is_terminal());
    match started {
        Ok((writer, guard)) => {
            let _ = SERVING_LOG.set(writer.clone());
            install(writer, json, layer);
            ServingGuard {
                tracer,
                _log: Some(guard),
            }
        }
        Err(_) => {
            install(std::io::stdout, json, layer);
            ServingGuard { tracer, _log: None }
        }
    }
}

/// The serving commands' log writer, for [`flush_log`].
static SERVING_LOG: std::sync::OnceLock<lines::Lines> = std::sync::OnceLock::new();

/// Writes out the log lines gathered so far, when the serving log writer is installed:
/// a process about to abort on purpose (`crate::crash`) would lose them, the line that
/// says where it listens among them.
pub fn flush_log() {
    if let Some(lines) = SERVING_LOG.get() {
        lines.flush();
    }
}

/// Held until exit by the long-running commands: dropping it exports the spans still
/// queued, then writes out the queued log lines.
pub struct ServingGuard {
    tracer: Option<otlp::Tracing>,
    _log: Option<lines::Guard>,
}

impl Drop for ServingGuard {
    fn drop(&mut self) {
        // Spans first: their export may log.
        drop(self.tracer.take());
    }
}

/// Installs the global subscriber; a second call is a no-op (tests call it often).
pub fn init() {
    install(
        std::io::stdout,
        json_for(std::io::stdout().is_terminal()),
        None,
    );
}

/// Like [`init`], but logs go to stderr (JSON unless stderr is a terminal), for
/// commands whose stdout is their output.
pub fn init_stderr() {
    install(
        std::io::stderr,
        json_for(std::io::stderr().is_terminal()),
        None,
    );
}

fn install<W>(writer: W, json: bool, otlp: Option<otlp::Layer>)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let fmt = if json {
        fmt.fmt_fields(json::SpanFields)
            .event_format(json::JsonLines)
            .boxed()
    } else {
        fmt.boxed()
    };
    let exporting = otlp.is_some();
    let installed = tracing_subscriber::registry()
        .with(otlp)
        .with(fmt)
        .with(filter())
        .try_init();
    if installed.is_ok() && exporting {
        otlp::set_exporting();
    }
}

fn filter() -> EnvFilter {
    let filter = std::env::var("LICENSE_FACADE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Whether to write JSON: as `LICENSE_FACADE_LOG_FORMAT` says, else unless the output
/// is a terminal.
fn json_for(terminal: bool) -> bool {
    match std::env::var("LICENSE_FACADE_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("pretty" | "text") => false,
        _ => !terminal,
    }
}
