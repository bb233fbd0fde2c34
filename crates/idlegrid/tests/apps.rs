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
    let show = alice.app("show", &["show", "line-stats"]);
    assert!(show.status.success(), "{}", show.describe());
    assert!(
        show.stdout.contains("line-stats 1.1.0")
            && show.stdout.contains("lines -> integrity -> concat"),
        "{}",
        show.stdout
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
        wheels: Default::default(),
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
        wheels: Default::default(),
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
    // A version is kept for ever: it counts against its publisher's storage quota.
    let operator =
        idlegrid_client::Client::new(&coordinator.ready.url, &coordinator.ready.operator_key)
            .unwrap();
    let small = operator
        .create_customer(&NewCustomer {
            name: "small".into(),
            quotas: idlegrid_api::admin::Quotas {
                max_stored_bytes: Some(100),
                ..Default::default()
            },
        })
        .await
        .unwrap();
    let small = idlegrid_client::Client::new(&coordinator.ready.url, &small.api_key).unwrap();
    let mut roomy = good.clone();
    roomy.manifest.name = "roomy".into();
    let e = small.publish_app(&roomy).await.unwrap_err();
    assert_eq!(e.code(), Some("quota_exceeded"), "{e}");
    assert!(e.to_string().contains("storage quota"), "{e}");
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

/// Writes a tar at `path` of `files` (name, contents); a name ending in `/` is a folder.
fn write_tar<'a>(path: &Path, files: impl IntoIterator<Item = (&'a str, &'a [u8])>) {
    let mut tar = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        if name.ends_with('/') {
            header.set_entry_type(tar::EntryType::Directory);
        }
        header.set_cksum();
        tar.append_data(&mut header, name, data).unwrap();
    }
    tar.into_inner().unwrap();
}

/// Word counts as word-count's script makes them, computed here apart from it: runs of ASCII
/// letters, digits and apostrophes, lower-cased, apostrophes trimmed from the ends.
fn word_counts(docs: &[(&str, String)]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for (_, text) in docs {
        let lower = text.to_lowercase();
        for word in lower.split(|c: char| !(c.is_ascii_alphanumeric() || c == '\'')) {
            let word = word.trim_matches('\'');
            if !word.is_empty() {
                *counts.entry(word.to_string()).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// `idlegrid app test DIR` on a throw-away local grid with `args`.
fn app_test(dir: &Path, name: &str, app: &Path, args: &[&str]) -> common::Finished {
    let mut cmd = idlegrid(&dir.join("home"));
    cmd.args(["app", "test", &app.to_string_lossy()])
        .args(args)
        .args(["--local-workers", "2"]);
    run_bounded(cmd, dir, name, Duration::from_secs(180))
}

/// The word-count example: the `files` fan-out cuts a tar or a zip of documents into tars of a
/// few, every chunk counts its words and the app's own reduce step (`reduce.py`, one more task
/// run on a device) adds the counts up; an archive that names a file outside itself fails its
/// job with the reason.
#[test]
fn the_documents_of_an_archive_are_counted_and_the_counts_added_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut docs: Vec<(&str, String)> = vec![
        (
            "a/intro.txt",
            "The quick brown fox. THE LAZY dog's day!".into(),
        ),
        (
            "a/b/deep.md",
            "don't stop: 'quoted' words, and 42 numbers\n".into(),
        ),
        ("empty.txt", String::new()),
    ];
    for (i, name) in ["n1.txt", "n2.txt", "n3.txt", "n4.txt"]
        .into_iter()
        .enumerate()
    {
        docs.push((name, format!("line {i} of the note\n").repeat(i + 1)));
    }
    let tar_path = dir.path().join("docs.tar");
    // A folder entry first: skipped by the fan-out.
    write_tar(
        &tar_path,
        std::iter::once(("a/", &b""[..])).chain(docs.iter().map(|(n, t)| (*n, t.as_bytes()))),
    );
    let expected = word_counts(&docs);
    let counted = |name: &str, input: &Path| {
        let output = dir.path().join(format!("{name}.json"));
        let finished = app_test(
            dir.path(),
            name,
            &example("word-count"),
            &[
                "--input",
                &input.to_string_lossy(),
                "--output",
                &output.to_string_lossy(),
                "--chunk-items",
                "2",
            ],
        );
        assert!(finished.status.success(), "{}", finished.describe());
        // 7 files, 2 a chunk, and the reduce task.
        assert!(
            finished.stdout.contains("4 chunks and 1 step"),
            "{}",
            finished.stdout
        );
        // The reduce step's own log line, from the device that ran it.
        assert!(
            finished.stderr.contains("4 chunks, ") && finished.stderr.contains("distinct words"),
            "{}",
            finished.describe()
        );
        let reduced: serde_json::Value =
            serde_json::from_slice(&std::fs::read(output).unwrap()).unwrap();
        let counts: BTreeMap<String, u64> =
            serde_json::from_value(reduced["counts"].clone()).unwrap();
        assert_eq!(reduced["words"], counts.values().sum::<u64>());
        assert_eq!(reduced["distinct"], counts.len());
        counts
    };
    assert_eq!(counted("tar", &tar_path), expected);
    assert_eq!(expected["the"], 2 + (1..=4).sum::<u64>());

    // The same documents as a zip.
    let zip_path = dir.path().join("docs.zip");
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, tarfile, zipfile\n\
             with tarfile.open(sys.argv[1]) as t, zipfile.ZipFile(sys.argv[2], 'w', \
             zipfile.ZIP_DEFLATED) as z:\n    \
             [z.writestr(m.name, t.extractfile(m).read()) for m in t if m.isfile()]",
        ])
        .arg(&tar_path)
        .arg(&zip_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(counted("zip", &zip_path), expected);

    // A zip that names a file outside itself never reaches a device.
    let evil = dir.path().join("evil.zip");
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile\n\
             with zipfile.ZipFile(sys.argv[1], 'w') as z:\n    \
             z.writestr('ok.txt', 'fine'); z.writestr('../../.bashrc', 'rm -rf ~')",
        ])
        .arg(&evil)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let output = dir.path().join("evil.json");
    let finished = app_test(
        dir.path(),
        "evil",
        &example("word-count"),
        &[
            "--input",
            &evil.to_string_lossy(),
            "--output",
            &output.to_string_lossy(),
        ],
    );
    assert!(!finished.status.success(), "{}", finished.describe());
    assert!(
        finished.stderr.contains("../../.bashrc") && finished.stderr.contains(".. parts"),
        "{}",
        finished.stderr
    );
    assert!(!output.exists());
}

