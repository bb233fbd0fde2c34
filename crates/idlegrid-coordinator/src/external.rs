//! Customers' own storage: a job's input fetched from a URL or from the customer's
//! S3-compatible bucket instead of an upload, and its output written to the customer's bucket
//! as well as ours.
//!
//! What the customer gave is kept in the job's record (`jobs.external`), secret key included;
//! the API shows it back without the secret. The input is fetched by the Partitioner when the
//! job runs (a crash mid-fetch fetches again), streamed into our blob store under the same
//! size limit as an upload; the output is written by the Assembler before the job completes,
//! so a job is `completed` only once the customer's copy exists.
//!
//! The coordinator fetching a URL a customer names must not become a way into the network it
//! runs in: URLs must be `https://` and resolve to public addresses, the connection goes to
//! the address that was checked, and redirects are not followed. A coordinator started with
//! `allow_private_sources` (tests, a private deployment) lifts both rules.

use crate::grid::Grid;
use crate::secrets::SecretBox;
use futures::TryStreamExt;
use idlegrid_api::jobs::{BucketObject, InputSource};
use idlegrid_storage::StorageError;
use idlegrid_storage::blobs::{BlobStore, ObjectBlobStore, PutError};
use idlegrid_storage::records::{JobRecord, StoredBlob};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// What the records keep about a job's outside storage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct External {
    /// URL to fetch the input from.
    #[serde(default)]
    pub input_url: Option<String>,
    /// Bucket object to fetch the input from.
    #[serde(default)]
    pub input_bucket: Option<Bucket>,
    /// Bucket object to write the output to.
    #[serde(default)]
    pub output_bucket: Option<Bucket>,
}

/// A customer's bucket object with its credentials (the secret key sealed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    bucket: String,
    key: String,
    endpoint: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
}

impl Bucket {
    fn from_request(object: &BucketObject, secrets: Option<&SecretBox>) -> Result<Bucket, String> {
        if object.bucket.trim().is_empty() || object.key.trim().is_empty() {
            return Err("a bucket object needs a `bucket` and a `key`".into());
        }
        if object.access_key_id.is_some() != object.secret_access_key.is_some() {
            return Err("give both `access_key_id` and `secret_access_key`, or neither".into());
        }
        Ok(Bucket {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            endpoint: object.endpoint.clone(),
            region: object.region.clone(),
            access_key_id: object.access_key_id.clone(),
            secret_access_key: match &object.secret_access_key {
                None => None,
                Some(secret) => Some(
                    secrets
                        .ok_or(
                            "this grid cannot keep secrets: its operator has to give the \
                             coordinators a secrets key (--secrets-key)",
                        )?
                        .seal(secret),
                ),
            },
        })
    }

    /// As the API shows it: without the secret.
    fn view(&self) -> BucketObject {
        BucketObject {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: None,
        }
    }

    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    async fn open(
        &self,
        allow_private: bool,
        secrets: Option<&SecretBox>,
    ) -> Result<ObjectBlobStore, String> {
        if let Some(endpoint) = &self.endpoint {
            let url = reqwest::Url::parse(endpoint)
                .map_err(|e| format!("endpoint {endpoint:?} is not a URL: {e}"))?;
            checked_address(&url, allow_private).await?;
        }
        let secret = match &self.secret_access_key {
            None => None,
            Some(sealed) => Some(
                secrets
                    .ok_or("this coordinator has no secrets key to open the bucket's key")?
                    .open(sealed)?,
            ),
        };
        let credentials = self.access_key_id.as_deref().zip(secret.as_deref());
        ObjectBlobStore::customer_bucket(
            &self.bucket,
            self.endpoint.as_deref(),
            self.region.as_deref(),
            credentials,
        )
        .map_err(|e| e.to_string())
    }
}

