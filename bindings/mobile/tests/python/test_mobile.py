"""The mobile bindings through uniffi's Python bindings of the same library.

Run by bindings/mobile/tests/foreign.rs, which generates the `qwen3speech` module next to the
host library, and writes the inputs and the expected values (computed with the Rust facade on
the same inputs, and the reference's recorded TTS case) into the file named by
QWEN3_SPEECH_EXPECTED (`key=hex(utf-8)` lines).
"""

import array
import os
import sys
import threading
import unittest

import qwen3speech as qs


def load_expected():
    out = {}
    with open(os.environ["QWEN3_SPEECH_EXPECTED"], encoding="ascii") as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("=")
            out[key] = bytes.fromhex(value).decode("utf-8")
    return out


E = load_expected()


def read_samples(path, code):
    a = array.array(code)
    with open(path, "rb") as f:
        a.frombytes(f.read())
    if sys.byteorder != "little":
        a.byteswap()
    return a.tolist()


CLIP_F32 = read_samples(E["clip_f32"], "f")
CLIP_I16 = read_samples(E["clip_i16"], "h")


def config(**kw):
    base = dict(max_new_tokens=24, attention=qs.EncoderAttention.FULL)
    base.update(kw)
    return qs.TranscriberConfig(**base)


class Recorder(qs.LoadProgressListener):
    def __init__(self):
        self.reports = []

    def on_progress(self, progress):
        self.reports.append(progress)


_shared = {}


def transcriber():
    """One transcriber (with the aligner) shared by the tests, as an app would."""
    if "t" not in _shared:
        _shared["t"] = qs.Transcriber(
            E["asr_dir"], config(aligner_dir=E["aligner_dir"])
        )
    return _shared["t"]


def synthesizer():
    if "s" not in _shared:
        _shared["s"] = qs.Synthesizer(E["tts_dir"])
    return _shared["s"]


NO_WORDS = qs.TranscribeOptions(word_timestamps=False)


