// The Kotlin bindings on the JVM (JNA) against the host build of the library: the API an
// Android app uses. Run by bindings/mobile/tests/foreign.rs, which writes the inputs and the
// expected values (the Rust facade's results on the same inputs, the reference's recorded TTS
// case) into the file named by QWEN3_SPEECH_EXPECTED (`key=hex(utf-8)` lines).

import io.github.qwen3speech.*
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.util.Collections
import java.util.concurrent.atomic.AtomicInteger
import kotlin.concurrent.thread

val E: Map<String, String> = File(System.getenv("QWEN3_SPEECH_EXPECTED")).readLines()
    .filter { it.isNotEmpty() }
    .associate { line ->
        val (key, value) = line.split("=", limit = 2)
        key to String(value.chunked(2).map { it.toInt(16).toByte() }.toByteArray(), Charsets.UTF_8)
    }

fun bytes(path: String): ByteBuffer =
    ByteBuffer.wrap(File(path).readBytes()).order(ByteOrder.LITTLE_ENDIAN)

val clipF32: List<Float> = bytes(E.getValue("clip_f32")).asFloatBuffer().let { b ->
    List(b.remaining()) { b.get(it) }
}
val clipI16: List<Short> = bytes(E.getValue("clip_i16")).asShortBuffer().let { b ->
    List(b.remaining()) { b.get(it) }
}

var passed = 0
val failures = mutableListOf<String>()

fun test(name: String, body: () -> Unit) {
    try {
        body()
        passed++
        println("ok   $name")
    } catch (e: Throwable) {
        failures += "$name: $e"
        println("FAIL $name: $e")
        e.printStackTrace()
    }
}

fun check(condition: Boolean, message: () -> String) {
    if (!condition) throw AssertionError(message())
}

fun <T> eq(got: T, want: T, what: String) = check(got == want) { "$what: got <$got>, want <$want>" }

inline fun <reified X : Throwable> throws(body: () -> Unit): X {
    try {
        body()
    } catch (e: Throwable) {
        if (e is X) return e
        throw AssertionError("expected ${X::class.simpleName}, got $e")
    }
    throw AssertionError("expected ${X::class.simpleName}, nothing was thrown")
}

fun config(alignerDir: String? = null) =
    TranscriberConfig(maxNewTokens = 24u, attention = EncoderAttention.FULL, alignerDir = alignerDir)

val noWords = TranscribeOptions(wordTimestamps = false)

