#!/usr/bin/env bash
# Guards the committed tag: collector/static/tag.js must be exactly what the
# sources build to, within the size budget, and collector/static/snippet.html
# a copy of tag/snippet.html. Usage: bash tag/scripts/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BUDGET_GZIP_BYTES=5120
BUILT=../collector/static/tag.js

[ -x node_modules/.bin/esbuild ] || npm ci --no-audit --no-fund --loglevel=error

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node scripts/build.mjs "$tmp/tag.js"

if ! cmp -s "$tmp/tag.js" "$BUILT"; then
  echo "FAIL: collector/static/tag.js is not the build of tag/src: run 'npm run build' in tag/" >&2
  exit 1
fi
if ! cmp -s snippet.html ../collector/static/snippet.html; then
  echo "FAIL: collector/static/snippet.html differs from tag/snippet.html: copy it" >&2
  exit 1
fi

minified=$(wc -c < "$BUILT")
gzipped=$(gzip -9c < "$BUILT" | wc -c)
echo "tag.js: $minified bytes minified, $gzipped bytes gzip -9 (budget $BUDGET_GZIP_BYTES)"
if [ "$gzipped" -gt "$BUDGET_GZIP_BYTES" ]; then
  echo "FAIL: tag.js is over its size budget" >&2
  exit 1
fi