impl External {
    /// Checks what a customer asked for; `None` when the job uses only this grid's storage.
    pub async fn from_request(
        input_from: Option<&InputSource>,
        output_to: Option<&BucketObject>,
        allow_private: bool,
        secrets: Option<&SecretBox>,
    ) -> Result<Option<External>, String> {
        let mut external = External::default();
        if let Some(source) = input_from {
            match (&source.url, &source.bucket) {
                (Some(url), None) => {
                    let parsed = reqwest::Url::parse(url)
                        .map_err(|e| format!("input_from.url {url:?} is not a URL: {e}"))?;
                    checked_address(&parsed, allow_private)
                        .await
                        .map_err(|e| format!("input_from.url: {e}"))?;
                    external.input_url = Some(url.clone());
                }
                (None, Some(object)) => {
                    let bucket = Bucket::from_request(object, secrets)
                        .map_err(|e| format!("input_from.bucket: {e}"))?;
                    bucket
                        .open(allow_private, secrets)
                        .await
                        .map_err(|e| format!("input_from.bucket: {e}"))?;
                    external.input_bucket = Some(bucket);
                }
                _ => return Err("input_from needs exactly one of `url` and `bucket`".into()),
            }
        }
        if let Some(object) = output_to {
            let bucket =
                Bucket::from_request(object, secrets).map_err(|e| format!("output_to: {e}"))?;
            bucket
                .open(allow_private, secrets)
                .await
                .map_err(|e| format!("output_to: {e}"))?;
            external.output_bucket = Some(bucket);
        }
        Ok((external != External::default()).then_some(external))
    }

    /// A job's outside storage, from its record.
    pub fn of(job: &JobRecord) -> Option<External> {
        job.spec
            .external
            .as_ref()
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// For the record.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Whether the input comes from elsewhere.
    pub fn fetches_input(&self) -> bool {
        self.input_url.is_some() || self.input_bucket.is_some()
    }

    /// The input source as the API shows it.
    pub fn input_view(&self) -> Option<InputSource> {
        match (&self.input_url, &self.input_bucket) {
            (None, None) => None,
            (url, bucket) => Some(InputSource {
                url: url.clone(),
                bucket: bucket.as_ref().map(Bucket::view),
            }),
        }
    }

    /// The output bucket as the API shows it.
    pub fn output_view(&self) -> Option<BucketObject> {
        self.output_bucket.as_ref().map(Bucket::view)
    }
}

/// The address a URL's host resolves to, if the URL may be fetched: `https` (or `http` when
/// private sources are allowed) and, unless they are allowed, a public address. Webhook URLs
/// are checked with it too.
pub(crate) async fn checked_address(
    url: &reqwest::Url,
    allow_private: bool,
) -> Result<SocketAddr, String> {
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        other => return Err(format!("{url} uses {other}://; only https:// is fetched")),
    }
    // An IPv6 literal comes bracketed, which the resolver does not take.
    let host = url
        .host_str()
        .ok_or_else(|| format!("{url} names no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let addr = *addrs
        .first()
        .ok_or_else(|| format!("{host} resolves to no address"))?;
    if !allow_private && let Some(private) = addrs.iter().find(|a| !is_public(a.ip())) {
        return Err(format!(
            "{host} resolves to {}, a private or local address",
            private.ip()
        ));
    }
    Ok(addr)
}

/// Whether an address is on the public internet (not loopback, private, link-local, shared,
/// documentation, multicast or unspecified).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// Fetches a job's input into our blob store. `Ok(Err(reason))` when the source refused or
/// broke the rules (the job fails with the reason), `Err` when our storage failed (retry).
pub async fn fetch_input(
    grid: &Grid,
    job: &JobRecord,
    external: &External,
) -> Result<Result<StoredBlob, String>, StorageError> {
    let allow_private = grid.config.allow_private_sources;
    let limit = match crate::quotas::input_limit(grid, job.spec.tenant).await? {
        Ok(limit) => limit,
        Err(reason) => return Ok(Err(reason)),
    };
    let key = crate::blob_keys::input(job.id);
    let (body, from): (idlegrid_storage::blobs::UploadStream, String) =
        if let Some(url) = &external.input_url {
            match open_url(url, allow_private).await {
                Ok(body) => (body, url.clone()),
                Err(reason) => return Ok(Err(reason)),
            }
        } else if let Some(bucket) = &external.input_bucket {
            let store = match bucket.open(allow_private, grid.secrets.as_ref()).await {
                Ok(store) => store,
                Err(reason) => return Ok(Err(reason)),
            };
            match store.get(&bucket.key, None).await {
                Ok(stream) => (
                    Box::pin(stream.map_err(std::io::Error::other)),
                    bucket.describe(),
                ),
                Err(e) => return Ok(Err(format!("cannot read {}: {e}", bucket.describe()))),
            }
        } else {
            return Ok(Err("the job has no input".into()));
        };
    match grid.blobs.put_stream(&key, body, None, limit).await {
        Ok(stored) => Ok(Ok(stored)),
        Err(PutError::TooLarge { limit }) => Ok(Err(format!(
            "the input at {from} is larger than the {limit}-byte limit"
        ))),
        Err(PutError::Interrupted(e)) => Ok(Err(format!("fetching {from} failed: {e}"))),
        Err(PutError::DigestMismatch { expected, actual }) => Ok(Err(format!(
            "the input at {from} has SHA-256 {actual}, not {expected}"
        ))),
        Err(PutError::Storage(e)) => Err(e),
    }
}

/// A streaming GET of `url`, connected to the address that was checked, without redirects.
async fn open_url(
    url: &str,
    allow_private: bool,
) -> Result<idlegrid_storage::blobs::UploadStream, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let addr = checked_address(&parsed, allow_private).await?;
    let host = parsed.host_str().unwrap_or_default().to_string();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&host, addr)
        .connect_timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot fetch {url}: {e}"))?;
    let response = client
        .get(parsed)
        .send()
        .await
        .map_err(|e| format!("cannot fetch {url}: {e}"))?;
    let status = response.status();
    if status.is_redirection() {
        return Err(format!(
            "{url} redirects ({status}); redirects are not followed: give the final URL"
        ));
    }
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    Ok(Box::pin(
        response.bytes_stream().map_err(std::io::Error::other),
    ))
}

