//! `tagcache run` and `tagcache check`: load a config, then serve or report.

use std::path::Path;
use std::sync::Arc;

use super::Exit;

/// `tagcache check -c FILE`: every problem of the file, or `ok`.
pub(super) fn check(config: &Path) -> Exit {
    match tagcache::config::load_file(config) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{w}");
            }
            println!(
                "{}: ok ({} routes)",
                config.display(),
                loaded.config.routes.len()
            );
            Exit::Ok
        }
        Err(e) => {
            eprintln!("{e}");
            Exit::Usage
        }
    }
}

/// `tagcache run -c FILE`: serves until stopped.
pub(super) fn run(config: &Path, upgrade: bool) -> Exit {
    let path = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    let loaded = match tagcache::config::load_file(config) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return Exit::Usage;
        }
    };
    init_logging(&loaded.config.log.level);
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let config = Arc::new(loaded.config);
    let (listen, admin, upstream, routes) = (
        config.listen,
        config.admin.listen,
        config.upstream.address.clone(),
        config.routes.len(),
    );
    let start = if upgrade {
        tracing::info!(sock = %config.server.upgrade_sock, "waiting for the running process to hand over its sockets (send it SIGQUIT)");
        tagcache::server::Start::Upgrade
    } else {
        tagcache::server::Start::Fresh
    };
    match tagcache::server::build_with(config, start) {
        Ok(built) => {
            built.cache.set_config_file(path);
            tracing::info!(%listen, %admin, %upstream, routes, "tagcache started");
            tagcache::server::run_forever(built)
        }
        Err(e) => {
            eprintln!("tagcache: could not start: {e}");
            Exit::Refused
        }
    }
}

/// The process log: `RUST_LOG` when set (or `TAGCACHE_LOG`, its older
/// name), else `log.level`; colours only on a terminal.
fn init_logging(level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_env("TAGCACHE_LOG"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
