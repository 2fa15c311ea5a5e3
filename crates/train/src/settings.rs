//! Settings files and command-line overrides, shared by every front end of the loops (the CLI's
//! `fit`, `generate`, `distill2d`, `compare`, and the benchmark suites): a TOML settings file
//! read as a table (checked as the loop's config type first, so an error names the file), then
//! `key=value` overrides with dotted keys laid over it, then the table read as the config type.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why settings could not be read or overridden. Messages name the file or the key.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The settings file could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The settings text is not TOML, or not settings of the loop.
    #[error("{name}: invalid settings")]
    Invalid {
        /// The file (or what the text is).
        name: String,
        /// What TOML/serde said (names the key and line).
        source: toml::de::Error,
    },
    /// An override is not `key=value`.
    #[error("--set `{0}`: expected key=value")]
    MalformedSet(String),
    /// An override's key cannot be set: empty, or a part of it is a value, not a table.
    #[error("setting `{key}`: {reason}")]
    Key {
        /// The dotted key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The settings after the overrides are not settings of the loop.
    #[error("invalid settings after the command-line overrides")]
    Overridden {
        /// What serde said (names the key).
        source: toml::de::Error,
    },
}

/// A settings file as a TOML table, checked as `T` on its own first so errors name the file.
///
/// # Errors
/// [`SettingsError::Read`] for an unreadable file, [`SettingsError::Invalid`] for settings `T`
/// rejects.
pub fn read_settings<T: DeserializeOwned>(path: &Path) -> Result<toml::Table, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_settings::<T>(&text, &path.display().to_string())
}

/// [`read_settings`] of TOML text already in memory; `name` names it in errors.
///
/// # Errors
/// [`SettingsError::Invalid`] for text that is not TOML or settings `T` rejects.
pub fn parse_settings<T: DeserializeOwned>(
    text: &str,
    name: &str,
) -> Result<toml::Table, SettingsError> {
    let invalid = |source| SettingsError::Invalid {
        name: name.to_string(),
        source,
    };
    toml::from_str::<T>(text).map_err(invalid)?;
    toml::from_str(text).map_err(invalid)
}

/// Lay `options` (settings a front end's own flags stand for), then every `key=value` of `set`
/// (later wins; the value is TOML — numbers, booleans, arrays, quoted strings — or else the
/// bare text as a string), over `table` and read the result as `T`.
///
/// # Errors
/// A malformed `set` entry, a key that cannot be set, or settings `T` rejects.
pub fn apply_overrides<T: DeserializeOwned>(
    mut table: toml::Table,
    options: Vec<(String, toml::Value)>,
    set: &[String],
) -> Result<T, SettingsError> {
    let mut all = options;
    for kv in set {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| SettingsError::MalformedSet(kv.clone()))?;
        all.push((k.trim().to_string(), parse_value(v.trim())));
    }
    for (k, v) in all {
        set_key(&mut table, &k, v)?;
    }
    toml::Value::Table(table)
        .try_into()
        .map_err(|source| SettingsError::Overridden { source })
}

/// Set `dotted` in a TOML table, creating tables on the way.
fn set_key(root: &mut toml::Table, dotted: &str, value: toml::Value) -> Result<(), SettingsError> {
    let key_err = |reason: String| SettingsError::Key {
        key: dotted.to_string(),
        reason,
    };
    let mut parts: Vec<&str> = dotted.split('.').collect();
    let last = parts
        .pop()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| key_err("empty key".into()))?;
    let mut table = root;
    for p in parts {
        let entry = table
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()));
        table = entry
            .as_table_mut()
            .ok_or_else(|| key_err(format!("`{p}` is not a table")))?;
    }
    table.insert(last.to_string(), value);
    Ok(())
}

/// A TOML value from command-line text: TOML syntax (numbers, booleans, arrays, quoted
/// strings), else the bare text as a string.
fn parse_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// The run folder of a `--resume` path (a checkpoint file lies in `<run>/checkpoints/`; the
/// `checkpoints` folder itself or the run folder are taken as given).
pub fn resume_dir(p: &Path) -> PathBuf {
    if p.is_file() {
        let parent = p.parent().unwrap_or(Path::new("."));
        if parent.file_name().is_some_and(|n| n == "checkpoints") {
            return parent.parent().unwrap_or(Path::new(".")).to_path_buf();
        }
        return parent.to_path_buf();
    }
    if p.file_name().is_some_and(|n| n == "checkpoints") {
        return p.parent().unwrap_or(Path::new(".")).to_path_buf();
    }
    p.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct S {
        a: i64,
        #[serde(default)]
        t: T,
    }

    #[derive(serde::Deserialize, Debug, PartialEq, Default)]
    #[serde(deny_unknown_fields)]
    struct T {
        #[serde(default)]
        b: String,
        #[serde(default)]
        c: Vec<f64>,
    }

    #[test]
    fn values_parse_as_toml_or_text() {
        assert_eq!(parse_value("3"), toml::Value::Integer(3));
        assert_eq!(parse_value("0.5"), toml::Value::Float(0.5));
        assert_eq!(parse_value("true"), toml::Value::Boolean(true));
        assert_eq!(parse_value("mcmc"), toml::Value::String("mcmc".into()));
        let mut t = toml::Table::new();
        set_key(&mut t, "a.b.c", toml::Value::Integer(1)).unwrap();
        assert_eq!(t["a"]["b"]["c"], toml::Value::Integer(1));
    }

    #[test]
    fn overrides_lay_dotted_keys_over_the_file_and_later_ones_win() {
        let table = parse_settings::<S>("a = 1\n", "s.toml").unwrap();
        let s: S = apply_overrides(
            table,
            vec![("a".into(), toml::Value::Integer(2))],
            &["t.b=bare text".into(), "t.c=[1, 2.5]".into(), "a=3".into()],
        )
        .unwrap();
        assert_eq!(
            s,
            S {
                a: 3,
                t: T {
                    b: "bare text".into(),
                    c: vec![1.0, 2.5]
                }
            }
        );
    }

    #[test]
    fn errors_name_the_file_or_the_key() {
        let e = parse_settings::<S>("a = 1\nz = 2\n", "s.toml").unwrap_err();
        assert!(e.to_string().starts_with("s.toml: invalid settings"), "{e}");
        let table = parse_settings::<S>("a = 1\n", "s.toml").unwrap();
        let e = apply_overrides::<S>(table.clone(), vec![], &["a".into()]).unwrap_err();
        assert_eq!(e.to_string(), "--set `a`: expected key=value");
        let e = apply_overrides::<S>(table.clone(), vec![], &["a.x=1".into()]).unwrap_err();
        assert_eq!(e.to_string(), "setting `a.x`: `a` is not a table");
        let e = apply_overrides::<S>(table, vec![], &["t.q=1".into()]).unwrap_err();
        assert!(matches!(e, SettingsError::Overridden { .. }), "{e}");
    }
}