/// Writes a completed job's output to the customer's bucket: the file at the key given, or, for
/// an output that is an archive of files (`archive`: a streaming output, a video with its
/// stills), each of its files under the key as a folder (`KEY/master.m3u8`,
/// `KEY/thumbnails/sprite-001.jpg`...). `Ok(Err(reason))` when the customer's bucket refused
/// it.
pub async fn deliver_output(
    grid: &Grid,
    external: &External,
    output: &StoredBlob,
    archive: bool,
) -> Result<Result<(), String>, StorageError> {
    let Some(bucket) = &external.output_bucket else {
        return Ok(Ok(()));
    };
    let store = match bucket
        .open(grid.config.allow_private_sources, grid.secrets.as_ref())
        .await
    {
        Ok(store) => store,
        Err(reason) => return Ok(Err(reason)),
    };
    if archive {
        let dir = crate::scratch::dir("deliver-")?;
        let tar = crate::apps::video::readable(
            grid.blobs.as_ref(),
            &output.key,
            &dir.path().join("output.tar"),
        )
        .await?;
        return Ok(
            put_archive(&store, &bucket.key, &tar, &dir.path().join("files"))
                .await
                .map(drop)
                .map_err(|e| format!("cannot write the output to {}: {e}", bucket.describe())),
        );
    }
    let body = grid.blobs.get(&output.key, None).await?;
    let body: idlegrid_storage::blobs::UploadStream = Box::pin(body.map_err(std::io::Error::other));
    match store
        .put_stream(&bucket.key, body, Some(&output.sha256), u64::MAX)
        .await
    {
        Ok(_) => Ok(Ok(())),
        Err(PutError::Interrupted(e)) => Err(StorageError::Backend(format!(
            "reading the output to deliver it: {e}"
        ))),
        Err(e) => Ok(Err(format!(
            "cannot write the output to {}: {e}",
            bucket.describe()
        ))),
    }
}

