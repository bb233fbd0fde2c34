//! Apps that customers publish: `idlegrid app push` from an app's folder in `examples/apps/`,
//! run on native workers started before it was published, versions that never change, apps
//! private to their publisher until an operator makes them public, and bundles refused with
//! the reason.

mod common;

use common::{Coordinator, idlegrid, run_bounded};
use idlegrid_api::admin::NewCustomer;
use idlegrid_api::jobs::{ChangeApp, CreateJob};
use idlegrid_api::{AppManifest, Bundle};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The example app's folder.
fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/apps")
        .join(name)
}

/// What line-stats writes for `text`'s lines, computed here apart from its script: words,
/// characters, the longest word (the first of the longest), tab-separated.
fn line_stats(text: &str, lower: bool) -> String {
    text.lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let longest = words
                .iter()
                .fold("", |best, w| if w.len() > best.len() { w } else { best });
            let longest = if lower {
                longest.to_lowercase()
            } else {
                longest.to_string()
            };
            format!("{}\t{}\t{longest}\n", words.len(), line.chars().count())
        })
        .collect()
}

/// A copy of an app's folder in `dir` whose task script has `edit` applied and whose manifest
/// says `version`.
fn changed_copy(dir: &Path, app: &str, version: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let copy = dir.join(format!("{app}-{version}"));
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(example(app)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(copy.join("manifest.json")).unwrap()).unwrap();
    manifest["version"] = version.into();
    std::fs::write(copy.join("manifest.json"), manifest.to_string()).unwrap();
    let script = std::fs::read_to_string(copy.join("task.py")).unwrap();
    std::fs::write(copy.join("task.py"), edit(script)).unwrap();
    copy
}

struct Cli<'a> {
    dir: &'a Path,
    url: String,
    key: String,
}