/// A test app of `files` with `script` for its task script, validated by `validator` and
/// merged by `assembler`.
fn test_app(
    dir: &Path,
    name: &str,
    partitioner: &str,
    validator: &str,
    assembler: &str,
    script: &str,
) -> PathBuf {
    let app = dir.join(name);
    std::fs::create_dir_all(&app).unwrap();
    let manifest = serde_json::json!({
        "name": name,
        "version": "1.0.0",
        "description": "A test app.",
        "entrypoint": "task.py",
        "input_name": "input.bin",
        "partitioner": partitioner,
        "validator": validator,
        "assembler": assembler,
        "deterministic": true,
    });
    std::fs::write(app.join("manifest.json"), manifest.to_string()).unwrap();
    std::fs::write(app.join("task.py"), script).unwrap();
    app
}

/// The `archive` fan-in gathers every chunk's files into one tar, in order; the `bytes`
/// fan-out cuts any file into ranges that cover it once; the `jsonl` validator refuses an
/// output that is not JSON lines.
#[test]
fn archives_of_outputs_byte_ranges_and_json_lines_fit_together() {
    let dir = tempfile::tempdir().unwrap();
    let shout = test_app(
        dir.path(),
        "shout-files",
        "files",
        "tar",
        "archive",
        "import os, tarfile, io\n\
         with tarfile.open('input/input.bin') as src, tarfile.open('output/out.tar', 'w') as dst:\n    \
             for m in src:\n        \
                 data = src.extractfile(m).read().upper()\n        \
                 info = tarfile.TarInfo(m.name + '.up')\n        \
                 info.size = len(data)\n        \
                 dst.addfile(info, io.BytesIO(data))\n",
    );
    let input = dir.path().join("in.tar");
    let files: Vec<(String, String)> = (0..5)
        .map(|i| (format!("dir/file{i}.txt"), format!("file {i} says hello\n")))
        .collect();
    write_tar(
        &input,
        files.iter().map(|(n, t)| (n.as_str(), t.as_bytes())),
    );
    let output = dir.path().join("out.tar");
    let finished = app_test(
        dir.path(),
        "shout",
        &shout,
        &[
            "--input",
            &input.to_string_lossy(),
            "--output",
            &output.to_string_lossy(),
            "--chunk-items",
            "2",
        ],
    );
    assert!(finished.status.success(), "{}", finished.describe());
    let mut merged = tar::Archive::new(std::fs::File::open(&output).unwrap());
    let got: Vec<(String, String)> = merged
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut e, &mut text).unwrap();
            (e.path().unwrap().to_string_lossy().into_owned(), text)
        })
        .collect();
    let want: Vec<(String, String)> = (0..5)
        .map(|i| {
            (
                format!("dir/file{i}.txt.up"),
                format!("FILE {i} SAYS HELLO\n"),
            )
        })
        .collect();
    // The files in order, then the index of them: chunk, size and SHA-256 of each.
    let (index, files) = got.split_last().unwrap();
    assert_eq!(files, want.as_slice());
    assert_eq!(index.0, "index.json");
    let index: Vec<serde_json::Value> = serde_json::from_str(&index.1).unwrap();
    assert_eq!(index.len(), 5);
    assert_eq!(index[4]["name"], "dir/file4.txt.up");
    assert_eq!(index[4]["chunk"], 2);
    assert_eq!(index[4]["bytes"], want[4].1.len());
    assert_eq!(
        index[4]["sha256"],
        idlegrid_client::sha256_bytes(want[4].1.as_bytes())
    );

    // Byte ranges: each chunk says where it is and what it holds, as a JSON line.
    let ranges = test_app(
        dir.path(),
        "byte-sums",
        "bytes",
        "jsonl",
        "concat",
        "import json, os\n\
         data = open('input/input.bin', 'rb').read()\n\
         line = {'chunk': int(os.environ['IDLEGRID_CHUNK_INDEX']), 'bytes': len(data), 'sum': sum(data)}\n\
         open('output/sums.jsonl', 'w').write(json.dumps(line) + '\\n')\n",
    );
    let blob: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let input = dir.path().join("blob.bin");
    std::fs::write(&input, &blob).unwrap();
    let output = dir.path().join("sums.jsonl");
    let finished = app_test(
        dir.path(),
        "ranges",
        &ranges,
        &[
            "--input",
            &input.to_string_lossy(),
            "--output",
            &output.to_string_lossy(),
        ],
    );
    assert!(finished.status.success(), "{}", finished.describe());
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty());
    let chunks: Vec<u64> = lines.iter().map(|l| l["chunk"].as_u64().unwrap()).collect();
    assert_eq!(chunks, (0..lines.len() as u64).collect::<Vec<_>>());
    let bytes: u64 = lines.iter().map(|l| l["bytes"].as_u64().unwrap()).sum();
    let sum: u64 = lines.iter().map(|l| l["sum"].as_u64().unwrap()).sum();
    assert_eq!(bytes, blob.len() as u64);
    assert_eq!(sum, blob.iter().map(|&b| u64::from(b)).sum::<u64>());

    // An output that is not JSON lines is refused as it arrives, with the reason.
    let broken = test_app(
        dir.path(),
        "not-jsonl",
        "bytes",
        "jsonl",
        "concat",
        "open('output/out.jsonl', 'w').write('{\"ok\": 1}\\nnot json\\n')\n",
    );
    let finished = app_test(
        dir.path(),
        "broken",
        &broken,
        &[
            "--input",
            &input.to_string_lossy(),
            "--output",
            &dir.path().join("broken.jsonl").to_string_lossy(),
            "--max-attempts",
            "1",
        ],
    );
    assert!(!finished.status.success(), "{}", finished.describe());
    assert!(
        finished
            .stderr
            .contains("line 2 of the output is not one JSON value"),
        "{}",
        finished.stderr
    );
}

