//! The page's allocator: blocks in power-of-two size classes, each class with a free list,
//! and fresh blocks cut from pages that `memory.grow` adds.
//!
//! The simulator's memory is mostly vectors that double, so their blocks already are powers of
//! two; a freed block waits for the next request of its class (the next run reuses them).
//! It is a few hundred bytes of code, against several KB for the standard library's
//! dlmalloc. The page runs on one thread, so the state needs no lock.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::cell::UnsafeCell;
use core::ptr;

/// Smallest block: room for the free list's link, 16-byte aligned.
const MIN_BLOCK: usize = 16;
const PAGE: usize = 65_536;

/// Free lists by class (block size `2^class`), and the unused tail of the last grown pages.
struct State {
    free: [*mut u8; usize::BITS as usize],
    next: usize,
    end: usize,
}

/// See the module documentation.
pub struct Allocator(UnsafeCell<State>);

// SAFETY: wasm32 without threads: one thread touches the state.
unsafe impl Sync for Allocator {}

impl Allocator {
    /// An allocator with no memory yet.
    pub const fn new() -> Self {
        Allocator(UnsafeCell::new(State {
            free: [ptr::null_mut(); usize::BITS as usize],
            next: 0,
            end: 0,
        }))
    }
}

/// The class of a request: its size and alignment rounded up to a power of two.
fn class_of(layout: Layout) -> Option<u32> {
    let size = layout.size().max(layout.align()).max(MIN_BLOCK);
    size.checked_next_power_of_two().map(usize::trailing_zeros)
}

impl State {
    /// A fresh block of `size` bytes aligned to `align`, from the tail or new pages.
    fn carve(&mut self, size: usize, align: usize) -> *mut u8 {
        let align = align.max(MIN_BLOCK);
        let mut start = self.next.wrapping_add(align - 1) & !(align - 1);
        if self.next == 0
            || start < self.next
            || start.checked_add(size).is_none_or(|e| e > self.end)
        {
            let Some(needed) = size.checked_add(align) else {
                return ptr::null_mut();
            };
            let pages = needed.div_ceil(PAGE).max(16);
            let previous = wasm32::memory_grow(0, pages);
            if previous == usize::MAX {
                return ptr::null_mut();
            }
            let base = previous * PAGE;
            // Pages grown last time end where these begin: keep using the old tail.
            if self.end != base {
                self.next = base;
            }
            self.end = base + pages * PAGE;
            start = self.next.wrapping_add(align - 1) & !(align - 1);
        }
        self.next = start + size;
        start as *mut u8
    }

    /// Grows the block carved last, in place, from `size` to `new_size` bytes; `false` if
    /// `block` is not the last one or memory cannot grow. Vectors that double at the top of
    /// the heap then move no bytes.
    fn extend(&mut self, block: *mut u8, size: usize, new_size: usize) -> bool {
        let start = block as usize;
        if start + size != self.next {
            return false;
        }
        let Some(new_end) = start.checked_add(new_size) else {
            return false;
        };
        if new_end > self.end {
            let pages = (new_end - self.end).div_ceil(PAGE).max(16);
            // New pages continue the heap only if nothing else grew memory since.
            if wasm32::memory_grow(0, pages) != self.end / PAGE {
                return false;
            }
            self.end += pages * PAGE;
        }
        self.next = new_end;
        true
    }
}

// SAFETY: blocks never overlap (each is carved once, and a freed block is handed out again only
// after `dealloc` gave it back), are at least the requested size, and are aligned as asked.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(layout) else {
            return ptr::null_mut();
        };
        // SAFETY: one thread; no reference to the state outlives this call.
        let state = unsafe { &mut *self.0.get() };
        let head = state.free[class as usize];
        if !head.is_null() && (head as usize) % layout.align() == 0 {
            // SAFETY: a free block holds the next free block's address in its first word.
            state.free[class as usize] = unsafe { *(head as *mut *mut u8) };
            return head;
        }
        state.carve(1 << class, layout.align())
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(class) = class_of(layout) else {
            return;
        };
        // SAFETY: as in `alloc`; `block` came from `alloc` with this layout, so it has room
        // for a link.
        unsafe {
            let state = &mut *self.0.get();
            *(block as *mut *mut u8) = state.free[class as usize];
            state.free[class as usize] = block;
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees the new layout is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let (Some(old_class), Some(new_class)) = (class_of(layout), class_of(new_layout)) else {
            return ptr::null_mut();
        };
        if new_class == old_class {
            return block;
        }
        // SAFETY: one thread; no reference to the state outlives this statement.
        let state = unsafe { &mut *self.0.get() };
        if new_class > old_class && state.extend(block, 1 << old_class, 1 << new_class) {
            return block;
        }
        // SAFETY: as `GlobalAlloc::realloc`'s default: a new block, the bytes, the old one freed.
        unsafe {
            let moved = self.alloc(new_layout);
            if !moved.is_null() {
                ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                self.dealloc(block, layout);
            }
            moved
        }
    }
}
