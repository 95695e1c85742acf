// A typed use of the package, checked by `tsc --strict --noEmit` (scripts/test-node-binding.sh)
// together with examples/node/quickstart.mjs; run by nothing (the same calls run in api.test.js).
import {
  Config, Strongroom, Secret, StrongroomError, PermissionDenied, ERROR_CLASSES,
  type DbCredential, type KvSecret, type LeaseEvent, type ErrorCode, CredentialKeeper, LeaseEventStream
} from 'strongroom'

export async function typed(): Promise<void> {
  const sr: Strongroom = await Strongroom.open(Config.dev({ kvV1: false }))
  const token: Secret | null = sr.devRootToken()
  if (token === null) throw new Error('dev mode has a root token')
  const client = sr.client(token)
  const kv = client.kv('secret')
  const v = await kv.put('app', { user: 'app' }, { cas: 0 })
  const when: Date | null | undefined = v.createdTime
  void when
  const s: KvSecret | null = await kv.get('app', { version: v.version })
  if (s !== null) console.log(s.version)
  const t = client.transit()
  const ct: string = await t.encrypt('k', Buffer.from('x'), { context: Buffer.from('c') })
  const pt: Buffer = t.decryptSync('k', ct)
  const items = await t.encryptBatch('k', [new Uint8Array([1, 2])])
  for (const i of items) if (i.errorCode !== undefined && i.errorCode !== null) console.log(i.error)
  void pt
  const cred: DbCredential = await client.database().creds('app')
  const pw: string = cred.password.reveal()
  void pw
  const keeper: CredentialKeeper = await client.database().keepFresh('app')
  keeper.on('change', (c: DbCredential) => console.log(c.username))
  keeper.stop()
  const events: LeaseEventStream = client.leases().events()
  for await (const e of events) {
    const ev: LeaseEvent = e
    console.log(ev.kind)
    break
  }
  const r = await client.request('read', 'sys/mounts')
  if (r !== null && 'leaseId' in r) console.log(r.leaseId)
  try {
    await sr.loginUserpass('userpass', 'alice', new Secret('pw'))
  } catch (e) {
    if (e instanceof PermissionDenied) {
      const code: 'PERMISSION_DENIED' = e.code
      void code
    } else if (e instanceof StrongroomError) {
      const code: ErrorCode = e.code
      console.log(code, ERROR_CLASSES[code].number)
    }
  }
  await sr.close()
}
