// The ESM entry point (index.mjs) gives the same classes as the CommonJS one.
import test from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import sr, { Strongroom, Config, StrongroomError, PermissionDenied, ERROR_CODES } from 'strongroom'

const cjs = createRequire(import.meta.url)('strongroom')

test('ESM and CommonJS export the same objects', async () => {
  assert.equal(Strongroom, cjs.Strongroom)
  assert.equal(StrongroomError, cjs.StrongroomError)
  assert.equal(sr, cjs)
  assert.equal(ERROR_CODES.length, cjs.ERROR_CODES.length)
  const engine = await Strongroom.open(Config.dev())
  try {
    await assert.rejects(engine.client('nope').kv().get('x'), PermissionDenied)
  } finally {
    await engine.close()
  }
})
