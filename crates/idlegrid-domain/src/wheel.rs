//! Python wheels that apps bring in their bundles: which devices each one runs on, read from
//! its file name (`{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`, each tag possibly
//! a `.`-separated set), so the coordinator offers a job only to devices that have a wheel of
//! every package, and a worker installs the wheel of each package that fits it.
//!
//! A platform is `os/arch/python`: `linux/x86_64/3.11`, with `*` for any (`*/*/*` for a pure
//! Python wheel). Operating systems and architectures are named as Rust names them (`linux`,
//! `macos`, `windows`; `x86_64`, `aarch64`), as devices report them.

use crate::app::{Capabilities, Runtime};
use std::collections::{BTreeMap, BTreeSet};

/// Where a wheel runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    /// Operating system, or `*`.
    pub os: String,
    /// Architecture, or `*`.
    pub arch: String,
    /// Python `MAJOR.MINOR`, or `*`.
    pub python: String,
}

impl Platform {
    /// As text: `os/arch/python`.
    pub fn text(&self) -> String {
        format!("{}/{}/{}", self.os, self.arch, self.python)
    }

    /// The platform `text` names.
    pub fn parse(text: &str) -> Option<Platform> {
        let mut parts = text.split('/');
        let (os, arch, python) = (parts.next()?, parts.next()?, parts.next()?);
        let fine = |p: &str| {
            !p.is_empty()
                && p.len() <= 16
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'*')
        };
        (parts.next().is_none() && fine(os) && fine(arch) && fine(python)).then(|| Platform {
            os: os.into(),
            arch: arch.into(),
            python: python.into(),
        })
    }

    /// Whether a native device with `caps` is of this platform.
    pub fn fits(&self, caps: &Capabilities) -> bool {
        let python = caps
            .python
            .as_deref()
            .map(|v| v.split('.').take(2).collect::<Vec<_>>().join("."));
        caps.runtime == Runtime::Native
            && (self.os == "*" || self.os == caps.os)
            && (self.arch == "*" || self.arch == caps.arch)
            && (self.python == "*" || python.as_deref() == Some(self.python.as_str()))
    }

    /// Where both this and `other` run, if anywhere.
    fn meet(&self, other: &Platform) -> Option<Platform> {
        let one = |a: &str, b: &str| match (a, b) {
            ("*", b) => Some(b.to_string()),
            (a, "*") => Some(a.to_string()),
            (a, b) if a == b => Some(a.to_string()),
            _ => None,
        };
        Some(Platform {
            os: one(&self.os, &other.os)?,
            arch: one(&self.arch, &other.arch)?,
            python: one(&self.python, &other.python)?,
        })
    }
}

/// A wheel's file name, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelName {
    /// The distribution (normalized: lower case, `-` and `.` as `_`).
    pub dist: String,
    /// Its version.
    pub version: String,
    /// Where it runs.
    pub platforms: Vec<Platform>,
}

/// The architecture a platform tag ends with, as Rust names it.
fn arch_of(tag: &str) -> Option<&'static str> {
    [
        ("x86_64", "x86_64"),
        ("amd64", "x86_64"),
        ("aarch64", "aarch64"),
        ("arm64", "aarch64"),
        ("i686", "x86"),
        ("armv7l", "arm"),
        ("ppc64le", "powerpc64"),
        ("s390x", "s390x"),
    ]
    .into_iter()
    .find(|(suffix, _)| tag.ends_with(suffix))
    .map(|(_, arch)| arch)
}

/// The (os, arch) pairs a platform tag names; none for a tag the grid does not know.
fn platform_tag(tag: &str) -> Vec<(&'static str, &'static str)> {
    if tag == "any" {
        return vec![("*", "*")];
    }
    if tag.ends_with("universal2") && tag.starts_with("macosx") {
        return vec![("macos", "x86_64"), ("macos", "aarch64")];
    }
    let os =
        if tag.starts_with("manylinux") || tag.starts_with("musllinux") || tag.starts_with("linux")
        {
            "linux"
        } else if tag.starts_with("macosx") {
            "macos"
        } else if tag.starts_with("win") {
            "windows"
        } else {
            return Vec::new();
        };
    match (os, arch_of(tag)) {
        (_, Some(arch)) => vec![(os, arch)],
        ("windows", None) if tag == "win32" => vec![("windows", "x86")],
        _ => Vec::new(),
    }
}

