//! A coordinator killed with SIGKILL cannot clean up after itself: what its scratch held (a
//! video's chunks and renditions) is removed when a coordinator starts again.

mod common;

use common::Coordinator;
use std::path::PathBuf;

/// The scratch directory of the coordinator process `pid`: the directory of the lock file it
/// holds open there.
fn scratch_of(pid: u32) -> PathBuf {
    let parent = idlegrid_coordinator::scratch::parent();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .find(|target| target.starts_with(&parent) && target.ends_with("lock"))
        .and_then(|lock| lock.parent().map(PathBuf::from))
        .unwrap_or_else(|| panic!("coordinator {pid} holds no lock in {}", parent.display()))
}

#[test]
fn the_scratch_of_a_sigkilled_coordinator_is_removed_when_it_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut killed = Coordinator::start(dir.path(), &[]);
    let scratch = scratch_of(killed.process.child.id());
    // What a transcode was writing when the coordinator was killed.
    let rendition = scratch.join("video-abc123/rendition-720p.ts");
    std::fs::create_dir_all(rendition.parent().unwrap()).unwrap();
    std::fs::write(&rendition, vec![0u8; 1 << 20]).unwrap();
    killed.process.kill_hard();
    assert!(rendition.exists(), "SIGKILL leaves it behind");

    let again = Coordinator::start(dir.path(), &[]);
    assert!(!scratch.exists(), "{} is still there", scratch.display());
    let own = scratch_of(again.process.child.id());
    assert_ne!(own, scratch);
    assert!(own.exists());
}
