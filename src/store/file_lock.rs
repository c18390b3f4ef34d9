//! The lock that makes a SQLite database one process's: `<database>.lock`, held with
//! a POSIX record lock (`fcntl(F_SETLK)`) and a registry of this process's own locks.
//!
//! Why not `flock`: a flock belongs to the open file description, and a child process
//! shares that from `fork` until its `exec` closes the descriptor. A process that
//! starts others (a test harness, a supervisor that embeds the service) would find its
//! own lock still held after releasing it, for as long as some child of any of its
//! threads was between fork and exec, so an in-process restart on the same file failed
//! by chance. A record lock belongs to the process and is not inherited by a child.
//! It has two quirks, handled here: a process never conflicts with itself (hence the
//! registry of the files locked in this process), and closing *any* descriptor of the
//! file drops the process's lock on it (hence the file is opened only when the
//! registry says this process does not hold it, and a lock leaves the registry only
//! after its descriptor is closed).

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The files this process holds a lock on, by canonical path.
static HELD: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct FileLock {
    file: Option<File>,
    key: PathBuf,
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Close first: only then may another lock of this process open the file (its
        // close would otherwise drop this process's new lock too).
        drop(self.file.take());
        HELD.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.key);
    }
}

/// Takes the lock on `path` (creating the file), or `Ok(None)` when this or another
/// process holds it.
pub fn try_lock(path: &Path) -> io::Result<Option<FileLock>> {
    let key = canonical(path)?;
    let mut held = HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if held.contains(&key) {
        return Ok(None);
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&key)?;
    // SAFETY: `flock` is plain data; all-zero is a valid value that the fields below
    // complete, and `fcntl(F_SETLK)` only reads it.
    let mut range: libc::flock = unsafe { std::mem::zeroed() };
    range.l_type = libc::F_WRLCK as _;
    range.l_whence = libc::SEEK_SET as _;
    range.l_start = 0;
    range.l_len = 0; // to the end of the file, however long it grows
    // SAFETY: a valid descriptor and a pointer to an initialised `flock`.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &range) } == -1 {
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::EACCES | libc::EAGAIN) => Ok(None),
            _ => Err(error),
        };
    }
    held.insert(key.clone());
    Ok(Some(FileLock {
        file: Some(file),
        key,
    }))
}

/// `path` with its folder resolved (the file itself may not exist yet), so that two
/// spellings of one file share one registry entry.
fn canonical(path: &Path) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a lock file needs a name"))?;
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok(std::fs::canonicalize(folder)?.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_refuses_a_second_taker_in_this_process_until_it_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite.lock");

        let first = try_lock(&path).unwrap().expect("free");
        assert!(try_lock(&path).unwrap().is_none(), "held by this process");
        // Another spelling of the same file is the same lock.
        let other_spelling = dir.path().join(".").join("db.sqlite.lock");
        assert!(try_lock(&other_spelling).unwrap().is_none());
        drop(first);

        assert!(
            try_lock(&path).unwrap().is_some(),
            "free again once dropped"
        );
    }

    #[test]
    fn a_refused_attempt_leaves_the_holders_lock_in_place_for_other_processes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite.lock");
        let _held = try_lock(&path).unwrap().expect("free");
        // A refused attempt must not open (and so, on close, release) the file.
        assert!(try_lock(&path).unwrap().is_none());

        // Another process sees the lock: `flock(1)` cannot, but a record-lock probe
        // through Python's fcntl.lockf can.
        let probe = std::process::Command::new("python3")
            .args([
                "-c",
                "import fcntl,sys\nf=open(sys.argv[1],'a')\ntry:\n fcntl.lockf(f,fcntl.LOCK_EX|fcntl.LOCK_NB)\n print('free')\nexcept OSError:\n print('held')",
            ])
            .arg(&path)
            .output();
        match probe {
            Ok(out) => {
                assert!(
                    out.status.success(),
                    "the probe failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "held");
            }
            // No Python here: the in-process half above still ran.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                crate::test_skip::skip_unless_ci(
                    "python3 is not installed: the cross-process half of the lock test",
                );
            }
            Err(e) => panic!("cannot run python3: {e}"),
        }
    }

    #[test]
    fn a_child_process_between_fork_and_exec_does_not_keep_a_released_lock() {
        use std::io::Read as _;
        use std::os::unix::process::CommandExt as _;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite.lock");
        let held = try_lock(&path).unwrap().expect("free");
        // A child stopped between fork and exec holds a copy of every descriptor of
        // this process, the lock file's too: with flock the lock would stay taken.
        let (mut reader, writer) = std::io::pipe().unwrap();
        let writer_fd = writer.as_raw_fd();
        let spawner = std::thread::spawn(move || {
            let mut command = std::process::Command::new("true");
            // SAFETY: the closure runs in the forked child and only makes
            // async-signal-safe calls (getpid, write, pause).
            unsafe {
                command.pre_exec(move || {
                    let pid = libc::getpid().to_ne_bytes();
                    libc::write(writer_fd, pid.as_ptr().cast(), pid.len());
                    libc::pause();
                    Ok(())
                });
            }
            let child = command.spawn();
            drop(writer);
            child.map(|mut c| c.wait())
        });
        let mut pid = [0u8; 4];
        reader
            .read_exact(&mut pid)
            .expect("the child reports from before its exec");

        drop(held);
        let again = try_lock(&path).unwrap();

        // SAFETY: plain syscall on the pid the child reported.
        unsafe { libc::kill(i32::from_ne_bytes(pid), libc::SIGKILL) };
        let _ = spawner.join();
        assert!(
            again.is_some(),
            "released although a forked child holds its descriptor"
        );
    }
}