/// The Python versions a (python, abi) tag pair runs on: `MAJOR.MINOR` or `*`.
fn python_tag(python: &str, abi: &str) -> Option<String> {
    let digits = python
        .strip_prefix("cp")
        .or_else(|| python.strip_prefix("py"))?;
    if !digits.starts_with('3') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits == "3" || abi == "abi3" || (python.starts_with("py") && abi == "none") {
        return Some("*".into());
    }
    Some(format!("3.{}", &digits[1..]))
}

/// Reads a wheel's file name; the error says what is wrong with it.
pub fn parse(file: &str) -> Result<WheelName, String> {
    let stem = file
        .strip_suffix(".whl")
        .ok_or_else(|| format!("{file:?} is not a wheel (a .whl file)"))?;
    let parts: Vec<&str> = stem.split('-').collect();
    let (dist, version, tags) = match parts.as_slice() {
        [dist, version, py, abi, plat] => (*dist, *version, [*py, *abi, *plat]),
        [dist, version, _build, py, abi, plat] => (*dist, *version, [*py, *abi, *plat]),
        _ => {
            return Err(format!(
                "{file:?} is not a wheel's name: NAME-VERSION-PYTHON-ABI-PLATFORM.whl"
            ));
        }
    };
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'!'))
    };
    if !(ok(dist) && ok(version) && tags.iter().all(|t| ok(t))) {
        return Err(format!("{file:?} is not a wheel's name"));
    }
    let [py, abi, plat] = tags;
    let mut platforms = BTreeSet::new();
    for py in py.split('.') {
        for abi in abi.split('.') {
            let Some(python) = python_tag(py, abi) else {
                continue;
            };
            for plat in plat.split('.') {
                for (os, arch) in platform_tag(plat) {
                    platforms.insert(Platform {
                        os: os.into(),
                        arch: arch.into(),
                        python: python.clone(),
                    });
                }
            }
        }
    }
    if platforms.is_empty() {
        return Err(format!(
            "{file:?} is for no platform the grid's devices have (CPython 3 on Linux, macOS or \
             Windows)"
        ));
    }
    Ok(WheelName {
        dist: dist.to_ascii_lowercase().replace(['-', '.'], "_"),
        version: version.into(),
        platforms: platforms.into_iter().collect(),
    })
}

