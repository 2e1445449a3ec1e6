//! Debug logging in the manner of Terraform's `TF_LOG`: `-v` / `--log-level` or the
//! `VAULTFORM_LOG` filter choose what is logged; lines go to stderr or to an append-only file.

use std::path::PathBuf;
use std::sync::Mutex;

use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{EnvFilter, FilterExt as _, filter_fn};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

pub use tracing::Level;

use super::Printer;

/// The environment variable holding a filter: a level (`debug`) or directives
/// (`vaultform::aws=debug,warn`), as `tracing_subscriber::EnvFilter` reads them.
pub const ENV: &str = "VAULTFORM_LOG";

/// What to log and where, resolved from the flags.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// vaultform's own level from `-v` or `--log-level`; wins over `VAULTFORM_LOG`.
    pub level: Option<Level>,
    /// Append to this file (created with mode 0600) instead of writing to stderr.
    pub file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LogError {
    #[error("invalid {ENV} filter {value:?}: {message}")]
    #[diagnostic(
        code(vaultform::log::filter),
        help(
            "give a level (error, warn, info, debug, trace) or directives such as `vaultform::aws=debug`"
        )
    )]
    Filter { value: String, message: String },
    #[error("cannot open the log file {path}")]
    #[diagnostic(code(vaultform::log::file))]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Installs the global logger; by default only warnings are logged.
pub fn init(settings: &Settings, printer: &Printer) -> Result<(), LogError> {
    let filter = match (settings.level, std::env::var(ENV)) {
        (Some(level), _) => EnvFilter::new(format!(
            "warn,vaultform={}",
            level.as_str().to_ascii_lowercase()
        )),
        (None, Ok(value)) if !value.trim().is_empty() => EnvFilter::builder()
            .parse(value.trim())
            .map_err(|e| LogError::Filter {
            value: value.clone(),
            message: e.to_string(),
        })?,
        _ => EnvFilter::new("warn"),
    };
    // The AWS SDK and the HTTP stack log requests and responses, headers and bodies included
    // (signatures, tokens, KMS plaintexts), at debug and trace: other crates stop at info.
    let others_at_most_info = filter_fn(|meta| {
        let target = meta.target();
        target == "vaultform" || target.starts_with("vaultform::") || *meta.level() <= Level::INFO
    });
    let (writer, ansi) = match &settings.file {
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt as _;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(|source| LogError::File {
                    path: path.display().to_string(),
                    source,
                })?;
            (BoxMakeWriter::new(Mutex::new(file)), false)
        }
        None => (BoxMakeWriter::new(std::io::stderr), printer.color_err),
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi)
        .with_filter(filter.and(others_at_most_info));
    // Only main calls this, once; a second logger would change nothing.
    let _ = tracing_subscriber::registry().with(layer).try_init();
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "vaultform");
    Ok(())
}
