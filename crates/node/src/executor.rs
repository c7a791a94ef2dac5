use std::sync::Arc;

use greenthread_runtime::executor::{Pool, Slot, TaskState};
use greenthread_runtime::pipe::{move_to_private_fd, PipeWriter};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::wake::js_wake;

fn frame_error(e: impl std::fmt::Display) -> Error {
    Error::new(Status::InvalidArg, e.to_string())
}

/// The front end's handle on an executor queue (see the runtime's
/// `executor` module): submits task frames, drains completion frames.
#[napi]
pub struct NativeExecutor {
    pool: Arc<Pool>,
}

#[napi]
impl NativeExecutor {
    /// `wake` is called (without arguments) when completions are ready to be
    /// drained. It never keeps the event loop alive by itself.
    #[napi(constructor, catch_unwind)]
    pub fn new(wake: Function<(), ()>) -> Result<Self> {
        Ok(NativeExecutor {
            pool: Pool::new(js_wake(wake)?),
        })
    }

    /// What workers pass to `NativeExecutorSlot` to find this queue.
    #[napi(getter)]
    pub fn id(&self) -> u32 {
        self.pool.id()
    }

    #[napi(catch_unwind)]
    pub fn submit(&self, batch: BufferSlice) -> Result<u32> {
        self.pool
            .submit(&batch)
            .map(|n| n as u32)
            .map_err(frame_error)
    }

    #[napi(catch_unwind)]
    pub fn cancel(&self, id: u32) -> bool {
        self.pool.cancel(id)
    }

    /// The task's signal aborted: true if it was queued and is now
    /// cancelled; false if a worker holds it (giving it back will cancel
    /// it), or it is done.
    #[napi(catch_unwind)]
    pub fn abort(&self, id: u32) -> bool {
        self.pool.abort(id)
    }

    #[napi(catch_unwind)]
    pub fn cancel_queued(&self) -> Vec<u32> {
        self.pool.cancel_queued()
    }

    #[napi(catch_unwind)]
    pub fn purge(&self) {
        self.pool.purge()
    }

    /// Tasks waiting in the queue, held by no worker.
    #[napi(catch_unwind)]
    pub fn queued(&self) -> u32 {
        self.pool.queued() as u32
    }

    /// The task was handed to a worker and has not completed.
    #[napi(catch_unwind)]
    pub fn is_running(&self, id: u32) -> bool {
        self.pool.state(id).is_some_and(TaskState::is_running)
    }

    #[napi(catch_unwind)]
    pub fn drain(&self) -> Option<Buffer> {
        let bytes = self.pool.drain();
        (!bytes.is_empty()).then(|| bytes.into())
    }

    #[napi(catch_unwind)]
    pub fn define(&self, id: u32, definition: BufferSlice) {
        self.pool.define(id, &definition)
    }
}

/// A worker's end of an executor queue. Create it on the thread that runs
/// the tasks.
#[napi]
pub struct NativeExecutorSlot {
    slot: Option<Slot>,
}

impl NativeExecutorSlot {
    fn slot(&self) -> Result<&Slot> {
        self.slot
            .as_ref()
            .ok_or_else(|| Error::new(Status::GenericFailure, "executor slot is detached"))
    }
}

#[napi]
impl NativeExecutorSlot {
    #[napi(constructor, catch_unwind)]
    pub fn new(pool_id: u32) -> Result<Self> {
        let pool = Pool::find(pool_id).ok_or_else(|| {
            Error::new(
                Status::GenericFailure,
                format!("executor {pool_id} no longer exists"),
            )
        })?;
        Ok(NativeExecutorSlot {
            slot: Some(Slot::attach(pool)),
        })
    }

    /// Up to `max` task frames, or `null` if there is nothing to run.
    #[napi(catch_unwind)]
    pub fn take(&self, max: u32) -> Result<Option<Buffer>> {
        let mut out = Vec::new();
        let taken = self.slot()?.take(max as usize, &mut out);
        Ok((taken > 0).then(|| out.into()))
    }

