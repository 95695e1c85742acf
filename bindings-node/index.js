'use strict'
// The `strongroom` package: the native addon (strongroom.<platform>.node, built by napi-rs from
// src/) plus this thin layer, which holds no engine logic. It does three things in one place:
//   1. every error a native call throws or rejects with becomes a `StrongroomError` subclass
//      (one per entry of the core's ErrorCode table, read from the addon at load) with
//      `err.code` = 'PERMISSION_DENIED' (upper snake of the core's name);
//   2. `Secret` arguments are passed as their value, and secrets stay out of `util.inspect`;
//   3. lease events and credential-keeper changes are offered as an EventEmitter and an async
//      iterator.
const util = require('node:util')
const { EventEmitter } = require('node:events')
const path = require('node:path')

function platformTag() {
  const { platform, arch } = process
  if (platform !== 'linux') return `${platform}-${arch}`
  const report = process.report && typeof process.report.getReport === 'function' ? process.report.getReport() : null
  const glibc = report && report.header && report.header.glibcVersionRuntime
  return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`
}

function loadNative() {
  const file = path.join(__dirname, `strongroom.${platformTag()}.node`)
  try {
    return require(file)
  } catch (e) {
    const err = new Error(
      `strongroom: the native addon ${path.basename(file)} could not be loaded (${e.code || e.message}); ` +
        'build it from source with `npm run build` in the package (needs cargo)'
    )
    err.cause = e
    throw err
  }
}

const native = loadNative()

// ---- errors -------------------------------------------------------------------------------

/** Base class of every error the engine raises; `code` is e.g. 'PERMISSION_DENIED'. */
class StrongroomError extends Error {
  constructor(message, options) {
    super(message, options)
    Object.defineProperty(this, 'name', { value: new.target.name, configurable: true, writable: true })
  }
}
StrongroomError.prototype.code = undefined
StrongroomError.prototype.number = undefined

const ERROR_CODES = Object.freeze(native.errorCodes().map(({ name, number }) => Object.freeze({ name, number })))
const ERROR_CLASSES = {}
const BY_NAME = new Map()
for (const { name, number } of ERROR_CODES) {
  const className = name.replace(/(^|_)([a-z])/g, (_, __, c) => c.toUpperCase())
  const code = name.toUpperCase()
  const cls = { [className]: class extends StrongroomError {} }[className]
  Object.defineProperty(cls.prototype, 'code', { value: code, enumerable: true })
  Object.defineProperty(cls.prototype, 'number', { value: number })
  Object.defineProperty(cls, 'code', { value: code })
  Object.defineProperty(cls, 'number', { value: number })
  ERROR_CLASSES[code] = cls
  BY_NAME.set(name, cls)
}
Object.freeze(ERROR_CLASSES)

const TAG = /^\[strongroom:([a-z_]+)\] ([\s\S]*)$/
// Statuses napi-rs gives a wrong argument type or shape.
const ARG_STATUSES = new Set([
  'InvalidArg', 'ObjectExpected', 'StringExpected', 'NameExpected', 'FunctionExpected',
  'NumberExpected', 'BooleanExpected', 'ArrayExpected', 'BigintExpected', 'DateExpected',
  'ArrayBufferExpected', 'DetachableArraybufferExpected'
])

function errorOf(name, message) {
  const cls = BY_NAME.get(name) || BY_NAME.get('internal')
  return new cls(message)
}

/** Any error out of the addon as a StrongroomError (the one place errors are mapped). */
function mapError(e) {
  if (e instanceof StrongroomError) return e
  const message = e && typeof e.message === 'string' ? e.message : String(e)
  const m = TAG.exec(message)
  if (m) return errorOf(m[1], m[2])
  // An argument napi could not convert: its message may quote the value, so drop that part.
  const safe = message.replace(/value `[^`]*`/g, 'value').replace(/received [^,.]*/g, 'received another type')
  if ((e && ARG_STATUSES.has(e.code)) || e instanceof TypeError || /convert|expect/i.test(message)) {
    return errorOf('invalid_input', `invalid argument: ${safe}`)
  }
  return errorOf('internal', safe)
}

function rethrow(e) {
  throw mapError(e)
}

// ---- secrets ------------------------------------------------------------------------------

const { Secret } = native
const REDACTED = 'Secret(<redacted>)'
Object.defineProperty(Secret.prototype, util.inspect.custom, { value: () => REDACTED })

function unwrapArg(a) {
  if (a === null || typeof a !== 'object' || ArrayBuffer.isView(a)) return a
  if (a instanceof Secret) return a.reveal()
  const raw = RAW.get(a)
  if (raw) return raw
  if (Array.isArray(a)) return a.some((x) => x instanceof Secret || isPlain(x)) ? a.map(unwrapArg) : a
  if (isPlain(a)) {
    const out = {}
    for (const k of Object.keys(a)) out[k] = unwrapArg(a[k])
    return out
  }
  return a
}

