//! The coordinator's HTTP APIs, served for real on a loopback port over a SQLite file and local
//! blobs, driven with the project's own client and, for malformed requests, raw HTTP. Workers
//! here are played by the test itself, so every step of a task's life is visible.
//!
//! The tests are grouped by topic; [`harness`] starts the grids and plays their customers and
//! devices.

mod harness;

mod accounts;
mod billing;
mod device_text;
mod inputs;
mod jobs;
mod leases;
mod leftovers;
mod limits;
mod links;
mod recovery;
mod service;
mod verification;
mod webhooks;
