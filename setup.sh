#!/usr/bin/env bash
# texstyle's one setup command:
#   1. software Vulkan (Mesa lavapipe) where no Vulkan driver is installed (Linux, apt);
#   2. the build;
#   3. the VGG16 ImageNet weights into the user's cache (see README, "Weights").
# Safe to run again: each step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")"
profile=${TEXSTYLE_PROFILE:-release}   # CI uses "dev" to share the test build

if [ "$(uname -s)" = Linux ]; then
  icds=$(ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json 2>/dev/null || true)
  if [ -z "$icds" ] || ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
    echo "setup: no Vulkan driver found; installing Mesa's software Vulkan (lavapipe)"
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1
  else
    echo "setup: Vulkan driver(s) present: $(echo $icds | tr '\n' ' ')"
  fi
fi

echo "setup: building texstyle ($profile profile)"
cargo build --profile "$profile" --quiet

echo "setup: VGG16 ImageNet weights"
cargo run --profile "$profile" --quiet -- weights fetch
