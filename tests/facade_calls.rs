//! Per-call behaviour of the facade: cooperative cancellation (`engine::cancel`: a cancelled call
//! fails with `Error::Cancelled` at its next checkpoint and leaves the model usable) and per-call
//! transcription options.

mod common;

use common::fixture;
use qwen3_speech::engine::cancel::CancelToken;
use qwen3_speech::models::asr::EncoderAttention;
use qwen3_speech::{
    ComputeDType, DeviceSpec, Error, ModelDir, SpeakRequest, SynthesisOptions, Synthesizer,
    SynthesizerConfig, TranscribeOptions, Transcriber, TranscriberConfig,
};

fn transcriber() -> Transcriber {
    transcriber_in(None)
}

fn transcriber_in(language: Option<&str>) -> Transcriber {
    let config = TranscriberConfig {
        language: language.map(str::to_string),
        max_new_tokens: Some(8),
        attention: EncoderAttention::Full,
        device: DeviceSpec::Cpu,
        dtype: Some(ComputeDType::F32),
        ..TranscriberConfig::default()
    };
    Transcriber::from_dir(ModelDir::open(fixture("asr-tiny")).unwrap(), config).unwrap()
}

fn tone(seconds: f32) -> Vec<f32> {
    (0..(16000.0 * seconds) as usize)
        .map(|i| 0.3 * (i as f32 * 0.05).sin())
        .collect()
}

#[test]
fn cancelled_transcription_fails_and_the_model_stays_usable() {
    let t = transcriber();
    let audio = tone(1.0);
    let token = CancelToken::new();
    token.cancel();
    let r = token.scope(|| t.transcribe_samples(&audio, 16000));
    assert!(matches!(r, Err(Error::Cancelled)), "got {r:?}");
    // Outside the scope (and after a reset inside it) the same call succeeds.
    let free = t.transcribe_samples(&audio, 16000).unwrap();
    token.reset();
    let again = token.scope(|| t.transcribe_samples(&audio, 16000)).unwrap();
    assert_eq!(free.text, again.text);
    // A batch reports the cancellation for every input.
    token.cancel();
    let batch = token.scope(|| {
        t.transcribe_batch(
            &[
                qwen3_speech::AudioInput::Samples {
                    samples: &audio,
                    sample_rate: 16000,
                },
                qwen3_speech::AudioInput::Samples {
                    samples: &audio,
                    sample_rate: 16000,
                },
            ],
            |_, _| {},
        )
    });
    assert_eq!(batch.len(), 2);
    assert!(batch.iter().all(|r| matches!(r, Err(Error::Cancelled))));
}

#[test]
fn synthesis_stops_at_the_next_frame() {
    let synth = Synthesizer::from_dir(
        ModelDir::open(fixture("tts-tiny/custom_voice")).unwrap(),
        SynthesizerConfig::default(),
    )
    .unwrap();
    let mut req = SpeakRequest::new("Hello world, this is a cancellation test.");
    req.speaker = Some("Ryan".into());
    req.language = Some("English".into());
    let opts = SynthesisOptions {
        greedy: true,
        max_frames: Some(20),
        ..Default::default()
    };
    let token = CancelToken::new();
    let pulled = token.scope(|| {
        let mut frames = synth.frames(&req, &opts).unwrap();
        let mut n = 0;
        loop {
            match frames.next_frame() {
                Ok(Some(_)) => {
                    n += 1;
                    if n == 2 {
                        token.cancel();
                    }
                }
                Ok(None) => panic!("the stream ended before the cancellation"),
                Err(e) => {
                    assert!(matches!(e, Error::Cancelled), "got {e:?}");
                    return n;
                }
            }
        }
    });
    assert_eq!(pulled, 2, "no frame after the cancel");
    // A whole `speak` under a cancelled token fails; without it, it succeeds.
    let r = token.scope(|| synth.speak(&req, &opts));
    assert!(matches!(r, Err(Error::Cancelled)));
    assert!(!synth.speak(&req, &opts).unwrap().frames.is_empty());
}

#[test]
fn per_call_options_override_the_configuration() {
    let auto = transcriber();
    let english = transcriber_in(Some("English"));
    let audio = tone(1.0);
    let input = qwen3_speech::AudioInput::Samples {
        samples: &audio,
        sample_rate: 16000,
    };
    let forced = TranscribeOptions {
        language: Some("English".into()),
        ..Default::default()
    };
    let a = auto.transcribe_with(input, &forced).unwrap();
    let b = english.transcribe(input).unwrap();
    assert_eq!(a.text, b.text);
    assert_eq!(a.language, b.language);
    // "auto" detects even when the configuration forces a language.
    let detect = TranscribeOptions {
        language: Some("auto".into()),
        ..Default::default()
    };
    let c = english.transcribe_with(input, &detect).unwrap();
    let d = auto.transcribe(input).unwrap();
    assert_eq!((&c.text, &c.language), (&d.text, &d.language));
    // A smaller token budget for one call.
    let short = TranscribeOptions {
        max_new_tokens: Some(2),
        ..Default::default()
    };
    let e = auto.transcribe_with(input, &short).unwrap();
    assert!(e.text.len() <= d.text.len());
    // Bad per-call options are clear errors.
    let bad = TranscribeOptions {
        language: Some("Klingon".into()),
        ..Default::default()
    };
    let err = auto.transcribe_with(input, &bad).unwrap_err().to_string();
    assert!(err.contains("Klingon"), "{err}");
    let words = TranscribeOptions {
        word_timestamps: Some(true),
        ..Default::default()
    };
    let err = auto.transcribe_with(input, &words).unwrap_err().to_string();
    assert!(err.contains("aligner"), "{err}");
}
