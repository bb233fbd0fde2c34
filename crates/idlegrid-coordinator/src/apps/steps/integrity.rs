//! The `integrity` validator: the output a worker reported is the output stored — size and
//! SHA-256 agree — and within the task output limit. Fit for apps whose outputs have no
//! structure to check (python-map); content-aware validators come with their apps.

use crate::apps::plugin::{Judgment, Validator};
use async_trait::async_trait;
use idlegrid_storage::blobs::{BlobStore, sha256_hex};
use idlegrid_storage::records::{JobRecord, OutputRef, ResultRecord};

/// The integrity validator.
pub struct Integrity;

#[async_trait]
impl Validator for Integrity {
    async fn validate(
        &self,
        _job: &JobRecord,
        result: &ResultRecord,
        blobs: &dyn BlobStore,
    ) -> idlegrid_storage::Result<Judgment> {
        let verdict = match &result.output {
            OutputRef::Inline(bytes) => {
                if bytes.len() as u64 != result.size {
                    Err(format!(
                        "output is {} bytes, the worker reported {}",
                        bytes.len(),
                        result.size
                    ))
                } else if sha256_hex(bytes) != result.sha256 {
                    Err("output does not match the SHA-256 the worker reported".into())
                } else {
                    Ok(())
                }
            }
            OutputRef::Blob(key) => match blobs.size(key).await? {
                Some(size) if size == result.size => Ok(()),
                Some(size) => Err(format!(
                    "stored output is {size} bytes, the worker reported {}",
                    result.size
                )),
                None => Err("the uploaded output is missing".into()),
            },
        };
        Ok(match verdict {
            Ok(()) => Judgment::Accept,
            Err(reason) => Judgment::Reject(reason),
        })
    }
}
