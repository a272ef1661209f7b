#!/usr/bin/env node
// The `sessionkit` command. Its code is src/cli.ts, compiled to dist/ (npm's `prepare` builds it).
let cli
try {
  cli = await import('../dist/cli.js')
} catch (error) {
  if (error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/cli.js')) {
    console.error('sessionkit: dist/ is missing; build it first: npm run build')
    process.exit(1)
  }
  throw error
}
process.exitCode = await cli.main(process.argv.slice(2), process.env, process)
