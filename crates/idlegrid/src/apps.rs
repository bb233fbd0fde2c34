//! `idlegrid app ...`: publishing apps from their folders, listing them and their versions,
//! running one, and trying one out on a throw-away local grid.

use crate::cli::{
    AppCommand, AppInputArgs, AppListArgs, AppNameArgs, AppPushArgs, AppRunArgs, AppTestArgs,
};
use crate::customer::Submission;
use crate::output::{self, shown};
use crate::target;
use anyhow::Context;
use idlegrid_api::jobs::{AppInfo, CreateJob};
use idlegrid_api::{AppManifest, Bundle};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::process::ExitCode;

/// The manifest's file name in an app's folder.
pub const MANIFEST: &str = "manifest.json";

/// Runs an `app` subcommand.
pub async fn app(command: AppCommand) -> anyhow::Result<ExitCode> {
    match command {
        AppCommand::Push(args) => push(args).await,
        AppCommand::List(args) => list(args).await,
        AppCommand::Versions(args) => versions(args).await,
        AppCommand::Run(args) => run(args).await,
        AppCommand::Test(args) => test(args).await,
    }
}

/// The bundle an app's folder makes: its manifest and every other file beside it (hidden
/// files left out), as text. Folders inside it are refused: a bundle is flat.
pub fn read_bundle(dir: &Path) -> anyhow::Result<Bundle> {
    let manifest_path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let manifest: AppManifest = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid app manifest", manifest_path.display()))?;
    let mut files = BTreeMap::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == MANIFEST || name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        anyhow::ensure!(
            entry.file_type()?.is_file(),
            "{} is not a plain file: an app's folder holds its files side by side",
            path.display()
        );
        let content = std::fs::read(&path)?;
        let content = String::from_utf8(content)
            .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))?;
        files.insert(name, content);
    }
    Ok(Bundle { manifest, files })
}

fn publisher(app: &AppInfo) -> String {
    match app.publisher {
        None => "built in".to_string(),
        Some(tenant) if app.public => format!("customer {tenant}, public"),
        Some(tenant) => format!("customer {tenant}"),
    }
}

/// Apps in a few lines.
fn app_table(apps: &[AppInfo]) -> String {
    let mut s = format!(
        "{:<24}  {:<10}  {:<20}  {}\n",
        "NAME", "VERSION", "PUBLISHER", "DESCRIPTION"
    );
    for app in apps {
        let _ = writeln!(
            s,
            "{:<24}  {:<10}  {:<20}  {}",
            shown(&app.manifest.name),
            shown(&app.manifest.version),
            publisher(app),
            shown(&app.manifest.description)
        );
    }
    s
}

async fn push(args: AppPushArgs) -> anyhow::Result<ExitCode> {
    let bundle = read_bundle(&args.dir)?;
    let client = target::required(&args.target).await?;
    let (app, created) = client.publish_app(&bundle).await?;
    if args.json {
        println!("{}", output::json(&app)?);
    } else {
        println!(
            "{} {} {} (bundle {})",
            shown(&app.manifest.name),
            shown(&app.manifest.version),
            if created {
                "published"
            } else {
                "was published already, as it is"
            },
            app.bundle_sha256.as_deref().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(args: AppListArgs) -> anyhow::Result<ExitCode> {
    let client = target::required(&args.target).await?;
    let apps = client.apps().await?;
    if args.json {
        println!("{}", output::json(&apps)?);
    } else {
        print!("{}", app_table(&apps));
    }
    Ok(ExitCode::SUCCESS)
}

async fn versions(args: AppNameArgs) -> anyhow::Result<ExitCode> {
    let client = target::required(&args.target).await?;
    let versions = client.app_versions(&args.name).await?;
    if args.json {
        println!("{}", output::json(&versions)?);
    } else {
        let mut s = format!("{:<10}  {:<19}  {}\n", "VERSION", "PUBLISHED", "BUNDLE");
        for v in &versions {
            let _ = writeln!(
                s,
                "{:<10}  {:<19}  {}",
                shown(&v.manifest.version),
                v.published_at
                    .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_else(|| "built in".into()),
                v.bundle_sha256.as_deref().unwrap_or("")
            );
        }
        print!("{s}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The job `input` asks for, of app `app` (a name, or `name@version`).
fn job_request(app: &str, input: &AppInputArgs) -> anyhow::Result<CreateJob> {
    Ok(CreateJob {
        chunk_lines: input.chunk_lines,
        chunk_items: input.chunk_items,
        ..crate::customer::script_job(app, &input.script_job, &input.submit)?
    })
}

async fn run(args: AppRunArgs) -> anyhow::Result<ExitCode> {
    let submission = Submission {
        request: job_request(&args.app, &args.input)?,
        input: &args.input.input,
        output: &args.input.output,
        how: &args.input.submit,
        app: None,
        shown: None,
    };
    submission.submit().await
}

async fn test(args: AppTestArgs) -> anyhow::Result<ExitCode> {
    let bundle = read_bundle(&args.dir)?;
    let reference = format!("{}@{}", bundle.manifest.name, bundle.manifest.version);
    let submission = Submission {
        request: job_request(&reference, &args.input)?,
        input: &args.input.input,
        output: &args.input.output,
        how: &args.input.submit,
        app: Some(bundle),
        shown: None,
    };
    submission.submit().await
}
