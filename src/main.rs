//! The `tagcache` command: run the proxy, check a config, and the operator
//! commands (purge, reload, health, schema, completions, man). The commands
//! live in `cli/`; this file only hands over to them.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