/// What monte-carlo-pi's script writes for one item, by running it (python3) on that item alone.
fn pi_estimate(dir: &Path, seed: u64, samples: u64) -> f64 {
    let work = dir.join(format!("pi-{seed}-{samples}"));
    std::fs::create_dir_all(work.join("input")).unwrap();
    std::fs::create_dir_all(work.join("output")).unwrap();
    let item = serde_json::json!({"index": 0, "seed": seed, "params": {"samples": samples}});
    std::fs::write(work.join("input/items.jsonl"), format!("{item}\n")).unwrap();
    let out = std::process::Command::new("python3")
        .arg(example("monte-carlo-pi").join("task.py"))
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("output/pi.json")).unwrap()).unwrap();
    written["pi"][samples.to_string()].as_f64().unwrap()
}

/// The Monte Carlo example: a parameter sweep (two sample counts × six seeds) whose app asks for
/// replication, so every estimate is run by two owners' devices; a device that reports a
/// plausible estimate without doing the work never counts, and the `stats` fan-in reduces the
/// estimates to exactly the mean and spread of the honest ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_sweep_is_reduced_to_the_statistics_of_honest_estimates() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &[]);
    let ready = &coordinator.ready;
    let alice = Cli {
        dir: dir.path(),
        url: ready.url.clone(),
        key: ready.api_key.clone(),
    };
    let push = alice.app(
        "push",
        &["push", &example("monte-carlo-pi").to_string_lossy()],
    );
    assert!(push.status.success(), "{}", push.describe());
    // The devices' owners are others than the customer: the open grid, where the app's own
    // replication is the default.
    let cheat_token = ready.owner("mallory").await;
    let mut tokens = Vec::new();
    for owner in ["alice-dev", "bob-dev"] {
        tokens.push(ready.owner(owner).await);
    }
    let client = ready.customer();
    let sweep = serde_json::json!({"grid": {"samples": [300, 2000]}, "seeds": 6});
    let job = client
        .create_job(&CreateJob::new("monte-carlo-pi"))
        .await
        .unwrap();
    client
        .upload_input_bytes(job.id, sweep.to_string().into())
        .await
        .unwrap();
    let job = client.run_job(job.id).await.unwrap();
    // Nobody asked: the app's own default, every item on two owners' devices.
    assert_eq!(
        job.preferences.replication.map(|r| r.mode),
        Some(idlegrid_domain::ReplicationMode::Fixed),
        "{job:?}"
    );

    // A device that wants the pay without the work: it reports pi = 3.0 for whatever it gets.
    let cheater = idlegrid_testkit::register_device(
        &ready.url,
        &cheat_token,
        "lazy",
        idlegrid_api::Capabilities {
            cores: 4,
            memory_mb: 8192,
            os: "linux".into(),
            arch: "x86_64".into(),
            python: Some("3.11".into()),
            benchmark: 1000.0,
            slots: 4,
            ..Default::default()
        },
    )
    .await;
    let mut forged = 0;
    for _ in 0..50 {
        let grant = cheater
            .lease(&idlegrid_api::tasks::LeaseRequest {
                max_tasks: 4,
                wait_ms: 200,
            })
            .await
            .unwrap();
        for lease in &grant.leases {
            let input = dir.path().join(format!("lease-{}", lease.lease_id));
            cheater
                .download_lease_input(lease.lease_id, &input)
                .await
                .unwrap();
            let item: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&input).unwrap()).unwrap();
            let samples = item["params"]["samples"].as_u64().unwrap();
            let fake = serde_json::json!({"pi": {samples.to_string(): 3.0}}).to_string();
            cheater
                .report(&idlegrid_api::tasks::Report {
                    reports: vec![idlegrid_api::tasks::ReportItem {
                        lease_id: lease.lease_id,
                        task_id: lease.task_id,
                        outcome: idlegrid_testkit::completed(fake.as_bytes()),
                        log: None,
                    }],
                })
                .await
                .unwrap();
            forged += 1;
        }
        if forged > 0 {
            break;
        }
    }
    assert!(forged > 0, "the cheater got no chunk");

    // Two honest owners' workers.
    let mut honest = Vec::new();
    for (token, name) in tokens.iter().zip(["w-alice", "w-bob"]) {
        honest.push(coordinator.worker(dir.path(), token, name, 2));
    }
    let ended =
        idlegrid_testkit::job_once_ended(&client, job.id, Duration::from_millis(250), 600).await;
    assert_eq!(ended.state, idlegrid_api::JobState::Completed, "{ended:?}");
    let out = dir.path().join("pi.json");
    let sha = ended.output.as_ref().map(|o| o.sha256.clone()).unwrap();
    client.download_output(job.id, &out, &sha).await.unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();

    for samples in [300u64, 2000] {
        let honest: Vec<f64> = (0..6)
            .map(|seed| pi_estimate(dir.path(), seed, samples))
            .collect();
        assert!(honest.iter().all(|&x| x != 3.0));
        let n = honest.len() as f64;
        let mean = honest.iter().sum::<f64>() / n;
        let var = honest.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let half = 2.571 * var.sqrt() / n.sqrt();
        let got = &stats["pi"][samples.to_string()];
        assert_eq!(got["n"], 6, "{stats}");
        let close = |a: &serde_json::Value, b: f64| (a.as_f64().unwrap() - b).abs() < 1e-12;
        assert!(close(&got["mean"], mean), "{got} vs {mean}");
        assert!(close(&got["stddev"], var.sqrt()), "{got}");
        assert!(close(&got["ci95"][0], mean - half), "{got}");
        assert!(close(&got["ci95"][1], mean + half), "{got}");
    }
}

