//! The module's allocator: blocks up to 4 KiB from free lists, one per power-of-two size
//! class, larger ones from the system allocator (wasi-libc's dlmalloc).
//!
//! Every header value the host hands over is an allocation (the SDK's
//! `proxy_on_memory_allocate`) freed a callback later, and so is every body chunk read and the
//! request's context: four to six allocations per request, each costing more in dlmalloc
//! (its bins, splitting and coalescing) than a free-list pop and push. A block taken from
//! dlmalloc for a class stays in that class once freed: Wasm memory never shrinks anyway, and
//! each class holds at most what the requests in flight held of it at their peak.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;

/// Sizes 1..=16 share the first class; then 32, 64, … up to 4 KiB (`16 << (CLASSES - 1)`),
/// which holds a request's context and the last 4 KiB of a long body.
const CLASSES: usize = 9;
const SMALLEST: usize = 16;
/// Every class block is aligned to this (a larger alignment goes to the system allocator):
/// the alignment wasi-libc's `malloc` gives, so that class blocks come from `malloc` (a
/// larger one would bring in its `aligned_alloc`).
const ALIGN: usize = 8;

/// The class of a layout, if it is small enough for one.
fn class(layout: Layout) -> Option<usize> {
    if layout.align() > ALIGN || layout.size() > SMALLEST << (CLASSES - 1) {
        return None;
    }
    // The bits of `size - 1` say which power of two holds it: 16 → 4 bits → class 0.
    let bits = usize::BITS - (layout.size().max(SMALLEST) - 1).leading_zeros();
    Some((bits - SMALLEST.trailing_zeros()) as usize)
}

fn class_layout(class: usize) -> Layout {
    // A power of two no larger than the largest class, aligned to 8: always valid.
    Layout::from_size_align(SMALLEST << class, ALIGN).unwrap_or(Layout::new::<u8>())
}

/// The head of each class's free list; a free block holds the next one's address.
pub struct Classes {
    free: UnsafeCell<[*mut u8; CLASSES]>,
}

// SAFETY: a Wasm module instance runs on one thread (proxy-wasm runs one VM per worker), so
// the free lists are never touched concurrently.
unsafe impl Sync for Classes {}

impl Classes {
    pub const fn new() -> Self {
        Classes {
            free: UnsafeCell::new([ptr::null_mut(); CLASSES]),
        }
    }
}

// SAFETY: a class block is at least as large and as aligned as every layout of its class, is
// handed out once until it is freed, and goes back to the class its layout names (the
// allocator's callers free with the layout they allocated with).
unsafe impl GlobalAlloc for Classes {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class(layout) else {
            return System.alloc(layout);
        };
        let free = &mut *self.free.get();
        let head = free[class];
        if head.is_null() {
            return System.alloc(class_layout(class));
        }
        free[class] = *head.cast::<*mut u8>();
        head
    }

    // Out of line: inlined into every drop, it made the module 14 KB larger (for 185
    // instructions per request of the route mix, scripts/bench/instructions).
    #[inline(never)]
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(class) = class(layout) else {
            return System.dealloc(block, layout);
        };
        let free = &mut *self.free.get();
        *block.cast::<*mut u8>() = free[class];
        free[class] = block;
    }

    #[inline(never)]
    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        match (class(layout), class(new_layout)) {
            (None, None) => System.realloc(block, layout, new_size),
            (Some(old), Some(new)) if old == new => block,
            _ => {
                let moved = self.alloc(new_layout);
                if !moved.is_null() {
                    ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                    self.dealloc(block, layout);
                }
                moved
            }
        }
    }
}
