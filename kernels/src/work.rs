//! Counting the device work a piece of code causes: kernel launches (one compute dispatch each)
//! and host round trips (readbacks to the host, uploads from it), on the thread that runs it.
//!
//! Counts, unlike times, do not depend on the machine: a generated token that costs 172
//! dispatches on lavapipe (the default model) costs the same on an H100 or in Chromium, so they are
//! the figure a change to the GPU path can be judged by anywhere (issue 20's "count before
//! cutting").
//!
//! - **Dispatches** come from cubecl's [`LaunchObserver`] hook, which sees every kernel burn's
//!   cube backend (wgpu natively, WebGPU in the browser) and this crate's fused kernels issue, on
//!   the thread that issues it, before it is submitted. The CPU backend (`flex`) launches none.
//! - **Readbacks and uploads** are counted where the model moves data between host and device
//!   ([`note_readback`], [`note_upload`]): burn has no hook for them, so code that reads a tensor
//!   back says so. Every readback of the model crate goes through its two readers.
//!
//! Counts are per thread, so tests and benches that run side by side do not see each other's
//! work, and a [`WorkMeter`] measures a span of one thread:
//!
//! ```no_run
//! # use tabswarm_kernels::work::WorkMeter;
//! let meter = WorkMeter::start();
//! // … generate, train …
//! let work = meter.read();
//! println!("{} dispatches, {} readbacks", work.dispatches, work.readbacks);
//! ```

use std::cell::Cell;
use std::sync::{Arc, OnceLock};

use cubecl::logging::{LaunchObservation, LaunchObserver};

thread_local! {
    static DISPATCHES: Cell<u64> = const { Cell::new(0) };
    static READBACKS: Cell<u64> = const { Cell::new(0) };
    static UPLOADS: Cell<u64> = const { Cell::new(0) };
}

/// Device work counted on one thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceWork {
    /// Kernel launches (compute dispatches) issued.
    pub dispatches: u64,
    /// Reads of device data back to the host (each one waits for the device).
    pub readbacks: u64,
    /// Host data written to the device as a new tensor.
    pub uploads: u64,
}

impl DeviceWork {
    /// Everything this thread has counted since the counter was installed.
    fn this_thread() -> Self {
        Self {
            dispatches: DISPATCHES.with(Cell::get),
            readbacks: READBACKS.with(Cell::get),
            uploads: UPLOADS.with(Cell::get),
        }
    }

    /// Each count divided by `n` (per token, per step), for reports.
    pub fn per(&self, n: u64) -> [f64; 3] {
        let n = n.max(1) as f64;
        [self.dispatches as f64 / n, self.readbacks as f64 / n, self.uploads as f64 / n]
    }
}

impl std::ops::Sub for DeviceWork {
    type Output = Self;
    fn sub(self, earlier: Self) -> Self {
        Self {
            dispatches: self.dispatches - earlier.dispatches,
            readbacks: self.readbacks - earlier.readbacks,
            uploads: self.uploads - earlier.uploads,
        }
    }
}

/// The work one thread does from [`WorkMeter::start`] on.
#[derive(Debug, Clone, Copy)]
pub struct WorkMeter {
    start: DeviceWork,
}

impl WorkMeter {
    /// Starts counting on this thread (and installs the launch hook the first time).
    pub fn start() -> Self {
        install();
        Self { start: DeviceWork::this_thread() }
    }

    /// What this thread has done since [`start`](Self::start).
    pub fn read(&self) -> DeviceWork {
        DeviceWork::this_thread() - self.start
    }
}

/// Says that this thread read device data back to the host.
pub fn note_readback() {
    READBACKS.with(|n| n.set(n.get() + 1));
}

/// Says that this thread uploaded host data to the device.
pub fn note_upload() {
    UPLOADS.with(|n| n.set(n.get() + 1));
}

/// Counts every launch on the thread that issues it.
#[derive(Debug)]
struct CountLaunches;

impl LaunchObserver for CountLaunches {
    fn launched(&self, _kernel: &'static str) {
        DISPATCHES.with(|n| n.set(n.get() + 1));
    }
}

/// Installs the launch counter for the rest of the process. cubecl has one observer slot; this
/// crate is the only one that fills it. Until the first [`WorkMeter`] nothing is installed and a
/// launch pays one relaxed atomic load; after, a read lock and a thread-local increment.
fn install() {
    static INSTALLED: OnceLock<LaunchObservation> = OnceLock::new();
    INSTALLED.get_or_init(|| LaunchObservation::new(Arc::new(CountLaunches)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readbacks_and_uploads_are_counted_per_thread_from_the_start_of_a_meter() {
        note_readback();
        let meter = WorkMeter::start();
        assert_eq!(meter.read(), DeviceWork::default(), "work before the meter started is not its own");
        note_readback();
        note_upload();
        note_upload();
        std::thread::spawn(|| {
            // Another thread's work is its own.
            note_readback();
            note_upload();
        })
        .join()
        .expect("thread");
        assert_eq!(meter.read(), DeviceWork { dispatches: 0, readbacks: 1, uploads: 2 });
        assert_eq!(meter.read().per(2), [0.0, 0.5, 1.0]);
    }
}
