// ESM entry: the CommonJS build's named exports, re-exported (Node detects
// them statically), so `import { spawn } from 'greenthread'` works.
export * from '../dist/index.js'
