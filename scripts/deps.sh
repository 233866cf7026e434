#!/usr/bin/env bash
# scripts/deps.sh: installs the Debian packages clawpair needs, only those missing.
# Sourced by scripts/check and scripts/demo. Uses apt-get as root, or through sudo.
CLAWPAIR_PKGS=(build-essential pkg-config meson ninja-build libwebsockets-dev libcjson-dev
  libsodium-dev libcmocka-dev valgrind clang-format iproute2 python3
  libev-dev libwebsockets-evlib-ev groff-base strace)
clawpair_install_deps() {
  local missing=() p
  for p in "${CLAWPAIR_PKGS[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "deps: installing ${missing[*]}" >&2
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}
