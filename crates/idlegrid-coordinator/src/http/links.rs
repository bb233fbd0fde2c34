//! Links to a completed job's output that a browser can follow without an `Authorization`
//! header: an `<a download>` that streams the file, and a `<video src>` pointed at an HLS
//! output's master playlist, whose relative segment URLs resolve under the same link.
//!
//! A link carries its job and expiry, signed with the grid's signing key (derived from the
//! secrets key, `secrets.rs`); it grants reading that one job's output until it expires, and
//! nothing else. The customer asks for links with their API key (`POST /v1/jobs/{id}/links`).

use crate::grid::Grid;
use crate::http::auth::Customer;
use crate::http::error::{ApiError, ApiPath, ApiResult};
use crate::http::views::{completed_output, is_archive, is_hls, output_file, own_job};
use crate::state::hls_index::TarIndex;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use idlegrid_api::jobs::OutputLinks;
use idlegrid_api::{ErrorBody, JobId};
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::records::JobRecord;
use std::sync::Arc;

/// How long a link works.
const LINK_SECS: i64 = 6 * 3600;

/// A signed link's token: `<job>.<expiry unix s>.<hex HMAC>`.
fn token(grid: &Grid, job: JobId, expires: i64) -> ApiResult<String> {
    let signer = signer(grid)?;
    let message = format!("link:{}:{expires}", job.0);
    Ok(format!(
        "{}.{expires}.{}",
        job.0,
        hex::encode(signer.sign(message.as_bytes()))
    ))
}

fn signer(grid: &Grid) -> ApiResult<&crate::secrets::SecretBox> {
    grid.secrets.as_ref().ok_or_else(|| {
        ApiError::invalid(
            "no_signing_key",
            "this coordinator shares its records and was started without --secrets-key, so it cannot sign links; download with the API key instead (GET /v1/jobs/{id}/output)",
        )
    })
}

/// The job a token grants, if it is genuine and unexpired.
fn check(grid: &Grid, token: &str) -> ApiResult<JobId> {
    let refused = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_link",
            "this link is not valid or has expired; open the job again to get a fresh one",
        )
    };
    let mut parts = token.splitn(3, '.');
    let (Some(job), Some(expires), Some(signature)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(refused());
    };
    let (Ok(job), Ok(expires), Ok(signature)) = (
        job.parse::<i64>(),
        expires.parse::<i64>(),
        hex::decode(signature),
    ) else {
        return Err(refused());
    };
    let message = format!("link:{job}:{expires}");
    if !signer(grid)?.verify(message.as_bytes(), &signature) {
        return Err(refused());
    }
    if jiff::Timestamp::now().as_second() > expires {
        return Err(refused());
    }
    Ok(JobId(job))
}

