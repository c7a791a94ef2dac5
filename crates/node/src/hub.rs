use greenthread_runtime::hub::{wire, Command, Event, Hub, Remote};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::wake::js_wake;

/// The native half of the hub of one JS environment (main thread or a
/// worker): its timers and the waits other threads complete.
#[napi]
pub struct NativeHub {
    hub: Hub,
}

impl NativeHub {
    /// For other bindings (sockets, executors) that complete waits from
    /// runtime threads: take `&NativeHub` as an argument and call this.
    pub(crate) fn remote(&self) -> Remote {
        self.hub.remote()
    }
}

#[napi]
impl NativeHub {
    /// `wake` is called (without arguments) when timers have expired or waits
    /// were completed, and the hub should be flushed. It never keeps the event loop alive by itself.
    #[napi(constructor, catch_unwind)]
    pub fn new(wake: Function<(), ()>) -> Result<Self> {
        let hub = Hub::new(js_wake(wake)?).map_err(|e| {
            Error::new(
                Status::GenericFailure,
                format!("greenthread: the hub's clock cannot start: {e}"),
            )
        })?;
        Ok(NativeHub { hub })
    }

    /// Applies the first `count` commands of `commands` (quads of f64, their
    /// deadlines on the JS clock whose current reading is `now`), then writes
    /// the header and as many events as fit into `out`.
    #[napi(catch_unwind)]
    pub fn flush(
        &mut self,
        commands: Float64ArraySlice,
        count: u32,
        mut out: Float64ArraySlice,
        now: f64,
    ) -> Result<()> {
        // SAFETY: `out` is a typed array owned by the JS caller, alive for this
        // synchronous call, and nothing else reads or writes it meanwhile.
        let out = unsafe { out.as_mut() };
        let used = (count as usize)
            .checked_mul(wire::COMMAND_WIDTH)
            .filter(|&n| n <= commands.len())
            .ok_or_else(|| Error::new(Status::InvalidArg, "command count exceeds the buffer"))?;
        let decoded = commands[..used]
            .chunks_exact(wire::COMMAND_WIDTH)
            .map(|quad| Command::decode(quad, now))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::new(Status::InvalidArg, e))?;
        if out.len() < wire::OUT_HEADER {
            return Err(Error::new(Status::InvalidArg, "output buffer too small"));
        }
        let capacity = (out.len() - wire::OUT_HEADER) / wire::EVENT_WIDTH;
        let (header, entries) = out.split_at_mut(wire::OUT_HEADER);
        let mut slot = entries.chunks_exact_mut(wire::EVENT_WIDTH);
        let stats = self.hub.flush(decoded, capacity, &mut |event| {
            if let Some(s) = slot.next() {
                (s[0], s[1]) = match event {
                    Event::Completed { id } => (id as f64, wire::COMPLETED),
                    Event::Expired { id, epoch } => (id as f64, epoch as f64),
                };
            }
        });
        header[0] = stats.delivered as f64;
        header[1] = if stats.more { 1.0 } else { 0.0 };
        header[2] = stats
            .next_deadline
            .map_or(-1.0, |left| left.as_secs_f64() * 1000.0);
        Ok(())
    }
}

/// The wire constants, so the TypeScript side never restates them.
#[napi(catch_unwind)]
pub fn hub_protocol() -> std::collections::HashMap<String, u32> {
    [
        ("ADD_TIMER", wire::ADD_TIMER as u32),
        ("CANCEL_TIMER", wire::CANCEL_TIMER as u32),
        ("COMMAND_WIDTH", wire::COMMAND_WIDTH as u32),
        ("OUT_HEADER", wire::OUT_HEADER as u32),
        ("EVENT_WIDTH", wire::EVENT_WIDTH as u32),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
