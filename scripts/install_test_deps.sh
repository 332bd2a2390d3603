#!/usr/bin/env bash
# What the real-client listening tests need beyond the Python packages:
#   chromium + chromium-driver  headless browser that selenium drives through webMUSHRA
#   php-cli                     runs webMUSHRA's own service/write.php (php -S on loopback)
#   node + npm                  run yaml.js, the YAML parser webMUSHRA bundles, fetched from npm at its version
# Idempotent and quiet: installs only what is missing. Debian/Ubuntu; run as root (CI) or with sudo rights.
set -euo pipefail

YAMLJS_VERSION=0.3.0  # keep equal to YAMLJS_VERSION in tests/test_webmushra_yaml.py

need=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v php >/dev/null 2>&1 || need+=(php-cli)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

cache="${ECHOSCRIPT_TEST_CACHE:-$HOME/.cache/echoscript/test-tools}/yamljs-$YAMLJS_VERSION"
if [ ! -f "$cache/node_modules/yamljs/dist/yaml.min.js" ]; then
  npm install --silent --prefix "$cache" --no-audit --no-fund --ignore-scripts "yamljs@$YAMLJS_VERSION" >/dev/null
fi
