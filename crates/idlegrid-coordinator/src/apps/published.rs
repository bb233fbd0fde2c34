//! Apps that customers and partners publish: a bundle (manifest plus task script and the files
//! it imports) checked here, kept in the blob store by its hash and recorded as an immutable
//! version of its name, which belongs to the account that published it first. A job names
//! `app` or `app@version`; workers fetch its bundle like any other, so a new app needs no
//! worker update.
//!
//! A published app's fan-out, validation and fan-in are built-in steps named in its manifest
//! ([`steps`]): its only code is its task script, which runs in the workers' sandbox like a
//! customer's python-map script. (Apps of our own, such as video-transcode, name steps of
//! their own that no published app may name.)

use super::plugin::{Assembler, Partitioner};
use super::{App, AppRegistry, steps};
use idlegrid_api::Bundle;
use idlegrid_domain::AppManifest;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Largest bundle published, in bytes (its JSON as served to workers).
pub const MAX_BUNDLE_BYTES: usize = 4 << 20;
/// Most files in a bundle.
pub const MAX_FILES: usize = 64;
/// Most wheels (Python packages) a bundle may bring.
pub const MAX_WHEELS: usize = 100;
/// Most bytes its wheels may hold together.
pub const MAX_WHEEL_BYTES: usize = 48 << 20;
/// Largest bundle with its wheels, as served (base64 makes a wheel a third larger).
pub const MAX_BUNDLE_WITH_WHEELS: usize = 72 << 20;
/// Most bytes a bundle's wheels may unpack to.
pub const MAX_UNPACKED_WHEEL_BYTES: u64 = 1 << 30;
/// Most memory a published app's task may ask for, in MiB.
pub const MAX_MEMORY_MB: u64 = 4096;
/// Largest parameters schema, in bytes of JSON.
pub const MAX_SCHEMA_BYTES: usize = 64 << 10;
/// Most schema violations a refused job's error names.
const MAX_VIOLATIONS: usize = 3;

/// Whether `name` is an app name: 2 to 40 of lower-case letters, digits and inner hyphens,
/// starting with a letter.
pub fn is_app_name(name: &str) -> bool {
    (2..=40).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Whether `version` is `MAJOR.MINOR.PATCH`, each a number without leading zeros.
pub fn is_version(version: &str) -> bool {
    let parts: Vec<&str> = version.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 9
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        })
}

pub use idlegrid_domain::app::version_key;

/// Splits what a job asks for (`name` or `name@version`).
pub fn split_reference(app: &str) -> (&str, Option<&str>) {
    match app.split_once('@') {
        Some((name, version)) => (name, Some(version)),
        None => (app, None),
    }
}

