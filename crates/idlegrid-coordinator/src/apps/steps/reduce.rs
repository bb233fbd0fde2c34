//! The reducing assemblers: every chunk's output is a JSON object of numbers (checked by the
//! `numbers` validator), and the job's output is one JSON object with the same keys:
//!
//! - `sum`: each number is the sum of that key's numbers over the outputs (word counts, totals);
//!   whole numbers stay whole while they fit in 64 bits;
//! - `stats`: each number becomes `{"n", "mean", "stddev", "ci95": [low, high]}` over the
//!   outputs that have the key, one sample per output (a Monte Carlo estimate per seed): the
//!   sample standard deviation and Student's t interval for the mean (`null` for fewer than two
//!   samples).
//!
//! Outputs are folded in input order, so the same outputs always give the same bytes; keys are
//! written in order.

use super::Outputs;
use super::shape::{MAX_JSON_BYTES, MAX_NUMBERS, numbers};
use crate::apps::plugin::{AssembleError, Assembler};
use async_trait::async_trait;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::records::{JobRecord, OutputRef, Store, StoredBlob};
use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A reducing assembler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    /// Adds the numbers up.
    Sum,
    /// Counts, averages and bounds them.
    Stats,
}

/// What one key has gathered so far.
#[derive(Debug, Clone)]
enum Node {
    /// A number's fold.
    Leaf(Fold),
    /// An object's keys.
    Tree(BTreeMap<String, Node>),
}

/// The fold of one key's numbers.
#[derive(Debug, Clone, Copy)]
struct Fold {
    /// The exact sum while every number is whole and it fits.
    whole: Option<i64>,
    /// The sum as a float.
    sum: f64,
    /// Samples so far.
    n: u64,
    /// Their running mean and sum of squared deviations (Welford).
    mean: f64,
    m2: f64,
}

impl Fold {
    fn new() -> Fold {
        Fold {
            whole: Some(0),
            sum: 0.0,
            n: 0,
            mean: 0.0,
            m2: 0.0,
        }
    }

    fn add(&mut self, number: &Number) {
        let x = number.as_f64().unwrap_or(0.0);
        self.whole = match (self.whole, number.as_i64()) {
            (Some(sum), Some(n)) => sum.checked_add(n),
            _ => None,
        };
        self.sum += x;
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
    }

    fn sum(&self) -> Value {
        match self.whole {
            Some(whole) => Value::from(whole),
            None => float(self.sum),
        }
    }

    fn stats(&self) -> Value {
        let spread = (self.n >= 2).then(|| {
            let stddev = (self.m2 / (self.n - 1) as f64).sqrt();
            let half = t_975(self.n - 1) * stddev / (self.n as f64).sqrt();
            (stddev, half)
        });
        serde_json::json!({
            "n": self.n,
            "mean": float(self.mean),
            "stddev": spread.map(|(s, _)| float(s)),
            "ci95": spread.map(|(_, h)| [float(self.mean - h), float(self.mean + h)]),
        })
    }
}

/// A float as JSON (`null` when it is not finite: a sum that overflowed).
fn float(x: f64) -> Value {
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// Student's t quantile at 0.975 for `df` degrees of freedom: the two-sided 95% multiplier.
fn t_975(df: u64) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => TABLE[df as usize - 1],
        31..=60 => 2.021 + (2.042 - 2.021) * (60 - df) as f64 / 30.0,
        61..=120 => 1.980 + (2.000 - 1.980) * (120 - df) as f64 / 60.0,
        _ => 1.960,
    }
}

/// Folds `object` into `tree`; `keys` counts the numbers the tree holds. An error names a key
/// that is a number in one output and an object in another.
fn fold(
    tree: &mut BTreeMap<String, Node>,
    object: Map<String, Value>,
    at: &str,
    keys: &mut usize,
) -> Result<(), String> {
    for (key, value) in object {
        let path = if at.is_empty() {
            key.clone()
        } else {
            format!("{at}.{key}")
        };
        let clash = || format!("{path:?} is a number in one output and an object in another");
        match value {
            Value::Number(number) => {
                let node = tree.entry(key).or_insert_with(|| {
                    *keys += 1;
                    Node::Leaf(Fold::new())
                });
                match node {
                    Node::Leaf(f) => f.add(&number),
                    Node::Tree(_) => return Err(clash()),
                }
            }
            Value::Object(inner) => {
                let node = tree
                    .entry(key)
                    .or_insert_with(|| Node::Tree(BTreeMap::new()));
                match node {
                    Node::Tree(t) => fold(t, inner, &path, keys)?,
                    Node::Leaf(_) => return Err(clash()),
                }
            }
            // The `numbers` validator accepted nothing else.
            _ => return Err(format!("{path:?} is not a number")),
        }
        if *keys > MAX_NUMBERS {
            return Err(format!(
                "the outputs hold more than {MAX_NUMBERS} different keys together: reduce more \
                 within each task"
            ));
        }
    }
    Ok(())
}

