#!/usr/bin/env bash
# Checks the built package (CI): extracts it into a temp root and checks the file list and modes, the
# conffile, the maintainer scripts (they never start or enable the service), the man page and
# completions, the packaged config and unit (`systemd-analyze verify` on the installed unit).
set -euo pipefail
cd "$(dirname "$0")/.."
deb=${1:-target/debian/kustomer-mirror.deb}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
fail() { echo "check-deb: $*" >&2; exit 1; }

dpkg-deb -x "$deb" "$root"
dpkg-deb -e "$deb" "$root/DEBIAN"

# Every file with its mode, and nothing else.
expected="0755 ./usr/bin/kustomer-mirror
0644 ./etc/kustomer-mirror/config.toml
0644 ./usr/lib/systemd/system/kustomer-mirror.service
0644 ./usr/lib/sysusers.d/kustomer-mirror.conf
0644 ./usr/share/bash-completion/completions/kustomer-mirror
0644 ./usr/share/fish/vendor_completions.d/kustomer-mirror.fish
0644 ./usr/share/man/man1/kustomer-mirror.1.gz
0644 ./usr/share/zsh/vendor-completions/_kustomer-mirror
0644 ./usr/share/doc/kustomer-mirror/README.md
0644 ./usr/share/doc/kustomer-mirror/config.example.toml
0644 ./usr/share/doc/kustomer-mirror/contrib/grafana-dashboard.json
0644 ./usr/share/doc/kustomer-mirror/contrib/prometheus-alerts.yml
0644 ./usr/share/doc/kustomer-mirror/copyright"
for doc in docs/*.md; do
    expected="$expected
0644 ./usr/share/doc/kustomer-mirror/docs/$(basename "$doc")"
done
actual=$(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%m %p\n' | sed 's/^\([0-9]\{3\}\) /0\1 /' | sort -k2)
expected=$(echo "$expected" | sort -k2)
if [ "$actual" != "$expected" ]; then
    diff <(echo "$expected") <(echo "$actual") >&2 || true
    fail "the package's files or modes differ from the list above (< expected, > packaged)"
fi
# Owned by root.
if [ -n "$(dpkg-deb -c "$deb" | awk '$2 != "root/root" && $2 != "0/0"')" ]; then
    fail "files not owned by root/root"
fi

# The config is a conffile; the maintainer scripts are there and never start or enable the service.
grep -qx /etc/kustomer-mirror/config.toml "$root/DEBIAN/conffiles" || fail "config.toml is not a conffile"
for script in postinst prerm postrm; do
    [ -x "$root/DEBIAN/$script" ] || fail "no executable $script"
    sh -n "$root/DEBIAN/$script" || fail "$script: syntax"
done
# (Commands only: the printed instructions say `sudo systemctl enable --now`, for the user to run.)
if grep -E '^[[:space:]]*(systemctl|deb-systemd-invoke)[^#]*\b(enable|start|restart)\b' "$root/DEBIAN/postinst" | grep -v 'try-restart' | grep -q .; then
    fail "postinst starts or enables the service"
fi
grep -q systemd-sysusers "$root/DEBIAN/postinst" || fail "postinst does not run systemd-sysusers"
grep -q daemon-reload "$root/DEBIAN/postinst" || fail "postinst does not run daemon-reload"

# The binary runs; the man page and completions are what it generates.
bin="$root/usr/bin/kustomer-mirror"
"$bin" --version | grep -q '^kustomer-mirror ' || fail "the binary does not run"
zcat "$root/usr/share/man/man1/kustomer-mirror.1.gz" | grep -q '^\.TH kustomer-mirror' || fail "man page"
zcat "$root/usr/share/man/man1/kustomer-mirror.1.gz" | grep -q 'EXIT STATUS' || fail "man page: exit status"
bash -n "$root/usr/share/bash-completion/completions/kustomer-mirror" || fail "bash completion syntax"
grep -q 'complete -c kustomer-mirror' "$root/usr/share/fish/vendor_completions.d/kustomer-mirror.fish" || fail "fish completion"
grep -q '#compdef kustomer-mirror' "$root/usr/share/zsh/vendor-completions/_kustomer-mirror" || fail "zsh completion"

# The packaged config points at the state directory and the unit's credential, and is valid once a
# key is there.
config="$root/etc/kustomer-mirror/config.toml"
shown=$(KUSTOMER_API_KEY=check-deb-key "$bin" --config "$config" check-config) || fail "check-config refused the packaged config"
echo "$shown" | grep -q 'path = "/var/lib/kustomer-mirror/kustomer-mirror.db"' || fail "config: database.path"
echo "$shown" | grep -q 'api_key_file = "api-key"' || fail "config: api_key_file"
if echo "$shown" | grep -q check-deb-key; then fail "check-config printed the key"; fi

# The installed unit: ExecStart names the packaged binary, and systemd accepts it as installed.
unit="$root/usr/lib/systemd/system/kustomer-mirror.service"
grep -q '^ExecStart=/usr/bin/kustomer-mirror --config /etc/kustomer-mirror/config.toml run$' "$unit" || fail "unit: ExecStart"
grep -q '^User=kustomer-mirror$' "$unit" || fail "unit: User"
# verify needs ExecStart's program to exist here: a copy of the installed unit naming the extracted
# binary (a --root verify would need a whole systemd tree in the temp root).
check_dir=$(mktemp -d)
sed "s#^ExecStart=/usr/bin/kustomer-mirror #ExecStart=$bin #" "$unit" > "$check_dir/kustomer-mirror.service"
systemd-analyze verify --man=no "$check_dir/kustomer-mirror.service" 2> "$check_dir/err" || { cat "$check_dir/err"; fail "systemd-analyze verify"; }
if [ -s "$check_dir/err" ]; then cat "$check_dir/err"; fail "systemd-analyze verify printed warnings"; fi
systemd-analyze security --offline=true --threshold=20 "$check_dir/kustomer-mirror.service" | tail -n 1
rm -rf "$check_dir"
echo "check-deb: $(echo "$actual" | wc -l) files, modes, conffile, scripts, man page, completions, config and unit all right"