/// Checks a bundle someone publishes; the error names what is wrong, for the publisher.
pub fn check_bundle(bundle: &Bundle, bytes: usize, builtin: &AppRegistry) -> Result<(), String> {
    let m = &bundle.manifest;
    if bytes > MAX_BUNDLE_BYTES {
        return Err(format!(
            "the bundle is {bytes} bytes; the limit is {MAX_BUNDLE_BYTES}"
        ));
    }
    if !is_app_name(&m.name) {
        return Err(format!(
            "the app's name {:?} must be 2 to 40 lower-case letters, digits and single inner \
             hyphens, starting with a letter",
            m.name
        ));
    }
    if builtin.get(&m.name).is_some() {
        return Err(format!(
            "{:?} is the name of an app built into the grid",
            m.name
        ));
    }
    if !is_version(&m.version) {
        return Err(format!(
            "the version {:?} must be MAJOR.MINOR.PATCH (numbers, e.g. 1.0.0)",
            m.version
        ));
    }
    if m.description.trim().is_empty() || m.description.chars().count() > 500 {
        return Err("the description must say in at most 500 characters what the app does".into());
    }
    if bundle.files.len() > MAX_FILES {
        return Err(format!(
            "the bundle has {} files; the limit is {MAX_FILES}",
            bundle.files.len()
        ));
    }
    if let Some(bad) = bundle.files.keys().find(|f| !Bundle::is_safe_file_name(f)) {
        return Err(format!(
            "the bundle's file name {bad:?} must be a plain file name (no directories)"
        ));
    }
    if !m.entrypoint.ends_with(".py") || !bundle.files.contains_key(&m.entrypoint) {
        return Err(format!(
            "the entrypoint {:?} must be a Python file of the bundle (its files: {})",
            m.entrypoint,
            bundle.files.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if !Bundle::is_safe_file_name(&m.input_name) {
        return Err(format!(
            "input_name {:?} must be a plain file name",
            m.input_name
        ));
    }
    let find = |kind: &str, named: &str, offered: String, found: bool| {
        if found {
            Ok(())
        } else {
            Err(format!(
                "the {kind} {named:?} is not one a published app may use: {offered}"
            ))
        }
    };
    // A step that is a script of the bundle runs as a task whose replicas must agree.
    let script_step = |kind: &str, name: &str| {
        if !bundle.files.contains_key(name) || !Bundle::is_safe_file_name(name) {
            return Err(format!(
                "the {kind} {name:?} names a script, but the bundle has no such file (its \
                 files: {})",
                bundle.files.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        if !m.deterministic {
            return Err(format!(
                "the {kind} script {name} runs on two parties' devices whose outputs must \
                 agree byte for byte: an app with one must be deterministic"
            ));
        }
        Ok(())
    };
    if steps::script::is_script(&m.partitioner) {
        script_step("partitioner", &m.partitioner)?;
    } else {
        let partitioner = steps::PARTITIONERS.iter().find(|s| s.name == m.partitioner);
        find(
            "partitioner",
            &m.partitioner,
            format!(
                "{}, or a Python file of the bundle (a partition script)",
                steps::names(steps::PARTITIONERS, |s| s.name)
            ),
            partitioner.is_some(),
        )?;
    }
    let validator = steps::VALIDATORS.iter().find(|s| s.name == m.validator);
    find(
        "validator",
        &m.validator,
        steps::names(steps::VALIDATORS, |s| s.name),
        validator.is_some(),
    )?;
    let reduce = steps::script::is_script(&m.assembler);
    let assembler = steps::ASSEMBLERS.iter().find(|s| s.name == m.assembler);
    if reduce {
        script_step("assembler", &m.assembler)?;
    } else {
        find(
            "assembler",
            &m.assembler,
            format!(
                "{}, or a Python file of the bundle (a reduce script)",
                steps::names(steps::ASSEMBLERS, |s| s.name)
            ),
            assembler.is_some(),
        )?;
    }
    if let (Some(validator), Some(assembler)) = (validator, assembler)
        && !steps::fits(validator, assembler)
    {
        let fitting: Vec<&str> = steps::VALIDATORS
            .iter()
            .filter(|v| steps::fits(v, assembler))
            .map(|v| v.name)
            .collect();
        return Err(format!(
            "the assembler {:?} reads inside every output, so the validator must check that \
             each output is what it reads: use {}",
            assembler.name,
            fitting.join(" or ")
        ));
    }
    if let Some(replication) = &m.replication {
        if !replication.is_replicated() {
            return Err("replication, when given, must replicate (mode fixed or adaptive)".into());
        }
        if !m.deterministic {
            return Err(
                "replication compares results by hash: an app that asks for it must be \
                 deterministic"
                    .into(),
            );
        }
        replication.check()?;
    }
    if m.customer_script {
        return Err(
            "customer_script must be false: a published app's task script is its own".into(),
        );
    }
    let needs = &m.requirements;
    if needs
        .memory_mb
        .is_some_and(|mb| !(64..=MAX_MEMORY_MB).contains(&mb))
    {
        return Err(format!(
            "requirements.memory_mb must be from 64 to {MAX_MEMORY_MB}"
        ));
    }
    if !needs.platforms.is_empty() {
        return Err(
            "requirements.platforms is found by the grid from the bundle's wheels, not given"
                .into(),
        );
    }
    if !needs.encoders.is_empty() {
        return Err("requirements.encoders is set per job by video apps, not by a manifest".into());
    }
    // Requirements no device meets would leave every job of the app waiting.
    needs.satisfiable()?;
    if let Some(schema) = &m.parameters {
        let size = serde_json::to_vec(schema).map_or(usize::MAX, |b| b.len());
        if !schema.is_object() || size > MAX_SCHEMA_BYTES {
            return Err(format!(
                "parameters must be a JSON Schema object of at most {MAX_SCHEMA_BYTES} bytes"
            ));
        }
        // Only references inside the schema resolve: this build of the validator fetches
        // nothing, so a schema cannot make the coordinator reach another host.
        jsonschema::validator_for(schema)
            .map_err(|e| format!("parameters is not a JSON Schema the grid can use: {e}"))?;
    }
    Ok(())
}

/// Checks the wheels a bundle brings and says where a job of it may run: the platforms
/// (`os/arch/python`) on which every package has a wheel; none without wheels. Each wheel must
/// be a zip whose files have plain relative names, none the name of one of the app's files,
/// within the size limits.
pub fn check_wheels(bundle: &Bundle) -> Result<Vec<String>, String> {
    use base64::Engine;
    if bundle.wheels.is_empty() {
        return Ok(Vec::new());
    }
    if bundle.wheels.len() > MAX_WHEELS {
        return Err(format!(
            "the bundle brings {} wheels; the limit is {MAX_WHEELS}",
            bundle.wheels.len()
        ));
    }
    let (mut total, mut unpacked) = (0usize, 0u64);
    for (name, encoded) in &bundle.wheels {
        if !Bundle::is_safe_file_name(name) {
            return Err(format!("the wheel name {name:?} must be a plain file name"));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| format!("the wheel {name:?} is not base64"))?;
        total += bytes.len();
        if total > MAX_WHEEL_BYTES {
            return Err(format!(
                "the bundle's wheels hold more than {MAX_WHEEL_BYTES} bytes"
            ));
        }
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|e| format!("the wheel {name:?} is not a zip: {e}"))?;
        for i in 0..zip.len() {
            let entry = zip
                .by_index_raw(i)
                .map_err(|e| format!("the wheel {name:?} is damaged: {e}"))?;
            if entry.is_dir() {
                continue;
            }
            let path = idlegrid_domain::text::relative_path(
                entry.name_raw(),
                &format!("in the wheel {name:?}, the file name"),
                1024,
            )?;
            let top = path.split('/').next().unwrap_or(&path);
            if bundle.files.contains_key(top) {
                return Err(format!(
                    "the wheel {name:?} holds {top:?}, a file of the app: rename the app's file"
                ));
            }
            unpacked = unpacked.saturating_add(entry.size());
        }
        if unpacked > MAX_UNPACKED_WHEEL_BYTES {
            return Err(format!(
                "the bundle's wheels unpack to more than {MAX_UNPACKED_WHEEL_BYTES} bytes"
            ));
        }
    }
    let platforms =
        idlegrid_domain::wheel::common_platforms(bundle.wheels.keys().map(String::as_str))?;
    Ok(platforms.iter().map(|p| p.text()).collect())
}

/// Checks a job's `params` against its app's parameters schema, when it has one; the error
/// names the first few violations, each at its place in `params`.
pub fn check_params(manifest: &AppManifest, params: &serde_json::Value) -> Result<(), String> {
    let Some(schema) = &manifest.parameters else {
        return Ok(());
    };
    let validator = jsonschema::validator_for(schema).map_err(|e| {
        format!(
            "app {}'s parameters schema does not load: {e}",
            manifest.name
        )
    })?;
    let violations: Vec<String> = validator
        .iter_errors(params)
        .take(MAX_VIOLATIONS)
        .map(|e| {
            let at = e.instance_path().to_string();
            format!("params{at}: {e}")
        })
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the parameters do not fit app {}: {}",
            manifest.name,
            violations.join("; ")
        ))
    }
}

/// The bundle devices are served for a published one: the manifest without what only the
/// coordinator uses (the parameters schema, the default replication, the platforms found from
/// its wheels), so devices of any version read it.
pub fn served(bundle: &Bundle) -> Bundle {
    let mut served = bundle.clone();
    served.manifest.parameters = None;
    served.manifest.replication = None;
    served.manifest.requirements.platforms = Vec::new();
    served
}

/// The app a published manifest describes: its built-in steps, by name (checked when it was
/// published; `None` for a manifest naming others).
pub fn app_of(manifest: AppManifest) -> Option<App> {
    let partitioner: Arc<dyn Partitioner> = if steps::script::is_script(&manifest.partitioner) {
        Arc::new(steps::script::PartitionScript {
            script: manifest.partitioner.clone(),
        })
    } else {
        steps::partitioner(&manifest.partitioner)?
    };
    let validator = steps::validator(&manifest.validator)?;
    let assembler: Arc<dyn Assembler> = if steps::script::is_script(&manifest.assembler) {
        Arc::new(steps::script::ReduceScript {
            script: manifest.assembler.clone(),
        })
    } else {
        steps::assembler(&manifest.assembler)?
    };
    Some(App {
        manifest,
        // Its files are in its bundle, which the blob store keeps by hash.
        files: BTreeMap::new(),
        partitioner,
        validator,
        assembler,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> Bundle {
        Bundle {
            manifest: AppManifest {
                name: "shout".into(),
                version: "1.0.0".into(),
                description: "Upper-cases every line.".into(),
                entrypoint: "task.py".into(),
                input_name: "chunk.txt".into(),
                partitioner: "lines".into(),
                validator: "integrity".into(),
                assembler: "concat".into(),
                customer_script: false,
                deterministic: true,
                requirements: Default::default(),
                replication: None,
                parameters: Some(serde_json::json!({
                    "type": "object",
                    "properties": {"lower": {"type": "boolean"}},
                    "additionalProperties": false,
                })),
            },
            files: BTreeMap::from([("task.py".to_string(), "print(1)".to_string())]),
            wheels: Default::default(),
        }
    }

    #[test]
    fn a_good_bundle_passes_and_each_fault_is_named() {
        let builtin = AppRegistry::builtin();
        assert_eq!(check_bundle(&bundle(), 100, &builtin), Ok(()));
        type Fault = Box<dyn Fn(&mut Bundle)>;
        let faults: Vec<(Fault, &str)> = vec![
            (Box::new(|b| b.manifest.name = "Shout".into()), "lower-case"),
            (Box::new(|b| b.manifest.name = "a".into()), "2 to 40"),
            (Box::new(|b| b.manifest.name = "x-".into()), "hyphens"),
            (
                Box::new(|b| b.manifest.name = "video-transcode".into()),
                "built into",
            ),
            (
                Box::new(|b| b.manifest.version = "1.0".into()),
                "MAJOR.MINOR.PATCH",
            ),
            (
                Box::new(|b| b.manifest.version = "1.01.0".into()),
                "MAJOR.MINOR.PATCH",
            ),
            (
                Box::new(|b| b.manifest.description = " ".into()),
                "description",
            ),
            (
                Box::new(|b| b.manifest.entrypoint = "main.py".into()),
                "entrypoint",
            ),
            (
                Box::new(|b| b.manifest.partitioner = "video".into()),
                "partitioner",
            ),
            (
                Box::new(|b| b.manifest.validator = "video".into()),
                "validator",
            ),
            (
                Box::new(|b| b.manifest.assembler = "video".into()),
                "assembler",
            ),
            (
                Box::new(|b| b.manifest.assembler = "sum".into()),
                "use numbers",
            ),
            (
                Box::new(|b| {
                    b.manifest.validator = "tar".into();
                    b.manifest.assembler = "sum".into();
                }),
                "use numbers",
            ),
            (
                Box::new(|b| b.manifest.replication = Some(Default::default())),
                "must replicate",
            ),
            (
                Box::new(|b| {
                    b.manifest.replication = Some(idlegrid_domain::Replication {
                        mode: idlegrid_domain::ReplicationMode::Fixed,
                        ..Default::default()
                    });
                    b.manifest.deterministic = false;
                }),
                "deterministic",
            ),
            (
                Box::new(|b| {
                    b.manifest.replication = Some(idlegrid_domain::Replication {
                        mode: idlegrid_domain::ReplicationMode::Fixed,
                        quorum: 5,
                        ..Default::default()
                    })
                }),
                "quorum",
            ),
            (
                Box::new(|b| b.manifest.customer_script = true),
                "customer_script",
            ),
            (
                Box::new(|b| b.manifest.input_name = "../x".into()),
                "input_name",
            ),
            (
                Box::new(|b| b.manifest.requirements.memory_mb = Some(1 << 20)),
                "memory_mb",
            ),
            (
                Box::new(|b| b.manifest.requirements.python = Some("latest".into())),
                "python",
            ),
            (
                Box::new(|b| b.manifest.requirements.min_benchmark = Some(1e12)),
                "min_benchmark",
            ),
            (
                Box::new(|b| {
                    b.files.insert("../escape.py".into(), String::new());
                }),
                "plain file name",
            ),
            (
                Box::new(|b| b.manifest.assembler = "reduce.py".into()),
                "no such file",
            ),
            (
                Box::new(|b| b.manifest.partitioner = "cut.py".into()),
                "no such file",
            ),
            (
                Box::new(|b| {
                    b.manifest.assembler = "reduce.py".into();
                    b.files.insert("reduce.py".into(), String::new());
                    b.manifest.deterministic = false;
                }),
                "deterministic",
            ),
        ];
        for (fault, named) in faults {
            let mut bad = bundle();
            fault(&mut bad);
            let why = check_bundle(&bad, 100, &builtin).unwrap_err();
            assert!(why.contains(named), "{named}: {why}");
        }
        // A reduce script of the bundle is a fan-in, whatever the validator.
        let mut reduces = bundle();
        reduces.manifest.assembler = "reduce.py".into();
        reduces.files.insert("reduce.py".into(), String::new());
        assert_eq!(check_bundle(&reduces, 100, &builtin), Ok(()));
        reduces.manifest.partitioner = "cut.py".into();
        reduces.files.insert("cut.py".into(), String::new());
        assert_eq!(check_bundle(&reduces, 100, &builtin), Ok(()));
        let app = app_of(reduces.manifest).unwrap();
        assert_eq!(app.assembler.step(), Some("reduce.py"));
        assert_eq!(app.partitioner.step(), Some("cut.py"));
        let why = check_bundle(&bundle(), MAX_BUNDLE_BYTES + 1, &builtin).unwrap_err();
        assert!(why.contains("limit"), "{why}");
        for schema in [
            serde_json::json!({"type": 12}),
            serde_json::json!([1]),
            serde_json::json!({"$ref": "https://example.com/schema.json"}),
        ] {
            let mut bad = bundle();
            bad.manifest.parameters = Some(schema.clone());
            let why = check_bundle(&bad, 100, &builtin).unwrap_err();
            assert!(why.contains("parameters"), "{schema}: {why}");
        }
    }

    #[test]
    fn parameters_are_checked_against_the_schema_at_their_place() {
        let manifest = bundle().manifest;
        assert_eq!(
            check_params(&manifest, &serde_json::json!({"lower": true})),
            Ok(())
        );
        assert_eq!(check_params(&manifest, &serde_json::json!({})), Ok(()));
        let why = check_params(&manifest, &serde_json::json!({"lower": "yes"})).unwrap_err();
        assert!(
            why.contains("params/lower") && why.contains("boolean"),
            "{why}"
        );
        let why = check_params(&manifest, &serde_json::json!({"colour": 1})).unwrap_err();
        assert!(why.contains("colour"), "{why}");
        // What devices get has no schema.
        assert!(served(&bundle()).manifest.parameters.is_none());
    }

    #[test]
    fn references_and_versions_read() {
        assert_eq!(split_reference("shout"), ("shout", None));
        assert_eq!(split_reference("shout@1.2.3"), ("shout", Some("1.2.3")));
        assert!(is_version("10.0.3"));
        assert!(!is_version("1.0.0-beta"));
        assert!(app_of(bundle().manifest).is_some());
        let mut other = bundle().manifest;
        other.partitioner = "video".into();
        assert!(app_of(other).is_none());
    }
}