/// The platforms on which every distribution among `wheels` has a wheel; the error names a
/// wheel that is not one, or says that no platform has them all.
pub fn common_platforms<'a>(
    wheels: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Platform>, String> {
    let mut by_dist: BTreeMap<String, BTreeSet<Platform>> = BTreeMap::new();
    for file in wheels {
        let wheel = parse(file)?;
        by_dist
            .entry(wheel.dist)
            .or_default()
            .extend(wheel.platforms);
    }
    let mut common: Option<BTreeSet<Platform>> = None;
    for platforms in by_dist.values() {
        common = Some(match common {
            None => platforms.clone(),
            Some(so_far) => so_far
                .iter()
                .flat_map(|a| platforms.iter().filter_map(move |b| a.meet(b)))
                .collect(),
        });
    }
    let common: Vec<Platform> = common.unwrap_or_default().into_iter().collect();
    if common.is_empty() && !by_dist.is_empty() {
        return Err(format!(
            "no platform has a wheel of every package ({}): bring wheels of each for the same \
             platforms",
            by_dist.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(common)
}

/// Of `wheels`, the one of each distribution that runs on a device with `caps` (the first that
/// fits); `None` when some distribution has none that does.
pub fn pick<'a>(
    wheels: impl IntoIterator<Item = &'a str>,
    caps: &Capabilities,
) -> Option<Vec<&'a str>> {
    let mut chosen: BTreeMap<String, Option<&'a str>> = BTreeMap::new();
    for file in wheels {
        let Ok(wheel) = parse(file) else {
            return None;
        };
        let slot = chosen.entry(wheel.dist).or_insert(None);
        if slot.is_none() && wheel.platforms.iter().any(|p| p.fits(caps)) {
            *slot = Some(file);
        }
    }
    chosen.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(os: &str, arch: &str, python: &str) -> Capabilities {
        Capabilities {
            os: os.into(),
            arch: arch.into(),
            python: Some(python.into()),
            ..Default::default()
        }
    }

    fn texts(platforms: &[Platform]) -> Vec<String> {
        platforms.iter().map(Platform::text).collect()
    }

    #[test]
    fn wheel_names_say_where_they_run() {
        let pure = parse("six-1.16.0-py2.py3-none-any.whl").unwrap();
        assert_eq!(pure.dist, "six");
        assert_eq!(texts(&pure.platforms), ["*/*/*"]);
        let pillow =
            parse("pillow-11.0.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
                .unwrap();
        assert_eq!(texts(&pillow.platforms), ["linux/x86_64/3.11"]);
        let abi3 = parse("cryptography-43.0.0-cp39-abi3-manylinux_2_28_aarch64.whl").unwrap();
        assert_eq!(texts(&abi3.platforms), ["linux/aarch64/*"]);
        let mac = parse("numpy-2.1.0-cp312-cp312-macosx_11_0_universal2.whl").unwrap();
        assert_eq!(
            texts(&mac.platforms),
            ["macos/aarch64/3.12", "macos/x86_64/3.12"]
        );
        assert_eq!(
            parse("My.Pkg-1.0-1-py3-none-any.whl").unwrap().dist,
            "my_pkg"
        );
        for bad in [
            "x.tar.gz",
            "a-1.whl",
            "a-1-cp27-cp27mu-manylinux1_x86_64.whl",
            "a-1-cp311-cp311-freebsd_13_amd64.whl",
            "../a-1-py3-none-any.whl",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_job_runs_where_every_package_has_a_wheel() {
        let wheels = [
            "six-1.16.0-py3-none-any.whl",
            "pillow-11.0.0-cp311-cp311-manylinux2014_x86_64.whl",
            "pillow-11.0.0-cp311-cp311-manylinux2014_aarch64.whl",
            "numpy-2.1.0-cp311-cp311-manylinux2014_x86_64.whl",
        ];
        assert_eq!(
            texts(&common_platforms(wheels).unwrap()),
            ["linux/x86_64/3.11"]
        );
        assert_eq!(
            texts(&common_platforms(["six-1.16.0-py3-none-any.whl"]).unwrap()),
            ["*/*/*"]
        );
        let apart = common_platforms([
            "a-1-cp311-cp311-manylinux2014_x86_64.whl",
            "b-1-cp312-cp312-manylinux2014_x86_64.whl",
        ])
        .unwrap_err();
        assert!(apart.contains("no platform"), "{apart}");
        // A device gets the wheel of each package that fits it.
        let x86 = device("linux", "x86_64", "3.11.7");
        assert_eq!(
            pick(wheels, &x86).unwrap(),
            [
                "numpy-2.1.0-cp311-cp311-manylinux2014_x86_64.whl",
                "pillow-11.0.0-cp311-cp311-manylinux2014_x86_64.whl",
                "six-1.16.0-py3-none-any.whl"
            ]
        );
        assert!(pick(wheels, &device("linux", "aarch64", "3.11.2")).is_none());
        assert!(pick(wheels, &device("linux", "x86_64", "3.12.1")).is_none());
        let mut browser = x86.clone();
        browser.runtime = Runtime::Browser;
        assert!(pick(wheels, &browser).is_none());
    }
}