function isPlain(x) {
  if (x === null || typeof x !== 'object') return false
  const proto = Object.getPrototypeOf(x)
  return proto === Object.prototype || proto === null
}

function hide(obj, key) {
  if (obj && Object.prototype.hasOwnProperty.call(obj, key)) {
    Object.defineProperty(obj, key, { value: obj[key], enumerable: false, writable: true, configurable: true })
  }
  return obj
}

function inspectAs(obj, text) {
  if (obj && typeof obj === 'object') {
    Object.defineProperty(obj, util.inspect.custom, { value: () => text, enumerable: false })
  }
  return obj
}

// Results that carry secret values without a Secret: keep them out of util.inspect.
const RESULTS = {
  'Kv.get': (s) => s && inspectAs(s, `KvSecret { version: ${s.version}, data: <${Object.keys(s.data || {}).length} keys redacted> }`),
  'Transit.datakey': (k) => inspectAs(hide(k, 'plaintext'), `DataKey { keyVersion: ${k.keyVersion}, ciphertext: '${k.ciphertext}', plaintext: <redacted> }`),
  'Leases.events': (raw) => new LeaseEventStream(raw),
  'Database.keepFresh': (raw) => new CredentialKeeper(raw),
  'Transit.decryptBatch': (items) => items.map((i) => inspectAs(i, i.errorCode ? `BatchItem { errorCode: '${i.errorCode}' }` : 'BatchItem { value: <redacted> }'))
}

// ---- wrapping every native object --------------------------------------------------------
// napi-rs defines class methods as non-configurable properties, so the layer cannot patch them:
// native objects are handed out behind a Proxy whose methods map errors and results, and taken
// back (RAW) when they are passed to the addon again.

const CLASS_NAMES = ['Config', 'VirtualClock', 'Strongroom', 'Client', 'Kv', 'Transit', 'Sys', 'Tokens',
  'Database', 'KeeperHandle', 'Leases', 'LeaseEvents']
const CLASSES = new Set(CLASS_NAMES.map((n) => native[n]))
const RAW = new WeakMap() // proxy -> native object
const PROXIES = new WeakMap() // native object -> proxy
const WRAPPERS = new WeakMap() // native function -> wrapper

function wrapValue(v) {
  if (v === null || typeof v !== 'object') return v
  const proto = Object.getPrototypeOf(v)
  if (!proto || !CLASSES.has(proto.constructor)) return v
  return proxify(v)
}

// The methods that return a value rather than a Promise. Every other method returns a Promise,
// so a bad argument (which napi-rs reports by throwing) rejects it instead of throwing.
const SYNC = new Set([
  'Config.dev', 'Config.memory', 'Config.sqlite', 'Config.postgres', 'Config.unsealKeyFile',
  'Config.unsealKeyEnv', 'Config.clock', 'Config.describe', 'VirtualClock.advance',
  'Strongroom.isSealed', 'Strongroom.devRootToken', 'Strongroom.client', 'Client.tokenId',
  'Client.kv', 'Client.transit', 'Client.database', 'Client.leases', 'Client.sys', 'Client.token',
  'Transit.encryptSync', 'Transit.decryptSync', 'Transit.hmacSync', 'Leases.events',
  'KeeperHandle.current', 'KeeperHandle.stop'
])

// Promise-returning methods whose native side hands back the value itself when the call
// finished at once (no I/O: transit on a key in memory, a cached KV read), which spares the
// Promise napi would settle from another thread; the layer resolves its Promise with it.
const SETTLED = new Set(['Kv.get', 'Transit.encrypt', 'Transit.decrypt', 'Transit.hmac'])

function wrapper(fn, qualified) {
  let w = WRAPPERS.get(fn)
  if (w) return w
  const sync = SYNC.has(qualified)
  const settled = SETTLED.has(qualified)
  const after = RESULTS[qualified]
  const done = after ? (v) => after(wrapValue(v)) : wrapValue
  w = function (...args) {
    for (let i = 0; i < args.length; i++) args[i] = unwrapArg(args[i])
    let r
    try {
      r = fn.apply(RAW.get(this) || this, args)
    } catch (e) {
      if (sync) throw mapError(e)
      return Promise.reject(mapError(e))
    }
    if (r !== null && typeof r === "object" && typeof r.then === "function") return r.then(done, rethrow)
    if (settled) {
      try {
        return Promise.resolve(done(r))
      } catch (e) {
        return Promise.reject(mapError(e))
      }
    }
    return done(r)
  }
  Object.defineProperty(w, 'name', { value: fn.name })
  WRAPPERS.set(fn, w)
  return w
}

