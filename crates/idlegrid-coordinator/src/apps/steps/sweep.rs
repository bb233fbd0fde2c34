//! The `sweep` partitioner: the job's input is a JSON document describing parameter sets, and
//! every set (times every seed) becomes an item: one task per item, or `chunk_items` items a
//! task. A chunk is JSON lines, one item a line:
//! `{"index": 0, "seed": 0, "params": {"strike": 90}}`.
//!
//! The input is one of:
//! - `{"seeds": N}`: N items with seeds `first_seed`, `first_seed + 1`, … and no parameters;
//! - `{"sets": [{…}, {…}]}`: one item per set (each a JSON object);
//! - `{"grid": {"strike": [90, 100], "sigma": [0.1, 0.2]}}`: one item per combination of the
//!   values, names in alphabetical order, the last name changing fastest;
//!
//! and `sets` or `grid` may be given with `seeds`: every set runs with each of the seeds (the
//! same seeds for every set, so sets are compared on the same random numbers). `first_seed`
//! (default 0) is the first seed.
//!
//! Items are written once, as one blob of JSON lines, and chunks are byte ranges of it. A
//! chunk's output depends only on its items, never on how the grid cut the sweep: by default
//! every item is a task of its own.
//!
//! Cost model: a parameter set's work is unknown to the grid, so each item is priced as
//! [`MS_PER_ITEM`] reference core-milliseconds, plus the chunk's start-up.

use super::lines::MS_PER_CHUNK;
use super::send_in_batches;
use crate::apps::plugin::{
    InputSize, PartitionError, Partitioner, Plan, Split, Workload, count_option,
    refuse_other_options,
};
use async_trait::async_trait;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::records::{JobRecord, NewTask};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// Most items a sweep may have.
pub const MAX_ITEMS: u64 = 100_000;
/// Largest sweep description, in bytes.
pub const MAX_INPUT_BYTES: u64 = 1 << 20;
/// Work of one item (reference core-ms).
pub const MS_PER_ITEM: i64 = 1_000;

/// The sweep partitioner.
pub struct Sweep;

/// One item of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Its seed.
    pub seed: u64,
    /// Its parameter set.
    pub params: Map<String, Value>,
}

/// The items `input` describes, in order; the error says what is wrong with it.
pub fn items(input: &[u8]) -> Result<Vec<Item>, String> {
    let spec: Value = serde_json::from_slice(input)
        .map_err(|e| format!("the sweep description is not JSON: {e}"))?;
    let Value::Object(spec) = spec else {
        return Err("the sweep description must be a JSON object".into());
    };
    if let Some(unknown) = spec
        .keys()
        .find(|k| !["seeds", "first_seed", "sets", "grid"].contains(&k.as_str()))
    {
        return Err(format!(
            "the sweep description has {unknown:?}: it may have seeds, first_seed, sets and grid"
        ));
    }
    let whole = |name: &str| -> Result<Option<u64>, String> {
        match spec.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("{name} must be a whole number, got {v}")),
        }
    };
    let seeds = whole("seeds")?;
    let first_seed = whole("first_seed")?.unwrap_or(0);
    if seeds == Some(0) || seeds.is_some_and(|n| n > MAX_ITEMS) {
        return Err(format!("seeds must be from 1 to {MAX_ITEMS}"));
    }
    let sets: Vec<Map<String, Value>> = match (spec.get("sets"), spec.get("grid")) {
        (Some(_), Some(_)) => return Err("give sets or grid, not both".into()),
        (Some(Value::Array(sets)), None) => {
            if sets.is_empty() {
                return Err("sets must hold at least one parameter set".into());
            }
            if sets.len() as u64 > MAX_ITEMS {
                return Err(format!("a sweep may have at most {MAX_ITEMS} sets"));
            }
            sets.iter()
                .enumerate()
                .map(|(i, set)| match set {
                    Value::Object(set) => Ok(set.clone()),
                    _ => Err(format!("set {} must be a JSON object, got {set}", i + 1)),
                })
                .collect::<Result<_, _>>()?
        }
        (Some(_), None) => return Err("sets must be a list of JSON objects".into()),
        (None, Some(Value::Object(grid))) => product(grid)?,
        (None, Some(_)) => {
            return Err("grid must be an object naming a list of values for each parameter".into());
        }
        (None, None) if seeds.is_some() => vec![Map::new()],
        (None, None) => return Err("the sweep description needs seeds, sets or grid".into()),
    };
    let per_set = seeds.unwrap_or(1);
    let total = (sets.len() as u64).saturating_mul(per_set);
    if total > MAX_ITEMS {
        return Err(format!(
            "this sweep has {total} items ({} sets × {per_set} seeds); the limit is {MAX_ITEMS}",
            sets.len()
        ));
    }
    if first_seed.checked_add(per_set).is_none() {
        return Err("first_seed is too large".into());
    }
    Ok(sets
        .into_iter()
        .flat_map(|set| {
            (0..per_set).map(move |k| Item {
                seed: first_seed + k,
                params: set.clone(),
            })
        })
        .collect())
}

