#!/usr/bin/env bash
# Builds one deterministic bootstrap zip per Lambda function into dist/<name>.zip
# (linux/arm64, provided.al2023) and prints each zip's size and SHA-256.
set -euo pipefail
cd "$(dirname "$0")/.."
out=dist
mkdir -p "$out"
for dir in functions/*/; do
	fn=$(basename "$dir")
	work=$(mktemp -d)
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -trimpath \
		-ldflags='-s -w -buildid=' -o "$work/bootstrap" "./functions/$fn"
	chmod 0755 "$work/bootstrap"
	touch -d '1980-01-01 00:00:00 UTC' "$work/bootstrap"
	rm -f "$out/$fn.zip"
	(cd "$work" && TZ=UTC zip -q -X -9 "$OLDPWD/$out/$fn.zip" bootstrap)
	rm -rf "$work"
	printf '%-14s %9d bytes  sha256 %s\n' "$fn.zip" "$(stat -c %s "$out/$fn.zip")" "$(sha256sum "$out/$fn.zip" | cut -d' ' -f1)"
done