/// Links to a completed job's output (and, for HLS, its master playlist) that need no
/// `Authorization` header, for browsers. They expire after six hours.
#[utoipa::path(post, path = "/v1/jobs/{id}/links", tag = "jobs",
    params(("id" = i64, Path, description = "job id")), security(("api_key" = [])),
    responses((status = 200, body = OutputLinks), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn create_links(
    State(grid): State<Arc<Grid>>,
    customer: Customer,
    ApiPath(id): ApiPath<JobId>,
) -> ApiResult<axum::Json<OutputLinks>> {
    let job = own_job(&grid, customer, id).await?;
    completed_output(&job)?;
    let expires = jiff::Timestamp::now().as_second() + LINK_SECS;
    let token = token(&grid, id, expires)?;
    let stills = job
        .facts
        .as_ref()
        .map_or(serde_json::Value::Null, |f| f["stills"].clone());
    Ok(axum::Json(OutputLinks {
        download: format!("/v1/links/{token}/output"),
        hls: is_hls(&job).then(|| {
            format!(
                "/v1/links/{token}/hls/{}",
                crate::apps::video::MASTER_PLAYLIST
            )
        }),
        // Streaming outputs packaged as CMAF have a DASH manifest beside the HLS playlists.
        dash: (job
            .facts
            .as_ref()
            .is_some_and(|f| f["hls"]["packaging"] == "cmaf"))
        .then(|| {
            format!(
                "/v1/links/{token}/hls/{}",
                crate::apps::video::DASH_MANIFEST
            )
        }),
        video: archived_video(&job).map(|name| format!("/v1/links/{token}/hls/{name}")),
        poster: stills["poster"]
            .is_object()
            .then(|| format!("/v1/links/{token}/hls/{}", crate::apps::video::POSTER)),
        thumbnails: stills["thumbnails"].is_object().then(|| {
            format!(
                "/v1/links/{token}/hls/{}/{}",
                crate::apps::video::THUMBNAILS,
                crate::apps::video::THUMBNAIL_INDEX
            )
        }),
        expires_at: jiff::Timestamp::from_second(expires).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
    }))
}

/// The video's name in an output archive of one video and its stills.
fn archived_video(job: &JobRecord) -> Option<String> {
    let facts = job.facts.as_ref()?;
    if is_hls(job) || facts["output"]["archive"] != true {
        return None;
    }
    let container = facts["output"]["container"].as_str().unwrap_or("mp4");
    Some(format!("{}.{container}", crate::apps::video::VIDEO_STEM))
}

async fn linked_job(grid: &Grid, token: &str) -> ApiResult<JobRecord> {
    let id = check(grid, token)?;
    grid.store
        .job(id)
        .await?
        .ok_or_else(|| ApiError::not_found("job_not_found", format!("job {id} no longer exists")))
}

/// `GET /v1/links/{token}/output`: the output file, as an attachment (byte ranges served, so
/// a player can seek in it and a download can resume).
pub async fn linked_output(
    State(grid): State<Arc<Grid>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let job = linked_job(&grid, &token).await?;
    let output = completed_output(&job)?;
    let (file_name, content_type) = output_file(&job);
    let mut response = ranged(&grid, &output.key, 0, output.size, &headers, content_type).await?;
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// The bytes `offset..offset + size` of the blob at `key` as a response of `content_type`:
/// whole (200), or the one range a `Range: bytes=` header asks for (206 with its
/// `Content-Range`; 416 when it lies outside). Ranges are always offered.
async fn ranged(
    grid: &Grid,
    key: &str,
    offset: u64,
    size: u64,
    headers: &HeaderMap,
    content_type: &'static str,
) -> ApiResult<Response> {
    let asked = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| byte_range(v, size));
    let (status, from, to) = match asked {
        None | Some(Err(RangeAsk::Ignored)) => (StatusCode::OK, 0, size),
        Some(Ok((from, to))) => (StatusCode::PARTIAL_CONTENT, from, to),
        Some(Err(RangeAsk::Unsatisfiable)) => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Ok(response);
        }
    };
    let stream = grid
        .blobs
        .get(key, Some(offset + from..offset + to))
        .await?;
    let mut response = Body::from_stream(stream).into_response();
    *response.status_mut() = status;
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(to - from));
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(value) = HeaderValue::from_str(&format!("bytes {from}-{}/{size}", to - 1))
    {
        out.insert(header::CONTENT_RANGE, value);
    }
    Ok(response)
}

/// Why a `Range` header is not served as a range.
#[derive(Debug, PartialEq)]
enum RangeAsk {
    /// Not one byte range this server reads (several ranges, other units): the whole file.
    Ignored,
    /// A byte range wholly past the end.
    Unsatisfiable,
}

/// The half-open byte range `Range: bytes=A-B`, `bytes=A-` or `bytes=-N` asks for in a file of
/// `size` bytes (B past the end is cut to it).
fn byte_range(value: &str, size: u64) -> Result<(u64, u64), RangeAsk> {
    let spec = value
        .trim()
        .strip_prefix("bytes=")
        .ok_or(RangeAsk::Ignored)?;
    if spec.contains(',') {
        return Err(RangeAsk::Ignored);
    }
    let (a, b) = spec.trim().split_once('-').ok_or(RangeAsk::Ignored)?;
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| RangeAsk::Ignored);
    let (from, to) = match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, true) => return Err(RangeAsk::Ignored),
        // The last N bytes.
        (true, false) => {
            let n = number(b)?;
            if n == 0 {
                return Err(RangeAsk::Unsatisfiable);
            }
            (size.saturating_sub(n), size)
        }
        (false, true) => (number(a)?, size),
        (false, false) => {
            let (from, last) = (number(a)?, number(b)?);
            if last < from {
                return Err(RangeAsk::Ignored);
            }
            (from, last.saturating_add(1).min(size))
        }
    };
    if from >= size {
        return Err(RangeAsk::Unsatisfiable);
    }
    Ok((from, to))
}

