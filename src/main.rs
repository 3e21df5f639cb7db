//! The `tagcache` command: run the proxy, check a config, and the operator
//! commands (purge, reload, health, schema, completions, man). The commands
//! live in `cli/`; this file only hands over to them, and sets the binary's
//! allocator.

#[cfg(feature = "mimalloc")]
mod allocator;
mod cli;

/// mimalloc, whose allocations and frees cost a memory hit less than half of
/// what glibc's did (feature `mimalloc`, on by default). The library sets
/// no allocator: an embedder chooses its own.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: allocator::MiMalloc = allocator::MiMalloc;

fn main() -> std::process::ExitCode {
    #[cfg(feature = "mimalloc")]
    allocator::configure();
    cli::main()
}
