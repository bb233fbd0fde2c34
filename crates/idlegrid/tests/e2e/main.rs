//! End-to-end tests of the real `idlegrid` binary: coordinators, worker agents, the local grid
//! and the customer's commands run as separate processes talking HTTP on loopback, with real
//! Python task scripts (fixtures in `tests/scripts/`). Each test keeps everything in its own
//! temporary directory and never reads the user's configuration: `IDLEGRID_HOME` points into
//! the temporary directory and the `IDLEGRID_*` target variables are removed.
//!
//! Every child process is owned by a [`common::Proc`] guard that SIGKILLs it when dropped, so a failing
//! (panicking) test leaves nothing running. Every wait is bounded, and failures show the tail of
//! the coordinator's and workers' logs.
//!
//! The tests are grouped by topic; [`harness`] starts the processes and waits on them, with the
//! process helpers the crate's other test files share in [`common`].

#[path = "../common/mod.rs"]
mod common;
mod harness;

mod accounts;
mod bench;
mod chaos;
mod commands;
mod recovery;
mod schema;
mod workers;
