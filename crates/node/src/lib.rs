//! napi-rs bindings for greenthread: type conversion only. The hub's logic
//! lives in `greenthread-runtime`.

mod executor;
mod hot;
mod hub;
mod net;
mod runtime;
mod uv;
mod wake;
