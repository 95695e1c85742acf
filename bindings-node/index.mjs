// ESM entry point: the same module as index.js (CommonJS), re-exported by name.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const sr = require('./index.js')

export const {
  Strongroom, Config, VirtualClock, Client, Kv, Transit, Sys, Tokens, Database, Leases, Secret,
  LeaseEventStream, CredentialKeeper, StrongroomError, ERROR_CODES, ERROR_CLASSES,
  InvalidInput, NotFound, PermissionDenied, Sealed, Conflict, Unavailable, Upstream, Crypto,
  Internal, UnsupportedOperation, UnsupportedPath, TooLarge, NotInitialized, AlreadyInitialized,
  Storage, QuotaExceeded
} = sr
export default sr
