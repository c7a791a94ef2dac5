//! Watching a descriptor from Node's own event loop: one libuv `uv_poll`
//! handle, whose readiness calls a JS function on the loop's thread. No
//! other thread and no hand-off: the sockets' reactor hands its poller fd
//! here, so one call into JS serves every socket that is ready.
//!
//! libuv's symbols are exported by the `node` binary; the addon declares the
//! few it uses and gets the loop with `napi_get_uv_event_loop`. The handle is
//! unreferenced (it never keeps the process alive by itself) and closed by an
//! environment cleanup hook (a worker thread's exit).

use std::alloc::Layout;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::os::fd::RawFd;
use std::ptr;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::sys;

/// libuv's `UV_POLL` (`uv_handle_type`), checked against its name at runtime.
const UV_POLL: c_int = 8;
/// libuv's `UV_READABLE`.
const UV_READABLE: c_int = 1;

type PollCb = unsafe extern "C" fn(handle: *mut c_void, status: c_int, events: c_int);
type CloseCb = unsafe extern "C" fn(handle: *mut c_void);

extern "C" {
    fn uv_handle_size(kind: c_int) -> usize;
    fn uv_handle_type_name(kind: c_int) -> *const c_char;
    fn uv_poll_init(event_loop: *mut sys::uv_loop_s, handle: *mut c_void, fd: c_int) -> c_int;
    fn uv_poll_start(handle: *mut c_void, events: c_int, cb: PollCb) -> c_int;
    fn uv_poll_stop(handle: *mut c_void) -> c_int;
    fn uv_close(handle: *mut c_void, cb: Option<CloseCb>);
    fn uv_unref(handle: *mut c_void);
}

/// What the handle's `data` points to (the first field of every libuv handle).
struct Watcher {
    /// Keeps what owns `fd` alive as long as the handle watches it.
    _owner: Arc<dyn Send + Sync>,
    env: sys::napi_env,
    callback: sys::napi_ref,
    context: sys::napi_async_context,
    layout: Layout,
}

fn check(status: sys::napi_status, what: &str) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(
            Status::GenericFailure,
            format!("greenthread: {what} failed ({status})"),
        ))
    }
}

fn uv_check(code: c_int, what: &str) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(Error::new(
            Status::GenericFailure,
            format!("greenthread: {what} failed (libuv error {code})"),
        ))
    }
}

/// Calls `callback` (without arguments, as an async-hooks callback named
/// `name`) on this environment's loop whenever `fd` is readable, until the
/// environment is torn down. `owner` keeps `fd` open that long.
pub(crate) fn watch(
    env: &Env,
    fd: RawFd,
    owner: Arc<dyn Send + Sync>,
    callback: &Function<(), ()>,
    name: &str,
) -> Result<()> {
    let raw_env = env.raw();
    let event_loop = env.get_uv_event_loop()?;
    // SAFETY: plain libuv queries; the name is a static C string or null.
    let kind_ok = unsafe {
        let name = uv_handle_type_name(UV_POLL);
        !name.is_null() && CStr::from_ptr(name).to_bytes() == b"poll"
    };
    if !kind_ok {
        return Err(Error::new(
            Status::GenericFailure,
            "greenthread: this libuv does not number its poll handles as expected",
        ));
    }
    // SAFETY: as above.
    let size = unsafe { uv_handle_size(UV_POLL) };
    let layout = Layout::from_size_align(size, 16)
        .map_err(|e| Error::new(Status::GenericFailure, e.to_string()))?;
    let mut callback_ref = ptr::null_mut();
    let mut context = ptr::null_mut();
    // SAFETY: napi calls on this thread's live env with valid out-pointers;
    // `callback.value()` is a live function value of this call's scope.
    unsafe {
        check(
            sys::napi_create_reference(raw_env, callback.value().value, 1, &mut callback_ref),
            "napi_create_reference",
        )?;
        let mut resource_name = ptr::null_mut();
        check(
            sys::napi_create_string_utf8(
                raw_env,
                name.as_ptr().cast(),
                name.len() as isize,
                &mut resource_name,
            ),
            "napi_create_string_utf8",
        )?;
        check(
            sys::napi_async_init(raw_env, ptr::null_mut(), resource_name, &mut context),
            "napi_async_init",
        )?;
    }
    // SAFETY: `layout` has a non-zero size (a libuv handle).
    let handle = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<c_void>();
    if handle.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    let watcher = Box::into_raw(Box::new(Watcher {
        _owner: owner,
        env: raw_env,
        callback: callback_ref,
        context,
        layout,
    }));
    // SAFETY: `handle` is zeroed memory of the size libuv asked for, used only
    // on this (the loop's) thread; its `data` field (the first) is set after
    // `uv_poll_init`, which does not touch it. On failure nothing was started.
    unsafe {
        uv_check(uv_poll_init(event_loop, handle, fd), "uv_poll_init")?;
        *handle.cast::<*mut Watcher>() = watcher;
        uv_check(
            uv_poll_start(handle, UV_READABLE, on_readable),
            "uv_poll_start",
        )?;
        uv_unref(handle);
        check(
            sys::napi_add_env_cleanup_hook(raw_env, Some(on_teardown), handle),
            "napi_add_env_cleanup_hook",
        )?;
    }
    Ok(())
}

/// The loop found the fd readable: call the JS function, as Node calls its
/// own callbacks (microtasks and `nextTick`s run once it returns).
unsafe extern "C" fn on_readable(handle: *mut c_void, _status: c_int, _events: c_int) {
    // SAFETY: `data` was set to a live `Watcher` before the poll started, and
    // stays valid until the handle is closed; libuv calls this on the loop's
    // thread, which runs JS, with no JS on the stack.
    unsafe {
        let w = &**handle.cast::<*mut Watcher>();
        let env = w.env;
        let mut scope = ptr::null_mut();
        if sys::napi_open_handle_scope(env, &mut scope) != sys::Status::napi_ok {
            return;
        }
        let (mut func, mut global, mut result) =
            (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
        sys::napi_get_reference_value(env, w.callback, &mut func);
        sys::napi_get_global(env, &mut global);
        let status =
            sys::napi_make_callback(env, w.context, global, func, 0, ptr::null(), &mut result);
        if status == sys::Status::napi_pending_exception {
            // As an exception thrown by any loop callback: 'uncaughtException'.
            let mut error = ptr::null_mut();
            sys::napi_get_and_clear_last_exception(env, &mut error);
            sys::napi_fatal_exception(env, error);
        }
        sys::napi_close_handle_scope(env, scope);
    }
}

/// The environment is going away: stop watching and free the handle.
unsafe extern "C" fn on_teardown(handle: *mut c_void) {
    // SAFETY: cleanup hooks run on the loop's thread while the env is still
    // valid; the handle is closed once, here, and freed in its close callback.
    unsafe {
        let w = &**handle.cast::<*mut Watcher>();
        sys::napi_delete_reference(w.env, w.callback);
        sys::napi_async_destroy(w.env, w.context);
        uv_poll_stop(handle);
        uv_close(handle, Some(on_closed));
    }
}

unsafe extern "C" fn on_closed(handle: *mut c_void) {
    // SAFETY: libuv is done with the handle; `data` holds the Box made in
    // `watch`, and the memory was allocated there with `layout`.
    unsafe {
        let watcher = Box::from_raw(*handle.cast::<*mut Watcher>());
        std::alloc::dealloc(handle.cast(), watcher.layout);
    }
}
