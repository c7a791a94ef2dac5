//! Compiles the V8 shim (`shim/locker.cc`) against one Node's headers.
//!
//! The headers come from `GREENTHREAD_NODE_INCLUDE` (the directory holding
//! `node.h` and `v8.h`), or else from `<dirname(node)>/../include/node` of the
//! `node` on `PATH` (or in `NODE`). The binary only works on the Node whose
//! headers it was built with; `scripts/build-sync.js` names it by ABI.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn node_include_dir() -> PathBuf {
    if let Some(dir) = env::var_os("GREENTHREAD_NODE_INCLUDE") {
        return PathBuf::from(dir);
    }
    let node = env::var("NODE").unwrap_or_else(|_| "node".into());
    let output = Command::new(&node)
        .args(["-p", "process.execPath"])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{node}` to find the Node headers ({e}); set GREENTHREAD_NODE_INCLUDE"
            )
        });
    let exec_path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    exec_path
        .parent()
        .and_then(|bin| bin.parent())
        .map(|prefix| prefix.join("include").join("node"))
        .unwrap_or_else(|| {
            panic!(
                "cannot derive the Node include directory from {}",
                exec_path.display()
            )
        })
}

fn main() {
    napi_build::setup();
    let include = node_include_dir();
    assert!(
        include.join("v8.h").is_file() && include.join("node_version.h").is_file(),
        "no Node headers (v8.h, node_version.h) in {}; set GREENTHREAD_NODE_INCLUDE",
        include.display()
    );
    println!("cargo:rerun-if-env-changed=GREENTHREAD_NODE_INCLUDE");
    println!("cargo:rerun-if-env-changed=NODE");
    println!("cargo:rerun-if-changed=shim/locker.cc");
    println!(
        "cargo:rerun-if-changed={}",
        include.join("node_version.h").display()
    );
    cc::Build::new()
        .cpp(true)
        .file("shim/locker.cc")
        // A system include: warnings from the V8 headers are not ours.
        .flag("-isystem")
        .flag(
            include
                .to_str()
                .expect("the Node include directory is not valid UTF-8"),
        )
        // Node 22's V8 headers need C++20; Node 20's accept it.
        .std("c++20")
        .flag_if_supported("-fno-rtti")
        .flag_if_supported("-fno-exceptions")
        .warnings(true)
        .compile("greenthread_v8_shim");
}