/// `GET /v1/links/{token}/hls/{path}`: one file of an output archive: of a streaming output
/// (the DASH manifest, an HLS playlist or a segment; older outputs' MPEG-TS segments too), or
/// of a video with its stills (the video, the poster, thumbnails, sprite sheets and their
/// index).
pub async fn linked_hls_file(
    State(grid): State<Arc<Grid>>,
    Path((token, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let job = linked_job(&grid, &token).await?;
    let output = completed_output(&job)?;
    if !is_archive(&job) {
        return Err(ApiError::not_found(
            "not_hls",
            format!("job {} has no HLS output or stills", job.id),
        ));
    }
    let index = grid
        .hls_index
        .get(&output.key, || {
            read_tar_index(grid.blobs.as_ref(), &output.key)
        })
        .await?;
    let Some(&(offset, size)) = index.get(path.as_str()) else {
        return Err(ApiError::not_found(
            "no_such_file",
            format!("the output of job {} has no file {path:?}", job.id),
        ));
    };
    let content_type = if path.ends_with(".m3u8") {
        "application/vnd.apple.mpegurl"
    } else if path.ends_with(".mpd") {
        "application/dash+xml"
    } else if path.ends_with(".m4s") {
        "video/iso.segment"
    } else if path.ends_with(".ts") {
        "video/mp2t"
    } else if path.ends_with(".jpg") {
        "image/jpeg"
    } else if path.ends_with(".vtt") {
        "text/vtt; charset=utf-8"
    } else if path.ends_with(".mp4") {
        "video/mp4"
    } else if path.ends_with(".mov") {
        "video/quicktime"
    } else if path.ends_with(".mkv") {
        "video/x-matroska"
    } else if path.ends_with(".webm") {
        "video/webm"
    } else {
        "application/octet-stream"
    };
    ranged(&grid, &output.key, offset, size, &headers, content_type).await
}

/// Reads a tar archive's headers (one ranged read each, skipping the contents) into an index
/// of its regular files.
async fn read_tar_index(blobs: &dyn BlobStore, key: &str) -> ApiResult<TarIndex> {
    let damaged = |why: &str| {
        tracing::error!(key, why, "HLS output archive is damaged");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "damaged_output",
            format!("the stored HLS output is damaged ({why})"),
        )
    };
    let total = blobs
        .size(key)
        .await?
        .ok_or_else(|| damaged("it is missing"))?;
    let mut index = TarIndex::new();
    let mut offset = 0u64;
    while offset + 512 <= total {
        let block = blobs.get_bytes(key, Some(offset..offset + 512)).await?;
        if block.iter().all(|&b| b == 0) {
            break;
        }
        let header = tar::Header::from_byte_slice(&block);
        let size = header.size().map_err(|_| damaged("a header's size"))?;
        if header.entry_type().is_file() {
            let path = header.path().map_err(|_| damaged("a header's path"))?;
            let path = path.to_string_lossy();
            let path = path.trim_start_matches("./").to_string();
            index.insert(path, (offset + 512, size));
        }
        offset += 512 + size.div_ceil(512) * 512;
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_are_read_as_browsers_send_them() {
        assert_eq!(byte_range("bytes=0-", 100), Ok((0, 100)));
        assert_eq!(byte_range("bytes=10-19", 100), Ok((10, 20)));
        assert_eq!(byte_range("bytes=90-500", 100), Ok((90, 100)));
        assert_eq!(byte_range("bytes=-30", 100), Ok((70, 100)));
        assert_eq!(byte_range("bytes=-300", 100), Ok((0, 100)));
        assert_eq!(byte_range("bytes=100-", 100), Err(RangeAsk::Unsatisfiable));
        assert_eq!(byte_range("bytes=-0", 100), Err(RangeAsk::Unsatisfiable));
        for ignored in [
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=-",
        ] {
            assert_eq!(
                byte_range(ignored, 100),
                Err(RangeAsk::Ignored),
                "{ignored}"
            );
        }
    }
    use idlegrid_storage::blobs::ObjectBlobStore;

    #[tokio::test]
    async fn an_archives_files_are_found_by_their_headers_alone() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = ObjectBlobStore::local(dir.path()).unwrap();
        let mut archive = tar::Builder::new(Vec::new());
        let files: [(&str, Vec<u8>); 3] = [
            ("./master.m3u8", b"#EXTM3U\n".to_vec()),
            ("./720p/index.m3u8", b"#EXTM3U\n#EXT-X-ENDLIST\n".to_vec()),
            // Longer than one block, and not a multiple of it.
            (
                "./720p/segment_00000.ts",
                (0..1500u32).map(|i| i as u8).collect(),
            ),
        ];
        for (path, bytes) in &files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            archive.append_data(&mut header, path, &bytes[..]).unwrap();
        }
        let tar = archive.into_inner().unwrap();
        blobs.put_bytes("out/hls", tar.into()).await.unwrap();
        let index = read_tar_index(&blobs, "out/hls").await.unwrap();
        assert_eq!(index.len(), 3);
        for (path, bytes) in &files {
            let (offset, size) = index[path.trim_start_matches("./")];
            let read = blobs
                .get_bytes("out/hls", Some(offset..offset + size))
                .await
                .unwrap();
            assert_eq!(&read[..], &bytes[..], "{path}");
        }
        assert!(!index.contains_key("../etc/passwd"));
    }
}
