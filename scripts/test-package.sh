#!/usr/bin/env bash
# Packs the main package and this platform's binary package, installs the
# tarballs into a fresh project where no cargo, rustc or C++ compiler is on
# PATH, and there runs the demo, a CommonJS and an ESM consumer (both modes;
# also on every Node in GREENTHREAD_NODE_DIRS) and `tsc --noEmit --strict`
# on a consumer of the public types. Run after a build (npm run build, with
# every sync ABI built for the tarball).
set -euo pipefail
export npm_config_loglevel=warn
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mapfile -t tarballs < <(node "$root/scripts/pack.js" "$work/tarballs")
echo "packed: ${tarballs[*]##*/}"
main_tarball=${tarballs[-1]}

# What a user sees: no Rust sources or build tooling, a LICENSE, no map
# pointing at a file the package lacks.
listing=$(tar -tzf "$main_tarball")
if grep -E '\.rs$|Cargo\.(toml|lock)$|/crates/|loadgen|build-sync|\.node$' <<<"$listing"; then
  echo "the main package ships build-only files (above)" >&2; exit 1
fi
grep -qx 'package/LICENSE' <<<"$listing" || { echo 'no LICENSE in the main package' >&2; exit 1; }
mkdir "$work/unpacked" && tar -xzf "$main_tarball" -C "$work/unpacked"
node -e '
const fs = require("fs"), path = require("path"); const dir = process.argv[1]; let bad = 0
const walk = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) { const p = path.join(d, e.name); if (e.isDirectory()) walk(p); else if (p.endsWith(".map")) for (const s of JSON.parse(fs.readFileSync(p, "utf8")).sources) if (!fs.existsSync(path.resolve(path.dirname(p), s))) { console.error(`${p} points at ${s}, which is not in the package`); bad++ } } }
walk(dir); process.exit(bad ? 1 : 0)' "$work/unpacked/package"

# A PATH with node and npm only.
mkdir "$work/bin"
ln -s "$(command -v node)" "$work/bin/node"
ln -s "$(command -v npm)" "$work/bin/npm"
for tool in cargo rustc cc c++ gcc g++; do
  if PATH="$work/bin" command -v "$tool" >/dev/null; then echo "$tool is still on PATH" >&2; exit 1; fi
done

app="$work/app"
mkdir "$app"
cp "$root"/scripts/package-test/consumer.{cjs,mjs,ts} "$app/"
(cd "$app" && PATH="$work/bin" npm init -y >/dev/null && PATH="$work/bin" npm install --no-audit --no-fund "${tarballs[@]}")
# Installing must not have built anything.
if [ -d "$app/node_modules/greenthread/target" ]; then echo 'the install built from source' >&2; exit 1; fi

cd "$app"
PATH="$work/bin" node consumer.cjs
PATH="$work/bin" node consumer.mjs
# The other Node lines CI has (GREENTHREAD_NODE_DIRS): their prebuilt sync binaries, from the tarball.
IFS=: read -r -a other_nodes <<<"${GREENTHREAD_NODE_DIRS:-}"
for dir in "${other_nodes[@]}"; do
  [ -n "$dir" ] || continue
  echo "consumers on $("$dir/bin/node" --version)"
  PATH="$work/bin" "$dir/bin/node" consumer.cjs
  PATH="$work/bin" "$dir/bin/node" consumer.mjs
done
PATH="$work/bin" "$(command -v timeout)" 120 node node_modules/greenthread/dist/examples/demo.js >"$work/demo.log" 2>&1 || { tail -30 "$work/demo.log"; exit 1; }
echo "demo ok ($(wc -l <"$work/demo.log") lines)"
PATH="$work/bin" node "$root/node_modules/typescript/bin/tsc" --noEmit --strict --module nodenext --moduleResolution nodenext \
  --target es2022 --types node --typeRoots "$root/node_modules/@types" --skipLibCheck false consumer.ts
echo "tsc --strict ok"
echo "package test passed"
