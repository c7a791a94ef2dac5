// ESM entry: the CommonJS build's named exports, re-exported (Node detects
// them statically), so `import { spawn } from 'greenthread'` works.
export * from '../dist/index.js'
// A default import gets the whole module, as require() does.
import entry from '../dist/index.js'
export default entry
