//! Where inputs come from: a URL, the customer's bucket (with secrets to reach it), or an
//! upload in parts.

use crate::harness::*;

#[tokio::test]
async fn an_input_comes_from_a_url_and_only_public_https_ones_by_default() {
    let url = serve_file("alpha\nbeta\ngamma\n").await;
    let open = TestGrid::start(|c| c.allow_private_sources = true).await;
    let customer = open.customer();
    let source = InputSource {
        url: Some(url.clone()),
        bucket: None,
    };
    let job = customer
        .create_job(&create_from(source.clone(), None))
        .await
        .unwrap();
    // Nothing to upload: the coordinator fetches it when the job runs.
    let refused = customer
        .upload_input_bytes(job.id, "x".to_string().into())
        .await
        .unwrap_err();
    assert_eq!(api_code(refused), (409, "input_fetched".into()));
    customer.run_job(job.id).await.unwrap();
    let worker = open.worker("w").await;
    let done = upper_case_until_done(&open, &worker, job.id).await;
    assert_eq!(done.state, JobState::Completed, "{done:?}");
    assert_eq!(done.input_from.unwrap().url.as_deref(), Some(url.as_str()));
    let out = open.dir.path().join("out");
    customer
        .download_output(job.id, &out, &done.output.unwrap().sha256)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(out).unwrap(),
        "ALPHA\nBETA\nGAMMA\n"
    );
    open.stop().await;

    // A coordinator with the defaults reaches neither plain HTTP nor local addresses.
    let strict = TestGrid::start(|_| {}).await;
    let err = strict
        .customer()
        .create_job(&create_from(source, None))
        .await
        .unwrap_err();
    let (status, code) = api_code(err);
    assert_eq!((status, code.as_str()), (422, "invalid_source"));
    let local_https = InputSource {
        url: Some(url.replace("http://", "https://")),
        bucket: None,
    };
    let err = strict
        .customer()
        .create_job(&create_from(local_https, None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("private or local"), "{err}");
    strict.stop().await;
}

#[tokio::test]
async fn an_input_comes_from_the_customers_bucket_and_the_output_goes_back_to_it() {
    let Some(theirs) = CustomerBucket::open("customer bucket test") else {
        return;
    };
    let prefix = unique_name("customer-");
    use idlegrid_storage::blobs::BlobStore;
    theirs
        .store
        .put_bytes(&format!("{prefix}/in.txt"), "one\ntwo\n".into())
        .await
        .unwrap();
    let object = |key: &str| theirs.object(&format!("{prefix}/{key}"));
    let grid = TestGrid::start(|c| c.allow_private_sources = true).await;
    let customer = grid.customer();
    let source = InputSource {
        url: None,
        bucket: Some(object("in.txt")),
    };
    let job = customer
        .create_job(&create_from(source, Some(object("out.txt"))))
        .await
        .unwrap();
    // The secret is kept, sealed, and never shown back.
    let shown = serde_json::to_string(&customer.job(job.id).await.unwrap()).unwrap();
    assert!(
        shown.contains("customer-key") && !shown.contains("customer-secret"),
        "{shown}"
    );
    let stored = grid.grid.store.job(job.id).await.unwrap().unwrap();
    let stored = stored.spec.external.unwrap().to_string();
    assert!(
        stored.contains("sealed1:") && !stored.contains("customer-secret"),
        "{stored}"
    );
    customer.run_job(job.id).await.unwrap();
    let worker = grid.worker("w").await;
    let done = upper_case_until_done(&grid, &worker, job.id).await;
    assert_eq!(done.state, JobState::Completed, "{done:?}");
    let delivered = theirs
        .store
        .get_bytes(&format!("{prefix}/out.txt"), None)
        .await
        .unwrap();
    assert_eq!(delivered, "ONE\nTWO\n");
    grid.stop().await;
}

#[tokio::test]
async fn a_grid_without_a_secrets_key_refuses_to_keep_secrets() {
    // Records other coordinators may share, and no key given: nothing to seal secrets with.
    let Some(url) = fresh_postgres() else { return };
    let grid = TestGrid::start(|c| {
        c.backends.store = Some(url);
        c.allow_private_sources = true;
    })
    .await;
    let source = InputSource {
        url: None,
        bucket: Some(BucketObject {
            bucket: "b".into(),
            key: "k".into(),
            endpoint: Some("http://127.0.0.1:9".into()),
            region: None,
            access_key_id: Some("id".into()),
            secret_access_key: Some("secret".into()),
        }),
    };
    let err = grid
        .customer()
        .create_job(&create_from(source, None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("secrets key"), "{err}");
    grid.stop().await;
}

#[tokio::test]
async fn an_input_uploaded_in_parts_resumes_and_is_joined_in_order() {
    let grid = TestGrid::start(|_| {}).await;
    let customer = grid.customer();
    let job = grid.create(2, Preferences::default()).await;
    let parts = ["one\ntwo\n", "three\nfour\n", "five\n"];
    customer
        .upload_part(job.id, 0, parts[0].into())
        .await
        .unwrap();
    customer
        .upload_part(job.id, 2, "wrong\n".into())
        .await
        .unwrap();
    // Part 2 sent again with other bytes replaces the first copy.
    customer
        .upload_part(job.id, 2, parts[2].into())
        .await
        .unwrap();
    let received = customer.upload_parts(job.id).await.unwrap().parts;
    let numbers: Vec<u32> = received.iter().map(|p| p.part).collect();
    assert_eq!(numbers, [0, 2], "part 1 is missing, part 2 is there once");
    assert_eq!(received[1].sha256, sha256_bytes(parts[2].as_bytes()));
    let complete = |n, sha256: Option<String>| CompleteUpload { parts: n, sha256 };
    assert_eq!(
        api_code(
            customer
                .complete_upload(job.id, &complete(3, None))
                .await
                .unwrap_err()
        ),
        (409, "missing_part".into())
    );
    customer
        .upload_part(job.id, 1, parts[1].into())
        .await
        .unwrap();
    assert_eq!(
        api_code(
            customer
                .complete_upload(job.id, &complete(2, None))
                .await
                .unwrap_err()
        ),
        (409, "extra_part".into())
    );
    let whole = parts.concat();
    assert_eq!(
        api_code(
            customer
                .complete_upload(job.id, &complete(3, Some("0".repeat(64))))
                .await
                .unwrap_err()
        ),
        (422, "digest_mismatch".into())
    );
    assert_eq!(
        customer.upload_parts(job.id).await.unwrap().parts.len(),
        3,
        "parts kept"
    );
    let receipt = customer
        .complete_upload(job.id, &complete(3, Some(sha256_bytes(whole.as_bytes()))))
        .await
        .unwrap();
    assert_eq!(receipt.size, whole.len() as u64);
    assert_eq!(receipt.sha256, sha256_bytes(whole.as_bytes()));
    assert!(
        customer
            .upload_parts(job.id)
            .await
            .unwrap()
            .parts
            .is_empty()
    );
    customer.run_job(job.id).await.unwrap();
    assert_eq!(
        api_code(
            customer
                .upload_part(job.id, 0, "late\n".into())
                .await
                .unwrap_err()
        ),
        (409, "job_not_editable".into())
    );
    let worker = grid.worker("w").await;
    let done = upper_case_until_done(&grid, &worker, job.id).await;
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.chunks.total, Some(3));
    let out = grid.dir.path().join("out");
    customer
        .download_output(job.id, &out, &done.output.unwrap().sha256)
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), whole.to_uppercase());
    grid.stop().await;
}
