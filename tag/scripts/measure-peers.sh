#!/usr/bin/env bash
# Size of our tag next to peers' browser tags, as published on npm today.
# Each peer's file is the one a site loads first (further chunks or plugins
# that some load lazily are not counted, which favours them). Each file is
# counted as published or after `esbuild --minify`, whichever is smaller (so
# a dist shipped unminified is not penalised, nor a well-minified one made
# worse), then compressed with `gzip -9`.
# Usage: bash tag/scripts/measure-peers.sh   (needs `npm ci` in tag/ first)
set -euo pipefail
cd "$(dirname "$0")/.."

ESBUILD=node_modules/.bin/esbuild
[ -x "$ESBUILD" ] || { echo "run 'npm ci' in tag/ first" >&2; exit 1; }

# package | file inside the package | what it is
PEERS=(
  "@segment/analytics-next|dist/umd/standalone.js|analytics.js 2.0 (Segment's CDN build)"
  "@rudderstack/analytics-js|dist/npm/modern/umd/index.js|RudderStack JS SDK v3 core"
  "posthog-js|dist/array.js|PostHog snippet bundle"
  "@jitsu/js|dist/web/p.js.txt|Jitsu p.js"
  "@snowplow/browser-tracker|dist/index.umd.min.js|Snowplow browser tracker core"
  "@plausible-analytics/tracker|plausible.js|Plausible (page views and goals only, no identity or queue)"
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
packages=()
for peer in "${PEERS[@]}"; do packages+=("${peer%%|*}@latest"); done
npm install --prefix "$work" --no-save --no-package-lock --no-audit --no-fund --ignore-scripts --loglevel=error \
  "${packages[@]}" >/dev/null

measure() { # name version file-label path
  "$ESBUILD" --minify --loader=js --log-level=error < "$4" > "$work/min.js"
  local best="$4"
  if [ "$(gzip -9c < "$work/min.js" | wc -c)" -lt "$(gzip -9c < "$4" | wc -c)" ]; then best="$work/min.js"; fi
  printf '| %s | %s | `%s` | %s | %s |\n' "$1" "$2" "$3" "$(wc -c < "$best")" "$(gzip -9c < "$best" | wc -c)"
}

echo "| tag | version | file | minified bytes | gzip -9 bytes |"
echo "|---|---|---|---:|---:|"
measure "**magpie.js (this repo)**" "$(node -p "require('./package.json').version")" "collector/static/tag.js" ../collector/static/tag.js
for peer in "${PEERS[@]}"; do
  IFS='|' read -r name file _ <<< "$peer"
  dir="$work/node_modules/$name"
  measure "$name" "$(node -p "require('$dir/package.json').version")" "$file" "$dir/$file"
done
echo
echo "Measured $(date -u +%Y-%m-%d) with esbuild $("$ESBUILD" --version) and $(gzip --version | head -1)."
