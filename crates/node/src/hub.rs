use greenthread_runtime::hub::{wire, Command, Hub, Remote};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::wake::js_wake;

/// The hub of one JS environment (main thread or a worker).
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
    /// `wake` is called (without arguments) when timers have expired and the
    /// hub should be flushed. It never keeps the event loop alive by itself.
    #[napi(constructor, catch_unwind)]
    pub fn new(wake: Function<(), ()>) -> Result<Self> {
        let hub = Hub::new(js_wake(wake)?).map_err(|e| {
            Error::new(
                Status::GenericFailure,
                format!("greenthread: the runtime cannot start: {e}"),
            )
        })?;
        Ok(NativeHub { hub })
    }

    /// Applies the first `count` commands of `commands` (quads of f64, their
    /// deadlines on the JS clock whose current reading is `now`), then writes
    /// the header and as many ready entries as fit into `out`.
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
        let capacity = (out.len() - wire::OUT_HEADER) / wire::READY_WIDTH;
        let (header, entries) = out.split_at_mut(wire::OUT_HEADER);
        let mut slot = entries.chunks_exact_mut(wire::READY_WIDTH);
        let stats = self.hub.flush(decoded, capacity, &mut |ready| {
            if let Some(s) = slot.next() {
                s[0] = ready.id as f64;
                s[1] = ready.outcome as u8 as f64;
            }
        });
        header[0] = stats.delivered as f64;
        header[1] = stats.still_queued as f64;
        header[2] = stats.live_timers as f64;
        Ok(())
    }
}

/// The wire constants, so the TypeScript side never restates them.
#[napi(catch_unwind)]
pub fn hub_protocol() -> std::collections::HashMap<String, u32> {
    [
        ("SPAWN", wire::SPAWN),
        ("YIELD", wire::YIELD),
        ("PARK", wire::PARK),
        ("PARK_SWITCH", wire::PARK_SWITCH),
        ("UNPARK", wire::UNPARK),
        ("RESUMED", wire::RESUMED),
        ("JOIN_WAIT", wire::JOIN_WAIT),
        ("JOIN_WAIT_RAISE", wire::JOIN_WAIT_RAISE),
        ("JOIN", wire::JOIN),
        ("DIE", wire::DIE),
        ("INTERRUPT", wire::INTERRUPT),
        ("DISCARD", wire::DISCARD),
        ("SET_PARENT", wire::SET_PARENT),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v as u32))
    .chain([
        ("COMMAND_WIDTH".to_string(), wire::COMMAND_WIDTH as u32),
        ("OUT_HEADER".to_string(), wire::OUT_HEADER as u32),
        ("READY_WIDTH".to_string(), wire::READY_WIDTH as u32),
        (
            "START".to_string(),
            greenthread_runtime::Outcome::Start as u32,
        ),
        (
            "WAKE".to_string(),
            greenthread_runtime::Outcome::Wake as u32,
        ),
        (
            "TIMER".to_string(),
            greenthread_runtime::Outcome::Timer as u32,
        ),
        (
            "INTERRUPT_OUTCOME".to_string(),
            greenthread_runtime::Outcome::Interrupt as u32,
        ),
    ])
    .collect()
}
