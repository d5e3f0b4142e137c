#!/usr/bin/env bash
# Builds the test bed's binaries from package registries (Go module proxy, Debian) into a
# cache keyed by the pinned versions; a second run with everything present does nothing.
# Prints the bin directory on the last line of stdout.
set -euo pipefail

KUBE_VERSION=v1.32.13
# KWOK v0.7.0 (client-go v0.33) asks for streaming watch lists, which need etcd's watch-progress requests
# (etcd >= 3.4.31); with Debian's etcd 3.4.23 every refused watch left KWOK waiting for a backed-off relist
# (tens of seconds) before it saw new pods. v0.6.1 (client-go v0.30) watches the classic way.
KWOK_VERSION=v0.6.1
HELM_VERSION=v3.17.3
here=$(cd "$(dirname "$0")" && pwd)
cache=${MIXTURA_TESTBED_CACHE:-$HOME/.cache/mixtura-testbed}
bin="$cache/kube-$KUBE_VERSION-kwok-$KWOK_VERSION-helm-$HELM_VERSION/bin"
mkdir -p "$bin"

log() { echo "build-testbed: $*" >&2; }

build_kube() {
  local cmd=$1
  [ -x "$bin/$cmd" ] && return
  log "building $cmd $KUBE_VERSION"
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  local ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$here/testenv" && go build -trimpath -ldflags "$ld" -o "$bin/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd")
  mv "$bin/$cmd.tmp" "$bin/$cmd"
}

go_install() {
  local name=$1 pkg=$2 ld=$3
  [ -x "$bin/$name" ] && return
  log "building $name from $pkg"
  local tmp; tmp=$(mktemp -d)
  GOBIN="$tmp" go install -trimpath -ldflags "$ld" "$pkg"
  mv "$tmp/$name" "$bin/$name"; rmdir "$tmp"
}

ensure_debian() {
  local binary=$1 package=$2
  command -v "$binary" >/dev/null && return
  log "installing Debian package $package"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >&2
  else
    sudo apt-get update -qq >&2 && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >&2
  fi
}

for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do build_kube "$cmd"; done
go_install kwok "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "-s -w"
helm_minor=${KUBE_VERSION#v1.}; helm_minor=${helm_minor%%.*}
go_install helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" "-s -w \
  -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$helm_minor \
  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$helm_minor"
ensure_debian etcd etcd-server
ensure_debian prometheus prometheus
# The report test screenshots the report page, as a person would see it.
ensure_debian chromium chromium
for tool in etcd prometheus promtool; do ln -sf "$(command -v "$tool")" "$bin/$tool"; done
echo "$bin"
