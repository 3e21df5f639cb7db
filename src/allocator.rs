//! The binary's global allocator: mimalloc, asked through its plain entry
//! points whenever the alignment is one every mimalloc block already has.
//!
//! The `mimalloc` crate's allocator passes every request to
//! `mi_malloc_aligned`, whose fast path covers blocks of at most 1 KiB only:
//! every larger allocation (a connection's read buffer, a header map's
//! table) took the generic aligned path, about 150 instructions more each,
//! six times per memory hit. Like the standard library's `System`, this
//! asks for an aligned block only when the alignment is above what the
//! plain call guarantees.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as ffi;

/// The alignment of every mimalloc block of at least this many bytes
/// (`MI_MAX_ALIGN_SIZE`, `alignof(max_align_t)` on 64-bit targets); a
/// smaller block is aligned to its size class, so `align <= size` suffices.
const PLAIN_ALIGN: usize = 16;

/// mimalloc's `mi_option_purge_delay`: its index in `mi_option_e`, the same
/// in mimalloc 2 and 3, which the Rust bindings do not name.
const MI_OPTION_PURGE_DELAY: ffi::mi_option_t = 15;

/// Sets mimalloc's options, first thing in `main`: freed pages go back to
/// the system at once rather than a second later. A full store churns
/// entries, and the delay kept the full-store run's peak RSS above its
/// bound. mimalloc reads the option on each purge, so setting it after the
/// runtime's first allocations is enough.
pub fn configure() {
    // SAFETY: sets one of mimalloc's option values; any value is allowed.
    unsafe {
        ffi::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

/// mimalloc as a Rust global allocator.
pub struct MiMalloc;

/// Whether a plain mimalloc call gives `align` for `size` bytes.
fn plain(align: usize, size: usize) -> bool {
    align <= PLAIN_ALIGN && align <= size
}

// SAFETY: every pointer comes from mimalloc with the layout's size and at
// least its alignment, and goes back to mimalloc's `free`, which takes
// blocks of either kind of call.
unsafe impl GlobalAlloc for MiMalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if plain(layout.align(), layout.size()) {
            ffi::mi_malloc(layout.size()).cast()
        } else {
            ffi::mi_malloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if plain(layout.align(), layout.size()) {
            ffi::mi_zalloc(layout.size()).cast()
        } else {
            ffi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        ffi::mi_free(ptr.cast::<c_void>());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if plain(layout.align(), new_size) {
            ffi::mi_realloc(ptr.cast(), new_size).cast()
        } else {
            ffi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout};

    use super::MiMalloc;

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

    #[test]
    fn every_block_has_its_alignment_and_keeps_its_bytes_through_realloc() {
        let sizes = [1, 3, 8, 12, 16, 24, 100, 1024, 1025, 4096, 70_000, 2 << 20];
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for &size in &sizes {
                let layout = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: a non-zero size; the block is written within its
                // size, reallocated with its own layout and freed once.
                unsafe {
                    let p = MiMalloc.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "alloc {size} aligned {align}");
                    p.write_bytes(0xa5, size);
                    let q = MiMalloc.realloc(p, layout, size * 3);
                    assert_eq!(q as usize % align, 0, "realloc {size} aligned {align}");
                    assert!(std::slice::from_raw_parts(q, size)
                        .iter()
                        .all(|&b| b == 0xa5));
                    MiMalloc.dealloc(q, Layout::from_size_align(size * 3, align).expect("layout"));

                    let z = MiMalloc.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0, "zeroed {size} aligned {align}");
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    MiMalloc.dealloc(z, layout);
                }
            }
        }
    }

    #[test]
    fn plain_calls_give_the_alignment_plain_assumes() {
        // Every size up to a few pages, at every alignment `plain` accepts.
        for align in [1, 2, 4, 8, 16] {
            for size in align..5000 {
                let layout = Layout::from_size_align(size, align).expect("layout");
                assert!(super::plain(align, size));
                // SAFETY: a non-zero size, freed once with its layout.
                unsafe {
                    let p = MiMalloc.alloc(layout);
                    assert_eq!(p as usize % align, 0, "{size} bytes aligned {align}");
                    MiMalloc.dealloc(p, layout);
                }
            }
        }
    }
}
