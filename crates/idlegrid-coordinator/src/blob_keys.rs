//! Where each kind of blob lives: every key the coordinator writes is made here, so the
//! stages that write a blob and those that clean up after a job agree on it.
//!
//! ```text
//! jobs/<job>/input            the customer's input
//! jobs/<job>/parts/<n>.<sha>  parts of a multipart upload, until they are joined
//! jobs/<job>/chunks/…         chunks the partitioner cut (an app names them)
//! jobs/<job>/output           the assembled output
//! results/<job>/<task>/…      outputs uploaded by devices
//! logs/<job>/<µs>-<name>       the job's logs: tasks' stderr, the grid's steps (kept)
//! bundles/<sha256>            app bundles as devices are served them, by their hash (kept:
//!                             published versions and jobs' bundles are named by it)
//! ```

use idlegrid_domain::{JobId, TaskId};

/// An app bundle, by the SHA-256 of its bytes as served.
pub fn bundle(sha256: &str) -> String {
    format!("bundles/{sha256}")
}

/// The job's input.
pub fn input(job: JobId) -> String {
    format!("jobs/{job}/input")
}

/// Where the parts of the job's multipart upload are kept until they are joined.
pub fn upload_parts(job: JobId) -> String {
    format!("jobs/{job}/parts")
}

/// Where the chunks cut from the job's input are kept while it runs.
pub fn chunks(job: JobId) -> String {
    format!("jobs/{job}/chunks")
}

/// A chunk cut from the job's input, named by the app.
pub fn chunk(job: JobId, name: &str) -> String {
    format!("{}/{name}", chunks(job))
}

/// The job's assembled output.
pub fn output(job: JobId) -> String {
    format!("jobs/{job}/output")
}

/// Where devices' outputs for the job are kept while it runs.
pub fn results(job: JobId) -> String {
    format!("results/{job}")
}

/// Where devices' outputs for one task of the job are kept.
pub fn task_results(job: JobId, task: TaskId) -> String {
    format!("{}/{task}", results(job))
}

/// Where the job's logs are kept.
pub fn logs(job: JobId) -> String {
    format!("logs/{job}")
}

/// The prefixes of every blob that only served a job's processing (not its input or output).
pub fn work_prefixes(job: JobId) -> [String; 3] {
    [chunks(job), upload_parts(job), results(job)]
}
