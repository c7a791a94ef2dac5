#!/usr/bin/env node
// Packs what `npm publish` would publish, into the directory given (default
// ./packages): this platform's binary package (npm/<platform>, with the
// addon and every sync-mode binary built in the checkout) and the main
// package, whose optionalDependencies then name every platform package under
// npm/ at the main version (as `napi prepublish` does). Prints the tarballs'
// paths. Run after `npm run build` (and scripts/build-sync.js for each ABI).
'use strict'

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const { platformName, syncNodeByAbi } = require('./platform')

const root = path.join(__dirname, '..')
const out = path.resolve(process.argv[2] ?? path.join(root, 'packages'))
fs.mkdirSync(out, { recursive: true })
const platform = platformName()
const platformDir = path.join(root, 'npm', platform)
if (!fs.existsSync(path.join(platformDir, 'package.json'))) {
  throw new Error(`no platform package for ${platform} under npm/`)
}

function pack(dir) {
  const name = execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', out], { cwd: dir, encoding: 'utf8' })
  return path.join(out, name.trim().split('\n').pop())
}

// The platform package: the binaries of the checkout.
const binaries = [`greenthread.${platform}.node`, ...Object.keys(syncNodeByAbi()).map((abi) => `greenthread-sync.${platform}.abi${abi}.node`)]
for (const file of binaries) {
  const from = path.join(root, file)
  if (!fs.existsSync(from)) throw new Error(`${file} is not built (npm run build; GREENTHREAD_NODE_DIRS=... node scripts/build-sync.js)`)
  fs.copyFileSync(from, path.join(platformDir, file))
}
const tarballs = [pack(platformDir)]
for (const file of binaries) fs.rmSync(path.join(platformDir, file))

// The main package, with its optional platform dependencies for the pack only.
const manifest = path.join(root, 'package.json')
const original = fs.readFileSync(manifest, 'utf8')
const pkg = JSON.parse(original)
// Building is for checkouts: an installed package has its binaries.
delete pkg.scripts.prepare
pkg.optionalDependencies = Object.fromEntries(
  fs
    .readdirSync(path.join(root, 'npm'))
    .filter((d) => fs.existsSync(path.join(root, 'npm', d, 'package.json')))
    .map((d) => [JSON.parse(fs.readFileSync(path.join(root, 'npm', d, 'package.json'), 'utf8')).name, pkg.version]),
)
try {
  fs.writeFileSync(manifest, `${JSON.stringify(pkg, null, 2)}\n`)
  tarballs.push(pack(root))
} finally {
  fs.writeFileSync(manifest, original)
}
console.log(tarballs.join('\n'))
