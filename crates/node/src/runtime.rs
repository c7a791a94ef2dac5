use greenthread_runtime::runtime::{self, ConfigError};
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Sets the number of runtime worker threads. Only before first use.
#[napi(catch_unwind)]
pub fn configure_runtime(workers: u32) -> Result<()> {
    runtime::configure(workers as usize).map_err(|e| {
        let status = match e {
            ConfigError::AlreadyStarted => Status::GenericFailure,
            ConfigError::ZeroWorkers => Status::InvalidArg,
        };
        Error::new(status, e.to_string())
    })
}

#[napi(object)]
pub struct RuntimeInfo {
    pub started: bool,
    pub workers: u32,
}

#[napi(catch_unwind)]
pub fn runtime_info() -> RuntimeInfo {
    RuntimeInfo {
        started: runtime::is_started(),
        workers: runtime::workers() as u32,
    }
}

/// Makes this process die once the process `parent` has (executor children:
/// see `greenthread_runtime::parent`).
#[napi(catch_unwind)]
pub fn die_with_parent(parent: u32) -> Result<()> {
    greenthread_runtime::parent::die_with_parent(parent).map_err(|e| {
        Error::new(
            Status::GenericFailure,
            format!("cannot tie this process to its parent: {e}"),
        )
    })
}