fn render(tree: &BTreeMap<String, Node>, how: Reduce) -> Value {
    Value::Object(
        tree.iter()
            .map(|(key, node)| {
                let value = match node {
                    Node::Leaf(f) if how == Reduce::Sum => f.sum(),
                    Node::Leaf(f) => f.stats(),
                    Node::Tree(t) => render(t, how),
                };
                (key.clone(), value)
            })
            .collect(),
    )
}

/// The outputs folded so far, in input order.
#[derive(Default)]
struct Folded {
    tree: BTreeMap<String, Node>,
    /// Numbers the tree holds.
    keys: usize,
}

impl Folded {
    /// Folds in chunk `index`'s output (a JSON object of numbers).
    fn add(&mut self, index: u64, bytes: &[u8]) -> Result<(), String> {
        let object = numbers(bytes).map_err(|e| format!("chunk {}: {e}", index + 1))?;
        fold(&mut self.tree, object, "", &mut self.keys)
    }

    /// The job's output.
    fn finish(&self, how: Reduce) -> Result<Vec<u8>, String> {
        let mut out = serde_json::to_vec_pretty(&render(&self.tree, how))
            .map_err(|e| format!("the result does not serialize: {e}"))?;
        out.push(b'\n');
        Ok(out)
    }
}

#[async_trait]
impl Assembler for Reduce {
    async fn assemble(
        &self,
        job: &JobRecord,
        store: &Arc<dyn Store>,
        blobs: &Arc<dyn BlobStore>,
        output_key: &str,
    ) -> Result<StoredBlob, AssembleError> {
        let mut folded = Folded::default();
        let mut outputs = Outputs::of(job, store.as_ref());
        while let Some((index, output)) = outputs.next().await? {
            let bytes = match output {
                OutputRef::Inline(bytes) => bytes::Bytes::from(bytes),
                OutputRef::Blob(key) => {
                    if blobs.size(&key).await?.unwrap_or(0) > MAX_JSON_BYTES {
                        return Err(AssembleError::Inconsistent(format!(
                            "chunk {}'s output is over {MAX_JSON_BYTES} bytes",
                            index + 1
                        )));
                    }
                    blobs.get_bytes(&key, None).await?
                }
            };
            folded
                .add(index, &bytes)
                .map_err(AssembleError::Inconsistent)?;
        }
        let out = folded.finish(*self).map_err(AssembleError::Inconsistent)?;
        Ok(blobs.put_bytes(output_key, out.into()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(how: Reduce, outputs: &[&str]) -> Result<Value, String> {
        let mut folded = Folded::default();
        for (i, output) in outputs.iter().enumerate() {
            folded.add(i as u64, output.as_bytes())?;
        }
        Ok(serde_json::from_slice(&folded.finish(how)?).unwrap())
    }

    #[test]
    fn sums_add_key_by_key_and_stay_whole() {
        let out = run(
            Reduce::Sum,
            &[
                r#"{"the": 2, "a": 1, "deep": {"x": 1.5}}"#,
                r#"{"the": 3, "b": 4, "deep": {"x": 1, "y": 2}}"#,
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            serde_json::json!({"a": 1, "b": 4, "the": 5, "deep": {"x": 2.5, "y": 2}})
        );
        // Past 64 bits a sum goes on as a float.
        let big = run(
            Reduce::Sum,
            &[r#"{"n": 9223372036854775807}"#, r#"{"n": 1}"#],
        )
        .unwrap();
        assert!(big["n"].is_f64());
        assert!(
            run(Reduce::Sum, &[r#"{"a": 1}"#, r#"{"a": {"b": 1}}"#])
                .unwrap_err()
                .contains("\"a\"")
        );
    }

    #[test]
    fn stats_give_mean_spread_and_interval() {
        let out = run(
            Reduce::Stats,
            &[r#"{"pi": 3.0}"#, r#"{"pi": 3.2}"#, r#"{"pi": 3.1}"#],
        )
        .unwrap();
        let pi = &out["pi"];
        assert_eq!(pi["n"], 3);
        assert!((pi["mean"].as_f64().unwrap() - 3.1).abs() < 1e-12);
        let sd = pi["stddev"].as_f64().unwrap();
        assert!((sd - 0.1).abs() < 1e-12, "{sd}");
        let ci = pi["ci95"].as_array().unwrap();
        let half = 4.303 * 0.1 / 3f64.sqrt();
        assert!((ci[0].as_f64().unwrap() - (3.1 - half)).abs() < 1e-9);
        assert!((ci[1].as_f64().unwrap() - (3.1 + half)).abs() < 1e-9);
        let one = run(Reduce::Stats, &[r#"{"x": 1}"#]).unwrap();
        assert_eq!(one["x"]["stddev"], Value::Null);
        assert_eq!(one["x"]["ci95"], Value::Null);
    }

    #[test]
    fn t_quantiles_fall_towards_the_normal() {
        assert_eq!(t_975(1), 12.706);
        assert_eq!(t_975(30), 2.042);
        assert!(t_975(45) < 2.042 && t_975(45) > 2.021);
        assert_eq!(t_975(1000), 1.960);
        let mut last = f64::MAX;
        for df in 1..200 {
            assert!(t_975(df) <= last, "{df}");
            last = t_975(df);
        }
    }
}
