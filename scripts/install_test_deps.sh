#!/usr/bin/env bash
# What the real-client listening tests need beyond the Python packages:
#   chromium + chromium-driver  headless browser that selenium drives through webMUSHRA
#   php-cli                     runs webMUSHRA's own service/write.php (php -S on loopback)
#   node + npm                  run yaml.js, the YAML parser webMUSHRA bundles, fetched from npm at its version
#   ffmpeg + fonts-dejavu-core  renders and reads back preview.mp4 (drawtext needs a font), measures loudness
#   mediainfo                   reads the Broadcast WAV stems' bext time reference
#   warzone2100-music           a real soundtrack (Ogg Opus) for the delivery loudness tests, unpacked into the
#                               test cache, never installed or committed
# Idempotent and quiet: installs only what is missing. Debian/Ubuntu; run as root (CI) or with sudo rights.
set -euo pipefail

YAMLJS_VERSION=0.3.0  # keep equal to YAMLJS_VERSION in tests/test_webmushra_yaml.py

need=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v php >/dev/null 2>&1 || need+=(php-cli)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v mediainfo >/dev/null 2>&1 || need+=(mediainfo)
[ -d /usr/share/fonts/truetype/dejavu ] || need+=(fonts-dejavu-core)
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if ((${#need[@]})); then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

tools="${ECHOSCRIPT_TEST_CACHE:-$HOME/.cache/echoscript/test-tools}"
music="$tools/warzone2100-music"
if [ ! -d "$music/usr/share/games/warzone2100/music" ]; then
  deb_dir="$(mktemp -d)"
  (cd "$deb_dir" && { apt-get download -qq warzone2100-music 2>/dev/null \
    || { $sudo apt-get update -qq && apt-get download -qq warzone2100-music; }; } >/dev/null)
  rm -rf "$music.partial"
  mkdir -p "$music.partial"
  dpkg -x "$deb_dir"/warzone2100-music_*.deb "$music.partial"
  mv "$music.partial" "$music"
  rm -rf "$deb_dir"
fi

cache="$tools/yamljs-$YAMLJS_VERSION"
if [ ! -f "$cache/node_modules/yamljs/dist/yaml.min.js" ]; then
  npm install --silent --prefix "$cache" --no-audit --no-fund --ignore-scripts "yamljs@$YAMLJS_VERSION" >/dev/null
fi
