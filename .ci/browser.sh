#!/usr/bin/env bash
# The run page in a real browser: Debian's Chromium, headless, opens a tiny real run's
# OUT/index.html from file:// with no network (tests/browser/page.test.mjs, through the Chrome
# DevTools protocol with playwright-core), and the Khronos glTF-Validator checks the page's GLB
# (with KHR_materials_variants) and --export glb. Needs the debug binary that `cargo test` built
# (target/debug/texstyle) and the VGG weights (./setup.sh). Called by .ci/run; `cargo test`
# itself needs no browser.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
# Only what is missing: a machine with NodeSource's nodejs (npm inside) refuses Debian's npm.
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v npm >/dev/null || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/share/vulkan/icd.d/lvp_icd.x86_64.json}
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  export XDG_RUNTIME_DIR=$(mktemp -d)
  chmod 700 "$XDG_RUNTIME_DIR"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin=${TEXSTYLE_BIN:-target/debug/texstyle}
test -x "$bin" || cargo build --quiet
# A tiny real run: spot (textured, near-white) styled for 4 steps from the near-grey start,
# so the styled and the original texture differ clearly in colour.
"$bin" meshes/spot/spot.obj --style styles/great_wave.jpg --out "$work/run" \
  --steps 4 --texture-size 64 --render-size 64 --samples 1 --style-size 128 --export obj,glb,palette:4 >/dev/null
cd tests/browser
TEXSTYLE_RUN="$work/run" TEXSTYLE_STYLED_PNG="$work/run/spot_spot.png" \
  TEXSTYLE_ORIGINAL_PNG=../../meshes/spot/spot_texture.png TEXSTYLE_GLB="$work/run/spot.glb" \
  TEXSTYLE_SHOTS="${TEXSTYLE_SHOTS:-$work/shots}" node --test