/// `app new` makes a folder from each template that `app test` runs as it is: a map over lines,
/// a replicated sweep reduced to statistics, and a files app gathering its outputs in one tar.
#[test]
fn every_template_makes_an_app_that_runs() {
    let dir = tempfile::tempdir().unwrap();
    let new = |name: &str, template: &str| {
        let mut cmd = idlegrid(&dir.path().join("home"));
        cmd.current_dir(dir.path())
            .args(["app", "new", name, "--template", template]);
        let made = run_bounded(cmd, dir.path(), name, Duration::from_secs(30));
        assert!(made.status.success(), "{}", made.describe());
        assert!(made.stdout.contains("idlegrid app test"), "{}", made.stdout);
        dir.path().join(name)
    };
    let run = |app: &Path, input: &Path, args: &[&str]| {
        let output = dir.path().join(format!(
            "{}.out",
            app.file_name().unwrap().to_string_lossy()
        ));
        let mut all = vec![
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        let finished = app_test(dir.path(), "template", app, &all);
        assert!(finished.status.success(), "{}", finished.describe());
        std::fs::read(output).unwrap()
    };

    let map = new("shouty", "map");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "one\ntwo\nthree\n").unwrap();
    assert_eq!(
        run(
            &map,
            &text,
            &["--chunk-lines", "2", "--params", r#"{"prefix": "> "}"#]
        ),
        b"> ONE\n> TWO\n> THREE\n"
    );

    let sweep = new("draws", "sweep");
    let spec = dir.path().join("sweep.json");
    std::fs::write(&spec, r#"{"grid": {"mu": [0, 5]}, "seeds": 3}"#).unwrap();
    let stats: serde_json::Value =
        serde_json::from_slice(&run(&sweep, &spec, &["--params", r#"{"draws": 50}"#])).unwrap();
    for (key, mu) in [("mu=0.0", 0.0), ("mu=5.0", 5.0)] {
        let got = &stats["mean"][key];
        assert_eq!(got["n"], 3, "{stats}");
        assert!((got["mean"].as_f64().unwrap() - mu).abs() < 1.0, "{stats}");
    }

    // A sweep past the limit fails its job before any task runs, with the reason.
    let huge = dir.path().join("huge.json");
    std::fs::write(&huge, r#"{"grid": {"mu": [1, 2, 3]}, "seeds": 40000}"#).unwrap();
    let out = dir.path().join("huge.out");
    let refused = app_test(
        dir.path(),
        "huge",
        &sweep,
        &[
            "--input",
            huge.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
    );
    assert!(!refused.status.success());
    assert!(
        refused.stderr.contains("120000 items") && refused.stderr.contains("the limit is 100000"),
        "{}",
        refused.stderr
    );

    let files = new("hashes", "files");
    let archive = dir.path().join("docs.tar");
    write_tar(
        &archive,
        [("a.txt", &b"alpha"[..]), ("sub/b.txt", &b"beta"[..])],
    );
    let notes = run(&files, &archive, &["--chunk-items", "1"]);
    let mut notes = tar::Archive::new(notes.as_slice());
    let names: Vec<String> = notes
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["a.txt.sha256", "sub/b.txt.sha256", "index.json"]);

    // A bad name or a folder already there is refused with the reason.
    let mut cmd = idlegrid(&dir.path().join("home"));
    cmd.current_dir(dir.path()).args(["app", "new", "Bad_Name"]);
    let refused = run_bounded(cmd, dir.path(), "bad", Duration::from_secs(30));
    assert!(!refused.status.success());
    assert!(
        refused.stderr.contains("not an app name"),
        "{}",
        refused.stderr
    );
    let mut cmd = idlegrid(&dir.path().join("home"));
    cmd.current_dir(dir.path()).args(["app", "new", "shouty"]);
    let refused = run_bounded(cmd, dir.path(), "again", Duration::from_secs(30));
    assert!(!refused.status.success());
    assert!(
        refused.stderr.contains("must not exist yet"),
        "{}",
        refused.stderr
    );
}

/// A task's stderr reaches its customer as the task's log, with the chunk and the device, its
/// lines filtered by level; the grid's own steps log too; `app test` shows the logs; and what a
/// device wrote is shown as text, never as terminal control.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_and_steps_log_and_customers_read_the_logs_by_level() {
    let dir = tempfile::tempdir().unwrap();
    let chatty = test_app(
        dir.path(),
        "chatty",
        "lines",
        "integrity",
        "concat",
        "import os, sys\n\
         lines = open('input/input.bin').read().splitlines()\n\
         print(f'INFO: {len(lines)} lines', file=sys.stderr)\n\
         for line in lines:\n    \
             if 'x' in line:\n        \
                 print(f'WARNING: odd line {line!r}', file=sys.stderr)\n    \
             if 'boom' in line:\n        \
                 print('\\x1b[2Jcleared?', file=sys.stderr)\n\
         open('output/out.txt', 'w').write(str(len(lines)) + '\\n')\n",
    );
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a\nb\nx1\nc\nboom\nd\n").unwrap();

    // `app test` shows every step's log once the job ended.
    let output = dir.path().join("out.txt");
    let args = [
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--chunk-lines",
        "2",
    ];
    let finished = app_test(dir.path(), "chatty", &chatty, &args);
    assert!(finished.status.success(), "{}", finished.describe());
    for said in [
        "partition",
        "cut into 3 chunks",
        "INFO: 2 lines",
        "WARNING: odd line 'x1'",
        "assemble",
    ] {
        assert!(
            finished.stderr.contains(said),
            "{said}: {}",
            finished.stderr
        );
    }
    // The escape a device sent is shown, not obeyed.
    assert!(!finished.stderr.contains('\u{1b}'), "{}", finished.stderr);
    let mut warnings_only = args.to_vec();
    warnings_only.extend(["--logs", "warning"]);
    let finished = app_test(dir.path(), "chatty-warnings", &chatty, &warnings_only);
    assert!(
        finished.stderr.contains("WARNING: odd line"),
        "{}",
        finished.stderr
    );
    assert!(
        !finished.stderr.contains("INFO: 2 lines"),
        "{}",
        finished.stderr
    );

    // Against a coordinator: `idlegrid logs` and the API.
    let coordinator = Coordinator::start(dir.path(), &[]);
    let ready = &coordinator.ready;
    let _worker = coordinator.worker(dir.path(), &ready.enrollment_token, "w1", 2);
    let alice = Cli {
        dir: dir.path(),
        url: ready.url.clone(),
        key: ready.api_key.clone(),
    };
    assert!(
        alice
            .app("push", &["push", chatty.to_str().unwrap()])
            .status
            .success()
    );
    let mut run_args = vec!["run", "chatty", "--json"];
    run_args.extend(args);
    let run = alice.app("run", &run_args);
    assert!(run.status.success(), "{}", run.describe());
    let job: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let id = job["id"].as_i64().unwrap();
    let mut cmd = idlegrid(&dir.path().join("home"));
    cmd.args(["logs", &id.to_string(), "--level", "warning", "--json"])
        .args(["--coordinator", &ready.url, "--api-key", &ready.api_key]);
    let logs = run_bounded(cmd, dir.path(), "logs", Duration::from_secs(60));
    assert!(logs.status.success(), "{}", logs.describe());
    let logs: Vec<serde_json::Value> = serde_json::from_str(&logs.stdout).unwrap();
    // Only the chunk with the odd line has a warning: chunk 1 (from 0), lines x1 and c.
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0]["step"], "task");
    assert_eq!(logs[0]["chunk"], 1);
    assert_eq!(logs[0]["outcome"], "completed");
    assert!(logs[0]["device"].as_i64().is_some());
    assert_eq!(logs[0]["lines"][0]["level"], "warning");
    assert_eq!(logs[0]["lines"][0]["text"], "WARNING: odd line 'x1'");
    // Every level: three tasks' logs and the two steps'.
    let client = ready.customer();
    let all = client
        .all_job_logs(idlegrid_api::JobId(id), idlegrid_api::jobs::LogLevel::Debug)
        .await
        .unwrap();
    let steps: Vec<&str> = all.iter().map(|l| l.step.as_str()).collect();
    assert_eq!(
        steps.iter().filter(|s| **s == "task").count(),
        3,
        "{steps:?}"
    );
    assert_eq!(steps.first(), Some(&"partition"), "{steps:?}");
    assert_eq!(steps.last(), Some(&"assemble"), "{steps:?}");
    // A job that is not the customer's has no logs to read.
    let refused = client
        .job_logs(
            idlegrid_api::JobId(id + 1000),
            None,
            idlegrid_api::jobs::LogLevel::Info,
        )
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(404), "{refused}");
}

/// Writes a wheel named `file` into `dir` whose package `module` is `body`.
fn make_wheel(dir: &Path, file: &str, module: &str, body: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(file);
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile\n\
             path, mod, body = sys.argv[1:4]\n\
             with zipfile.ZipFile(path, 'w') as z:\n    \
                 z.writestr(f'{mod}/__init__.py', body)\n    \
                 z.writestr(f'{mod}-1.0.dist-info/METADATA', f'Metadata-Version: 2.1\\nName: {mod}\\nVersion: 1.0\\n')\n    \
                 z.writestr(f'{mod}-1.0.dist-info/WHEEL', 'Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')\n    \
                 z.writestr(f'{mod}-1.0.dist-info/RECORD', '')\n",
        ])
        .arg(&path)
        .args([module, body])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// An app brings its Python packages: `app push` and `app test` take the wheels pip downloads
/// for its requirements.txt (here from a folder, offline) and those in its wheels/ folder; a
/// worker installs the one built for it beside the app's files; the grid offers a job only to
/// devices its wheels run on, and refuses a wheel that would overwrite the app's own files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_brings_its_python_packages_as_wheels() {
    let dir = tempfile::tempdir().unwrap();
    let links = dir.path().join("links");
    make_wheel(
        &links,
        "tinymath-1.0-py3-none-any.whl",
        "tinymath",
        "def triple(x):\n    return 3 * x\n",
    );
    let app = test_app(
        dir.path(),
        "tripler",
        "lines",
        "integrity",
        "concat",
        "import tinymath\n\
         out = open('output/out.txt', 'w')\n\
         for line in open('input/input.bin'):\n    \
             out.write(f'{tinymath.triple(int(line))}\\n')\n",
    );
    std::fs::write(app.join("requirements.txt"), "tinymath==1.0\n").unwrap();
    let input = dir.path().join("nums.txt");
    std::fs::write(&input, "1\n2\n3\n4\n5\n").unwrap();
    let output = dir.path().join("tripled.txt");
    let finished = app_test(
        dir.path(),
        "tripler",
        &app,
        &[
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--chunk-lines",
            "2",
            "--find-links",
            links.to_str().unwrap(),
            "--no-index",
        ],
    );
    assert!(finished.status.success(), "{}", finished.describe());
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "3\n6\n9\n12\n15\n"
    );

    // Against a coordinator: a package only built for another machine makes its jobs wait for
    // such devices; the platforms are the grid's to find, from the wheels.
    let coordinator = Coordinator::start(dir.path(), &[]);
    let ready = &coordinator.ready;
    let alice = Cli {
        dir: dir.path(),
        url: ready.url.clone(),
        key: ready.api_key.clone(),
    };
    let arm = test_app(
        dir.path(),
        "arm-only",
        "lines",
        "integrity",
        "concat",
        "import fastmath\nopen('output/o.txt', 'w').write('x')\n",
    );
    make_wheel(
        &arm.join("wheels"),
        "fastmath-1.0-cp311-cp311-manylinux2014_aarch64.whl",
        "fastmath",
        "",
    );
    let push = alice.app("push-arm", &["push", arm.to_str().unwrap(), "--json"]);
    assert!(push.status.success(), "{}", push.describe());
    let pushed: serde_json::Value = serde_json::from_str(&push.stdout).unwrap();
    assert_eq!(
        pushed["manifest"]["requirements"]["platforms"],
        serde_json::json!(["linux/aarch64/3.11"]),
        "{pushed}"
    );
    let show = alice.app("show-arm", &["show", "arm-only"]);
    assert!(
        show.stdout
            .contains("its packages run on: linux/aarch64/3.11"),
        "{}",
        show.describe()
    );
    // A wheel that would replace the app's own script is refused.
    let evil = test_app(
        dir.path(),
        "evil-wheel",
        "lines",
        "integrity",
        "concat",
        "print('mine')\n",
    );
    let wheel_dir = evil.join("wheels");
    std::fs::create_dir_all(&wheel_dir).unwrap();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile\n\
             with zipfile.ZipFile(sys.argv[1], 'w') as z:\n    \
                 z.writestr('task.py', 'print(\"hijacked\")')\n",
        ])
        .arg(wheel_dir.join("evil-1.0-py3-none-any.whl"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let refused = alice.app("push-evil", &["push", evil.to_str().unwrap()]);
    assert!(!refused.status.success(), "{}", refused.describe());
    assert!(
        refused.stderr.contains("\"task.py\", a file of the app"),
        "{}",
        refused.stderr
    );
}

/// The thumbnails example: a zip of photos cut into tars of a few, a thumbnail of each made by
/// Pillow (downloaded from the package index by `app test` for requirements.txt, bundled, and
/// installed by the workers), every thumbnail checked by the `images` validator and gathered
/// in one zip with an index. The size of each thumbnail is checked here with FFmpeg.
#[test]
fn photos_are_made_into_thumbnails_with_a_bundled_pillow() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(photos.join("trip")).unwrap();
    let shots = [
        ("trip/beach.jpg", "640x480"),
        ("trip/hill.png", "300x200"),
        ("cat.jpg", "200x400"),
        ("tiny.png", "40x30"),
        ("notes.txt", ""),
    ];
    for (name, size) in shots {
        let path = photos.join(name);
        if size.is_empty() {
            std::fs::write(&path, "not a photo").unwrap();
            continue;
        }
        common::sh(
            "ffmpeg",
            &[
                "-nostdin",
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                &format!("testsrc=size={size}"),
                "-frames:v",
                "1",
                path.to_str().unwrap(),
            ],
        );
    }
    let zip = dir.path().join("photos.zip");
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, sys, zipfile\n\
             root, path = sys.argv[1:3]\n\
             with zipfile.ZipFile(path, 'w') as z:\n    \
                 for d, _, files in sorted(os.walk(root)):\n        \
                     for f in sorted(files):\n            \
                         full = os.path.join(d, f)\n            \
                         z.write(full, os.path.relpath(full, root))\n",
        ])
        .arg(&photos)
        .arg(&zip)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let output = dir.path().join("thumbs.zip");
    let finished = app_test(
        dir.path(),
        "thumbnails",
        &example("thumbnails"),
        &[
            "--input",
            zip.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--chunk-items",
            "2",
            "--params",
            r#"{"max_side": 64}"#,
        ],
    );
    assert!(finished.status.success(), "{}", finished.describe());
    // A zip, as Python's own zipfile reads it.
    let unpacked = dir.path().join("unpacked");
    let out = std::process::Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&output)
        .arg(&unpacked)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Proportions kept, the longest side 64 (or the photo's own, when smaller).
    for (name, want) in [
        ("trip/beach.jpg", "64x48"),
        ("trip/hill.png", "64x43"),
        ("cat.jpg", "32x64"),
        ("tiny.png", "40x30"),
    ] {
        let thumb = unpacked.join(format!("thumbs/{name}.jpg"));
        let probed = common::sh(
            "ffprobe",
            &[
                "-v",
                "error",
                "-show_entries",
                "stream=width,height",
                "-of",
                "csv=p=0:s=x",
                thumb.to_str().unwrap(),
            ],
        );
        let size = String::from_utf8_lossy(&probed.stdout).trim().to_string();
        assert_eq!(size, want, "{name}");
    }
    // Each chunk's index, and the archive's own.
    let chunk_index = std::fs::read_to_string(unpacked.join("index/000000.jsonl")).unwrap();
    assert!(
        chunk_index.contains("\"source_size\": [200, 400]"),
        "{chunk_index}"
    );
    let index: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(unpacked.join("index.json")).unwrap()).unwrap();
    assert_eq!(index.len(), 4 + 3, "{index:?}");
}

