//! The watcher's persistent bookkeeping: for each license whose server is absent (gone
//! or unmarked), since when and from how many complete listings. Kept in a small JSON
//! file written atomically (a temporary file, fsync, rename, fsync of the directory),
//! so a watcher killed at any point restarts with either the old or the new file — a
//! restart neither forgets a pending cancellation nor brings it forward.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, ensure};
use serde::{Deserialize, Serialize};

/// The file's format version.
const VERSION: u32 = 1;

/// One license whose server is absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Absence {
    /// The license that would be cancelled (a newer license of the server starts its
    /// own count).
    pub license_id: String,
    /// Unix time of the first complete listing the server was absent from.
    pub since: i64,
    /// Complete listings it has been absent from.
    pub listings: u32,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatcherState {
    /// Format version.
    pub version: u32,
    /// The server id prefix it belongs to (a file of another instance is refused).
    pub prefix: String,
    /// Absences by server id.
    pub absences: BTreeMap<String, Absence>,
    /// Unix time of the last complete listing.
    pub last_complete_listing: Option<i64>,
}

/// The state file.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
    prefix: String,
}

impl StateFile {
    /// The file at `path` of the instance with server id `prefix`.
    pub fn new(path: PathBuf, prefix: &str) -> Self {
        Self {
            path,
            prefix: prefix.to_owned(),
        }
    }

    /// Reads the file; an empty state when there is none yet.
    pub fn load(&self) -> anyhow::Result<WatcherState> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(WatcherState {
                    version: VERSION,
                    prefix: self.prefix.clone(),
                    ..WatcherState::default()
                });
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", self.path.display()));
            }
        };
        let state: WatcherState = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a watcher state file", self.path.display()))?;
        ensure!(
            state.version == VERSION,
            "{}: unknown version {}",
            self.path.display(),
            state.version
        );
        ensure!(
            state.prefix == self.prefix,
            "{} belongs to the servers {:?}, not {:?}: each instance needs its own state file",
            self.path.display(),
            state.prefix,
            self.prefix
        );
        Ok(state)
    }

    /// Replaces the file atomically with `state`.
    pub fn save(&self, state: &WatcherState) -> anyhow::Result<()> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let name = self
            .path
            .file_name()
            .context("the state file has no name")?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let body = serde_json::to_vec_pretty(state).context("serializing the state")?;
        let written = (|| -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&body)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            // The rename itself is durable only once the directory is synced.
            std::fs::File::open(dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.with_context(|| format!("cannot write {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_state_loads_back_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("sub/state.json"), "vm6-a:");
        let empty = file.load().unwrap();
        assert!(empty.absences.is_empty());
        let mut state = empty;
        state.absences.insert(
            "vm6-a:3".into(),
            Absence {
                license_id: "L".into(),
                since: 100,
                listings: 2,
            },
        );
        file.save(&state).unwrap();
        assert_eq!(file.load().unwrap(), state);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub")).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn another_instances_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        StateFile::new(path.clone(), "vm6-a:")
            .save(&WatcherState {
                version: VERSION,
                prefix: "vm6-a:".into(),
                ..WatcherState::default()
            })
            .unwrap();
        let err = StateFile::new(path, "vm6-b:").load().unwrap_err();
        assert!(err.to_string().contains("own state file"), "{err}");
    }
}
