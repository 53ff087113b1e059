#!/usr/bin/env bash
# Build (once) and cache kube-apiserver, kube-controller-manager and kube-scheduler
# from Debian's `kubernetes` source package, and make sure etcd is installed.
#
# Prints the directory holding the binaries on its last line of stdout.
# KEELSON_KUBE_ASSETS=/dir  -> use binaries a user already has (nothing is built).
# Safe to run again: a complete cache is reused as it is.
set -euo pipefail

KUBE_VERSION=1.20.2
# Build revision: bump when the build changes, so caches are rebuilt.
#   r2: vendored reflect2 1.0.1 replaced by Debian's 1.0.2 (Go >= 1.18 map iteration: the
#       1.0.1 build of kube-apiserver segfaults encoding custom resources' labels).
BUILD_REVISION=r2
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/keelson"
DEST="$CACHE_ROOT/kube-$KUBE_VERSION-$BUILD_REVISION"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)

log() { echo "[kube-binaries] $*" >&2; }

# KEELSON_KUBE_PROGRESS=file: progress as JSON for `make run`'s overview (see
# localkube/runtime.py). The compile step's share is an estimate from elapsed time
# against a typical build (COMPILE_SECONDS on 2 cores; the Go build cache's file count is not
# monotonic, so it cannot measure progress).
PROGRESS_FILE=${KEELSON_KUBE_PROGRESS:-}
COMPILE_SECONDS=${KEELSON_KUBE_COMPILE_SECONDS:-540}
progress() {  # state percent step
  [[ -n "$PROGRESS_FILE" ]] || return 0
  printf '{"state": "%s", "percent": %d, "step": "%s"}' "$1" "$2" "$3" >"$PROGRESS_FILE.tmp"
  mv -f "$PROGRESS_FILE.tmp" "$PROGRESS_FILE"
}
on_exit() {
  local code=$?
  [[ $code -ne 0 ]] && progress failed 0 "the build stopped with exit code $code"
  [[ -n "${MONITOR_PID:-}" ]] && kill "$MONITOR_PID" 2>/dev/null
  return 0
}
trap on_exit EXIT
# Runs in the background during the compile: 20 % .. 98 % by elapsed time, a line a minute.
monitor_compile() {
  local started=$SECONDS elapsed percent left tick=0
  while sleep 5; do
    elapsed=$((SECONDS - started))
    percent=$((20 + 78 * elapsed / COMPILE_SECONDS))
    ((percent > 98)) && percent=98
    left=$(((COMPILE_SECONDS - elapsed + 59) / 60))
    ((left < 1)) && left=1
    progress building "$percent" "compiling Kubernetes, about $left min left"
    tick=$((tick + 1))
    if ((tick % 12 == 0)); then log "compiling: about $percent %, $left min left"; fi
  done
}

have_all() {
  local dir=$1
  for b in "${BINARIES[@]}"; do [[ -x "$dir/$b" ]] || return 1; done
}

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if [[ $apt_updated -eq 0 ]]; then as_root apt-get update -qq >&2; apt_updated=1; fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >&2
}

# etcd is needed whether or not the Kubernetes binaries come from the user.
if ! command -v etcd >/dev/null 2>&1; then apt_install etcd-server; fi

if [[ -n "${KEELSON_KUBE_ASSETS:-}" ]]; then
  if have_all "$KEELSON_KUBE_ASSETS"; then progress ready 100 "ready"; echo "$KEELSON_KUBE_ASSETS"; exit 0; fi
  log "KEELSON_KUBE_ASSETS=$KEELSON_KUBE_ASSETS lacks one of: ${BINARIES[*]}"; exit 1
fi

if have_all "$DEST"; then progress ready 100 "ready"; echo "$DEST"; exit 0; fi

# One build at a time (two test runs started together would share the work directory);
# the second waits, then finds the first one's binaries.
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/build.lock"
progress building 1 "waiting for another build"
flock 9
if have_all "$DEST"; then progress ready 100 "ready"; echo "$DEST"; exit 0; fi

log "building Kubernetes $KUBE_VERSION from Debian's source package (about 10 minutes on 2 cores, once)"
progress building 2 "installing Go and build tools"
apt_install golang-1.19-go rsync jq dpkg-dev golang-github-modern-go-reflect2-dev

SRC_LIST=/etc/apt/sources.list.d/keelson-deb-src.sources
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  log "adding a deb-src entry ($SRC_LIST)"
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources | as_root tee "$SRC_LIST" >/dev/null
  as_root apt-get update -qq >&2
fi

WORK="$CACHE_ROOT/build-$KUBE_VERSION"
mkdir -p "$WORK"
cd "$WORK"
# Debian calls it 1.20.5+really1.20.2: the upstream 1.20.2 tree.
progress building 8 "downloading the Kubernetes source"
if ! ls kubernetes_*.orig.tar.gz >/dev/null 2>&1; then
  apt-get source --download-only kubernetes >&2
fi
TARBALL=$(ls kubernetes_*.orig.tar.gz | head -1)
progress building 14 "unpacking the source"
rm -rf tree && mkdir tree
tar -xzf "$TARBALL" -C tree --strip-components=1
cd tree
# reflect2 1.0.1 (vendored) crashes under Go >= 1.18; 1.0.2 is API-compatible.
REFLECT2=/usr/share/gocode/src/github.com/modern-go/reflect2
rm -rf vendor/github.com/modern-go/reflect2 && mkdir -p vendor/github.com/modern-go/reflect2
cp "$REFLECT2"/*.go "$REFLECT2"/*.s vendor/github.com/modern-go/reflect2/
mkdir -p .go/src/k8s.io
ln -sfn ../../.. .go/src/k8s.io/kubernetes
mkdir -p "$WORK/home"
progress building 20 "compiling Kubernetes"
monitor_compile &
MONITOR_PID=$!
GOPATH=$PWD/.go PATH=/usr/lib/go-1.19/bin:$PATH CGO_ENABLED=0 HOME="$WORK/home" \
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler" >&2
kill "$MONITOR_PID" 2>/dev/null || true
MONITOR_PID=
progress building 99 "installing the binaries"

mkdir -p "$DEST.tmp"
for b in "${BINARIES[@]}"; do cp "_output/bin/$b" "$DEST.tmp/"; done
rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
cd "$CACHE_ROOT" && rm -rf "$WORK"
log "cached in $DEST"
progress ready 100 "ready"
echo "$DEST"
