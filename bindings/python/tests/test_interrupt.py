"""Ctrl-C (SIGINT) interrupts long calls with KeyboardInterrupt; the GIL is released meanwhile
and the models keep working afterwards."""

import os
import signal
import threading
import time

import numpy as np
import pytest

import qwen3_speech as qs
from qwen3_speech import _native

pytestmark = pytest.mark.skipif(os.name != "posix", reason="sends SIGINT to itself")


@pytest.fixture(autouse=True)
def sigint_raises_keyboard_interrupt():
    """Python's own SIGINT handler for these tests, whatever the test run inherited: a shell
    that starts a job in the background (`cmd &` without job control) makes it ignore SIGINT,
    and Python then installs no handler."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def sigint_after(seconds):
    t = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    t.start()
    return t


def interrupted(call, delay):
    """Runs call() with a SIGINT after `delay` s; True when it raised KeyboardInterrupt. A call
    that returns first does not leave the signal to hit the rest of the test run."""
    t = sigint_after(delay)
    try:
        call()
    except KeyboardInterrupt:
        t.join()
        return True
    try:
        t.join()
        time.sleep(0.2)  # the handler runs here
    except KeyboardInterrupt:
        pass
    return False


def test_busy_call_is_interrupted_and_releases_the_gil():
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.005)

    th = threading.Thread(target=tick)
    th.start()
    t0 = time.monotonic()
    try:
        assert interrupted(lambda: _native._busy_wait(30.0), 0.3)
    finally:
        stop.set()
        th.join()
    elapsed = time.monotonic() - t0
    assert elapsed < 5, elapsed
    # Another Python thread ran while the native call was busy.
    assert len(ticks) > 10
    assert _native._busy_wait(0.05) > 0


def long_noise(seconds):
    rng = np.random.default_rng(0)
    return (0.3 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)


def test_transcription_is_interrupted_and_the_model_still_works(asr):
    short = (long_noise(1.0), 16000)
    before = asr.transcribe(short)[0]
    # 120 s of noise with a large token budget runs for several seconds (about 6 s here); the
    # signal lands in the decoding loop, which checks for it between tokens.
    audio = (long_noise(120.0), 16000)
    t0 = time.monotonic()
    assert interrupted(lambda: asr.transcribe(audio, max_new_tokens=4096), 1.5), "finished first"
    assert time.monotonic() - t0 < 1.5 + 2.0
    after = asr.transcribe(short)[0]
    assert (after.text, after.raw) == (before.text, before.raw)


def test_synthesis_stream_is_interrupted(tts_cv):
    kw = dict(speaker="ryan", language="English", do_sample=False, max_new_tokens=6)
    before = tts_cv.synthesize("Hello.", **kw)
    st = tts_cv.stream(
        "Hello there. " * 200,
        speaker="ryan",
        language="English",
        max_new_tokens=100000,
        first_chunk_frames=1,
        chunk_frames=1,
    )

    def consume():
        for _ in st:
            pass

    assert interrupted(consume, 0.3), "finished first"
    st.close()
    after = tts_cv.synthesize("Hello.", **kw)
    assert np.array_equal(before.audio, after.audio)
