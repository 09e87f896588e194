#!/usr/bin/env bash
# Generates the files the Debian package ships besides the binary, into target/assets/: the config
# (config.example.toml pointed at the state directory and the unit's credential), the unit with the
# packaged binary's path, the man page and the shell completions (from the CLI's own definitions).
# Run after `cargo build --release`; then `cargo deb --no-build` (see packaging/build-deb.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
binary=target/release/kustomer-mirror
out=target/assets
rm -rf "$out"
mkdir -p "$out/completions"

sed -e 's|^base_url = "http://127.0.0.1:8089"$|base_url = "https://YOUR-ORG.api.kustomerapp.com"   # set your org here|' \
    -e 's|^# This example points at the built-in fake: `kustomer-mirror fake-api`.$|# The service does not start until this names your org and /etc/kustomer-mirror/api-key holds a key.|' \
    -e 's|^# api_key_file = "kustomer-api-key"$|api_key_file = "api-key"|' \
    -e 's|^path = "kustomer-mirror.db"$|path = "/var/lib/kustomer-mirror/kustomer-mirror.db"|' \
    config.example.toml > "$out/config.toml"
for want in 'api_key_file = "api-key"' 'path = "/var/lib/kustomer-mirror/kustomer-mirror.db"' 'YOUR-ORG'; do
    grep -qF "$want" "$out/config.toml" || { echo "packaging/assets.sh: config.example.toml changed; '$want' not set" >&2; exit 1; }
done

sed 's#^ExecStart=/usr/local/bin/kustomer-mirror #ExecStart=/usr/bin/kustomer-mirror #' \
    systemd/kustomer-mirror.service > "$out/kustomer-mirror.service"
grep -q '^ExecStart=/usr/bin/kustomer-mirror ' "$out/kustomer-mirror.service"

"$binary" man | gzip -9n > "$out/kustomer-mirror.1.gz"
"$binary" completions bash > "$out/completions/kustomer-mirror"
"$binary" completions zsh > "$out/completions/_kustomer-mirror"
"$binary" completions fish > "$out/completions/kustomer-mirror.fish"
