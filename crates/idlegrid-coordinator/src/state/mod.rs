//! What a coordinator keeps in memory, owned by no single stage or handler: leaf modules that
//! know nothing of the grid, which holds one of each. Losing any of it loses no
//! accepted data: it is either a cache of the records or rebuilt from them.

pub mod credentials;
pub mod hls_index;
pub mod presence;
pub mod recorder;
pub mod schedule;
pub mod signups;
pub mod stats;
pub mod uploads;
