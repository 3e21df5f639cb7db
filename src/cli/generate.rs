//! What is generated from the code and checked into `dist/`: the config's
//! JSON Schema, shell completions and man pages.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use super::{Cli, Exit};

/// `tagcache schema`: the JSON Schema of the config file.
pub(super) fn schema() -> Exit {
    println!("{}", tagcache::config::json_schema());
    Exit::Ok
}

/// `tagcache completions SHELL`.
pub(super) fn completions(shell: clap_complete::Shell) -> Exit {
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "tagcache",
        &mut std::io::stdout(),
    );
    Exit::Ok
}

/// `tagcache man [--out-dir DIR]`: `tagcache.1` on stdout, or it and a page
/// per command (`tagcache-purge.1`, ...) written to `DIR`.
pub(super) fn man(out_dir: Option<&Path>) -> Exit {
    let written = match out_dir {
        None => render(top(), &mut std::io::stdout().lock()),
        Some(dir) => write_pages(dir),
    };
    match written {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("tagcache: cannot write the man pages: {e}");
            Exit::Refused
        }
    }
}

fn write_pages(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let top = top();
    for sub in top.get_subcommands().filter(|s| !s.is_hide_set()) {
        let page = clap_mangen::Man::new(sub.clone()).get_filename();
        render(sub.clone(), &mut std::fs::File::create(dir.join(page))?)?;
    }
    render(top, &mut std::fs::File::create(dir.join("tagcache.1"))?)
}

/// The whole command line, built (so that each command knows its full name,
/// `tagcache purge`), without the `help` command.
fn top() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// One page, as clap_mangen renders it, except that the text after the
/// options (`after_help`, where the exit codes are) is an EXIT STATUS
/// section.
fn render(cmd: clap::Command, w: &mut dyn Write) -> std::io::Result<()> {
    let exit_status = cmd.get_after_help().map(|h| h.to_string());
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(w)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(w)?;
    }
    if let Some(text) = exit_status {
        writeln!(w, ".SH \"EXIT STATUS\"")?;
        for line in text.lines().skip(1) {
            let line = line.trim();
            match line.split_once("  ") {
                Some((code, meaning)) => {
                    writeln!(w, ".TP\n{}\n{}", roff_escape(code), roff_escape(meaning))?
                }
                None => writeln!(w, "{}", roff_escape(line))?,
            }
        }
    }
    if cmd.get_version().is_some() {
        man.render_version_section(w)?;
    }
    Ok(())
}

/// Text safe in a roff line: backslashes doubled, no leading `.` or `'`.
fn roff_escape(text: &str) -> String {
    let text = text.replace('\\', "\\\\").replace('-', "\\-");
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}
