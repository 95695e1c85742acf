'use strict'
// Shared by the tests: the PostgreSQL the database tests use (trust auth), and a database of a
// test's own, dropped afterwards. A missing PostgreSQL fails the test with a clear message.
const crypto = require('node:crypto')

const POSTGRES_URL = process.env.STRONGROOM_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres'

async function admin(fn) {
  const { Client } = require('pg')
  const c = new Client({ connectionString: POSTGRES_URL })
  try {
    await c.connect()
  } catch (e) {
    throw new Error(`PostgreSQL is not reachable at ${POSTGRES_URL.replace(/:[^:@/]*@/, ':***@')} (set STRONGROOM_TEST_POSTGRES_URL): ${e.message}`)
  }
  try {
    return await fn(c)
  } finally {
    await c.end()
  }
}

/** Create a database of this test's own; returns its URL and a `drop()`. */
async function ownDatabase() {
  const name = `sr_node_${crypto.randomBytes(6).toString('hex')}`
  await admin((c) => c.query(`CREATE DATABASE "${name}"`))
  return {
    name,
    url: POSTGRES_URL.replace(/\/[^/]*$/, `/${name}`),
    drop: () => admin((c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`))
  }
}

module.exports = { POSTGRES_URL, admin, ownDatabase }
