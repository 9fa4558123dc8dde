# Shared by .ci/demo and .ci/test: install missing Debian packages, quietly, once.
# Usage: ensure_packages PKG...   (uses sudo when not root)
ensure_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The cargo-deb that tests/package.rs builds the Debian package with. Installed with
# `cargo install --locked` when missing or older; its build output is shown only if it fails.
CARGO_DEB_VERSION=3.8.0
# Usage: ensure_cargo_deb
ensure_cargo_deb() {
    local have
    have=$(cargo deb --version 2>/dev/null | awk '{print $2}') || true
    if [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$CARGO_DEB_VERSION" "$have" | sort -V | head -n1)" = "$CARGO_DEB_VERSION" ]; then
        return 0
    fi
    echo "installing: cargo-deb $CARGO_DEB_VERSION (cargo install, a few minutes)" >&2
    local log
    log=$(mktemp)
    if ! cargo install --locked --quiet --version "$CARGO_DEB_VERSION" cargo-deb >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}