impl Cli<'_> {
    /// `idlegrid app ARGS` against the coordinator as this customer.
    fn app(&self, name: &str, args: &[&str]) -> common::Finished {
        let mut cmd = idlegrid(&self.dir.join("home"));
        cmd.arg("app")
            .args(args)
            .args(["--coordinator", &self.url, "--api-key", &self.key]);
        run_bounded(cmd, self.dir, name, Duration::from_secs(120))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_published_from_its_folder_runs_on_workers_started_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &[]);
    let ready = &coordinator.ready;
    // The worker starts before any app is published: bundles reach it when its tasks do.
    let _worker = coordinator.worker(dir.path(), &ready.enrollment_token, "w1", 2);
    let alice = Cli {
        dir: dir.path(),
        url: ready.url.clone(),
        key: ready.api_key.clone(),
    };
    let push = alice.app(
        "push",
        &["push", &example("line-stats").to_string_lossy(), "--json"],
    );
    assert!(push.status.success(), "{}", push.describe());
    let pushed: serde_json::Value = serde_json::from_str(&push.stdout).unwrap();
    assert_eq!(pushed["manifest"]["version"], "1.0.0");
    assert_eq!(pushed["public"], false);
    // Publishing the same again is fine.
    let again = alice.app(
        "push-again",
        &["push", &example("line-stats").to_string_lossy()],
    );
    assert!(again.status.success(), "{}", again.describe());
    assert!(
        again.stdout.contains("published already"),
        "{}",
        again.stdout
    );

    let mut text = String::from("The quick brown fox\njumps over\n\n  the LAZY dog  \n");
    for i in 0..300 {
        text.push_str(&format!("line {i} says Hello to {}\n", "x".repeat(i % 17)));
    }
    let input = dir.path().join("input.txt");
    std::fs::write(&input, &text).unwrap();
    let run = |name: &str, app: &str, params: &str| {
        let output = dir.path().join(format!("{name}.tsv"));
        let finished = alice.app(
            name,
            &[
                "run",
                app,
                "--input",
                &input.to_string_lossy(),
                "--output",
                &output.to_string_lossy(),
                "--chunk-lines",
                "40",
                "--params",
                params,
            ],
        );
        assert!(finished.status.success(), "{name}: {}", finished.describe());
        std::fs::read_to_string(output).unwrap()
    };
    assert_eq!(
        run("first", "line-stats", r#"{"lower": true}"#),
        line_stats(&text, true)
    );

    // A version's contents never change: other contents need another version.
    let changed = changed_copy(dir.path(), "line-stats", "1.0.0", |s| {
        s.replace("stats.tsv", "other.tsv")
    });
    let refused = alice.app("push-changed", &["push", &changed.to_string_lossy()]);
    assert!(!refused.status.success(), "{}", refused.describe());
    assert!(
        refused.stderr.contains("versions never"),
        "{}",
        refused.stderr
    );
    // A new version that marks each line; the old one still runs as it was.
    let marked = changed_copy(dir.path(), "line-stats", "1.1.0", |s| {
        s.replace("+ \"\\n\"", "+ \"\\t!\\n\"")
    });
    let push = alice.app("push-1.1.0", &["push", &marked.to_string_lossy()]);
    assert!(push.status.success(), "{}", push.describe());
    let latest = run("latest", "line-stats", "{}");
    let expected_marked: String = line_stats(&text, false)
        .lines()
        .map(|l| format!("{l}\t!\n"))
        .collect();
    assert_eq!(latest, expected_marked);
    assert_eq!(
        run("pinned", "line-stats@1.0.0", "{}"),
        line_stats(&text, false)
    );

    let listed = alice.app("list", &["list", "--json"]);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout).unwrap();
    let names: Vec<(&str, &str)> = listed
        .iter()
        .map(|a| {
            (
                a["manifest"]["name"].as_str().unwrap(),
                a["manifest"]["version"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(names.contains(&("line-stats", "1.1.0")), "{names:?}");
    assert!(
        names.contains(&("video-transcode", "1.3.0"))
            || names.iter().any(|n| n.0 == "video-transcode")
    );
    let versions = alice.app("versions", &["versions", "line-stats", "--json"]);
    let versions: Vec<serde_json::Value> = serde_json::from_str(&versions.stdout).unwrap();
    let versions: Vec<&str> = versions
        .iter()
        .map(|v| v["manifest"]["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.0.0", "1.1.0"]);

    // Another customer neither sees nor runs it, nor publishes under its name, until an
    // operator makes it public.
    let operator = idlegrid_client::Client::new(&ready.url, &ready.operator_key).unwrap();
    let bob = operator
        .create_customer(&NewCustomer {
            name: "bob".into(),
            quotas: Default::default(),
        })
        .await
        .unwrap();
    let bob = idlegrid_client::Client::new(&ready.url, &bob.api_key).unwrap();
    let seen = |apps: Vec<idlegrid_api::jobs::AppInfo>| {
        apps.iter().any(|a| a.manifest.name == "line-stats")
    };
    assert!(!seen(bob.apps().await.unwrap()));
    let refused = bob
        .create_job(&CreateJob::new("line-stats"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("unknown_app"), "{refused}");
    assert_eq!(
        bob.app_versions("line-stats").await.unwrap_err().status(),
        Some(404)
    );
    let bundle = Bundle {
        manifest: AppManifest {
            version: "9.0.0".into(),
            ..serde_json::from_str(
                &std::fs::read_to_string(example("line-stats").join("manifest.json")).unwrap(),
            )
            .unwrap()
        },
        files: BTreeMap::from([("task.py".to_string(), "print(1)".to_string())]),
    };
    let taken = bob.publish_app(&bundle).await.unwrap_err();
    assert_eq!(taken.code(), Some("name_taken"), "{taken}");
    // Operators see every published app, public or not, to choose.
    let all = operator.published_apps().await.unwrap();
    assert!(
        all.iter()
            .any(|a| a.manifest.name == "line-stats" && !a.public)
    );
    assert_eq!(bob.published_apps().await.unwrap_err().status(), Some(403));
    operator
        .change_app("line-stats", &ChangeApp { public: true })
        .await
        .unwrap();
    assert!(seen(bob.apps().await.unwrap()));
    let job = bob
        .create_job(&CreateJob::new("line-stats@1.0.0"))
        .await
        .unwrap();
    assert_eq!(
        (job.app.as_str(), job.app_version.as_str()),
        ("line-stats", "1.0.0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bundles_and_references_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &[]);
    let client = coordinator.ready.customer();
    let good: Bundle = Bundle {
        manifest: serde_json::from_str(
            &std::fs::read_to_string(example("line-stats").join("manifest.json")).unwrap(),
        )
        .unwrap(),
        files: BTreeMap::from([
            ("task.py".to_string(), "print(1)".to_string()),
            ("stats.py".to_string(), String::new()),
        ]),
    };
    let refused = |edit: fn(&mut Bundle)| {
        let mut bundle = good.clone();
        edit(&mut bundle);
        let client = client.clone();
        async move { client.publish_app(&bundle).await.unwrap_err() }
    };
    for (edit, reason) in [
        (
            (|b: &mut Bundle| {
                b.files.remove("task.py");
            }) as fn(&mut Bundle),
            "entrypoint",
        ),
        (|b| b.manifest.partitioner = "video".into(), "partitioner"),
        (|b| b.manifest.name = "python-map".into(), "built into"),
        (|b| b.manifest.version = "one".into(), "MAJOR.MINOR.PATCH"),
        (|b| b.manifest.name = "../../etc".into(), "lower-case"),
        (
            |b| b.manifest.parameters = Some(serde_json::json!({"type": "text"})),
            "parameters",
        ),
    ] {
        let e = refused(edit).await;
        assert_eq!(e.status(), Some(422), "{reason}: {e}");
        assert!(e.to_string().contains(reason), "{reason}: {e}");
    }
    // A bundle over the limit: refused before anything is kept.
    let e = refused(|b| {
        b.files.insert("big.txt".into(), "x".repeat(5 << 20));
    })
    .await;
    assert_eq!(e.status(), Some(413), "{e}");
    // A manifest with a field no manifest has.
    let mut cmd = idlegrid(&dir.path().join("home"));
    let odd = dir.path().join("odd");
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::write(
        odd.join("manifest.json"),
        r#"{"name": "odd", "colour": "red"}"#,
    )
    .unwrap();
    cmd.args(["app", "push", &odd.to_string_lossy()]).args([
        "--coordinator",
        &coordinator.ready.url,
        "--api-key",
        &coordinator.ready.api_key,
    ]);
    let finished = run_bounded(cmd, dir.path(), "odd", Duration::from_secs(30));
    assert!(!finished.status.success());
    assert!(
        finished.stderr.contains("not a valid app manifest"),
        "{}",
        finished.stderr
    );
    // Jobs naming what is not there.
    assert!(client.publish_app(&good).await.unwrap().1, "published");
    for (app, code) in [
        ("line-stats@2.0.0", "unknown_version"),
        ("nope", "unknown_app"),
        ("python-map@0.0.1", "unknown_app"),
    ] {
        let e = client.create_job(&CreateJob::new(app)).await.unwrap_err();
        assert_eq!(e.code(), Some(code), "{app}: {e}");
    }
    // Parameters that do not fit the app's schema, named at their place.
    let mut job = CreateJob::new("line-stats");
    job.params = serde_json::json!({"lower": "yes"});
    let e = client.create_job(&job).await.unwrap_err();
    assert_eq!(e.code(), Some("invalid_params"), "{e}");
    assert!(e.to_string().contains("params/lower"), "{e}");
    job.params = serde_json::json!({"upper": true});
    let e = client.create_job(&job).await.unwrap_err();
    assert!(e.to_string().contains("upper"), "{e}");
    job.params = serde_json::json!({"lower": true});
    client.create_job(&job).await.unwrap();
    // Nothing else was kept: the one good bundle.
    let versions = client.app_versions("line-stats").await.unwrap();
    assert_eq!(versions.len(), 1);
}

/// A CSV app cut by the `csv` step: every chunk starts with the input's header, so its script
/// finds columns by name in any chunk (tried with `app test` on a throw-away local grid).
#[test]
fn every_chunk_of_a_csv_input_starts_with_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("id,apples,pears,plums\n");
    let mut expected = String::new();
    for i in 0..50 {
        let (a, p, u) = (i * 3 % 17, i * 7 % 11, i % 5);
        csv.push_str(&format!("row{i},{a},{p},{u}\n"));
        expected.push_str(&format!("row{i},{}\n", a + u));
    }
    let input = dir.path().join("fruit.csv");
    std::fs::write(&input, &csv).unwrap();
    let output = dir.path().join("totals.csv");
    let mut cmd = idlegrid(&dir.path().join("home"));
    cmd.args(["app", "test", &example("csv-totals").to_string_lossy()])
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .args(["--chunk-lines", "7", "--local-workers", "2"])
        .args(["--params", r#"{"columns": ["apples", "plums"]}"#]);
    let finished = run_bounded(cmd, dir.path(), "csv", Duration::from_secs(120));
    assert!(finished.status.success(), "{}", finished.describe());
    // 50 rows in chunks of 7: 8 chunks, each of which had to find the columns by name.
    assert!(finished.stdout.contains("8 chunks"), "{}", finished.stdout);
    assert_eq!(std::fs::read_to_string(&output).unwrap(), expected);
}
