//! Browsers linked to their owners by one-time codes.

use crate::harness::*;

#[tokio::test]
async fn a_browser_links_to_its_owner_by_a_code_that_works_once() {
    let grid = TestGrid::start(|_| {}).await;
    let owner = Client::new(&grid.url, &grid.credentials.enrollment_token).unwrap();
    let code = owner.create_link_code().await.unwrap();
    assert_eq!(code.expires_in_secs, 600);
    assert_eq!(
        code.contribute_path,
        format!("/contribute#code={}", code.code)
    );
    // A customer's key cannot ask for one.
    let (status, _) = api_code(grid.customer().create_link_code().await.unwrap_err());
    assert_eq!(status, 403);
    let browser = Capabilities {
        runtime: idlegrid_domain::Runtime::Browser,
        wasm_threads: true,
        ..device_caps()
    };
    let link = |code: &str| idlegrid_api::tasks::LinkWorker {
        code: code.into(),
        name: "phone".into(),
        capabilities: browser.clone(),
    };
    // Typed in lower case with spaces, it still works.
    let typed = code.code.to_lowercase().replace('-', " ");
    let registered = Client::link(&grid.url, &link(&typed)).await.unwrap();
    let phone = Client::new(&grid.url, &registered.token).unwrap();
    assert_eq!(phone.me().await.unwrap().worker_id, registered.worker_id);
    let devices = owner.owner_devices().await.unwrap().devices;
    assert_eq!(devices.len(), 1);
    assert_eq!(
        devices[0].capabilities.runtime,
        idlegrid_domain::Runtime::Browser
    );
    // Once only; malformed codes are told apart from unknown ones.
    let (status, code_name) = api_code(
        Client::link(&grid.url, &link(&code.code))
            .await
            .unwrap_err(),
    );
    assert_eq!((status, code_name.as_str()), (401, "unknown_link_code"));
    let (status, code_name) = api_code(Client::link(&grid.url, &link("ABC")).await.unwrap_err());
    assert_eq!((status, code_name.as_str()), (400, "invalid_link_code"));
    // A device keeps its kind of runtime: its results are compared by hash with that kind's.
    let (status, code_name) =
        api_code(phone.update_capabilities(&device_caps()).await.unwrap_err());
    assert_eq!((status, code_name.as_str()), (422, "runtime_changed"));
    phone.update_capabilities(&browser).await.unwrap();
    // The native worker says nothing of WebAssembly threads.
    let worker = grid.worker("desktop").await;
    let (status, _) = api_code(
        worker
            .update_capabilities(&Capabilities {
                wasm_threads: true,
                ..device_caps()
            })
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 422);
    grid.stop().await;
}

#[tokio::test]
async fn guessing_link_codes_is_slowed_down() {
    let grid = TestGrid::start(|_| {}).await;
    let mut limited = false;
    for i in 0..60 {
        let request = idlegrid_api::tasks::LinkWorker {
            code: format!("ABCD-{i:04}"),
            name: "guess".into(),
            capabilities: device_caps(),
        };
        let (status, _) = api_code(Client::link(&grid.url, &request).await.unwrap_err());
        if status == 429 {
            limited = true;
            break;
        }
        assert_eq!(status, 401);
    }
    assert!(limited, "60 guesses at once were all answered");
    grid.stop().await;
}

#[tokio::test]
async fn an_output_downloads_under_the_jobs_name_with_only_plain_characters() {
    let grid = TestGrid::start(|_| {}).await;
    let customer = grid.customer();
    let job = customer
        .create_job(&CreateJob {
            name: Some("my \"data\"; rm -rf.txt".into()),
            ..python_map_job("print('hi')\n", Some(1), serde_json::json!({}))
        })
        .await
        .unwrap();
    customer
        .upload_input_bytes(job.id, b"a\n".to_vec().into())
        .await
        .unwrap();
    customer.run_job(job.id).await.unwrap();
    let worker = grid.worker("w").await;
    let done = upper_case_until_done(&grid, &worker, job.id).await;
    assert_eq!(done.state, JobState::Completed);
    let response = reqwest::Client::new()
        .get(format!("{}/v1/jobs/{}/output", grid.url, job.id))
        .bearer_auth(&grid.credentials.api_key)
        .send()
        .await
        .unwrap();
    let disposition = response.headers()["content-disposition"].to_str().unwrap();
    assert_eq!(
        disposition,
        "attachment; filename=\"my__data___rm_-rf-output\""
    );
    grid.stop().await;
}
