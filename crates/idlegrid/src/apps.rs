//! `idlegrid app ...`: publishing apps from their folders, listing them and their versions,
//! running one, and trying one out on a throw-away local grid.

use crate::cli::{
    AppCommand, AppInputArgs, AppListArgs, AppNameArgs, AppNewArgs, AppPushArgs, AppRunArgs,
    AppTemplate, AppTestArgs, WheelArgs,
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
        AppCommand::New(args) => new(args),
        AppCommand::Push(args) => push(args).await,
        AppCommand::Show(args) => show(args).await,
        AppCommand::List(args) => list(args).await,
        AppCommand::Versions(args) => versions(args).await,
        AppCommand::Run(args) => run(args).await,
        AppCommand::Test(args) => test(args).await,
    }
}

/// The bundle an app's folder makes: its manifest and every other file beside it (hidden
/// files left out), as text; with `wheels`, the Python packages it brings: the `.whl` files of
/// its `wheels/` folder, and those pip downloads for its `requirements.txt`. Other folders
/// inside it are refused: an app's files are flat.
pub fn read_bundle(dir: &Path, wheels: Option<&WheelArgs>) -> anyhow::Result<Bundle> {
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
        if name == MANIFEST || name == REQUIREMENTS || name == WHEELS || name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        anyhow::ensure!(
            entry.file_type()?.is_file(),
            "{} is not a plain file: an app's folder holds its files side by side (and its \
             wheels in {WHEELS}/)",
            path.display()
        );
        let content = std::fs::read(&path)?;
        let content = String::from_utf8(content)
            .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))?;
        files.insert(name, content);
    }
    let wheels = match wheels {
        Some(how) => wheels_of(dir, how)?,
        None => BTreeMap::new(),
    };
    Ok(Bundle {
        manifest,
        files,
        wheels,
    })
}

/// The requirements file of an app's folder.
const REQUIREMENTS: &str = "requirements.txt";
/// The folder of wheels an app brings as they are.
const WHEELS: &str = "wheels";

