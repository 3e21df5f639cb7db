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

/// mimalloc's `mi_option_purge_delay`: its index in `mi_option_e`, the same
/// in mimalloc 2 and 3, which the Rust bindings do not name.
#[cfg(feature = "mimalloc")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // Freed pages go back to the system at once rather than a second later:
    // a full store churns entries, and the delay kept the full-store run's
    // peak RSS above its bound. Read on each purge, so setting it here,
    // after the runtime's first allocations, is enough.
    #[cfg(feature = "mimalloc")]
    // SAFETY: sets one of mimalloc's option values; any value is allowed.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
    cli::main()
}

#[cfg(all(test, feature = "mimalloc"))]
mod tests {
    #[test]
    fn the_option_set_is_mimallocs_purge_delay() {
        // Its default, 1000 ms in mimalloc 3, is no other option's near it.
        // SAFETY: reads an option value.
        let (purge, before, after) = unsafe {
            use libmimalloc_sys::mi_option_get;
            (
                mi_option_get(super::MI_OPTION_PURGE_DELAY),
                mi_option_get(super::MI_OPTION_PURGE_DELAY - 1),
                mi_option_get(super::MI_OPTION_PURGE_DELAY + 1),
            )
        };
        assert_eq!((purge, before, after), (1000, 1, 0));
    }
}
