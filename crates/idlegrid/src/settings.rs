//! `serve --config FILE` and `worker --config FILE`: settings from a file of `IDLEGRID_*=value` lines, the same names as the
//! flags' environment variables (so one file serves both `--config` and systemd's
//! `EnvironmentFile=`). The file is read before the command line is parsed and only fills
//! variables the environment does not set: the command line, then the environment, then the
//! file, then the defaults.

use anyhow::{Context, bail};
use std::path::Path;

/// The `--config` value among the program's arguments, if any.
pub fn config_path(args: &[String]) -> Option<&str> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--" {
            return None;
        }
        if arg == "--config" {
            return iter.next().map(String::as_str);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(path);
        }
    }
    None
}

/// The settings of a config file, as (variable, value) pairs.
pub fn parse(text: &str, path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut settings = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{}, line {}", path.display(), n + 1);
        let Some((key, value)) = line.split_once('=') else {
            bail!("{}: expected NAME=value, got {line:?}", at());
        };
        let key = key.trim().trim_start_matches("export ").trim();
        if !(key.starts_with("IDLEGRID_") || key.starts_with("AWS_") || key == "RUST_LOG") {
            bail!(
                "{}: {key:?} is not a setting (names start with IDLEGRID_ or AWS_)",
                at()
            );
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        settings.push((key.to_string(), value.to_string()));
    }
    Ok(settings)
}

/// Reads the `--config` file among `args`, if any, into the environment (without overriding
/// it). Call before any thread starts.
pub fn load(args: &[String]) -> anyhow::Result<()> {
    let Some(path) = config_path(args) else {
        return Ok(());
    };
    let path = Path::new(path);
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    for (key, value) in parse(&text, path)? {
        if std::env::var_os(&key).is_none() {
            // SAFETY: called from `main` before the runtime or any other thread exists, so
            // nothing reads the environment concurrently.
            unsafe { std::env::set_var(key, value) };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_files_are_name_value_lines_of_known_settings() {
        let path = Path::new("c.env");
        let text = "# shared backends\nIDLEGRID_STORE=postgres://db/grid\n\nexport IDLEGRID_LEASE_SECS = 10\nAWS_REGION='eu-west-1'\n";
        assert_eq!(
            parse(text, path).unwrap(),
            [
                (
                    "IDLEGRID_STORE".to_string(),
                    "postgres://db/grid".to_string()
                ),
                ("IDLEGRID_LEASE_SECS".to_string(), "10".to_string()),
                ("AWS_REGION".to_string(), "eu-west-1".to_string()),
            ]
        );
        let err = parse("PATH=/tmp\n", path).unwrap_err().to_string();
        assert!(
            err.contains("line 1") && err.contains("not a setting"),
            "{err}"
        );
        let err = parse("IDLEGRID_STORE\n", path).unwrap_err().to_string();
        assert!(err.contains("expected NAME=value"), "{err}");
        let args: Vec<String> = ["idlegrid", "serve", "--config=/etc/x"]
            .map(String::from)
            .into();
        assert_eq!(config_path(&args), Some("/etc/x"));
        let args: Vec<String> = ["idlegrid", "serve", "--config", "y"]
            .map(String::from)
            .into();
        assert_eq!(config_path(&args), Some("y"));
    }
}
