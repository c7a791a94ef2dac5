//! napi-rs bindings for greenthread: type conversion only. The hub's logic
//! lives in `greenthread-runtime`.

mod hub;
mod runtime;
