//! Typed identifiers. Records use 64-bit integers; the types keep a job id from being passed
//! where a task id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}

id_type!(
    /// A customer account; every job belongs to exactly one tenant.
    TenantId(i64)
);
id_type!(
    /// A job: one app run over one input.
    JobId(i64)
);
id_type!(
    /// A task: one chunk of a job.
    TaskId(i64)
);
id_type!(
    /// One result (or failure report) a worker sent for a task.
    ResultId(i64)
);
id_type!(
    /// A registered worker device.
    WorkerId(i64)
);
id_type!(
    /// A lease: one worker's time-limited claim on one task. Random, so a stale lease id from
    /// before a coordinator restart does not name a new lease.
    LeaseId(u64)
);
