#!/usr/bin/env bash
# Installs the Debian packages patchbay needs to build and test.
# Uses sudo when not run as root. Does nothing when all are present.
set -euo pipefail
pkgs=(meson ninja-build pkg-config gcc libevent-dev libmsgpack-dev uuid-dev
      check libinih-dev uthash-dev libssl-dev libsqlite3-dev python3 procps)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
