#!/usr/bin/env bash
# Rebuild plotly-map.min.js: plotly.js's core with heatmap and contour traces only, which loads in
# about a tenth of the time of the full bundle (see pages/_app/live_plot.py). Needs node and npm.
# The plotly.js version is the one plotly.py bundles, so both draw a figure the same way.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="$(python -c 'import plotly.offline as o; print(o.get_plotlyjs_version())')"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm init -y >/dev/null
npm install --no-audit --no-fund --silent "plotly.js@$version" esbuild@0.28.2
node node_modules/esbuild/install.js
cp "$here/plotly_map_entry.js" entry.js
{
  printf '/* plotly.js v%s (core, heatmap, contour), MIT license, Copyright 2012-2026 Plotly, Inc.\n' "$version"
  printf '   Built by pages/assets/build_plotly_map.sh from the npm package plotly.js@%s. */\n' "$version"
  ./node_modules/.bin/esbuild entry.js --bundle --minify --format=iife --target=es2016 \
    --define:global=window --define:define.amd=false --loader:.css=empty
} > "$here/plotly-map.min.js"
echo "$version" > "$here/plotly-map.version"
echo "wrote $here/plotly-map.min.js for plotly.js $version"
