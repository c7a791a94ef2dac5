// ESM entry of greenthread/sync: the CommonJS build's named exports.
export * from '../dist/sync.js'
// A default import gets the whole module, as require() does.
import entry from '../dist/sync.js'
export default entry