/// The `images` validator in the pipeline: outputs whose pictures are larger than the job
/// asks, or whose headers front bytes that do not decode, never count (two devices returning
/// the same such output fail the job with the reason).
#[test]
fn pictures_too_large_or_that_do_not_decode_never_count() {
    let dir = tempfile::tempdir().unwrap();
    let app = test_app(
        dir.path(),
        "fake-thumbs",
        "files",
        "images",
        "archive",
        "import io, json, os, struct, tarfile, zlib\n\
         mode = json.loads(os.environ['IDLEGRID_PARAMS'])['mode']\n\
         def chunk(t, d):\n    \
             return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))\n\
         def png(w, h, body):\n    \
             head = chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))\n    \
             return b'\\x89PNG\\r\\n\\x1a\\n' + head + chunk(b'IDAT', body) + chunk(b'IEND', b'')\n\
         w, h = (200, 100) if mode == 'big' else (32, 16)\n\
         raw = b''.join(b'\\x00' + b'\\x80\\x80\\x80' * w for _ in range(h))\n\
         body = zlib.compress(raw) if mode != 'garbage' else bytes(range(64))\n\
         with tarfile.open('input/input.bin') as src, tarfile.open('output/o.tar', 'w') as out:\n    \
             for m in src:\n        \
                 data = png(w, h, body)\n        \
                 info = tarfile.TarInfo(m.name + '.png')\n        \
                 info.size = len(data)\n        \
                 out.addfile(info, io.BytesIO(data))\n",
    );
    let input = dir.path().join("in.tar");
    write_tar(&input, [("a", &b"x"[..]), ("b", &b"x"[..])]);
    let run = |mode: &str| {
        let output = dir.path().join(format!("{mode}.tar"));
        app_test(
            dir.path(),
            mode,
            &app,
            &[
                "--input",
                input.to_str().unwrap(),
                "--output",
                output.to_str().unwrap(),
                "--max-attempts",
                "1",
                "--params",
                &format!(r#"{{"mode": "{mode}", "max_side": 64}}"#),
            ],
        )
    };
    let fine = run("fine");
    assert!(fine.status.success(), "{}", fine.describe());
    let big = run("big");
    assert!(!big.status.success(), "{}", big.describe());
    assert!(
        big.stderr.contains("is 200×100, over the 64 pixels"),
        "{}",
        big.stderr
    );
    let garbage = run("garbage");
    assert!(!garbage.status.success(), "{}", garbage.describe());
    assert!(
        garbage.stderr.contains("does not decode"),
        "{}",
        garbage.stderr
    );
}

/// `app test` of a test app cut and joined by `steps` (its partitioner and assembler), one of
/// them a script of its own whose text is `script`; every task copies its chunk, has 3 s and
/// one attempt. The outcome, and where the output would be.
fn test_step(
    dir: &Path,
    name: &str,
    steps: (&str, &str),
    script: &str,
    input: &Path,
    args: &[&str],
) -> (common::Finished, PathBuf) {
    let app = test_app(
        dir,
        &format!("step-{name}"),
        steps.0,
        "integrity",
        steps.1,
        "import shutil\nshutil.copy('input/input.bin', 'output/out')\n",
    );
    let file = [steps.0, steps.1]
        .into_iter()
        .find(|s| s.ends_with(".py"))
        .unwrap();
    std::fs::write(app.join(file), script).unwrap();
    let output = dir.join(format!("{name}.out"));
    let mut all = vec![
        "--input".to_string(),
        input.to_string_lossy().into_owned(),
        "--output".to_string(),
        output.to_string_lossy().into_owned(),
        "--max-attempts".to_string(),
        "1".to_string(),
        "--task-timeout".to_string(),
        "3".to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    (app_test(dir, name, &app, &all), output)
}

/// An app's own reduce step is a stranger's code run as a task: one that writes outside its
/// output, crashes or never ends fails its job with the reason, and nothing it tried to write
/// elsewhere exists. The chunks before it ran and were accepted as usual.
#[test]
fn a_reduce_step_that_misbehaves_fails_its_job_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("lines.txt");
    std::fs::write(&input, "one\ntwo\nthree\nfour\n").unwrap();
    let escaped = dir.path().join("escaped-by-reduce");
    let cases = [
        (
            "escape",
            format!(
                "import os\nopen({:?}, 'w').write('out')\nopen('output/x', 'w').write('x')\n",
                escaped.to_string_lossy()
            ),
            "PermissionError",
        ),
        (
            "parent",
            "open('../escaped', 'w').write('out')\n".to_string(),
            "Error",
        ),
        (
            "crash",
            "import sys\nsys.exit('the reduce gave up')\n".to_string(),
            "the reduce gave up",
        ),
        (
            "forever",
            "while True:\n    pass\n".to_string(),
            "timed out",
        ),
    ];
    for (name, reduce, reason) in cases {
        let (finished, output) = test_step(
            dir.path(),
            name,
            ("lines", "reduce.py"),
            &reduce,
            &input,
            &["--chunk-lines", "2"],
        );
        assert!(
            !finished.status.success(),
            "{name}: {}",
            finished.describe()
        );
        assert!(
            finished
                .stderr
                .contains("the reduce step (reduce.py) failed")
                && finished.stderr.contains(reason),
            "{name}: {}",
            finished.describe()
        );
        assert!(!output.exists(), "{name}");
    }
    assert!(!escaped.exists());
    assert!(!dir.path().join("escaped").exists());
}

/// On the open grid an app's reduce runs on two owners' devices whose outputs must agree: a
/// device that does its chunks honestly but forges the reduce (the one task that decides the
/// whole output) gets nothing accepted for it, and the job's output is the honest reduce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_reduce_never_becomes_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &[]);
    let ready = &coordinator.ready;
    let alice = Cli {
        dir: dir.path(),
        url: ready.url.clone(),
        key: ready.api_key.clone(),
    };
    let push = alice.app("push", &["push", &example("word-count").to_string_lossy()]);
    assert!(push.status.success(), "{}", push.describe());
    let show = alice.app("show", &["show", "word-count"]);
    assert!(
        show.stdout.contains("steps: files -> numbers -> reduce.py")
            && show.stdout.contains("its own steps: reduce.py"),
        "{}",
        show.describe()
    );
    let cheat_token = ready.owner("mallory").await;
    let honest_tokens = [ready.owner("ann").await, ready.owner("ben").await];
    let docs: Vec<(&str, String)> = (0..6)
        .map(|i| {
            (
                ["d0", "d1", "d2", "d3", "d4", "d5"][i],
                format!("word{i} shared ").repeat(i + 1),
            )
        })
        .collect();
    let tar_path = dir.path().join("docs.tar");
    write_tar(&tar_path, docs.iter().map(|(n, t)| (*n, t.as_bytes())));
    let expected = word_counts(&docs);
    let client = ready.customer();
    let mut create = CreateJob::new("word-count");
    create.chunk_items = Some(2);
    let job = client.create_job(&create).await.unwrap();
    client
        .upload_input_bytes(job.id, std::fs::read(&tar_path).unwrap().into())
        .await
        .unwrap();
    client.run_job(job.id).await.unwrap();

    // Mallory's device counts its chunks honestly (with the app's own script) and forges the
    // reduce; one honest owner's worker runs beside it.
    let cheater = idlegrid_testkit::register_device(
        &ready.url,
        &cheat_token,
        "sly",
        idlegrid_api::Capabilities {
            cores: 4,
            memory_mb: 8192,
            os: "linux".into(),
            arch: "x86_64".into(),
            python: Some("3.11".into()),
            benchmark: 1000.0,
            slots: 4,
            ..Default::default()
        },
    )
    .await;
    let ann = coordinator.worker(dir.path(), &honest_tokens[0], "w-ann", 2);
    let mut forged = false;
    let started = std::time::Instant::now();
    while !forged {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the cheater never got the reduce"
        );
        let grant = cheater
            .lease(&idlegrid_api::tasks::LeaseRequest {
                max_tasks: 4,
                wait_ms: 500,
            })
            .await
            .unwrap();
        for lease in &grant.leases {
            let work = dir.path().join(format!("lease-{}", lease.lease_id));
            std::fs::create_dir_all(work.join("input")).unwrap();
            std::fs::create_dir_all(work.join("output")).unwrap();
            let output = if lease.script.as_deref() == Some("reduce.py") {
                assert_eq!(lease.input_name, "outputs.tar");
                forged = true;
                serde_json::json!({"words": 1, "distinct": 1, "counts": {"forged": 1}})
                    .to_string()
                    .into_bytes()
            } else {
                cheater
                    .download_lease_input(lease.lease_id, &work.join("input/docs.tar"))
                    .await
                    .unwrap();
                let out = std::process::Command::new("python3")
                    .arg(example("word-count").join("task.py"))
                    .current_dir(&work)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                std::fs::read(work.join("output/counts.json")).unwrap()
            };
            cheater
                .report(&idlegrid_api::tasks::Report {
                    reports: vec![idlegrid_api::tasks::ReportItem {
                        lease_id: lease.lease_id,
                        task_id: lease.task_id,
                        outcome: idlegrid_testkit::completed(&output),
                        log: None,
                    }],
                })
                .await
                .unwrap();
        }
    }
    // Ann's reduce disagrees with Mallory's: a third owner decides.
    let ben = coordinator.worker(dir.path(), &honest_tokens[1], "w-ben", 2);
    let ended =
        idlegrid_testkit::job_once_ended(&client, job.id, Duration::from_millis(250), 600).await;
    assert_eq!(ended.state, idlegrid_api::JobState::Completed, "{ended:?}");
    let out = dir.path().join("counts.json");
    let sha = ended.output.as_ref().map(|o| o.sha256.clone()).unwrap();
    client.download_output(job.id, &out, &sha).await.unwrap();
    let reduced: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let counts: BTreeMap<String, u64> = serde_json::from_value(reduced["counts"].clone()).unwrap();
    assert_eq!(counts, expected);
    drop((ann, ben));
}