/// Every combination of a grid's values (names in order, the last changing fastest).
fn product(grid: &Map<String, Value>) -> Result<Vec<Map<String, Value>>, String> {
    if grid.is_empty() {
        return Err("grid must name at least one parameter".into());
    }
    let mut names: Vec<&String> = grid.keys().collect();
    names.sort();
    let mut combos = vec![Map::new()];
    for name in names {
        let values = match &grid[name] {
            Value::Array(values) if !values.is_empty() => values,
            _ => return Err(format!("grid.{name} must be a non-empty list of values")),
        };
        if (combos.len() as u64).saturating_mul(values.len() as u64) > MAX_ITEMS {
            return Err(format!("the grid has more than {MAX_ITEMS} combinations"));
        }
        combos = combos
            .into_iter()
            .flat_map(|combo| {
                values.iter().map(move |value| {
                    let mut next = combo.clone();
                    next.insert(name.clone(), value.clone());
                    next
                })
            })
            .collect();
    }
    Ok(combos)
}

/// Items per chunk the customer chose, if any.
pub fn chunk_items(options: &Value) -> Result<Option<u64>, String> {
    count_option(options, "items", "chunk_items", MAX_ITEMS)
}

fn workload(items: u64, per_chunk: u64) -> Workload {
    let chunks = items.div_ceil(per_chunk);
    Workload {
        work_ms: items as i64 * MS_PER_ITEM + chunks as i64 * MS_PER_CHUNK,
        chunks,
        largest_chunk_ms: per_chunk.min(items) as i64 * MS_PER_ITEM + MS_PER_CHUNK,
    }
}

async fn read_input(job: &JobRecord, blobs: &dyn BlobStore) -> Result<Vec<Item>, PartitionError> {
    let input = job
        .input
        .as_ref()
        .ok_or_else(|| PartitionError::Rejected("the job has no input".into()))?;
    if input.size > MAX_INPUT_BYTES {
        return Err(PartitionError::Rejected(format!(
            "the sweep description is {} bytes; the limit is {MAX_INPUT_BYTES}",
            input.size
        )));
    }
    let bytes = blobs.get_bytes(&input.key, None).await?;
    items(&bytes).map_err(PartitionError::Rejected)
}

#[async_trait]
impl Partitioner for Sweep {
    fn check_job(&self, _params: &Value, options: &Value) -> Result<(), String> {
        refuse_other_options(options, &["items"], "a sweep: it is cut by chunk_items")?;
        chunk_items(options).map(|_| ())
    }

    fn workload(
        &self,
        _params: &Value,
        options: &Value,
        size: &InputSize,
        _plan: &Plan,
    ) -> Result<Workload, String> {
        let per_chunk = chunk_items(options)?.unwrap_or(1);
        match size {
            InputSize::Items { items, .. } => Ok(workload(*items, per_chunk)),
            _ => Err(
                "a sweep is priced by its items: give the job's id with its input uploaded".into(),
            ),
        }
    }

    async fn measure(
        &self,
        job: &JobRecord,
        blobs: &dyn BlobStore,
    ) -> Result<InputSize, PartitionError> {
        let items = read_input(job, blobs).await?;
        Ok(InputSize::Items {
            bytes: job.input.as_ref().map_or(0, |i| i.size),
            items: items.len() as u64,
        })
    }

