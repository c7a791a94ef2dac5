// ESM entry of greenthread/sync: the CommonJS build's named exports.
export * from '../dist/sync.js'
