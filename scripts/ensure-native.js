// Runs on `npm install`: makes sure a native binary for this platform exists.
// A published package ships prebuilt binaries; where none fits (or in a fresh
// checkout), build one with cargo, which the README lists as a prerequisite.
'use strict'
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const { platformName } = require('./platform')

const root = path.join(__dirname, '..')

function loads() {
  try {
    require(path.join(root, 'index.js'))
    return true
  } catch {
    return false
  }
}

function libraryFileName() {
  if (process.platform === 'darwin') return 'libgreenthread_node.dylib'
  if (process.platform === 'win32') return 'greenthread_node.dll'
  return 'libgreenthread_node.so'
}

function inDevCheckout() {
  // With the dev tools installed, `prepare` runs the full napi build next.
  try {
    require.resolve('@napi-rs/cli/package.json', { paths: [root] })
    return true
  } catch {
    return false
  }
}

if (!inDevCheckout() && !loads()) {
  console.log('greenthread: no prebuilt binary fits this platform; building it with cargo')
  execFileSync('cargo', ['build', '--release', '-p', 'greenthread-node'], { cwd: root, stdio: 'inherit' })
  fs.copyFileSync(
    path.join(root, 'target', 'release', libraryFileName()),
    path.join(root, `greenthread.${platformName()}.node`),
  )
}
