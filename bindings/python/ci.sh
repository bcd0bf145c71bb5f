#!/usr/bin/env bash
# Python package check, run by .ci/run after the cargo tests (and runnable alone):
#   1. build the wheel with maturin (dev profile: it reuses the dependency artifacts of
#      `cargo test --workspace`; a release wheel is `maturin build --release`);
#   2. install it into a fresh venv with numpy + pytest and run tests/ on the fixtures;
#   3. install it alone (--no-deps) into another fresh venv and check that it imports and
#      transcribes a file without numpy.
# Idempotent; the venvs and the wheel live under target/python-ci.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
ROOT=$(cd ../.. && pwd)
WORK="${QWEN3_PY_CI_DIR:-$ROOT/target/python-ci}"
PY=${PYTHON:-python3}
mkdir -p "$WORK"

# python3 -m venv needs ensurepip (Debian: python3-venv).
if ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    ver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "python${ver}-venv" \
      || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv
  else
    echo "python3 has no venv/ensurepip support; install it" >&2
    exit 1
  fi
fi

t0=$(date +%s)
# 1. Build (maturin lives in its own venv, kept between runs).
if [ ! -x "$WORK/build-venv/bin/maturin" ]; then
  rm -rf "$WORK/build-venv"
  "$PY" -m venv "$WORK/build-venv"
  "$WORK/build-venv/bin/pip" install -q --disable-pip-version-check 'maturin>=1.9.4,<2'
fi
rm -rf "$WORK/wheels"
"$WORK/build-venv/bin/maturin" build --profile dev --locked -i "$PY" -o "$WORK/wheels" </dev/null
wheel=$(ls "$WORK"/wheels/qwen3_speech-*.whl)
t1=$(date +%s)

# 2. Fresh venv with the test dependencies, then the suite.
rm -rf "$WORK/test-venv"
"$PY" -m venv "$WORK/test-venv"
"$WORK/test-venv/bin/pip" install -q --disable-pip-version-check "$wheel" pytest
(cd "$WORK" && QWEN3_SPEECH_FIXTURES="$ROOT/tests/fixtures" \
  "$WORK/test-venv/bin/python" -m pytest -q -p no:cacheprovider "$HERE/tests")
t2=$(date +%s)

# 3. Fresh venv with nothing but the wheel.
rm -rf "$WORK/bare-venv"
"$PY" -m venv "$WORK/bare-venv"
"$WORK/bare-venv/bin/pip" install -q --disable-pip-version-check --no-deps "$wheel"
(cd "$WORK" && "$WORK/bare-venv/bin/python" - "$ROOT/tests/fixtures" <<'PYEOF'
import sys, importlib.util
assert importlib.util.find_spec("numpy") is None, "numpy must not be installed here"
import qwen3_speech as qs
fx = sys.argv[1]
m = qs.Qwen3ASRModel.from_pretrained(fx + "/asr-tiny", max_new_tokens=4, device="cpu")
r = m.transcribe(fx + "/audio/pcm16_16k_mono.wav")[0]
assert isinstance(r.text, str) and r.duration > 0
print("bare venv: qwen3_speech", qs.__version__, "imports and transcribes without numpy")
PYEOF
)
t3=$(date +%s)
echo "python: build $((t1 - t0)) s, tests $((t2 - t1)) s, bare venv $((t3 - t2)) s"
