//! Child processes (the release `license-facade` binary, the bare servers), free
//! loopback ports and memory figures from `/proc`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A loopback address with a port that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("bound")
}

/// A child process killed (by its own pid) when dropped.
pub struct Proc {
    pub child: std::process::Child,
    pub started: Instant,
    pub name: String,
}

impl Proc {
    /// Starts `bin args…` with stdout and stderr appended to `log`.
    pub fn spawn(bin: &Path, args: &[String], log: &Path, name: &str) -> anyhow::Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let started = Instant::now();
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        Ok(Self {
            child,
            started,
            name: name.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `VmRSS` and `VmHWM` in KiB.
    pub fn mem(&self) -> (u64, u64) {
        proc_mem(self.pid()).unwrap_or((0, 0))
    }

    /// Waits until `GET path` on `addr` answers 200; returns the time since spawn.
    pub async fn wait_ready(&mut self, addr: SocketAddr, path: &str) -> anyhow::Result<Duration> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(200) = crate::load::probe(addr, path).await {
                return Ok(self.started.elapsed());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited early: {status}", self.name);
            }
            if Instant::now() > deadline {
                bail!("{} not ready on {addr}{path} within 60 s", self.name);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
pub fn proc_mem(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((
        status_kib(&status, "VmRSS:")?,
        status_kib(&status, "VmHWM:")?,
    ))
}

/// A `… kB` field (`name` with its colon) of a `/proc/<pid>/status` text, in KiB.
pub fn status_kib(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
}

/// Runs a child to completion; returns its exit code, wall time and peak RSS (KiB,
/// from `wait4`'s `ru_maxrss`).
pub fn run_measured(
    bin: &Path,
    args: &[String],
    log: &Path,
) -> anyhow::Result<(i32, Duration, u64)> {
    let started = Instant::now();
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain syscall on our own child; `rusage` is plain old data.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    if r != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    // The child is reaped: keep `Child` from waiting on it again.
    std::mem::forget(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((code, wall, usage.ru_maxrss as u64))
}

/// The release `license-facade` binary next to this one, unless given.
pub fn facade_bin(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let bin = match given {
        Some(b) => b,
        None => std::env::current_exe()?
            .parent()
            .context("no parent directory")?
            .join("license-facade"),
    };
    if !bin.exists() {
        bail!(
            "{} not found: build it first (cargo build --release --bin license-facade)",
            bin.display()
        );
    }
    Ok(bin)
}

/// Lines of `/proc/cpuinfo` and `/proc/meminfo` that describe this machine.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    format!(
        "{cores} cores ({model}), {:.1} GiB memory",
        mem_kib as f64 / 1024.0 / 1024.0
    )
}