/// The chapters example: its own partition step (`partition.py`, a task on a device) cuts a
/// book at its chapter headings, each chapter is a chunk, and the `concat` fan-in joins the
/// chapters' JSON lines in order. The figures are known from how the book is written here.
#[test]
fn a_partition_script_cuts_a_book_into_its_chapters() {
    let dir = tempfile::tempdir().unwrap();
    let mut book = String::from("A Test Book\nby Nobody.\n\n");
    for i in 1..=3 {
        book.push_str(&format!("CHAPTER {i}\n{}\n", "alpha beta. ".repeat(i)));
    }
    let input = dir.path().join("book.txt");
    std::fs::write(&input, &book).unwrap();
    let output = dir.path().join("chapters.jsonl");
    let finished = app_test(
        dir.path(),
        "chapters",
        &example("chapters"),
        &[
            "--input",
            &input.to_string_lossy(),
            "--output",
            &output.to_string_lossy(),
        ],
    );
    assert!(finished.status.success(), "{}", finished.describe());
    // The partition step's own log line, from the device that ran it, and the grid's.
    assert!(
        finished.stderr.contains("INFO: 4 chapters")
            && finished
                .stderr
                .contains("partition.py cut the input into 4 chunks"),
        "{}",
        finished.describe()
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut expected = vec![serde_json::json!({
        "chapter": "0001.txt", "title": "A Test Book", "words": 5, "sentences": 1,
        "longest": "Nobody",
    })];
    for i in 1..=3u64 {
        expected.push(serde_json::json!({
            "chapter": format!("{:04}.txt", i + 1), "title": format!("CHAPTER {i}"),
            "words": 2 + 2 * i, "sentences": i, "longest": "CHAPTER",
        }));
    }
    assert_eq!(lines, expected);
}

/// An app's own partition step is a stranger's code run as a task, and its output is read by
/// the coordinator: one that crashes or never ends, or whose output is no archive, names a
/// chunk outside itself, holds a link or cuts more chunks than allowed, fails its job with the
/// reason before any chunk runs.
#[test]
fn a_partition_step_that_misbehaves_fails_its_job_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    std::fs::write(&input, "some input\n").unwrap();
    let tar_of = |body: &str| {
        format!(
            "import io, tarfile\n\
             out = tarfile.open('output/chunks.tar', 'w')\n\
             def add(name, data=b'', kind=tarfile.REGTYPE, link=''):\n    \
             info = tarfile.TarInfo(name); info.size = len(data); info.type = kind\n    \
             info.linkname = link; out.addfile(info, io.BytesIO(data))\n\
             {body}\nout.close()\n"
        )
    };
    let cases = [
        (
            "crash",
            "import sys\nsys.exit('cannot cut this')\n".to_string(),
            "the partition step (partition.py) failed",
            "cannot cut this",
        ),
        (
            "forever",
            "while True:\n    pass\n".to_string(),
            "the partition step (partition.py) failed",
            "timed out",
        ),
        (
            "not-archive",
            "open('output/chunks', 'w').write('hello')\n".to_string(),
            "the partition step's output",
            "must be an archive",
        ),
        (
            "outside",
            tar_of("add('ok', b'x'); add('../evil', b'y')"),
            "the partition step's output",
            "../evil",
        ),
        (
            "link",
            tar_of("add('ok', b'x'); add('ln', kind=tarfile.SYMTYPE, link='/etc/passwd')"),
            "the partition step's output",
            "not a plain file",
        ),
        (
            "too-many",
            tar_of("for i in range(10001): add(f'{i:05}')"),
            "cut the input into 10001 chunks",
            "the most is 10000",
        ),
        (
            // 80 MiB of zeros, a few hundred kilobytes zipped: refused from the sizes the
            // archive declares, before anything is unpacked.
            "flood",
            "import zipfile\n\
             with zipfile.ZipFile('output/chunks.zip', 'w', zipfile.ZIP_DEFLATED) as z:\n    \
             z.writestr('big', bytes(80 << 20))\n"
                .to_string(),
            "the partition step's chunks hold 83886080 bytes",
            "twice the input's bytes",
        ),
    ];
    for (name, partition, first, second) in cases {
        let (finished, output) = test_step(
            dir.path(),
            name,
            ("partition.py", "concat"),
            &partition,
            &input,
            &[],
        );
        assert!(
            !finished.status.success(),
            "{name}: {}",
            finished.describe()
        );
        assert!(
            finished.stderr.contains(first) && finished.stderr.contains(second),
            "{name}: {}",
            finished.describe()
        );
        assert!(!output.exists(), "{name}");
    }
}

/// `app test` of an app whose every output is rejected, each a little different (a script
/// that writes something new and wrong every time), ends with the validator's reason instead
/// of waiting for ever for a third device: in the customer's own fleet two of its devices
/// rejected are the app's fault.
#[test]
fn an_app_whose_outputs_are_all_rejected_fails_its_test_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let app = test_app(
        dir.path(),
        "garbage",
        "lines",
        "jsonl",
        "concat",
        "import random\nopen('output/out', 'w').write('not json %f\\n' % random.random())\n",
    );
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a\nb\n").unwrap();
    let output = dir.path().join("out.jsonl");
    let finished = app_test(
        dir.path(),
        "garbage",
        &app,
        &[
            "--input",
            &input.to_string_lossy(),
            "--output",
            &output.to_string_lossy(),
        ],
    );
    assert!(!finished.status.success(), "{}", finished.describe());
    assert!(
        finished
            .stderr
            .contains("two of your own devices' outputs for it were rejected")
            && finished.stderr.contains("not one JSON value"),
        "{}",
        finished.describe()
    );
    assert!(!output.exists());
}