    async fn split(
        &self,
        job: &JobRecord,
        blobs: &dyn BlobStore,
        _plan: &Plan,
        out: mpsc::Sender<Split>,
    ) -> Result<Option<Value>, PartitionError> {
        let items = read_input(job, blobs).await?;
        let per_chunk = chunk_items(&job.spec.partition_options)
            .map_err(PartitionError::Rejected)?
            .unwrap_or(1);
        out.send(Split::Workload(workload(items.len() as u64, per_chunk)))
            .await
            .map_err(|_| PartitionError::Stopped)?;
        // All items as JSON lines in one blob; each chunk is the byte range of its lines.
        let mut lines = Vec::new();
        let mut ends = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let line = serde_json::json!({
                "index": index,
                "seed": item.seed,
                "params": item.params,
            });
            serde_json::to_writer(&mut lines, &line).map_err(|e| {
                PartitionError::Rejected(format!("an item does not serialize: {e}"))
            })?;
            lines.push(b'\n');
            ends.push(lines.len() as u64);
        }
        let key = crate::blob_keys::chunk(job.id, "items.jsonl");
        blobs.put_bytes(&key, lines.into()).await?;
        let mut start = 0u64;
        let mut tasks = Vec::with_capacity(ends.len().div_ceil(per_chunk as usize));
        for (index, group) in ends.chunks(per_chunk as usize).enumerate() {
            let end = *group.last().unwrap_or(&start);
            tasks.push(NewTask {
                index: index as u64,
                input_key: Some(key.clone()),
                offset: start,
                len: end - start,
                meta: None,
                work_ms: group.len() as i64 * MS_PER_ITEM + MS_PER_CHUNK,
            });
            start = end;
        }
        let chunks = send_in_batches(&out, tasks.into_iter()).await?;
        Ok(Some(serde_json::json!({
            "items": items.len(),
            "chunks": chunks,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn of(spec: Value) -> Result<Vec<(u64, Value)>, String> {
        items(spec.to_string().as_bytes()).map(|items| {
            items
                .into_iter()
                .map(|i| (i.seed, Value::Object(i.params)))
                .collect()
        })
    }

    #[test]
    fn seeds_sets_and_grids_become_items_in_order() {
        assert_eq!(
            of(json!({"seeds": 3, "first_seed": 10})).unwrap(),
            vec![(10, json!({})), (11, json!({})), (12, json!({}))]
        );
        assert_eq!(
            of(json!({"sets": [{"a": 1}, {"a": 2}], "seeds": 2})).unwrap(),
            vec![
                (0, json!({"a": 1})),
                (1, json!({"a": 1})),
                (0, json!({"a": 2})),
                (1, json!({"a": 2}))
            ]
        );
        // Names in order, the last changing fastest.
        assert_eq!(
            of(json!({"grid": {"b": [1, 2], "a": ["x", "y"]}})).unwrap(),
            vec![
                (0, json!({"a": "x", "b": 1})),
                (0, json!({"a": "x", "b": 2})),
                (0, json!({"a": "y", "b": 1})),
                (0, json!({"a": "y", "b": 2}))
            ]
        );
    }

    #[test]
    fn bad_descriptions_are_named() {
        for (spec, says) in [
            (json!([1]), "JSON object"),
            (json!({}), "needs seeds, sets or grid"),
            (json!({"seeds": 0}), "from 1"),
            (json!({"seeds": -1}), "whole number"),
            (json!({"seeds": MAX_ITEMS + 1}), "from 1"),
            (json!({"sets": [1]}), "set 1 must be a JSON object"),
            (json!({"sets": []}), "at least one"),
            (json!({"sets": [{}], "grid": {"a": [1]}}), "not both"),
            (json!({"grid": {"a": []}}), "grid.a"),
            (json!({"grid": {}}), "at least one parameter"),
            (json!({"seeds": 2, "extra": 1}), "\"extra\""),
            (json!({"seeds": 2, "first_seed": u64::MAX}), "too large"),
            (json!({"sets": [{}, {}], "seeds": MAX_ITEMS}), "the limit"),
        ] {
            let err = of(spec.clone()).unwrap_err();
            assert!(err.contains(says), "{spec}: {err}");
        }
        // A grid whose product explodes is refused before it is built.
        let big: Vec<u64> = (0..1000).collect();
        let err = of(json!({"grid": {"a": big, "b": big, "c": big}})).unwrap_err();
        assert!(err.contains("more than"), "{err}");
        assert!(items(b"{").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn work_counts_items_and_chunks() {
        let w = workload(10, 3);
        assert_eq!(w.chunks, 4);
        assert_eq!(w.work_ms, 10 * MS_PER_ITEM + 4 * MS_PER_CHUNK);
        assert_eq!(w.largest_chunk_ms, 3 * MS_PER_ITEM + MS_PER_CHUNK);
    }
}
