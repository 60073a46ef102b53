#!/usr/bin/env bash
# install-deps.sh - install what building and testing Swiftlet needs on Debian bookworm (run as root).
#
#   bash Scripts/install-deps.sh
#
# Required (the script fails when one cannot be installed):
#   libseccomp-dev libcap-dev libssl-dev pkg-config    (the CSeccomp/CCap/COpenSSL
#                                                       system libraries; openssl for the https probe test)
#   busybox-static                                      (the test rootfs, Scripts/make-rootfs.sh)
#   gcc libc6-dev                                       (static probes some integration tests compile)
# Optional (tests, benchmarks, anchors; skipped with a note when apt has no candidate):
#   runc crun containerd umoci jq hyperfine time podman conmon python3
#
# Idempotent: when every package is already installed nothing is downloaded (no `apt-get update`);
# INSTALL_DEPS_UPDATE=1 forces `apt-get update` anyway.
# Swift is preinstalled at /opt/swift: when `swift` is not on PATH the script adds /opt/swift/usr/bin
# to PATH (in this shell if sourced, and for login shells through /etc/profile.d/swift.sh).
set -euo pipefail

REQUIRED=(libseccomp-dev libcap-dev libssl-dev openssl pkg-config busybox-static gcc libc6-dev)
OPTIONAL=(runc crun containerd umoci jq hyperfine time podman conmon python3)
SWIFT_BIN=/opt/swift/usr/bin

log() { echo "install-deps: $*" >&2; }
die() { echo "install-deps: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"
command -v apt-get >/dev/null || die "apt-get not found (this script targets Debian bookworm)"

installed() { # pkg -> 0 when installed
    [ "$(dpkg-query -W -f '${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}
has_candidate() { # pkg -> 0 when apt can install it
    local c
    c=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}')
    [ -n "$c" ] && [ "$c" != "(none)" ]
}

missing_req=() missing_opt=()
for p in "${REQUIRED[@]}"; do installed "$p" || missing_req+=("$p"); done
for p in "${OPTIONAL[@]}"; do installed "$p" || missing_opt+=("$p"); done

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q --no-install-recommends -o Dpkg::Use-Pty=0)

if [ ${#missing_req[@]} -gt 0 ] || [ ${#missing_opt[@]} -gt 0 ] || [ "${INSTALL_DEPS_UPDATE:-0}" = 1 ]; then
    log "apt-get update"
    apt-get update -q || die "apt-get update failed"
fi

if [ ${#missing_req[@]} -gt 0 ]; then
    log "installing required: ${missing_req[*]}"
    apt-get install "${APT_OPTS[@]}" "${missing_req[@]}" || die "could not install required packages: ${missing_req[*]}"
fi
for p in "${REQUIRED[@]}"; do installed "$p" || die "required package $p is not installed"; done

if [ ${#missing_opt[@]} -gt 0 ]; then
    avail=()
    for p in "${missing_opt[@]}"; do
        if has_candidate "$p"; then avail+=("$p"); else log "optional package $p unavailable, skipped"; fi
    done
    if [ ${#avail[@]} -gt 0 ]; then
        log "installing optional: ${avail[*]}"
        if ! apt-get install "${APT_OPTS[@]}" "${avail[@]}"; then
            # One bad package must not take the others down: retry one by one.
            for p in "${avail[@]}"; do
                apt-get install "${APT_OPTS[@]}" "$p" || log "optional package $p failed to install, skipped"
            done
        fi
    fi
fi

# busybox-static must really be static: the rootfs has no libc.
if ldd /bin/busybox >/dev/null 2>&1; then
    die "/bin/busybox is dynamically linked (is the 'busybox' package shadowing busybox-static?)"
fi

if ! command -v swift >/dev/null 2>&1; then
    if [ -x "$SWIFT_BIN/swift" ]; then
        export PATH="$SWIFT_BIN:$PATH"
        if [ ! -f /etc/profile.d/swift.sh ]; then
            # shellcheck disable=SC2016 # expanded by the login shell, not here
            printf 'case ":$PATH:" in *":%s:"*) ;; *) PATH="%s:$PATH" ;; esac\nexport PATH\n' \
                "$SWIFT_BIN" "$SWIFT_BIN" >/etc/profile.d/swift.sh
        fi
        log "added $SWIFT_BIN to PATH (/etc/profile.d/swift.sh for new login shells)"
    else
        die "swift not found on PATH nor at $SWIFT_BIN"
    fi
fi
log "ok: $(swift --version 2>/dev/null | head -1)"
