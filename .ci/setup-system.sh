#!/usr/bin/env bash
# Installs the system pieces the tests need on a fresh Debian bookworm machine:
# a Vulkan driver Dawn accepts (Mesa >= 25 lavapipe from bookworm-backports; bookworm's own
# Mesa 22.3 is rejected by Dawn), Debian's chromium for the browser end-to-end test (driven by
# playwright-core; no browser download), and optionally PyTorch for the offline reference scripts.
set -euo pipefail
need_torch=0
for a in "$@"; do [ "$a" = "--torch" ] && need_torch=1; done

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

has_lavapipe() {
  ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || return 1
  dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -qE '^(2[5-9]|[3-9][0-9])\.'
}

if ! has_lavapipe; then
  src=/etc/apt/sources.list.d/bookworm-backports.sources
  if [ ! -f "$src" ]; then
    $SUDO tee "$src" >/dev/null <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
fi

if [ ! -x /usr/bin/chromium ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

if [ "$need_torch" = 1 ] && ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-torch libopenblas0-pthread >/dev/null
fi
# lavapipe maps each descriptor pool into its own memory mapping, and a test process that runs thousands of
# generations (the chi-square tests) nears Linux's default of 65530 mappings per process, where lavapipe's
# next mmap fails and it crashes (docs/architecture.md, "Memory mappings on lavapipe").
if [ "$(cat /proc/sys/vm/max_map_count 2>/dev/null || echo 0)" -lt 262144 ]; then
  $SUDO sysctl -q -w vm.max_map_count=262144 || echo "warning: could not raise vm.max_map_count; long test processes may crash in lavapipe"
fi

echo "system ready: $(dpkg-query -W -f='mesa-vulkan-drivers ${Version}' mesa-vulkan-drivers)"
