#!/usr/bin/env bash
# The first-use path, as a new user meets it: pack the library and the models package, install both tarballs
# into an empty project offline (with this checkout's webgpu, @webgpu/types and @types/node), run the README's
# Node example as written there, type-check it, a user's TypeScript file and the README's browser snippet under
# --strict, and build a minimal Vite consumer of that snippet. Needs `npm ci` first; .ci/run calls it, and it runs locally as is
# (`bash .ci/first-use.sh`; KEEP=1 keeps the scratch folder).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
nm="$root/node_modules"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
work="$(mktemp -d "${TMPDIR:-/tmp}/specdiff-first-use.XXXXXX")"
if [ "${KEEP:-0}" = 1 ]; then echo "scratch folder: $work"; else trap 'rm -rf "$work"' EXIT; fi
MAX_LIBRARY_BYTES=$((1024 * 1024))

step() { printf '\n== first use: %s\n' "$*"; }

# The fenced block after `<!-- first-use: NAME -->` in README.md.
snippet() {
  local code
  code="$(awk -v marker="<!-- first-use: $1 -->" '
    $0 == marker { armed = 1; next }
    armed && /^```/ { if (inside) exit; inside = 1; next }
    inside { print }' "$root/README.md")"
  [ -n "$code" ] || { echo "README.md has no block marked <!-- first-use: $1 -->" >&2; return 1; }
  printf '%s\n' "$code"
}

step "pack the library and the models"
lib="$(cd "$root" && npm pack --silent --pack-destination "$work" | tail -1)"
models="$(cd "$root/models" && npm pack --silent --pack-destination "$work" | tail -1)"
bytes="$(wc -c < "$work/$lib")"
echo "$lib: $bytes bytes; $models: $(wc -c < "$work/$models") bytes"
if [ "$bytes" -ge "$MAX_LIBRARY_BYTES" ]; then
  echo "the library tarball is $bytes bytes, over $MAX_LIBRARY_BYTES: it should hold code only" >&2
  exit 1
fi

step "install them into an empty project, offline"
app="$work/app"
mkdir -p "$app/web"
cd "$app"
printf '{ "name": "first-use", "private": true, "type": "module" }\n' > package.json
npm install --offline --no-audit --no-fund --loglevel=error "$work/$lib" "$work/$models" "$nm/webgpu" "$nm/@webgpu/types" "$nm/@types/node"

step "run the README's Node example"
snippet node-example > example.mjs
node example.mjs | tee example.out
grep -q 'tokens per target pass' example.out

step "type-check the README's snippets and a TypeScript user file under --strict"
cp example.mjs example.ts
cp "$root/.ci/first-use/user.ts" user.ts
snippet browser-example > web/main.ts
printf '{ "compilerOptions": { "strict": true, "module": "nodenext", "target": "es2022", "noEmit": true }, "files": ["example.ts", "user.ts", "web/main.ts"] }\n' > tsconfig.json
"$nm/.bin/tsc" -p tsconfig.json

step "build a Vite consumer of the browser entry"
printf '<!doctype html>\n<script type="module" src="./main.ts"></script>\n' > web/index.html
"$nm/.bin/vite" build web --logLevel warn
if grep -rlE '"node:|from "webgpu"' web/dist; then
  echo "the browser bundle imports Node modules" >&2
  exit 1
fi
echo "browser bundle: $(cat web/dist/assets/*.js | wc -c) bytes of JavaScript"

step "passed"
