#!/usr/bin/env bash
# Build kube-apiserver and kube-controller-manager from Debian bookworm's `kubernetes` source
# package, and install etcd, for running the integration suite against a real API server.
# The binaries are cached per version under ${XDG_CACHE_HOME:-~/.cache}/hakeeper/, so a
# machine builds them once. Prints the cache directory on its last line.
set -euo pipefail

VERSION="1.20.5+really1.20.2-1.1+deb12u1"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/hakeeper/realk8s-${VERSION}"
if [ -x "$cache/kube-apiserver" ] && [ -x "$cache/kube-controller-manager" ] && command -v etcd >/dev/null && command -v python3 >/dev/null; then
  echo "$cache"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# Source entries next to the configured binary ones, for `apt-get source`.
src=/etc/apt/sources.list.d/hakeeper-deb-src.sources
if [ ! -f "$src" ] && [ -f /etc/apt/sources.list.d/debian.sources ]; then
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$src"
fi
# The classic one-line format, where a machine has it.
list=/etc/apt/sources.list.d/hakeeper-deb-src.list
if [ ! -f "$src" ] && [ ! -f "$list" ] && [ -f /etc/apt/sources.list ] && grep -q '^deb ' /etc/apt/sources.list; then
  sed -n 's/^deb /deb-src /p' /etc/apt/sources.list > "$list"
fi
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends dpkg-dev golang-go etcd-server openssl \
  golang-github-modern-go-reflect2-dev rsync make python3 >&2

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get source -qq --download-only "kubernetes=${VERSION}" >&2
dpkg-source -x --no-check ./kubernetes_*.dsc tree >&2
cd tree
# The vendored reflect2 1.0.1 dereferences nil in map iteration on Go >= 1.18; Debian's 1.0.2
# does not.
rm -rf vendor/github.com/modern-go/reflect2
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2
# GOPATH mode, offline, with the toolchain Debian ships.
export GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=vendor GO111MODULE=off
make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >&2
mkdir -p "$cache"
for b in kube-apiserver kube-controller-manager; do
  install -m 0755 "$(find _output -type f -name "$b" | head -n 1)" "$cache/$b"
done
echo "$cache"