fun main() {
    println("qwen3speech ${engineVersion()} (Kotlin/JVM bindings)")
    val t = Transcriber(E.getValue("asr_dir"), config(E.getValue("aligner_dir")))
    val synth = Synthesizer(E.getValue("tts_dir"))

    test("same text as the facade") {
        check(t.hasAligner()) { "aligner not loaded" }
        val r = t.transcribePcmF32(clipF32, 16000u, noWords)
        eq(r.text, E["asr.text"], "text")
        eq(r.language, E["asr.language"], "language")
        eq(r.raw, E["asr.raw"], "raw")
        check(Math.abs(r.durationSeconds - 3.0) < 1e-3) { "duration ${r.durationSeconds}" }
        eq(r.words, null, "words")
        eq(r.segments.size, 1, "segments")
        eq(t.transcribePcmI16(clipI16, 16000u, noWords).text, E["asr_i16.text"], "i16 text")
        eq(t.transcribeFile(E.getValue("wav_file"), noWords).text, E["asr_file.text"], "file text")
    }

    test("word timestamps") {
        val r = t.transcribePcmF32(clipF32, 16000u, TranscribeOptions(language = "English", wordTimestamps = true))
        eq(r.text, E["words.text"], "text")
        val words = r.words ?: throw AssertionError("no words")
        val got = words.joinToString("\n") { "${it.text}|${"%.3f".format(java.util.Locale.ROOT, it.start)}|${"%.3f".format(java.util.Locale.ROOT, it.end)}" }
        eq(got, E["words.list"], "words")
        for (w in words) {
            check(w.textStart <= w.textEnd && w.textEnd.toInt() <= r.text.length) { "span of $w" }
            check(r.text.substring(w.textStart.toInt(), w.textEnd.toInt()).isNotEmpty()) { "empty span $w" }
        }
    }

    test("errors are typed exceptions") {
        val e = throws<SpeechException.InvalidArgument> {
            t.transcribePcmF32(clipF32, 16000u, TranscribeOptions(language = "Klingon"))
        }
        check(e.message!!.contains("Klingon")) { "message ${e.message}" }
        throws<SpeechException.InvalidArgument> { t.transcribePcmF32(clipF32, 0u, noWords) }
        throws<SpeechException.Audio> { t.transcribePcmF32(emptyList(), 16000u, noWords) }
        throws<SpeechException.Io> { t.transcribeFile("/no/such/file.wav", noWords) }
        throws<SpeechException.Io> { Transcriber("/no/such/model", config()) }
        throws<SpeechException.Io> { Transcriber("Qwen/Qwen3-ASR-0.6B", config()) }
        val plain = Transcriber(E.getValue("asr_dir"), config())
        plain.use {
            throws<SpeechException.InvalidArgument> {
                it.transcribePcmF32(clipF32, 16000u, TranscribeOptions(wordTimestamps = true))
            }
        }
        throws<SpeechException.InvalidArgument> {
            synth.speak(SpeakRequest(text = "Hi.", speaker = "nobody"), SynthesisOptions(greedy = true))
        }
        check(SpeechException.Cancelled("x") is Exception) { "not an Exception" }
    }

    test("cancellation") {
        val token = CancelToken()
        token.cancel()
        throws<SpeechException.Cancelled> { t.transcribePcmF32(clipF32, 16000u, noWords, token) }
        token.reset()
        eq(t.transcribePcmF32(clipF32, 16000u, noWords, token).text, E["asr.text"], "after reset")
        token.cancel()
        throws<SpeechException.Cancelled> { Transcriber(E.getValue("asr_dir"), config(), null, token) }

        // From another thread, while a synthesis streams.
        val other = CancelToken()
        val chunks = AtomicInteger()
        throws<SpeechException.Cancelled> {
            synth.speakStream(
                SpeakRequest(text = "Hello world, this is a cancellation test.", speaker = "Ryan", language = "English"),
                SynthesisOptions(greedy = true, maxFrames = 40u),
                StreamChunking(firstChunkFrames = 1u, chunkFrames = 1u),
                object : SpeechListener {
                    override fun onChunk(chunk: AudioChunk): Boolean {
                        if (chunks.incrementAndGet() == 1) thread { other.cancel() }.join()
                        return true
                    }
                },
                other,
            )
        }
        eq(chunks.get(), 1, "chunks before the cancel")
    }

    test("load progress") {
        val reports = Collections.synchronizedList(mutableListOf<LoadProgress>())
        Transcriber(E.getValue("asr_dir"), config(), object : LoadProgressListener {
            override fun onProgress(progress: LoadProgress) {
                reports += progress
            }
        }).close()
        val stages = reports.map { it.stage }
        for (s in listOf(LoadStage.CONFIG, LoadStage.TOKENIZER, LoadStage.WEIGHTS)) {
            check(s in stages) { "no $s report in $stages" }
        }
        eq(reports.last().stage, LoadStage.READY, "last stage")
        eq(reports.last().fraction, 1.0f, "last fraction")
        val weights = reports.filter { it.stage == LoadStage.WEIGHTS }.map { it.fraction }
        eq(weights.first(), 0.0f, "first weights report")
        eq(weights, weights.sorted(), "weights progress is monotonic")
        check(weights.last() > 0.5f) { "weights reached ${weights.last()}" }
    }

    test("several threads share a transcriber") {
        val results = Collections.synchronizedList(mutableListOf<String>())
        val errors = Collections.synchronizedList(mutableListOf<Throwable>())
        (1..4).map {
            thread {
                try {
                    repeat(2) { results += t.transcribePcmF32(clipF32, 16000u, noWords).text }
                } catch (e: Throwable) {
                    errors += e
                }
            }
        }.forEach { it.join() }
        eq(errors.toList(), emptyList<Throwable>(), "errors")
        eq(results.toList(), List(8) { E["asr.text"] }, "results")
    }

    test("streaming session fed with PCM buffers") {
        t.startStream(StreamingConfig(chunkSeconds = 1.0, maxNewTokens = 8u)).use { s ->
            val events = mutableListOf<StreamEvent>()
            clipI16.chunked(8000).forEach { events += s.pushI16(it, 16000u) }
            eq(events.size, E.getValue("stream.events").toInt(), "events")
            eq(events.map { it.chunk.toInt() }, events.indices.toList(), "chunk indices")
            for (e in events) eq(e.text, e.fixed + e.unfixed, "text = fixed + unfixed")
            val fin = s.finish()
            check(fin.isFinal) { "not final" }
            eq(fin.text, E["stream.text"], "final text")
            eq(fin.language, E["stream.language"], "final language")
            eq(s.text(), fin.text, "session text")
            s.reset()
            s.pushF32(clipF32.subList(0, 4000), 16000u)
            throws<SpeechException.InvalidArgument> { s.pushF32(clipF32.subList(0, 4000), 8000u) }
        }
        eq(StreamingConfig().maxSegmentSeconds, 30.0, "default segment length")
        t.startStream(StreamingConfig(chunkSeconds = 1.0, maxNewTokens = 8u, maxSegmentSeconds = 2.0)).use { s ->
            val events = mutableListOf<StreamEvent>()
            clipI16.chunked(8000).forEach { events += s.pushI16(it, 16000u) }
            eq(events.count { it.segmentClosed }, E.getValue("stream.segments_closed").toInt(), "segments")
            eq(events.map { it.segment.toInt() }, events.map { it.segment.toInt() }.sorted(), "segment order")
            for (e in events.filter { it.segmentClosed }) eq(e.unfixed, "", "closed segment settled")
            eq(s.finish().text, E["stream.segmented_text"], "segmented text")
        }
    }

    fun request() = SpeakRequest(
        text = E.getValue("tts.text"),
        speaker = E["tts.speaker"],
        language = E["tts.language"],
        textMode = TextMode.STREAMING,
    )

    fun options() = SynthesisOptions(
        greedy = true,
        repetitionPenalty = E.getValue("tts.repetition_penalty").toFloat(),
        maxFrames = E.getValue("tts.max_frames").toUInt(),
    )

    test("synthesis matches the reference's greedy case") {
        eq(synth.modelType(), "custom_voice", "model type")
        check("ryan" in synth.speakers()) { "speakers ${synth.speakers()}" }
        val out = synth.speak(request(), options())
        val code0 = E.getValue("tts.code0").split(",").map { it.toUInt() }
        eq(out.frames.size, E.getValue("tts.frames").toInt(), "frames")
        eq(out.frames.map { it[0] }, code0.take(out.frames.size), "code-0 sequence")
        eq(out.samples.size, E.getValue("tts.wav_len").toInt(), "samples")
        eq(out.sampleRate, 24000u, "sample rate")
        eq(pcmF32ToI16(out.samples).size, out.samples.size, "16-bit PCM")
    }

    test("streamed synthesis equals the whole") {
        val whole = synth.speak(request(), options())
        val chunks = mutableListOf<AudioChunk>()
        val summary = synth.speakStream(request(), options(), StreamChunking(), object : SpeechListener {
            override fun onChunk(chunk: AudioChunk): Boolean {
                chunks += chunk
                return true
            }
        })
        eq(summary.chunks.toInt(), chunks.size, "chunks")
        check(chunks.size > 1) { "one chunk only" }
        val samples = chunks.flatMap { it.samples }
        eq(samples.size, whole.samples.size, "samples")
        val diff = samples.zip(whole.samples).maxOf { (a, b) -> Math.abs(a - b) }
        check(diff < 1e-4f) { "streamed audio differs by $diff" }
        eq(summary.frames.toInt(), whole.frames.size, "frames")
    }

    t.close()
    synth.close()
    println("$passed passed, ${failures.size} failed")
    if (failures.isNotEmpty()) {
        failures.forEach { println("FAILED: $it") }
        kotlin.system.exitProcess(1)
    }
}
