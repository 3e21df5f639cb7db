//! The `tagcache` command: run the proxy, check a config, purge.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

/// A tenant-aware, tag-purgeable HTTP reverse-proxy cache.
#[derive(Parser)]
#[command(name = "tagcache", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy and the admin listener.
    Run {
        /// Config file.
        #[arg(short, long, default_value = "/etc/tagcache/tagcache.yaml")]
        config: PathBuf,
        /// Take the listening sockets over from the running process (send
        /// it SIGQUIT once this one waits): a zero-downtime binary upgrade.
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate a config file and exit.
    Check {
        /// Config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Reload a running instance's config file through its admin API.
    Reload {
        /// Admin API base URL.
        #[arg(long, default_value = "http://127.0.0.1:9090")]
        admin: String,
        /// Admin token (prefer the environment variable).
        #[arg(long, env = "TAGCACHE_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Purge tags through a running instance's admin API.
    Purge {
        /// Tag to purge (repeatable).
        #[arg(long = "tag", required_unless_present = "all")]
        tags: Vec<String>,
        /// Purge every entry, on every instance.
        #[arg(long, conflicts_with_all = ["tags", "soft"])]
        all: bool,
        /// Mark entries stale instead of dropping them.
        #[arg(long)]
        soft: bool,
        /// Admin API base URL.
        #[arg(long, default_value = "http://127.0.0.1:9090")]
        admin: String,
        /// Admin token (prefer the environment variable).
        #[arg(long, env = "TAGCACHE_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match tagcache::config::load_file(&config) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    eprintln!("{w}");
                }
                println!(
                    "{}: ok ({} routes)",
                    config.display(),
                    loaded.config.routes.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Run { config, upgrade } => {
            let path = std::fs::canonicalize(&config).unwrap_or_else(|_| config.clone());
            let loaded = match tagcache::config::load_file(&config) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
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
                    ExitCode::FAILURE
                }
            }
        }
        Command::Reload { admin, token } => {
            match tagcache::admin::client::post_json(&admin, "/reload", token.as_deref(), "") {
                Ok(a) if a.status == 200 => {
                    println!("{}", a.body);
                    ExitCode::SUCCESS
                }
                Ok(a) => {
                    eprintln!("reload refused ({}): {}", a.status, a.body);
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("tagcache: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Purge {
            tags,
            all,
            soft,
            admin,
            token,
        } => {
            let body = serde_json::json!({ "tags": tags, "soft": soft, "all": all }).to_string();
            match tagcache::admin::client::post_json(&admin, "/purge", token.as_deref(), &body) {
                Ok(a) if a.status == 200 => {
                    println!("{}", a.body);
                    ExitCode::SUCCESS
                }
                Ok(a) => {
                    eprintln!("purge refused ({}): {}", a.status, a.body);
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("tagcache: {e}");
                    ExitCode::FAILURE
                }
            }
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
