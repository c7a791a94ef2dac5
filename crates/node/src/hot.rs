//! The sockets' hottest call, as a raw Node-API function: `send` runs once
//! per message, and napi-rs's generated glue for a method of a class
//! instance (unwrapping the receiver, registering the borrow in a global
//! table, a borrow scope) costs about as much as the rest of its user time.
//! This function gets its reactor from the function's data pointer and its
//! socket as two numbers.

use std::ffi::c_void;
use std::ptr;
use std::sync::{Arc, Mutex};

use greenthread_runtime::net::{Reactor, Token};
use napi::bindgen_prelude::*;
use napi::sys;

/// `-EINVAL`, for arguments of the wrong type.
const EINVAL: f64 = -22.0;

pub(crate) fn send_function(env: &Env, reactor: Arc<Mutex<Reactor>>) -> Result<Unknown<'_>> {
    let raw_env = env.raw();
    let data = Arc::into_raw(reactor).cast_mut().cast::<c_void>();
    let name = "send";
    let mut func = ptr::null_mut();
    // SAFETY: napi calls on this thread's live env with valid out-pointers.
    // `data` stays valid for the function's life: the finalizer, run once
    // the function is collected, takes back the Arc leaked for it.
    unsafe {
        let status = sys::napi_create_function(
            raw_env,
            name.as_ptr().cast(),
            name.len() as isize,
            Some(send),
            data,
            &mut func,
        );
        if status != sys::Status::napi_ok {
            drop(Arc::from_raw(data.cast::<Mutex<Reactor>>()));
            return Err(Error::new(
                Status::GenericFailure,
                "napi_create_function failed",
            ));
        }
        sys::napi_add_finalizer(
            raw_env,
            func,
            data,
            Some(release),
            ptr::null_mut(),
            ptr::null_mut(),
        );
        Ok(Unknown::from_raw_unchecked(raw_env, func))
    }
}

unsafe extern "C" fn release(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the Arc leaked by `send_function`, released once.
    drop(unsafe { Arc::from_raw(data.cast::<Mutex<Reactor>>()) });
}

/// `send(slot, generation, data)`: the bytes taken (written or queued), or
/// `-errno`.
unsafe extern "C" fn send(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let mut argc = 3;
    let mut argv = [ptr::null_mut(); 3];
    let mut data = ptr::null_mut();
    let mut result = EINVAL;
    // SAFETY: called by Node on the JS thread with a live env and callback
    // info; `data` is the reactor this function was made with (kept alive
    // by it); the typed array's bytes are valid and unmoved for this
    // synchronous call, and nothing else reads or writes them meanwhile.
    unsafe {
        sys::napi_get_cb_info(
            env,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            ptr::null_mut(),
            &mut data,
        );
        let (mut index, mut generation) = (0, 0);
        let (mut kind, mut len, mut bytes) = (0, 0, ptr::null_mut());
        if argc == 3
            && sys::napi_get_value_uint32(env, argv[0], &mut index) == sys::Status::napi_ok
            && sys::napi_get_value_uint32(env, argv[1], &mut generation) == sys::Status::napi_ok
            && sys::napi_get_typedarray_info(
                env,
                argv[2],
                &mut kind,
                &mut len,
                &mut bytes,
                ptr::null_mut(),
                ptr::null_mut(),
            ) == sys::Status::napi_ok
            && kind == sys::TypedarrayType::uint8_array
        {
            let slice = if len == 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(bytes.cast::<u8>(), len)
            };
            let reactor = &*data.cast::<Mutex<Reactor>>();
            let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut reactor = reactor.lock().unwrap_or_else(|e| e.into_inner());
                reactor.send(Token::new(index, generation), slice)
            }));
            result = match sent {
                Ok(Ok(taken)) => taken as f64,
                Ok(Err(status)) => f64::from(status),
                Err(_) => EINVAL,
            };
        }
        let mut out = ptr::null_mut();
        sys::napi_create_double(env, result, &mut out);
        out
    }
}
