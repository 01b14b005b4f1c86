#!/usr/bin/env bash
# docker/engine.sh - bring up a Docker engine on a bare Debian 12 host and
# build the single lab image kgt-lab:latest.  Idempotent; run as root.
#
#   sudo bash docker/engine.sh            # engine + base image + lab image
#   KGT_SKIP_BUILD=1 bash docker/engine.sh  # engine + base image only
#
# Network safety: the lab lives in 10.213.0.0/16 and nowhere else.  A
# low-priority blackhole route for that range is installed first, so any lab
# address that is not on a local bridge is dropped instead of leaving the host.
# dockerd runs without iptables/masquerading (containers cannot reach outside),
# and without a default bridge: the lab's one internal network takes all of
# 10.213.0.0/16 (docker0 inside it would overlap), and builds use --network host.
# The only outside traffic is apt (debootstrap, apt-get) and pip, both during
# `docker build --network host`.  No container registry is ever contacted.
set -Eeuo pipefail

T0=$(date +%s)
log()  { printf '[engine %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
die()  { printf '[engine %4ss] ERROR: %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; exit 1; }
trap 'die "command failed (line $LINENO): $BASH_COMMAND"' ERR

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA_ROOT=${KGT_DOCKER_DATA_ROOT:-/var/lib/kgt-docker}
DOCKERD_LOG=${KGT_DOCKERD_LOG:-/var/log/kgt-dockerd.log}
BASE_IMAGE=debian:bookworm-slim
LAB_IMAGE=${KGT_LAB_IMAGE:-kgt-lab:latest}

[ "$(id -u)" -eq 0 ] || die "must run as root"
export DEBIAN_FRONTEND=noninteractive

# 1. network safety, always first --------------------------------------------
ip route replace blackhole 10.213.0.0/16 metric 4000 \
    || die "cannot install blackhole route for 10.213.0.0/16"
log "blackhole route 10.213.0.0/16 metric 4000 in place"

# 2. host packages -------------------------------------------------------------
PKGS=(docker.io docker-compose debootstrap iptables iproute2)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing: ${missing[*]}"
    # Never let a package's maintainer script start a service (docker.io's
    # init script would start dockerd with default iptables settings).
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    apt-get update -qq >/dev/null || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
        || die "apt-get install ${missing[*]} failed"
    if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
    log "packages installed"
else
    log "packages present: ${PKGS[*]}"
fi

# 2b. forwarding guard: dockerd turns net.ipv4.ip_forward on, and without its
# iptables rules nothing would stop the host from routing a container's packet
# to the outside (un-NATed, source 10.213.x).  Allow forwarding only within
# 10.213.0.0/16 (lab bridge <-> lab bridge); drop anything crossing its edge.
for rule in "-s 10.213.0.0/16 ! -d 10.213.0.0/16 -j DROP" \
            "! -s 10.213.0.0/16 -d 10.213.0.0/16 -j DROP"; do
    # shellcheck disable=SC2086
    iptables -C FORWARD $rule 2>/dev/null || iptables -I FORWARD 1 $rule \
        || die "cannot install FORWARD guard: iptables $rule"
done
log "FORWARD guard: only 10.213.0.0/16 <-> 10.213.0.0/16 is routed"

# 3. docker engine ---------------------------------------------------------------
if docker info >/dev/null 2>&1; then
    log "dockerd already answering (left as is)"
else
    command -v dockerd >/dev/null || die "dockerd not found after install"
    mkdir -p "$DATA_ROOT" "$(dirname "$DOCKERD_LOG")"
    log "starting dockerd (data-root $DATA_ROOT, log $DOCKERD_LOG)"
    setsid nohup dockerd \
        --iptables=false --ip-masq=false \
        --bridge=none \
        --data-root "$DATA_ROOT" \
        >>"$DOCKERD_LOG" 2>&1 </dev/null &
    dpid=$!
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        kill -0 "$dpid" 2>/dev/null \
            || { tail -n 20 "$DOCKERD_LOG" >&2; die "dockerd exited during start-up (see $DOCKERD_LOG)"; }
        sleep 1
    done
    docker info >/dev/null 2>&1 \
        || { tail -n 20 "$DOCKERD_LOG" >&2; die "dockerd did not answer within 60 s (see $DOCKERD_LOG)"; }
    log "dockerd up (pid $dpid)"
fi

# 4. base image, built locally (no registry) -------------------------------------
debian_mirror() {
    # First plain Debian archive URI apt already uses (not security/updates), or
    # nothing when none is configured: debootstrap then uses its own default.
    local f u
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        for u in $(grep -vE '^[[:space:]]*#' "$f" | grep -oE 'https?://[^ ]+' | grep -v security || true); do
            case "$u" in */debian|*/debian/) echo "${u%/}"; return 0 ;; esac
        done
    done
    return 0
}

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "base image $BASE_IMAGE present"
else
    MIRROR=$(debian_mirror)
    ROOTFS=$(mktemp -d /var/tmp/kgt-rootfs.XXXXXX)
    trap 'rm -rf "$ROOTFS"' EXIT
    log "debootstrap minbase bookworm from ${MIRROR:-the default mirror of debootstrap}"
    debootstrap --variant=minbase bookworm "$ROOTFS" ${MIRROR:+"$MIRROR"} >/var/log/kgt-debootstrap.log 2>&1 \
        || { tail -n 20 /var/log/kgt-debootstrap.log >&2; die "debootstrap failed (see /var/log/kgt-debootstrap.log)"; }
    # The mirror debootstrap used, as it wrote it into the rootfs (its default when given none).
    MIRROR=$(awk '$1 == "deb" { print $2; exit }' "$ROOTFS/etc/apt/sources.list" 2>/dev/null || true)
    [ -n "$MIRROR" ] || die "debootstrap wrote no apt source to $ROOTFS/etc/apt/sources.list"
    log "debootstrap used $MIRROR"
    # apt sources like the official image: main, updates, security
    SEC=$(grep -rhvE '^[[:space:]]*#' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
          | grep -oE 'https?://[^ ]+/debian-security' | head -n 1 || true)
    {
        echo "deb $MIRROR bookworm main"
        echo "deb $MIRROR bookworm-updates main"
        if [ -n "$SEC" ]; then echo "deb $SEC bookworm-security main"; fi
    } >"$ROOTFS/etc/apt/sources.list"
    # slim it down a little, like the official image
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
           "$ROOTFS"/var/log/*.log "$ROOTFS"/tmp/*
    log "importing rootfs as $BASE_IMAGE"
    tar -C "$ROOTFS" --numeric-owner -c . \
        | docker import -c 'CMD ["bash"]' -c 'ENV LANG=C.UTF-8' - "$BASE_IMAGE" >/dev/null \
        || die "docker import failed"
    rm -rf "$ROOTFS"
    trap - EXIT
    log "base image $BASE_IMAGE built"
fi

# 5. lab image -------------------------------------------------------------------
if [ -n "${KGT_SKIP_BUILD:-}" ]; then
    log "KGT_SKIP_BUILD set: not building $LAB_IMAGE"
    exit 0
fi
[ -f "$REPO_ROOT/docker/Dockerfile" ] || die "missing $REPO_ROOT/docker/Dockerfile"
# Stage the host's extra CA certificates for the build (pip behind a
# TLS-intercepting egress proxy needs them).  The directory ignores itself in
# git, and COPY caches by content, so an unchanged CA keeps the pip layers.
HOST_CA_DIR="$REPO_ROOT/docker/.host-ca"
mkdir -p "$HOST_CA_DIR"
printf '*\n' >"$HOST_CA_DIR/.gitignore"
find "$HOST_CA_DIR" -name '*.crt' -delete
for c in /usr/local/share/ca-certificates/*.crt /usr/local/share/ca-certificates/*/*.crt; do
    if [ -f "$c" ]; then cp "$c" "$HOST_CA_DIR/$(basename "$c")"; fi
done
log "building $LAB_IMAGE (context $REPO_ROOT, $(find "$HOST_CA_DIR" -name '*.crt' | wc -l) host CA cert(s))"
BUILD_LOG=${KGT_BUILD_LOG:-/var/log/kgt-image-build.log}
# Classic builder: the Debian daemon (20.10) has no buildx plugin here, and the
# classic builder honours --network host for apt/pip.
if ! DOCKER_BUILDKIT=0 docker build --network host -t "$LAB_IMAGE" \
        -f "$REPO_ROOT/docker/Dockerfile" "$REPO_ROOT" >"$BUILD_LOG" 2>&1; then
    tail -n 30 "$BUILD_LOG" >&2
    die "docker build failed (full log: $BUILD_LOG)"
fi
log "$LAB_IMAGE built ($(docker image inspect -f '{{.Id}}' "$LAB_IMAGE" | cut -c8-19), log $BUILD_LOG)"
log "done"