const HANDLER = {
  get(target, prop) {
    const v = Reflect.get(target, prop, target)
    if (typeof v !== 'function' || prop === 'constructor' || typeof prop === 'symbol') return v
    const owner = typeof target === 'function' ? target.name : target.constructor.name
    return wrapper(v, `${owner}.${prop}`)
  }
}

function proxify(obj) {
  let p = PROXIES.get(obj)
  if (!p) {
    p = new Proxy(obj, HANDLER)
    PROXIES.set(obj, p)
    RAW.set(p, obj)
  }
  return p
}

/** A class as exported: `new` and its static methods wrapped; `instanceof` works on its objects. */
function facade(cls) {
  const f = {
    [cls.name]: function (...args) {
      if (!new.target) throw new TypeError(`Class constructor ${cls.name} cannot be invoked without 'new'`)
      try {
        return proxify(new cls(...args.map(unwrapArg)))
      } catch (e) {
        throw mapError(e)
      }
    }
  }[cls.name]
  f.prototype = cls.prototype
  for (const name of Object.getOwnPropertyNames(cls)) {
    if (['length', 'name', 'prototype'].includes(name) || typeof cls[name] !== 'function') continue
    const w = wrapper(cls[name], `${cls.name}.${name}`)
    f[name] = (...args) => w.apply(cls, args)
  }
  return f
}

native.Config.prototype[util.inspect.custom] = function () {
  return this.describe()
}

// ---- events -------------------------------------------------------------------------------

// How long one native wait lasts before the loop checks whether it was closed.
const POLL_SECONDS = 0.25

/**
 * A stream of values from a native `next(timeout)`: an EventEmitter (`on(eventName)`, started by
 * the first listener) and an async iterator (`for await`); `close()` ends both.
 */
class Stream extends EventEmitter {
  constructor(next, eventName) {
    super()
    this._next = next
    this._eventName = eventName
    this._closed = false
    this._pumping = false
    this.on('newListener', (name) => {
      if (name === eventName && !this._pumping) queueMicrotask(() => this._pump())
    })
  }

  async _pump() {
    this._pumping = true
    try {
      while (!this._closed && this.listenerCount(this._eventName) > 0) {
        const v = await this._next(POLL_SECONDS)
        if (v !== null && v !== undefined && !this._closed) this.emit(this._eventName, v)
      }
    } catch (e) {
      if (this.listenerCount('error') > 0) this.emit('error', mapError(e))
    } finally {
      this._pumping = false
    }
  }

  /** The next value, waiting at most `timeout` (seconds or "5s"; forever when absent); null when none came. */
  async next(timeout) {
    if (timeout !== undefined && timeout !== null) return this._next(timeout)
    for (;;) {
      if (this._closed) return null
      const v = await this._next(POLL_SECONDS)
      if (v !== null && v !== undefined) return v
    }
  }

  close() {
    this._closed = true
  }

  async *[Symbol.asyncIterator]() {
    try {
      for (;;) {
        const v = await this.next()
        if (v === null) return
        yield v
      }
    } finally {
      this.close()
    }
  }
}

/** Lease events: `on('event', fn)` or `for await (const e of events)`; `close()` to stop. */
class LeaseEventStream extends Stream {
  constructor(raw) {
    super((t) => raw.next(t), 'event')
  }
}

/** A credential the engine keeps fresh: `current()`, `on('change', cred => ...)`, `stop()`. */
class CredentialKeeper extends Stream {
  constructor(raw) {
    super((t) => raw.nextChange(t), 'change')
    this._raw = raw
  }
  current() {
    return this._raw.current()
  }
  /** Wait until the credential is next replaced (at most `timeout`); null on timeout. */
  nextChange(timeout) {
    return this.next(timeout)
  }
  get stopped() {
    return this._raw.stopped
  }
  stop() {
    this.close()
    this._raw.stop()
  }
}

module.exports = {
  Strongroom: facade(native.Strongroom),
  Config: facade(native.Config),
  VirtualClock: facade(native.VirtualClock),
  Client: native.Client,
  Kv: native.Kv,
  Transit: native.Transit,
  Sys: native.Sys,
  Tokens: native.Tokens,
  Database: native.Database,
  Leases: native.Leases,
  Secret,
  LeaseEventStream,
  CredentialKeeper,
  StrongroomError,
  ERROR_CODES,
  ERROR_CLASSES,
  ...Object.fromEntries(Object.entries(ERROR_CLASSES).map(([, cls]) => [cls.name, cls]))
}
