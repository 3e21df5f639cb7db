//! Configuration: reads the YAML file users write into the validated [`Config`],
//! reporting every problem at once.
//!
//! Loading goes through layers, each in its own file:
//!
//! 1. `yaml.rs`: saphyr parses the file into a tree that keeps each node's
//!    line:col, and a tolerant serde deserializer reads that tree into the
//!    `raw.rs` structs. It records problems instead of stopping (unknown keys with
//!    the nearest valid one, wrong types, missing `${VAR}`s) and hands on neutral
//!    values.
//! 2. `convert/`: turns the raw structs into the [`model`] types, checking every
//!    rule (required keys, durations and sizes through `units.rs`, route matches,
//!    tag templates through `template.rs`, cross-references) and reporting each
//!    problem at the position kept by the first layer.
//!
//! Both layers write into one report. If it holds any error, [`ConfigError`]
//! lists them all in file order; otherwise the [`Config`] comes with the
//! warnings. Secrets (`admin.token`, `admin.webhook_secret`) become
//! [`Secret`]s and never appear in a message.

mod convert;
mod defaults;
mod diagnostic;
mod env;
pub mod model;
mod raw;
mod schema;
mod template;
mod units;
mod yaml;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_security;

use std::path::Path;

pub use diagnostic::{ConfigError, Diagnostic, Severity};
pub use model::*;
pub use schema::json_schema;

use diagnostic::Report;

/// A successfully loaded configuration.
#[derive(Debug)]
pub struct Loaded {
    /// The validated configuration.
    pub config: Config,
    /// Things worth the operator's attention that do not stop the load, in file order.
    pub warnings: Vec<Diagnostic>,
}

/// Parses a duration as the config writes them (`500ms`, `180s`, `10m`,
/// `1h30m`), for values that come from elsewhere (the admin API).
///
/// # Errors
/// What was expected, in one sentence.
pub fn parse_duration_text(text: &str) -> Result<std::time::Duration, String> {
    units::parse_duration(text).map_err(|e| match e.hint {
        Some(hint) => format!("{} ({hint})", e.message),
        None => e.message,
    })
}

/// Loads the config file at `path`, taking `${VAR}`s from the process environment.
///
/// # Errors
/// Every problem in the file, or a single diagnostic (line 0) naming the path and
/// the OS error if the file cannot be read.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(source) => load_str(&source, &file, &|name| std::env::var(name).ok()),
        Err(error) => Err(ConfigError {
            diagnostics: vec![Diagnostic {
                file: file.clone(),
                line: 0,
                col: 0,
                severity: Severity::Error,
                message: format!("cannot read config file {file:?}: {error}"),
                hint: None,
            }],
        }),
    }
}

/// Loads a config from `source`; `file_name` is used in diagnostics and `env`
/// resolves `${VAR}`s (`None`: not set).
///
/// # Errors
/// Every problem found, each at its line:col: YAML syntax (reported alone, as
/// nothing else can be read), unknown keys, wrong types, missing variables and
/// every rule of the config.
pub fn load_str(
    source: &str,
    file_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    let report = Report::new(file_name);
    let (raw, mut report) = yaml::from_str::<raw::Spanned<raw::Config>>(source, env, report);
    let config = raw.map(|raw| convert::convert(raw, &mut report));
    let (errors, warnings) = report.finish();
    match config {
        Some(config) if errors.is_empty() => Ok(Loaded { config, warnings }),
        _ => Err(ConfigError {
            diagnostics: errors,
        }),
    }
}
