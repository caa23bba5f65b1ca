#!/usr/bin/env bash
# The format check of the test command: swift-format (shipped with the toolchain) run with the
# repository's .swift-format over a copy of the sources must change nothing. Prints the files
# it would change and how (`swift format -i -r Sources Tests Package.swift` fixes them).
set -euo pipefail
cd "$(dirname "$0")/.."
copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
cp -r Sources Tests Package.swift .swift-format "$copy"/
swift format --configuration .swift-format -i -r "$copy/Sources" "$copy/Tests" "$copy/Package.swift"
if ! diff -ru Sources "$copy/Sources" >"$copy/diff" || ! diff -ru Tests "$copy/Tests" >>"$copy/diff" \
    || ! diff -u Package.swift "$copy/Package.swift" >>"$copy/diff"; then
  head -200 "$copy/diff"
  echo "format-check: the files above are not formatted; run: swift format -i -r Sources Tests Package.swift" >&2
  exit 1
fi
echo "format-check: every Swift file is formatted (.swift-format)"
