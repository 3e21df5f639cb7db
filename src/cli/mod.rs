//! The `tagcache` command line: its arguments, and one function per command.
//!
//! `run.rs` runs the proxy and checks configs, `admin.rs` holds the commands
//! that talk to a running instance's admin listener (`purge`, `reload`,
//! `health`), and `generate.rs` prints what is derived from the code (the
//! config's JSON Schema, shell completions, man pages). Every command returns
//! an [`Exit`] code; the codes are the same for every command.

mod admin;
mod generate;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};

/// Exit codes of every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Done.
    Ok,
    /// Refused: the admin listener answered with an error status (its body is
    /// printed), `health` found the instance unhealthy, or `run` could not
    /// start.
    Refused,
    /// A usage error (bad arguments, a bad admin URL) or an invalid config.
    Usage,
    /// The admin listener could not be reached, or did not answer in time.
    Unreachable,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(match e {
            Exit::Ok => 0,
            Exit::Refused => 1,
            Exit::Usage => 2,
            Exit::Unreachable => 3,
        })
    }
}

/// The exit codes as the help and the man pages show them.
const EXIT_CODES: &str = "\
Exit status:
  0  done
  1  refused: the admin listener answered with an error status (its body is printed)
  2  usage error (bad arguments or admin URL)
  3  the admin listener could not be reached, or did not answer in time";

/// A tenant-aware, tag-purgeable HTTP reverse-proxy cache.
#[derive(Parser)]
#[command(name = "tagcache", version, about)]
pub(crate) struct Cli {
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
    /// Validate a config file and exit (2 when it is invalid).
    Check {
        /// Config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Purge cached entries through a running instance's admin API.
    #[command(after_help = EXIT_CODES)]
    Purge(PurgeArgs),
    /// Reload a running instance's config file through its admin API.
    #[command(after_help = EXIT_CODES)]
    Reload(AdminArgs),
    /// Ask a running instance's admin listener whether it is healthy.
    #[command(after_help = "\
Exit status:
  0  healthy: GET /health answered 200 with status \"ok\" or \"degraded\"
  1  anything else (unreachable, timeout, another status or answer), with a one-line reason")]
    Health(HealthArgs),
    /// Print the JSON Schema of the config file.
    Schema,
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page, or write every page (one per command) to a directory.
    Man {
        /// Write tagcache.1 and a page per command here instead.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

/// Where the admin listener is, and how long to wait for it.
#[derive(Args, Debug)]
struct AdminArgs {
    /// Admin API base URL, http:// or https://.
    #[arg(
        long,
        env = "TAGCACHE_ADMIN_URL",
        hide_env_values = true,
        default_value = "http://127.0.0.1:9090",
        value_name = "URL"
    )]
    admin: String,
    /// Admin token (prefer the environment variable).
    #[arg(long, env = "TAGCACHE_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// How long to wait for the connection (TCP and TLS): 5s, 500ms, 2.5.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    connect_timeout: Duration,
    /// How long to wait for the answer once connected.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    timeout: Duration,
}

/// `tagcache purge`: what to purge.
#[derive(Args, Debug)]
#[command(group(
    ArgGroup::new("what")
        .required(true)
        .multiple(true)
        .args(["tags", "urls", "workspaces", "event", "all"])
))]
struct PurgeArgs {
    /// A tag to purge (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// A URL (path and query) whose entry to purge (repeatable), for the
    /// identity given by --workspace and --user.
    #[arg(long = "url", value_name = "URL")]
    urls: Vec<String>,
    /// A workspace to purge whole (repeatable); with --url, the workspace the
    /// URLs were stored for instead.
    #[arg(long = "workspace", value_name = "ID")]
    workspaces: Vec<String>,
    /// With --url: the user the URLs were stored for.
    #[arg(long, requires = "urls", value_name = "ID")]
    user: Option<String>,
    /// Send this invalidation event (POST /events), with its --field values.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["tags", "urls", "workspaces", "all"])]
    event: Option<String>,
    /// A field of the event, KEY=VALUE (repeatable), e.g. --field workspace_id=w1.
    #[arg(long = "field", value_name = "KEY=VALUE", value_parser = parse_field)]
    fields: Vec<(String, String)>,
    /// Purge everything cached (never soft: the server refuses soft with all).
    #[arg(long, conflicts_with_all = ["tags", "urls", "workspaces", "event", "soft"])]
    all: bool,
    /// Mark entries stale (served while refreshed) instead of dropping them.
    #[arg(long)]
    soft: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

/// `tagcache health`: where the admin listener is; short timeouts, for
/// container health checks.
#[derive(Args, Debug)]
struct HealthArgs {
    /// Admin API base URL, http:// or https://.
    #[arg(
        long,
        env = "TAGCACHE_ADMIN_URL",
        hide_env_values = true,
        default_value = "http://127.0.0.1:9090",
        value_name = "URL"
    )]
    admin: String,
    /// How long to wait for the connection.
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    connect_timeout: Duration,
    /// How long to wait for the answer once connected.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    timeout: Duration,
}

/// Parses the command line and runs the command.
pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    let exit = match cli.command {
        Command::Run { config, upgrade } => run::run(&config, upgrade),
        Command::Check { config } => run::check(&config),
        Command::Purge(args) => admin::purge(&args),
        Command::Reload(args) => admin::reload(&args),
        Command::Health(args) => admin::health(&args),
        Command::Schema => generate::schema(),
        Command::Completions { shell } => generate::completions(shell),
        Command::Man { out_dir } => generate::man(out_dir.as_deref()),
    };
    exit.into()
}

/// `5s`, `500ms`, `2m` or a number of seconds (`2.5`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .map(|n| n * scale)
        .filter(|secs| secs.is_finite() && *secs > 0.0 && *secs <= 3600.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{text:?} is not a duration like 5s, 500ms or 2m (at most 1h)"))
}

/// `KEY=VALUE`, with a non-empty key other than `event`.
fn parse_field(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some(("event", _)) => Err("the event name goes in --event, not in a --field".into()),
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        for (text, ms) in [("5s", 5000), ("500ms", 500), ("2m", 120_000), ("2.5", 2500)] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for text in ["", "0", "-1s", "5h", "fast", "nan"] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
    }

    #[test]
    fn fields() {
        assert_eq!(
            parse_field("board_id=b=1"),
            Ok(("board_id".into(), "b=1".into()))
        );
        assert_eq!(parse_field("filter="), Ok(("filter".into(), String::new())));
        for text in ["board_id", "=b1", "event=x"] {
            assert!(parse_field(text).is_err(), "{text}");
        }
    }
}
