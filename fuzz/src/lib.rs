//! Shared by the fuzz targets: a global allocator that measures how much memory one input
//! costs, so "bounded allocation" is an assertion rather than a hope.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting the bytes live now and the most live since [`Tracking::reset`].
pub struct Tracking {
    live: AtomicUsize,
    peak: AtomicUsize,
}

impl Tracking {
    pub const fn new() -> Self {
        Tracking {
            live: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Starts a measurement: the peak drops to what is live now.
    pub fn reset(&self) -> usize {
        let live = self.live.load(Ordering::Relaxed);
        self.peak.store(live, Ordering::Relaxed);
        live
    }

    /// The most bytes live at once since the last [`Tracking::reset`].
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    fn grew(&self, bytes: usize) {
        let live = self.live.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(live, Ordering::Relaxed);
    }

    fn shrank(&self, bytes: usize) {
        self.live.fetch_sub(bytes, Ordering::Relaxed);
    }
}

impl Default for Tracking {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every call is passed to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            self.grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            self.grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        self.shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            self.shrank(layout.size());
            self.grew(new_size);
        }
        p
    }
}

/// Measures `run`: returns its result and the most bytes it had live at once, over what was
/// live before it started.
pub fn measure<R>(tracker: &Tracking, run: impl FnOnce() -> R) -> (R, usize) {
    let before = tracker.reset();
    let result = run();
    (result, tracker.peak().saturating_sub(before))
}

/// Prints the largest allocation peak seen so far, when `peak` beats it, so a run's log
/// shows the figure without a line per input.
pub fn report_peak(record: &AtomicUsize, target: &str, peak: usize, input_len: usize) {
    if peak > record.fetch_max(peak, Ordering::Relaxed) {
        eprintln!("{target}: new allocation peak {peak} bytes (input {input_len} bytes)");
    }
}