class TranscriberTests(unittest.TestCase):
    def test_same_text_as_the_facade(self):
        t = transcriber()
        self.assertTrue(t.has_aligner())
        r = t.transcribe_pcm_f32(CLIP_F32, 16000, NO_WORDS)
        self.assertEqual(r.text, E["asr.text"])
        self.assertEqual(r.language, E["asr.language"])
        self.assertEqual(r.raw, E["asr.raw"])
        self.assertAlmostEqual(r.duration_seconds, 3.0, places=3)
        self.assertIsNone(r.words)
        self.assertEqual(len(r.segments), 1)
        self.assertEqual(r.segments[0].text, r.text)
        r16 = t.transcribe_pcm_i16(CLIP_I16, 16000, NO_WORDS)
        self.assertEqual(r16.text, E["asr_i16.text"])
        rf = t.transcribe_file(E["wav_file"], NO_WORDS)
        self.assertEqual(rf.text, E["asr_file.text"])

    def test_word_timestamps(self):
        t = transcriber()
        r = t.transcribe_pcm_f32(
            CLIP_F32,
            16000,
            qs.TranscribeOptions(language="English", word_timestamps=True),
        )
        self.assertEqual(r.text, E["words.text"])
        self.assertEqual(r.language, "English")
        got = "\n".join(f"{w.text}|{w.start:.3f}|{w.end:.3f}" for w in r.words)
        self.assertEqual(got, E["words.list"])
        # Offsets are UTF-16 units into the text.
        units = r.text.encode("utf-16-le")
        for w in r.words:
            self.assertLessEqual(w.start, w.end)
            self.assertLessEqual(w.text_start, w.text_end)
            span = units[2 * w.text_start : 2 * w.text_end].decode("utf-16-le")
            self.assertTrue(span, w)

    def test_errors_are_typed(self):
        t = transcriber()
        with self.assertRaises(qs.SpeechError.InvalidArgument) as cm:
            t.transcribe_pcm_f32(
                CLIP_F32, 16000, qs.TranscribeOptions(language="Klingon")
            )
        self.assertIn("Klingon", str(cm.exception))
        with self.assertRaises(qs.SpeechError.InvalidArgument):
            t.transcribe_pcm_f32(CLIP_F32, 0, NO_WORDS)
        with self.assertRaises(qs.SpeechError.Audio):
            t.transcribe_pcm_f32([], 16000, NO_WORDS)
        with self.assertRaises(qs.SpeechError.Io):
            t.transcribe_file("/no/such/file.wav", NO_WORDS)
        with self.assertRaises(qs.SpeechError.Io):
            qs.Transcriber("/no/such/model", config())
        # A hub id is not downloaded: it is a missing folder.
        with self.assertRaises(qs.SpeechError.Io):
            qs.Transcriber("Qwen/Qwen3-ASR-0.6B", config())
        # Not an ASR checkpoint: its config.json lacks the ASR fields.
        with self.assertRaises(qs.SpeechError.Config) as cm:
            qs.Transcriber(E["tts_dir"] + "/speech_tokenizer", config())
        self.assertIn("config.json", str(cm.exception))
        # Every typed error is a SpeechError.
        self.assertTrue(issubclass(qs.SpeechError.Cancelled, qs.SpeechError))
        # Word timestamps without an aligner.
        plain = qs.Transcriber(E["asr_dir"], config())
        self.assertFalse(plain.has_aligner())
        with self.assertRaises(qs.SpeechError.InvalidArgument) as cm:
            plain.transcribe_pcm_f32(
                CLIP_F32, 16000, qs.TranscribeOptions(word_timestamps=True)
            )
        self.assertIn("aligner", str(cm.exception))

    def test_cancellation(self):
        t = transcriber()
        token = qs.CancelToken()
        token.cancel()
        self.assertTrue(token.is_cancelled())
        with self.assertRaises(qs.SpeechError.Cancelled):
            t.transcribe_pcm_f32(CLIP_F32, 16000, NO_WORDS, token)
        # The transcriber stays usable; a reset token works again.
        token.reset()
        r = t.transcribe_pcm_f32(CLIP_F32, 16000, NO_WORDS, token)
        self.assertEqual(r.text, E["asr.text"])
        # A load can be cancelled too.
        token.cancel()
        with self.assertRaises(qs.SpeechError.Cancelled):
            qs.Transcriber(E["asr_dir"], config(), None, token)

    def test_cancel_from_another_thread_stops_synthesis(self):
        s = synthesizer()
        token = qs.CancelToken()

        class CancelAfterFirst(qs.SpeechListener):
            def __init__(self):
                self.chunks = 0

            def on_chunk(self, chunk):
                self.chunks += 1
                if self.chunks == 1:
                    th = threading.Thread(target=token.cancel)
                    th.start()
                    th.join()
                return True

        listener = CancelAfterFirst()
        request = qs.SpeakRequest(
            text="Hello world, this is a cancellation test.",
            speaker="Ryan",
            language="English",
        )
        opts = qs.SynthesisOptions(greedy=True, max_frames=40)
        with self.assertRaises(qs.SpeechError.Cancelled):
            s.speak_stream(
                request, opts, qs.StreamChunking(first_chunk_frames=1, chunk_frames=1),
                listener, token,
            )
        self.assertEqual(listener.chunks, 1)

    def test_load_progress(self):
        rec = Recorder()
        qs.Transcriber(E["asr_dir"], config(), rec)
        stages = [p.stage for p in rec.reports]
        self.assertIn(qs.LoadStage.CONFIG, stages)
        self.assertIn(qs.LoadStage.TOKENIZER, stages)
        self.assertIn(qs.LoadStage.WEIGHTS, stages)
        self.assertEqual(rec.reports[-1].stage, qs.LoadStage.READY)
        self.assertEqual(rec.reports[-1].fraction, 1.0)
        self.assertEqual(stages.count(qs.LoadStage.READY), 1)
        weights = [p.fraction for p in rec.reports if p.stage == qs.LoadStage.WEIGHTS]
        self.assertEqual(weights[0], 0.0)
        self.assertEqual(weights, sorted(weights))
        self.assertGreater(weights[-1], 0.5)
        for p in rec.reports:
            self.assertTrue(0.0 <= p.fraction <= 1.0)
        self.assertTrue(
            any(p.file.endswith("config.json") for p in rec.reports if p.stage == qs.LoadStage.CONFIG)
        )

    def test_several_threads(self):
        t = transcriber()
        results, errors = [], []

        def work():
            try:
                for _ in range(2):
                    results.append(t.transcribe_pcm_f32(CLIP_F32, 16000, NO_WORDS).text)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.assertEqual(errors, [])
        self.assertEqual(results, [E["asr.text"]] * 8)


class StreamingTests(unittest.TestCase):
    def test_stream_of_pcm_buffers(self):
        t = transcriber()
        session = t.start_stream(
            qs.StreamingConfig(chunk_seconds=1.0, max_new_tokens=8)
        )
        events = []
        for i in range(0, len(CLIP_I16), 8000):
            events += session.push_i16(CLIP_I16[i : i + 8000], 16000)
        self.assertEqual(len(events), int(E["stream.events"]))
        self.assertEqual([e.chunk for e in events], list(range(len(events))))
        self.assertFalse(any(e.is_final for e in events))
        for e in events:
            self.assertEqual(e.text, e.fixed + e.unfixed)
        final = session.finish()
        self.assertTrue(final.is_final)
        self.assertEqual(final.text, E["stream.text"])
        self.assertEqual(final.language, E["stream.language"])
        self.assertEqual(session.text(), final.text)
        self.assertAlmostEqual(session.audio_seconds(), 3.0, places=2)
        # A new rate needs a reset; after it the session starts over.
        session.reset()
        session.push_f32(CLIP_F32[:4000], 16000)
        with self.assertRaises(qs.SpeechError.InvalidArgument):
            session.push_f32(CLIP_F32[:4000], 8000)

    def test_long_stream_in_segments(self):
        self.assertEqual(qs.StreamingConfig().max_segment_seconds, 30.0)
        session = transcriber().start_stream(
            qs.StreamingConfig(chunk_seconds=1.0, max_new_tokens=8, max_segment_seconds=2.0)
        )
        events = []
        for i in range(0, len(CLIP_I16), 8000):
            events += session.push_i16(CLIP_I16[i : i + 8000], 16000)
        closed = [e for e in events if e.segment_closed]
        self.assertEqual(len(closed), int(E["stream.segments_closed"]))
        self.assertTrue(all(e.unfixed == "" for e in closed))
        self.assertEqual([e.segment for e in events], sorted(e.segment for e in events))
        self.assertEqual(session.finish().text, E["stream.segmented_text"])

    def test_standalone_session_and_threads(self):
        s = qs.StreamingSession(
            E["asr_dir"], qs.StreamingConfig(chunk_seconds=1.0, max_new_tokens=8)
        )
        # Pushes from several threads are serialised; every sample is received.
        pieces = [CLIP_I16[i : i + 4000] for i in range(0, len(CLIP_I16), 4000)]
        lock = threading.Lock()
        order = []

        def push(piece):
            with lock:  # keep the audio in order; the session itself only serialises calls
                order.append(len(piece))
                s.push_i16(piece, 16000)

        threads = [threading.Thread(target=push, args=(p,)) for p in pieces]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.assertAlmostEqual(s.audio_seconds(), 3.0, places=2)
        self.assertTrue(s.finish().is_final)


