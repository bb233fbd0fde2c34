//! Where idlegrid keeps its files on this machine.

use anyhow::Context;
use std::path::PathBuf;

/// idlegrid's home directory: `$IDLEGRID_HOME`, or `~/.idlegrid`.
pub fn home() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("IDLEGRID_HOME") {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME").context("neither IDLEGRID_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".idlegrid"))
}

/// A worker's state directory: `--state-dir`, or `worker` in the idlegrid home directory.
pub fn worker_state_dir(state_dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match state_dir {
        Some(dir) => Ok(dir),
        None => Ok(home()?.join("worker")),
    }
}