/// Unpacks the tar archive `tar` (the coordinator's own) into `scratch` and stores each of
/// its files in `store` under `folder/`; returns the keys written, in order.
pub async fn put_archive(
    store: &dyn BlobStore,
    folder: &str,
    tar: &std::path::Path,
    scratch: &std::path::Path,
) -> Result<Vec<String>, String> {
    let (tar, into) = (tar.to_path_buf(), scratch.to_path_buf());
    let files = tokio::task::spawn_blocking(move || -> Result<Vec<String>, String> {
        std::fs::create_dir_all(&into).map_err(|e| e.to_string())?;
        let file = std::fs::File::open(&tar).map_err(|e| e.to_string())?;
        let mut archive = tar::Archive::new(file);
        let mut names = Vec::new();
        for entry in archive.entries().map_err(|e| e.to_string())? {
            let mut entry = entry.map_err(|e| e.to_string())?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry.path().map_err(|e| e.to_string())?;
            let name = name.to_string_lossy().trim_start_matches("./").to_string();
            if !entry.unpack_in(&into).map_err(|e| e.to_string())? {
                return Err(format!("the archive names a file outside it: {name}"));
            }
            names.push(name);
        }
        Ok(names)
    })
    .await
    .map_err(|e| e.to_string())??;
    let folder = folder.trim_end_matches('/');
    let mut keys = Vec::with_capacity(files.len());
    for name in files {
        let key = format!("{folder}/{name}");
        store
            .put_file(&key, &scratch.join(&name))
            .await
            .map_err(|e| e.to_string())?;
        keys.push(key);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_archive_is_delivered_as_a_folder_of_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("made");
        std::fs::create_dir_all(folder.join("thumbnails")).unwrap();
        std::fs::write(folder.join("master.m3u8"), "#EXTM3U\n").unwrap();
        std::fs::write(folder.join("thumbnails/sprite-001.jpg"), [0xFF, 0xD8]).unwrap();
        let tar_path = dir.path().join("out.tar");
        let mut builder = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
        builder.append_dir_all(".", &folder).unwrap();
        builder.finish().unwrap();
        drop(builder);
        let store = ObjectBlobStore::local(&dir.path().join("bucket")).unwrap();
        let scratch = dir.path().join("scratch");
        let mut keys = put_archive(&store, "films/one/", &tar_path, &scratch)
            .await
            .unwrap();
        keys.sort();
        assert_eq!(
            keys,
            [
                "films/one/master.m3u8",
                "films/one/thumbnails/sprite-001.jpg"
            ]
        );
        assert_eq!(
            store
                .get_bytes("films/one/master.m3u8", None)
                .await
                .unwrap(),
            "#EXTM3U\n".as_bytes()
        );
        assert_eq!(
            store
                .get_bytes("films/one/thumbnails/sprite-001.jpg", None)
                .await
                .unwrap(),
            [0xFF, 0xD8].as_slice()
        );
    }

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["1.1.1.1", "8.8.8.8", "2606:4700:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn urls_must_be_https_and_public_unless_allowed() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        let err = checked_address(&url("http://example.com/x"), false)
            .await
            .unwrap_err();
        assert!(err.contains("only https://"), "{err}");
        let err = checked_address(&url("https://127.0.0.1/x"), false)
            .await
            .unwrap_err();
        assert!(err.contains("private or local"), "{err}");
        assert!(
            checked_address(&url("http://127.0.0.1:9/x"), true)
                .await
                .is_ok()
        );
        let err = External::from_request(
            Some(&InputSource {
                url: None,
                bucket: None,
            }),
            None,
            true,
            None,
        )
        .await
        .unwrap_err();
        assert!(err.contains("exactly one"), "{err}");
    }
}