    /// Up to `max` task frames, held until each is claimed (thread
    /// workers); else, if a sibling holds tasks it may soon be unable to
    /// start, the milliseconds to wait before asking again; else `null`.
    #[napi(catch_unwind)]
    pub fn take_held(&self, max: u32) -> Result<Either<Buffer, Option<f64>>> {
        let mut out = Vec::new();
        let (taken, retry) = self.slot()?.take_held(max as usize, &mut out);
        Ok(if taken > 0 {
            Either::A(out.into())
        } else {
            Either::B(retry.map(|d| d.as_secs_f64() * 1000.0))
        })
    }

    /// A held task is about to start: false if it was cancelled or another
    /// worker took it over (skip it).
    #[napi(catch_unwind)]
    pub fn claim(&self, id: u32) -> Result<bool> {
        Ok(self.slot()?.claim(id))
    }

    /// `complete(batch)` then `claim(id)`, in one call: the results of the
    /// tasks before a held task go out as it starts.
    #[napi(catch_unwind)]
    pub fn complete_and_claim(&self, batch: BufferSlice, id: u32) -> Result<bool> {
        let slot = self.slot()?;
        slot.pool().complete(&batch).map_err(frame_error)?;
        Ok(slot.claim(id))
    }

    /// Queues again task frames from `take` that have not started. Returns
    /// the ids of those aborted meanwhile: dropped, to be reported cancelled.
    #[napi(catch_unwind)]
    pub fn give_back(&self, batch: BufferSlice) -> Result<Vec<u32>> {
        self.slot()?.give_back(&batch).map_err(frame_error)
    }

    /// `giveBack` for frames from `takeHeld`: only those this worker still
    /// holds go back (one taken over by another worker may be running).
    #[napi(catch_unwind)]
    pub fn give_back_held(&self, batch: BufferSlice) -> Result<Vec<u32>> {
        self.slot()?.give_back_held(&batch).map_err(frame_error)
    }

    #[napi(catch_unwind)]
    pub fn complete(&self, batch: BufferSlice) -> Result<u32> {
        self.slot()?
            .pool()
            .complete(&batch)
            .map(|n| n as u32)
            .map_err(frame_error)
    }

    #[napi(catch_unwind)]
    pub fn definition(&self, id: u32) -> Result<Option<Buffer>> {
        Ok(self
            .slot()?
            .pool()
            .definition(id)
            .map(|d| d.to_vec().into()))
    }

    /// Leaves the queue now, giving back the tasks of the local deque.
    #[napi(catch_unwind)]
    pub fn detach(&mut self) {
        self.slot = None;
    }
}

/// Moves an executor child's pipe to its parent from `fd` to a descriptor of
/// its own (see the runtime's `pipe::move_to_private_fd`); returns it.
#[napi(catch_unwind)]
pub fn take_pipe_fd(fd: i32) -> Result<i32> {
    move_to_private_fd(fd).map_err(|e| {
        Error::new(
            Status::GenericFailure,
            format!("cannot take over the pipe to the parent (fd {fd}): {e}"),
        )
    })
}

/// An executor child's messages to its parent, written by a thread of their
/// own (see the runtime's `pipe` module).
#[napi]
pub struct NativePipeWriter {
    writer: PipeWriter,
}

#[napi]
impl NativePipeWriter {
    /// Writes to `fd`; `results_type` is the type of results messages.
    #[napi(constructor, catch_unwind)]
    pub fn new(fd: i32, results_type: u8) -> Result<Self> {
        let writer = PipeWriter::new(fd, results_type).map_err(|e| {
            Error::new(
                Status::GenericFailure,
                format!("cannot start the pipe writer: {e}"),
            )
        })?;
        Ok(NativePipeWriter { writer })
    }

    /// Queues a `[type][len][body]` message.
    #[napi(catch_unwind)]
    pub fn message(&self, kind: u8, body: Option<BufferSlice>) {
        self.writer.message(kind, body.as_deref().unwrap_or(&[]));
    }

    /// Queues result frames (merged into the results message still queued).
    #[napi(catch_unwind)]
    pub fn results(&self, last: bool, ms: f64, frames: BufferSlice) {
        self.writer.results(last, ms, &frames);
    }

    /// Returns once everything queued is written.
    #[napi(catch_unwind)]
    pub fn finish(&mut self) {
        self.writer.finish();
    }
}
