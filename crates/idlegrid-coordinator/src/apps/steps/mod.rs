//! The built-in steps apps are made of, by the names manifests give them: fan-outs
//! (partitioners), validators and fan-ins (assemblers). A published app names one of each from
//! [`PARTITIONERS`], [`VALIDATORS`] and [`ASSEMBLERS`]; its own code is only its task script.
//!
//! A fan-in that reads inside the outputs (merging archives, adding up numbers) relies on each
//! output having a [`Shape`]; the validator an app names makes sure every accepted output has
//! it, so a device that returns something else is refused as its result arrives (and blamed),
//! never at the end where it would fail the whole job.

pub mod archive;
pub mod bytes;
pub mod concat;
pub mod files;
pub mod images;
pub mod integrity;
pub mod lines;
pub mod reduce;
pub mod script;
pub mod shape;
pub mod sweep;

use super::plugin::{AssembleError, Assembler, Partitioner, Validator};
use std::sync::Arc;

/// What a validator makes sure an accepted output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Any bytes.
    Any,
    /// UTF-8 JSON lines: every line one JSON value, the last line ended.
    JsonLines,
    /// One JSON object whose values are numbers or objects of the same kind (a tree of numbers).
    Numbers,
    /// A tar archive of regular files with plain relative names, each name once.
    Tar,
}

/// A fan-out.
pub struct PartitionerStep {
    /// Its name in manifests.
    pub name: &'static str,
    /// What it does, for publishers.
    pub about: &'static str,
    make: fn() -> Arc<dyn Partitioner>,
}

/// A validator.
pub struct ValidatorStep {
    /// Its name in manifests.
    pub name: &'static str,
    /// What it checks, for publishers.
    pub about: &'static str,
    /// What every output it accepts is.
    pub shape: Shape,
    make: fn() -> Arc<dyn Validator>,
}

/// A fan-in.
pub struct AssemblerStep {
    /// Its name in manifests.
    pub name: &'static str,
    /// What it makes, for publishers.
    pub about: &'static str,
    /// What it needs every output to be.
    pub needs: Shape,
    make: fn() -> Arc<dyn Assembler>,
}

/// The fan-outs a published app may name.
pub const PARTITIONERS: &[PartitionerStep] = &[
    PartitionerStep {
        name: "lines",
        about: "a text cut on line ends (chunk_lines per chunk, or the grid's choice)",
        make: || Arc::new(lines::Lines { header: false }),
    },
    PartitionerStep {
        name: "csv",
        about: "a CSV file cut on line ends, its header line starting every chunk",
        make: || Arc::new(lines::Lines { header: true }),
    },
    PartitionerStep {
        name: "bytes",
        about: "any file cut into byte ranges of the grid's choice",
        make: || Arc::new(bytes::ByteRanges),
    },
    PartitionerStep {
        name: "files",
        about: "the files of a zip or tar archive, chunk_items files per chunk, each chunk a tar",
        make: || Arc::new(files::Files),
    },
    PartitionerStep {
        name: "sweep",
        about: "a parameter sweep described in JSON: one task per parameter set or seed",
        make: || Arc::new(sweep::Sweep),
    },
];

/// The validators a published app may name.
pub const VALIDATORS: &[ValidatorStep] = &[
    ValidatorStep {
        name: "integrity",
        about: "the output arrived whole (any bytes)",
        shape: Shape::Any,
        make: || Arc::new(integrity::Integrity),
    },
    ValidatorStep {
        name: "jsonl",
        about: "the output is JSON lines",
        shape: Shape::JsonLines,
        make: || Arc::new(shape::Shaped(Shape::JsonLines)),
    },
    ValidatorStep {
        name: "numbers",
        about: "the output is a JSON object of numbers (nested objects allowed)",
        shape: Shape::Numbers,
        make: || Arc::new(shape::Shaped(Shape::Numbers)),
    },
    ValidatorStep {
        name: "images",
        about: "the output is a tar (as for `tar`) whose JPEG and PNG pictures are pictures, at \
                most the job's `max_side` on each side; some decoded whole",
        shape: Shape::Tar,
        make: || Arc::new(images::Images),
    },
    ValidatorStep {
        name: "tar",
        about: "the output is a tar archive of files with plain relative names",
        shape: Shape::Tar,
        make: || Arc::new(shape::Shaped(Shape::Tar)),
    },
];

