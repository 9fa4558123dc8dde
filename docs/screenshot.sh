#!/usr/bin/env bash
# Regenerates docs/report.png, the screenshot of the report in docs/report.md, from the current
# product: the synthetic October survey (tests/fixtures/report-input.json) described by its
# configuration (tests/fixtures/config.toml: department names, the catalog's service table with
# risk ratings), rendered to HTML by `shadowtap report` and captured by headless Chromium.
# docs/report.png.sha256 records the SHA-256 of the HTML it shows; tests/report.rs renders the
# same HTML and fails when it differs, so a screenshot of output the product no longer writes is
# caught. Installs chromium if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/lib.sh
ensure_packages chromium
cargo build --quiet --release --locked
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
target/release/shadowtap report --input tests/fixtures/report-input.json --config tests/fixtures/config.toml \
    --format html -o "$tmp/report.html"
HOME="$tmp" chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
    --hide-scrollbars --user-data-dir="$tmp/profile" --window-size=1200,2000 \
    --screenshot="$tmp/report.png" "file://$tmp/report.html" 2>/dev/null
cp "$tmp/report.png" docs/report.png
sha256sum "$tmp/report.html" | cut -d' ' -f1 > docs/report.png.sha256
echo "docs/report.png regenerated (HTML $(cat docs/report.png.sha256))"
