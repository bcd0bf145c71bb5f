#!/usr/bin/env bash
# Generates the Kotlin and Swift sources of the mobile bindings from a host build of the library,
# with the workspace's own uniffi-bindgen (same uniffi version as the library):
#
#   kotlin/src/main/kotlin/io/github/qwen3speech/Qwen3Speech.kt   (Android: add to a module with JNA)
#   swift/Sources/Qwen3Speech/Qwen3Speech.swift                    (the Swift package's sources)
#   swift/include/Qwen3SpeechFFI.h, swift/include/module.modulemap (headers of the xcframework)
#
# The generated files are committed; `cargo test --workspace` (tests/foreign.rs) fails when they
# are out of date. Usage: bindings/mobile/generate.sh   (from anywhere; builds what it needs)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

# The same build as `cargo test --workspace` makes (no rebuild after the tests).
cargo build --workspace --locked
target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$(uname -s)" in
  Darwin) lib="$target_dir/debug/libqwen3_speech_mobile.dylib" ;;
  *) lib="$target_dir/debug/libqwen3_speech_mobile.so" ;;
esac
bindgen="$target_dir/debug/uniffi-bindgen"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for language in kotlin swift; do
  "$bindgen" generate --no-format --language "$language" --config "$here/bindgen.toml" \
    --out-dir "$tmp/$language" "$lib"
done

install -D -m 644 "$tmp/kotlin/io/github/qwen3speech/qwen3speech.kt" \
  "$here/kotlin/src/main/kotlin/io/github/qwen3speech/Qwen3Speech.kt"
install -D -m 644 "$tmp/swift/Qwen3Speech.swift" "$here/swift/Sources/Qwen3Speech/Qwen3Speech.swift"
install -D -m 644 "$tmp/swift/Qwen3SpeechFFI.h" "$here/swift/include/Qwen3SpeechFFI.h"
install -D -m 644 "$tmp/swift/Qwen3SpeechFFI.modulemap" "$here/swift/include/module.modulemap"
echo "wrote the Kotlin and Swift bindings under $here"