/// The fan-ins a published app may name.
pub const ASSEMBLERS: &[AssemblerStep] = &[
    AssemblerStep {
        name: "concat",
        about: "the outputs joined in input order (JSON lines stay JSON lines)",
        needs: Shape::Any,
        make: || Arc::new(concat::Concat),
    },
    AssemblerStep {
        name: "archive",
        about: "one tar archive of every output's files, in input order",
        needs: Shape::Tar,
        make: || Arc::new(archive::Archive::Tar),
    },
    AssemblerStep {
        name: "zip",
        about: "one zip holding every output's files, in input order (pictures and archives \
                stored, the rest deflated)",
        needs: Shape::Tar,
        make: || Arc::new(archive::Archive::Zip),
    },
    AssemblerStep {
        name: "sum",
        about: "one JSON object: the outputs' numbers added up key by key",
        needs: Shape::Numbers,
        make: || Arc::new(reduce::Reduce::Sum),
    },
    AssemblerStep {
        name: "stats",
        about: "one JSON object: for each key, the count, mean, standard deviation and 95% \
                confidence interval of the outputs' numbers",
        needs: Shape::Numbers,
        make: || Arc::new(reduce::Reduce::Stats),
    },
];

/// Whether a validator's outputs are what an assembler needs.
pub fn fits(validator: &ValidatorStep, assembler: &AssemblerStep) -> bool {
    assembler.needs == Shape::Any || assembler.needs == validator.shape
}

/// The fan-out named `name`.
pub fn partitioner(name: &str) -> Option<Arc<dyn Partitioner>> {
    PARTITIONERS
        .iter()
        .find(|s| s.name == name)
        .map(|s| (s.make)())
}

/// The validator named `name`.
pub fn validator(name: &str) -> Option<Arc<dyn Validator>> {
    VALIDATORS
        .iter()
        .find(|s| s.name == name)
        .map(|s| (s.make)())
}

/// The fan-in named `name`.
pub fn assembler(name: &str) -> Option<Arc<dyn Assembler>> {
    ASSEMBLERS
        .iter()
        .find(|s| s.name == name)
        .map(|s| (s.make)())
}

/// The names of `steps`, for error messages.
pub fn names<T>(steps: &[T], name: fn(&T) -> &'static str) -> String {
    steps.iter().map(name).collect::<Vec<_>>().join(", ")
}

/// Chunks per batch handed to the stage (one records transaction each).
pub(crate) const BATCH: usize = 4096;

/// Sends `tasks` to the stage in batches of [`BATCH`]; how many were sent.
pub(super) async fn send_in_batches(
    out: &tokio::sync::mpsc::Sender<super::plugin::Split>,
    tasks: impl Iterator<Item = idlegrid_storage::records::NewTask>,
) -> Result<u64, super::plugin::PartitionError> {
    let mut sent = 0u64;
    let mut tasks = tasks.peekable();
    while tasks.peek().is_some() {
        let batch: Vec<_> = tasks.by_ref().take(BATCH).collect();
        sent += batch.len() as u64;
        out.send(super::plugin::Split::Tasks(batch))
            .await
            .map_err(|_| super::plugin::PartitionError::Stopped)?;
    }
    Ok(sent)
}

/// Chunk outputs read from the records per query.
const PAGE: u32 = 1000;

/// The accepted outputs of a job, read in input order a page at a time.
pub(crate) struct Outputs<'a> {
    job: &'a idlegrid_storage::records::JobRecord,
    store: &'a dyn idlegrid_storage::records::Store,
    page: std::collections::VecDeque<(u64, idlegrid_storage::records::OutputRef)>,
    next: u64,
    /// The job's chunks (its tasks but the steps'), once counted.
    total: Option<u64>,
}

impl<'a> Outputs<'a> {
    /// The outputs of `job`.
    pub fn of(
        job: &'a idlegrid_storage::records::JobRecord,
        store: &'a dyn idlegrid_storage::records::Store,
    ) -> Self {
        Outputs {
            job,
            store,
            page: Default::default(),
            next: 0,
            total: None,
        }
    }

    /// The next chunk's index and output; `None` after the last. An error names the first
    /// chunk without an accepted output.
    pub async fn next(
        &mut self,
    ) -> Result<Option<(u64, idlegrid_storage::records::OutputRef)>, AssembleError> {
        let total = match self.total {
            Some(total) => total,
            None => *self
                .total
                .insert(script::chunk_count(self.job, self.store).await?),
        };
        if self.next >= total {
            return Ok(None);
        }
        if self.page.is_empty() {
            self.page = self
                .store
                .accepted_outputs(self.job.id, self.next, PAGE)
                .await?
                .into();
        }
        match self.page.pop_front() {
            Some((index, output)) if index == self.next => {
                self.next += 1;
                Ok(Some((index, output)))
            }
            _ => Err(missing(self.next, total)),
        }
    }
}

fn missing(index: u64, total: u64) -> AssembleError {
    AssembleError::Inconsistent(format!(
        "chunk {} of {total} has no accepted output",
        index + 1
    ))
}
