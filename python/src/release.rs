//! Long calls run with the GIL released, on a worker thread, while the calling thread keeps
//! answering Python's signals: Ctrl-C raises `KeyboardInterrupt` and, where the work can be
//! cancelled, stops it; progress callbacks run on the calling thread between polls.
//!
//! Python delivers signals only to the main thread, and only while it runs Python code; a
//! solve that held the thread for minutes would make Ctrl-C wait for it. So the caller waits
//! in short slices and checks signals between them.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// How long the caller waits for the worker before it checks signals and progress again.
const POLL: Duration = Duration::from_millis(50);

/// Runs `work` on a worker thread with the GIL released and returns its result.
///
/// Every [`POLL`] the calling thread checks Python's signals and calls `poll`. When a signal
/// handler raises (Ctrl-C), `cancel` is called, the worker is awaited (it should stop soon
/// after a cancel; work that cannot be cancelled runs to its end) and the handler's exception
/// is returned. A panic in `work` becomes a `RuntimeError`, never a Python-level panic.
pub fn run_released<T, W, P, C>(py: Python<'_>, work: W, mut poll: P, cancel: C) -> PyResult<T>
where
    T: Send,
    W: FnOnce() -> T + Send,
    P: FnMut(Python<'_>) -> PyResult<()>,
    C: Fn(),
{
    std::thread::scope(|scope| {
        let (done, finished) = channel::<()>();
        let handle = scope.spawn(move || {
            let result = catch_unwind(AssertUnwindSafe(work));
            let _ = done.send(());
            result
        });
        let mut finished: Receiver<()> = finished;
        let mut interrupted: Option<PyErr> = None;
        loop {
            let (back, state) = py.detach(move || {
                let state = finished.recv_timeout(POLL);
                (finished, state)
            });
            finished = back;
            if !matches!(state, Err(RecvTimeoutError::Timeout)) {
                break;
            }
            if interrupted.is_some() {
                continue;
            }
            let checked = py.check_signals().and_then(|()| poll(py));
            if let Err(e) = checked {
                cancel();
                interrupted = Some(e);
            }
        }
        let joined = py.detach(move || handle.join());
        if let Some(e) = interrupted {
            return Err(e);
        }
        match joined {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(panic)) | Err(panic) => Err(internal(&panic)),
        }
    })
}

/// Runs `work` with the GIL released on this thread; a panic becomes a `RuntimeError`.
pub fn detached<T, W>(py: Python<'_>, work: W) -> PyResult<T>
where
    T: Send,
    W: FnOnce() -> T + Send,
{
    py.detach(move || catch_unwind(AssertUnwindSafe(work)))
        .map_err(|panic| internal(&panic))
}

/// Runs `work` holding the GIL (it reads Python-owned arrays); a panic becomes a
/// `RuntimeError`.
pub fn guarded<T>(work: impl FnOnce() -> T) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(work)).map_err(|panic| internal(&panic))
}

fn internal(panic: &Box<dyn std::any::Any + Send>) -> PyErr {
    PyRuntimeError::new_err(format!(
        "internal error in the pruning-game core: {}",
        panic_message(panic)
    ))
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}
