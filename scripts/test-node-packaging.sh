#!/usr/bin/env bash
# Packaging check of the Node binding, as a user of a published package meets it: a release
# build of the addon (`npm run build`: napi build --release, into the workspace's target
# directory), `npm pack`, and the tarball installed into an empty project with no cargo on
# PATH (the prebuilt addon inside it is used; install.js builds nothing), then required and
# used. The debug addon the tests use is put back afterwards.
set -euo pipefail
cd "$(dirname "$0")/../bindings-node"

command -v node >/dev/null || { echo "node is not installed; the Node binding needs Node.js >= 18" >&2; exit 1; }
work="$(realpath ../target)/node-packaging"
rm -rf "$work"
mkdir -p "$work/app"
[ -x node_modules/.bin/napi ] || npm install --no-audit --no-fund --loglevel=error
addon="strongroom.$(node -p 'process.platform + "-" + process.arch')-gnu.node"
if [ -f "$addon" ]; then mv "$addon" "$work/debug.node"; fi
restore() {
  rm -f "$addon"
  if [ -f "$work/debug.node" ]; then mv "$work/debug.node" "$addon"; fi
}
trap restore EXIT

# scripts/build-release.sh (run by test-all.sh in the background, while the debug tests run)
# leaves the release addon in target/node-release; without it, build it here.
prebuilt="$(realpath ../target)/node-release/$addon"
if [ -f "$prebuilt" ]; then
  echo "== the release addon from scripts/build-release.sh (napi build --release)"
  cp "$prebuilt" "$addon"
else
  echo "== napi build --release (strongroom-node)"
  npm run -s build
fi
[ -f "$addon" ] || { echo "the release build did not produce $addon" >&2; exit 1; }

# Symbols and line tables out of the shipped addon (141 MB -> about 25 MB). `strip` afterwards,
# not napi's --strip: that changes RUSTFLAGS and so rebuilds every crate in release once more.
strip "$addon"
echo "== npm pack"
tarball="$(npm pack --silent --pack-destination "$work" | tail -n 1)"
listing="$(tar -tzf "$work/$tarball")"
grep -qx "package/$addon" <<<"$listing" || { echo "$tarball does not carry $addon" >&2; exit 1; }
ls -l "$work/$tarball"

echo "== the tarball into an empty project, no cargo on PATH"
node_dir="$(dirname "$(command -v node)")"
cd "$work/app"
npm init -y >/dev/null
PATH="$node_dir:/usr/bin:/bin" npm install --no-audit --no-fund --loglevel=error "$work/$tarball"
if PATH="$node_dir:/usr/bin:/bin" command -v cargo >/dev/null; then
  echo "cargo is still on the restricted PATH; the check would prove nothing" >&2
  exit 1
fi
PATH="$node_dir:/usr/bin:/bin" node -e '
const sr = require("strongroom")
sr.Strongroom.open(sr.Config.dev()).then(async (s) => {
  const kv = s.client(s.devRootToken()).kv("secret")
  await kv.put("smoke", { ok: true })
  const got = (await kv.get("smoke")).data
  if (!got.ok) throw new Error("read back " + JSON.stringify(got))
  await s.close()
  console.log("strongroom from the packed tarball works")
})'
echo "node packaging: 1 passed, 0 failed"
