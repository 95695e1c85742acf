'use strict'
// `npm install` hook: the package ships prebuilt addons (strongroom.<platform>.node) when it
// comes from `npm pack` after a release build; from a source checkout (`npm install
// ./bindings-node`) none is there, so this builds one with cargo and puts it in place.
//   STRONGROOM_NODE_PROFILE=dev   build in debug mode (fast, for tests) instead of release
// Running `npm install` inside the package itself (development) builds nothing: use
// `npm run build` / `npm run build:debug` there.
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const here = __dirname
const tag = (() => {
  const { platform, arch } = process
  if (platform !== 'linux') return `${platform}-${arch}`
  const report = process.report && process.report.getReport ? process.report.getReport() : null
  return `linux-${arch}-${report && report.header && report.header.glibcVersionRuntime ? 'gnu' : 'musl'}`
})()
const addon = path.join(here, `strongroom.${tag}.node`)

if (fs.existsSync(addon)) process.exit(0)
if (process.env.INIT_CWD && path.resolve(process.env.INIT_CWD) === here) {
  console.log('strongroom: development install, no addon built (run `npm run build:debug`)')
  process.exit(0)
}
if (!fs.existsSync(path.join(here, 'Cargo.toml'))) {
  console.error(`strongroom: no prebuilt addon for ${tag} and no sources to build one from`)
  process.exit(1)
}

const profile = process.env.STRONGROOM_NODE_PROFILE === 'dev' ? 'dev' : 'release'
console.log(`strongroom: no prebuilt addon for ${tag}; building it from source with cargo (${profile} profile)`)
try {
  // STRONGROOM_NAPI_WORKSPACE=1: resolve features as `cargo test --workspace` (see scripts/cargo-host.sh).
  const select = process.env.STRONGROOM_NAPI_WORKSPACE === '1' && profile === 'dev'
    ? ['--workspace', '--exclude', 'strongroom-python', '--lib', '--tests']
    : ['-p', 'strongroom-node']
  execFileSync('cargo', ['build', ...select, '--profile', profile, '--manifest-path', path.join(here, 'Cargo.toml')], { stdio: 'inherit' })
} catch (e) {
  console.error('strongroom: `cargo build` failed; the Node package needs a Rust toolchain (https://rustup.rs) to build from source')
  process.exit(1)
}
const meta = JSON.parse(execFileSync('cargo', ['metadata', '--format-version', '1', '--no-deps', '--manifest-path', path.join(here, 'Cargo.toml')], { encoding: 'utf8', maxBuffer: 64 << 20 }))
const lib = { darwin: 'libstrongroom_node.dylib', win32: 'strongroom_node.dll' }[process.platform] || 'libstrongroom_node.so'
const built = path.join(meta.target_directory, profile === 'dev' ? 'debug' : 'release', lib)
fs.copyFileSync(built, addon)
console.log(`strongroom: built ${path.basename(addon)}`)
