#!/usr/bin/env bash
# Builds the Debian package, target/debian/kustomer-mirror.deb: the release binary, the generated
# assets (packaging/assets.sh) and `cargo deb` (metadata in Cargo.toml, [package.metadata.deb];
# `cargo install cargo-deb` once).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release
packaging/assets.sh
cargo deb --no-build --output target/debian/kustomer-mirror.deb
echo "built target/debian/kustomer-mirror.deb"
