use std::sync::Arc;

use greenthread_runtime::Wake;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;

/// A [`Wake`] that calls `callback` (without arguments) on the JS thread.
/// Weak: it never keeps the event loop alive by itself.
pub(crate) fn js_wake(callback: Function<(), ()>) -> Result<Wake> {
    let tsfn = callback
        .build_threadsafe_function::<()>()
        .weak::<true>()
        .callee_handled::<false>()
        .build()?;
    Ok(Arc::new(move || {
        // Fails only while the environment is shutting down, when there is
        // nobody left to wake.
        let _ = tsfn.call((), ThreadsafeFunctionCallMode::NonBlocking);
    }))
}