/// The wheels an app's folder brings, by file name, in base64.
fn wheels_of(dir: &Path, how: &WheelArgs) -> anyhow::Result<BTreeMap<String, String>> {
    use base64::Engine;
    let mut found: Vec<std::path::PathBuf> = Vec::new();
    let folder = dir.join(WHEELS);
    if folder.is_dir() {
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "whl") {
                found.push(path);
            }
        }
    }
    let downloaded = tempfile::tempdir()?;
    let requirements = dir.join(REQUIREMENTS);
    if requirements.is_file() {
        let platforms: Vec<Option<&String>> = if how.platforms.is_empty() {
            vec![None]
        } else {
            how.platforms.iter().map(Some).collect()
        };
        for platform in platforms {
            let mut pip = std::process::Command::new("python3");
            pip.args([
                "-m",
                "pip",
                "download",
                "--disable-pip-version-check",
                "--quiet",
            ])
            .args(["--only-binary", ":all:", "--dest"])
            .arg(downloaded.path())
            .arg("-r")
            .arg(&requirements);
            if let Some(platform) = platform {
                pip.args(["--platform", platform, "--implementation", "cp"]);
            }
            if let Some(version) = &how.python_version {
                pip.args(["--python-version", version]);
            }
            if let Some(links) = &how.find_links {
                pip.arg("--find-links").arg(links);
            }
            if how.no_index {
                pip.arg("--no-index");
            }
            let out = pip
                .output()
                .context("cannot run python3 -m pip to download the app's requirements")?;
            anyhow::ensure!(
                out.status.success(),
                "pip could not download the wheels of {}{}: {}",
                requirements.display(),
                platform.map(|p| format!(" for {p}")).unwrap_or_default(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        for entry in std::fs::read_dir(downloaded.path())? {
            let path = entry?.path();
            anyhow::ensure!(
                path.extension().is_some_and(|e| e == "whl"),
                "pip downloaded {}, which is not a wheel: the app's packages must come as wheels",
                path.display()
            );
            found.push(path);
        }
    }
    let mut wheels = BTreeMap::new();
    for path in found {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        idlegrid_domain::wheel::parse(&name).map_err(|e| anyhow::anyhow!(e))?;
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        wheels.insert(
            name,
            base64::engine::general_purpose::STANDARD.encode(bytes),
        );
    }
    Ok(wheels)
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

/// A template's files: (name, contents); the manifest's name is `NAME`.
fn template_files(template: AppTemplate) -> [(&'static str, &'static str); 2] {
    match template {
        AppTemplate::Map => [
            (
                MANIFEST,
                include_str!("../templates/apps/map/manifest.json"),
            ),
            ("task.py", include_str!("../templates/apps/map/task.py")),
        ],
        AppTemplate::Sweep => [
            (
                MANIFEST,
                include_str!("../templates/apps/sweep/manifest.json"),
            ),
            ("task.py", include_str!("../templates/apps/sweep/task.py")),
        ],
        AppTemplate::Files => [
            (
                MANIFEST,
                include_str!("../templates/apps/files/manifest.json"),
            ),
            ("task.py", include_str!("../templates/apps/files/task.py")),
        ],
    }
}

/// How to try an app of `template` named `dir`.
fn try_it(template: AppTemplate, dir: &str) -> String {
    match template {
        AppTemplate::Map => format!(
            "  idlegrid app test {dir} --input notes.txt --output out.txt --params '{{\"prefix\": \"> \"}}'"
        ),
        AppTemplate::Sweep => format!(
            "  echo '{{\"grid\": {{\"mu\": [0, 1]}}, \"seeds\": 8}}' > sweep.json\n  \
             idlegrid app test {dir} --input sweep.json --output stats.json"
        ),
        AppTemplate::Files => format!(
            "  tar cf docs.tar some-folder/\n  \
             idlegrid app test {dir} --input docs.tar --output notes.tar --chunk-items 10"
        ),
    }
}

fn new(args: AppNewArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        idlegrid_coordinator::apps::published::is_app_name(&args.name),
        "{:?} is not an app name: use 2 to 40 lower-case letters, digits and single inner \
         hyphens, starting with a letter",
        args.name
    );
    let dir = args.dir.unwrap_or_else(|| args.name.clone().into());
    std::fs::create_dir(&dir).with_context(|| {
        format!(
            "cannot make the folder {} (it must not exist yet)",
            dir.display()
        )
    })?;
    for (file, text) in template_files(args.template) {
        let text = if file == MANIFEST {
            text.replace("\"NAME\"", &serde_json::to_string(&args.name)?)
        } else {
            text.to_string()
        };
        std::fs::write(dir.join(file), text)
            .with_context(|| format!("cannot write {}", dir.join(file).display()))?;
    }
    // What was written must be an app the grid takes.
    read_bundle(&dir, None)?;
    println!(
        "{} made in {}: edit manifest.json and task.py, then try it:\n{}",
        args.name,
        dir.display(),
        try_it(args.template, &dir.display().to_string())
    );
    Ok(ExitCode::SUCCESS)
}

async fn show(args: AppNameArgs) -> anyhow::Result<ExitCode> {
    let client = target::required(&args.target).await?;
    let versions = client.app_versions(&args.name).await?;
    let latest = versions
        .last()
        .ok_or_else(|| anyhow::anyhow!("app {} has no versions", args.name))?;
    if args.json {
        println!("{}", output::json(latest)?);
        return Ok(ExitCode::SUCCESS);
    }
    let m = &latest.manifest;
    let mut s = format!(
        "{} {} ({})\n{}\n\nsteps: {} -> {} -> {}\n",
        shown(&m.name),
        shown(&m.version),
        publisher(latest),
        shown(&m.description),
        shown(&m.partitioner),
        shown(&m.validator),
        shown(&m.assembler),
    );
    let own: Vec<&str> = [m.partitioner.as_str(), m.assembler.as_str()]
        .into_iter()
        .filter(|step| step.ends_with(".py"))
        .collect();
    if !own.is_empty() {
        let _ = writeln!(
            s,
            "its own steps: {} (each one more task on devices; on the open grid two owners' \
             devices must agree)",
            own.iter()
                .map(|o| shown(o).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let needs = &m.requirements;
    let _ = writeln!(
        s,
        "needs: Python {}, {} MiB a task{}",
        needs.python.as_deref().map_or("3", |v| v),
        needs.memory_mb.unwrap_or(1024),
        if needs.ffmpeg { ", FFmpeg" } else { "" }
    );
    if !needs.platforms.is_empty() {
        let platforms: Vec<String> = needs
            .platforms
            .iter()
            .map(|p| shown(p).into_owned())
            .collect();
        let _ = writeln!(
            s,
            "its packages run on: {} (native workers)",
            platforms.join(", ")
        );
    }
    let _ = writeln!(
        s,
        "checked: {}",
        match &m.replication {
            Some(r) if r.is_replicated() => format!(
                "replicated by default ({} devices, {} must agree)",
                r.replicas, r.quorum
            ),
            _ if m.deterministic => "deterministic: the grid may replicate it".to_string(),
            _ => "by its validator only".to_string(),
        }
    );
    if let Some(schema) = &m.parameters {
        let _ = writeln!(s, "parameters:\n{}", serde_json::to_string_pretty(schema)?);
    }
    let _ = writeln!(s, "versions: {}", versions.len());
    print!("{s}");
    Ok(ExitCode::SUCCESS)
}

async fn push(args: AppPushArgs) -> anyhow::Result<ExitCode> {
    let bundle = read_bundle(&args.dir, Some(&args.wheels))?;
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
        logs: None,
    };
    submission.submit().await
}

async fn test(args: AppTestArgs) -> anyhow::Result<ExitCode> {
    let bundle = read_bundle(&args.dir, Some(&args.wheels))?;
    let reference = format!("{}@{}", bundle.manifest.name, bundle.manifest.version);
    let submission = Submission {
        request: job_request(&reference, &args.input)?,
        input: &args.input.input,
        output: &args.input.output,
        how: &args.input.submit,
        app: Some(bundle),
        shown: None,
        logs: Some(args.logs.level()),
    };
    submission.submit().await
}