class SynthesizerTests(unittest.TestCase):
    def request(self):
        return qs.SpeakRequest(
            text=E["tts.text"],
            speaker=E["tts.speaker"],
            language=E["tts.language"],
            text_mode=qs.TextMode.STREAMING,
        )

    def options(self):
        return qs.SynthesisOptions(
            greedy=True,
            repetition_penalty=float(E["tts.repetition_penalty"]),
            max_frames=int(E["tts.max_frames"]),
        )

    def test_reference_greedy_case(self):
        s = synthesizer()
        self.assertEqual(s.model_type(), "custom_voice")
        self.assertIn("ryan", s.speakers())
        self.assertEqual(s.sample_rate(), 24000)
        out = s.speak(self.request(), self.options())
        code0 = [int(c) for c in E["tts.code0"].split(",")]
        # The recorded code-0 sequence ends with the end-of-speech code, which is no frame.
        self.assertEqual(len(out.frames), int(E["tts.frames"]))
        self.assertEqual([f[0] for f in out.frames], code0[: len(out.frames)])
        self.assertEqual(len(out.samples), int(E["tts.wav_len"]))
        self.assertEqual(out.sample_rate, 24000)
        self.assertFalse(out.truncated)
        pcm = qs.pcm_f32_to_i16(out.samples)
        self.assertEqual(len(pcm), len(out.samples))

    def test_streamed_chunks_equal_the_whole(self):
        s = synthesizer()
        whole = s.speak(self.request(), self.options())

        class Collect(qs.SpeechListener):
            def __init__(self):
                self.chunks = []

            def on_chunk(self, chunk):
                self.chunks.append(chunk)
                return True

        c = Collect()
        summary = s.speak_stream(
            self.request(), self.options(), qs.StreamChunking(), c
        )
        self.assertEqual([ch.index for ch in c.chunks], list(range(len(c.chunks))))
        self.assertEqual(summary.chunks, len(c.chunks))
        self.assertGreater(len(c.chunks), 1)
        samples = [x for ch in c.chunks for x in ch.samples]
        self.assertEqual(summary.samples, len(samples))
        self.assertEqual(len(samples), len(whole.samples))
        self.assertLess(max(abs(a - b) for a, b in zip(samples, whole.samples)), 1e-4)
        self.assertEqual(summary.frames, len(whole.frames))
        self.assertFalse(summary.stopped)

        class StopAtOnce(qs.SpeechListener):
            def on_chunk(self, chunk):
                return False

        stopped = s.speak_stream(self.request(), self.options(), qs.StreamChunking(), StopAtOnce())
        self.assertTrue(stopped.stopped)
        self.assertEqual(stopped.chunks, 1)

    def test_errors(self):
        s = synthesizer()
        bad = qs.SpeakRequest(text="Hi.", speaker="nobody")
        with self.assertRaises(qs.SpeechError.InvalidArgument) as cm:
            s.speak(bad, self.options())
        self.assertIn("nobody", str(cm.exception))
        class Never(qs.SpeechListener):
            def on_chunk(self, chunk):
                raise AssertionError("no chunk expected")

        with self.assertRaises(qs.SpeechError.InvalidArgument):
            s.speak_stream(
                self.request(), self.options(),
                qs.StreamChunking(first_chunk_frames=0, chunk_frames=4), Never(),
            )

    def test_concurrent_speak(self):
        s = synthesizer()
        want = s.speak(self.request(), self.options()).frames
        got, errors = [], []

        def work():
            try:
                got.append(s.speak(self.request(), self.options()).frames)
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.assertEqual(errors, [])
        self.assertEqual(got, [want] * 3)


if __name__ == "__main__":
    print(f"qwen3speech {qs.engine_version()} (Python bindings)")
    result = unittest.main(verbosity=2, exit=False).result
    sys.exit(0 if result.wasSuccessful() else 1)
