// The names that the build scripts and the loaders share: napi-rs's platform
// naming and the Node lines that greenthread/sync is built for (the
// `greenthread.syncNodeByAbi` field of package.json, the one list of them).
'use strict'

const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')

/** napi-rs's platform name: linux-x64-gnu, darwin-arm64, win32-x64-msvc... */
function platformName() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const header = process.report?.getReport()?.header
    return `linux-${arch}-${header?.glibcVersionRuntime ? 'gnu' : 'musl'}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

/** `{ [NODE_MODULE_VERSION]: 'Node major' }` of the Node lines sync mode supports. */
function syncNodeByAbi() {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
  return pkg.greenthread.syncNodeByAbi
}

module.exports = { platformName, syncNodeByAbi }
