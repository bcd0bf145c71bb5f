"""tests/fixtures/tts-speaker/: the Qwen3-TTS speaker encoder (ECAPA-TDNN) with tiny weights.

The encoder is built by the reference itself: a `Qwen3TTSForConditionalGeneration` of type
"base" with a tiny talker (irrelevant here) and the tiny speaker encoder of tts.md §11.2 Tiny-A
(mel_dim 128, enc_dim 64, channels [32, 32, 32, 32, 96], kernels [5, 3, 3, 3, 1], dilations
[1, 2, 3, 4, 1], Res2Net scale 4, SE 8, attention 16). Only its `speaker_encoder.*` tensors are
saved, under the names the full model's state_dict gives them (= the names in a released Base
model.safetensors), so a loader written for the real checkpoint reads the fixture unchanged.

Weights: seed SEED, He-like normal init, the first TDNN made zero-mean per output channel, then
a few layers rescaled on the speech clip so that nothing saturates (see GAIN / CALIBRATE). The
generator checks that the result is not degenerate (live SE gates, unsaturated tanh, attention
neither uniform nor one-hot, distinct x-vectors per clip).

Goldens, for each clip (float32, one thread):
  waveform   (N)          the 24 kHz samples given to the reference
  mel        (128, T)     `mel_spectrogram(..)` with the arguments of `extract_speaker_embedding`
  mel_f64    (128, T)     the same formula in float64 (numpy FFT, the reference's float32 window
                          and filter bank), rounded to float32: `mel - mel_f64` is the reference's
                          own float32 STFT error (up to ~7e-3 in the chirp's near-silent bins)
  tdnn       (32, T)      after blocks.0 (TDNN)
  block{1,2,3} (32, T)    after each SE-Res2Net block
  mfa        (96, T)      after the multi-layer aggregation
  pooled     (192)        after the attentive statistics pooling ([mean; std])
  xvector    (64)         `model.extract_speaker_embedding(audio, 24000)`
The intermediates are captured with forward hooks on the very call that produced `xvector`.

Clips (T = N // 256):
  chirp        30 720 samples, T 120: log chirp 60 Hz -> 9 kHz, amplitude 0.6 (N a multiple of 256)
  speech       espeak-ng en-us, resampled 22.05 -> 24 kHz by `librosa.resample` (soxr_hq), exactly
               as `create_voice_clone_prompt` resamples a reference clip, T odd
  odd_37       9 603 samples of the same speech (offset 6 000), T 37, N not a multiple of 256
  min_5        1 357 samples, T 5: the fewest frames the dilation-4 reflect padding accepts
The reference's behaviour below that (T 4, 1 279 samples, and 300 samples) is recorded in
expected.json: torch raises on the reflect padding.

Also `batch.safetensors`: `xvector` (2, 64), the reference forward on a batch of two equal-length
mels: the chirp's `mel` and the first 120 frames of the speech's `mel` (not stored again).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict

import numpy as np

from common import FIXTURES, RUN_NOTES, check_close, dump_json, save_tensors

OUT = "tts-speaker"
SR = 24000
SEED = 20260317

SPEAKER_CONFIG = dict(
    mel_dim=128,
    enc_dim=64,
    enc_channels=[32, 32, 32, 32, 96],
    enc_kernel_sizes=[5, 3, 3, 3, 1],
    enc_dilations=[1, 2, 3, 4, 1],
    enc_attention_channels=16,
    enc_res2net_scale=4,
    enc_se_channels=8,
    sample_rate=24000,
)

# Tiny talker: only there so that the real top-level class builds (and names) the encoder.
TALKER_CONFIG = dict(
    vocab_size=64,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=1,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    text_hidden_size=48,
    text_vocab_size=200,
    num_code_groups=2,
    spk_id={},
    spk_is_dialect={},
    codec_language_id={},
    code_predictor_config=dict(
        vocab_size=32,
        hidden_size=48,
        intermediate_size=80,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=12,
        num_code_groups=2,
    ),
)

# Weight init: N(0, (GAIN / sqrt(fan_in))^2), biases N(0, BIAS_STD^2); then the first TDNN's
# weights are made zero-mean per output channel (the log-mel sits around -6; without this every
# channel is dominated by the clip's loudness and all x-vectors look alike); then the layers in
# CALIBRATE are rescaled (weight and bias) so that, on the speech clip, the named statistic of
# their output hits the target: SE gates spread between 0 and 1 without saturating, tanh of the
# pooling attention in its linear range, attention scores varying over time by a couple of units.
GAIN = 2.0**0.5
BIAS_STD = 0.1
CALIBRATE = [
    # (module path, statistic, target)
    ("blocks.1.se_block.conv2", "std", 1.5),
    ("blocks.2.se_block.conv2", "std", 1.5),
    ("blocks.3.se_block.conv2", "std", 1.5),
    ("asp.tdnn.conv", "std", 1.0),
    ("asp.conv", "std_over_time", 2.0),
]

SPEECH = dict(voice="en-us", speed=165, text="The quick brown fox jumps over the lazy dog.")
CLIPS = {
    # name -> (source, start, length)
    "chirp": ("chirp", 0, 30720),
    "speech": ("speech", 0, None),
    "odd_37": ("speech", 6000, 256 * 37 + 131),
    "min_5": ("speech", 12000, 256 * 5 + 77),
}
TOO_SHORT = {"frames_4": ("speech", 12000, 256 * 4 + 255), "samples_300": ("speech", 12000, 300)}
MEL_ARGS = dict(n_fft=1024, num_mels=128, sampling_rate=24000, hop_size=256, win_size=1024, fmin=0, fmax=12000)


def chirp(n: int) -> np.ndarray:
    t = np.arange(n, dtype=np.float64) / SR
    dur = n / SR
    f0, f1 = 60.0, 9000.0
    k = np.log(f1 / f0) / dur
    phase = 2 * np.pi * f0 * (np.exp(k * t) - 1) / k
    env = np.minimum(1.0, np.minimum(t, dur - t) / 0.01)  # 10 ms fades
    return (0.6 * env * np.sin(phase)).astype(np.float32)


def espeak_version() -> str:
    return subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout.strip()


def speech_24k() -> np.ndarray:
    """espeak-ng (22.05 kHz) resampled to 24 kHz as the qwen_tts wrapper does for a reference clip."""
    import librosa
    import soundfile as sf

    with tempfile.TemporaryDirectory() as td:
        wav = Path(td) / "x.wav"
        subprocess.run(
            ["espeak-ng", "-v", SPEECH["voice"], "-s", str(SPEECH["speed"]), "-w", str(wav), SPEECH["text"]],
            check=True,
            capture_output=True,
        )
        x, sr = sf.read(str(wav), dtype="float32")
    assert sr == 22050, sr
    y = librosa.resample(y=x.astype(np.float32), orig_sr=int(sr), target_sr=SR)
    return np.ascontiguousarray(y, dtype=np.float32)


def make_clips() -> Dict[str, np.ndarray]:
    speech = speech_24k()
    sources = {"chirp": chirp(30720), "speech": speech}
    out = {}
    for name, (src, start, length) in {**CLIPS, **TOO_SHORT}.items():
        full = sources[src]
        end = len(full) if length is None else start + length
        assert end <= len(full), (name, len(full))
        clip = np.ascontiguousarray(full[start:end], dtype=np.float32)
        assert np.abs(clip).max() > 0.01, f"{name} is silent"
        out[name] = clip
    assert (len(out["speech"]) // 256) % 2 == 1, "the speech clip should have an odd frame count"
    return out


def mel_f64(wav: np.ndarray) -> np.ndarray:
    """`mel_spectrogram` evaluated in float64 with the reference's float32 window and filters."""
    import torch
    from librosa.filters import mel as librosa_mel_fn

    filters = librosa_mel_fn(sr=SR, n_fft=1024, n_mels=128, fmin=0, fmax=12000).astype(np.float32)
    window = torch.hann_window(1024).numpy().astype(np.float64)
    y = np.pad(wav.astype(np.float64), (384, 384), mode="reflect")
    frames = (len(y) - 1024) // 256 + 1
    idx = np.arange(1024)[:, None] + 256 * np.arange(frames)[None, :]
    spec = np.fft.rfft(y[idx] * window[:, None], axis=0)
    mag = np.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
    return np.log(np.maximum(filters.astype(np.float64) @ mag, 1e-5)).astype(np.float32)


def build_model():
    import torch
    from qwen_tts.core.models.configuration_qwen3_tts import Qwen3TTSConfig
    from qwen_tts.core.models.modeling_qwen3_tts import Qwen3TTSForConditionalGeneration

    cfg = Qwen3TTSConfig(
        talker_config=TALKER_CONFIG,
        speaker_encoder_config=dict(SPEAKER_CONFIG),
        tts_model_type="base",
        tts_model_size="0b6",
        tokenizer_type="qwen3_tts_tokenizer_12hz",
    )
    cfg._attn_implementation = "eager"
    model = Qwen3TTSForConditionalGeneration(cfg).eval().to(torch.float32)
    enc = model.speaker_encoder
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in enc.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * BIAS_STD)
            else:
                fan_in = p.shape[1] * p.shape[2]
                p.copy_(torch.randn(p.shape, generator=gen) * (GAIN / fan_in**0.5))
        w = enc.blocks[0].conv.weight
        w.sub_(w.mean(dim=(1, 2), keepdim=True))
    return model


def calibrate(model, wav: np.ndarray) -> Dict[str, float]:
    """Rescale the CALIBRATE layers in order (each one changes what the next sees)."""
    import torch

    enc = model.speaker_encoder
    scales = {}
    for path, stat, target in CALIBRATE:
        conv = enc.get_submodule(path)
        seen = {}
        h = conv.register_forward_hook(lambda _m, _i, o: seen.__setitem__("out", o.detach().clone()))
        try:
            model.extract_speaker_embedding(wav, SR)
        finally:
            h.remove()
        out = seen["out"][0]  # (C, T)
        value = out.std().item() if stat == "std" else out.std(dim=-1).mean().item()
        scale = target / value
        with torch.no_grad():
            conv.weight.mul_(scale)
            conv.bias.mul_(scale)
        scales[path] = scale
    return scales


def capture(enc):
    """Forward hooks on the speaker encoder's stages; returns (caps, handles)."""
    caps: Dict[str, Any] = {}
    hs = []

    def keep(key):
        def hook(_m, _i, o):
            caps[key] = o.detach().clone()

        return hook

    def pre(_m, args):
        caps["input"] = args[0].detach().clone()

    hs.append(enc.register_forward_pre_hook(pre))
    hs.append(enc.blocks[0].register_forward_hook(keep("tdnn")))
    for i in range(1, len(enc.blocks)):
        hs.append(enc.blocks[i].register_forward_hook(keep(f"block{i}")))
    hs.append(enc.mfa.register_forward_hook(keep("mfa")))
    hs.append(enc.asp.register_forward_hook(keep("pooled")))
    # Degeneracy probes inside the pooling and the SE blocks.
    hs.append(enc.asp.tdnn.register_forward_hook(keep("asp_tdnn")))
    hs.append(enc.asp.conv.register_forward_hook(keep("asp_scores")))
    for i in range(1, len(enc.blocks)):
        hs.append(enc.blocks[i].se_block.sigmoid.register_forward_hook(keep(f"se_gate{i}")))
    return caps, hs


def degeneracy(caps: Dict[str, Any]) -> Dict[str, float]:
    import torch

    scores = caps["asp_scores"][0]  # (C, T)
    att = torch.softmax(scores, dim=-1)
    t = att.shape[-1]
    eff = (1.0 / (att**2).sum(-1)).mean().item()  # effective frames per channel
    gates = torch.cat([caps[k].flatten() for k in caps if k.startswith("se_gate")])
    tanh = torch.tanh(caps["asp_tdnn"]).abs()
    return {
        "frames": t,
        "attention_effective_frames_mean": eff,
        "attention_max_weight": att.max().item(),
        "se_gate_min": gates.min().item(),
        "se_gate_max": gates.max().item(),
        "se_gate_std": gates.std().item(),
        "asp_tanh_saturated_fraction": (tanh > 0.99).float().mean().item(),
        "xvector_std": caps["xvector"].std().item(),
        "tdnn_relu_zero_fraction": (caps["tdnn"] == 0).float().mean().item(),
    }


def main(fixtures: Path = FIXTURES) -> Dict[str, Any]:
    import torch

    with torch.no_grad():
        return _main(fixtures)


def _main(fixtures: Path) -> Dict[str, Any]:
    import torch
    from qwen_tts.core.models.modeling_qwen3_tts import mel_spectrogram

    out_dir = fixtures / OUT
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*"):
        old.unlink()

    model = build_model()
    enc = model.speaker_encoder
    clips = make_clips()
    scales = calibrate(model, clips["speech"])

    # Weights under the full model's names (those of a released Base model.safetensors).
    state = {k: v for k, v in model.state_dict().items() if k.startswith("speaker_encoder.")}
    own = {f"speaker_encoder.{k}": v for k, v in enc.state_dict().items()}
    assert set(state) == set(own), "speaker encoder names differ from the model's state_dict"
    save_tensors(out_dir / "model.safetensors", state)
    dump_json(
        out_dir / "config.json",
        {"model_type": "qwen3_tts", "tts_model_type": "base", "speaker_encoder_config": SPEAKER_CONFIG},
    )

    report: Dict[str, Any] = {"seed": SEED, "tensors": len(state), "calibration_scales": scales, "clips": {}}
    xvectors = {}
    for name in CLIPS:
        wav = clips[name]
        mel = mel_spectrogram(torch.from_numpy(wav).unsqueeze(0), **MEL_ARGS)  # (1, 128, T)
        caps, hs = capture(enc)
        try:
            xvec = model.extract_speaker_embedding(wav, SR)
        finally:
            for h in hs:
                h.remove()
        caps["xvector"] = xvec
        t = len(wav) // 256
        assert mel.shape == (1, 128, t), (name, mel.shape)
        # The encoder saw exactly this mel.
        check_close(f"{name} encoder input", caps["input"][0].T, mel[0], rtol=0, atol=0)
        # Recompute the x-vector from the captured pooled stats (fc is a 1x1 conv).
        fc = torch.nn.functional.conv1d(caps["pooled"], enc.fc.weight, enc.fc.bias)[:, :, 0]
        check_close(f"{name} fc", fc[0], xvec, rtol=1e-6, atol=1e-6)
        tensors = {
            "waveform": wav,
            "mel": mel[0],
            "mel_f64": mel_f64(wav),
            "tdnn": caps["tdnn"][0],
            **{f"block{i}": caps[f"block{i}"][0] for i in range(1, len(enc.blocks))},
            "mfa": caps["mfa"][0],
            "pooled": caps["pooled"][0, :, 0],
            "xvector": xvec,
        }
        save_tensors(out_dir / f"{name}.safetensors", tensors)
        xvectors[name] = xvec
        own = (mel[0] - torch.from_numpy(tensors["mel_f64"])).abs().max().item()
        report["clips"][name] = {"samples": len(wav), "frames": t, "mel_vs_f64": own, **degeneracy(caps)}

    # Batched forward on two equal-length mels.
    t = len(clips["chirp"]) // 256
    mels = [mel_spectrogram(torch.from_numpy(clips[n]).unsqueeze(0), **MEL_ARGS)[0, :, :t] for n in ["chirp", "speech"]]
    batch_in = torch.stack(mels).transpose(1, 2)  # (2, T, 128)
    with torch.inference_mode():
        batch_out = enc(batch_in)
    check_close("batch row 0 = chirp alone", batch_out[0], xvectors["chirp"], rtol=1e-5, atol=1e-5)
    save_tensors(out_dir / "batch.safetensors", {"xvector": batch_out})

    # Too short: the reference raises (reflect padding longer than the clip).
    errors = {}
    for name in TOO_SHORT:
        wav = clips[name]
        try:
            model.extract_speaker_embedding(wav, SR)
            errors[name] = {"samples": len(wav), "error": None}
        except Exception as exc:  # noqa: BLE001 - recorded as the reference behaviour
            errors[name] = {"samples": len(wav), "frames": len(wav) // 256, "error": type(exc).__name__,
                            "message": str(exc).splitlines()[0]}  # fmt: skip
        assert errors[name]["error"] is not None, f"{name}: the reference accepted it"
    report["too_short"] = errors

    # Not degenerate: distinct speakers, live gates and attention.
    names = list(xvectors)
    cos = {}
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a, b = xvectors[names[i]], xvectors[names[j]]
            cos[f"{names[i]}/{names[j]}"] = torch.nn.functional.cosine_similarity(a, b, dim=0).item()
    report["xvector_cosine"] = cos
    assert max(cos.values()) < 0.97, cos
    for name, r in report["clips"].items():
        assert r["se_gate_min"] < 0.3 and r["se_gate_max"] > 0.7, (name, r)
        assert r["asp_tanh_saturated_fraction"] < 0.2, (name, r)
        assert 1.5 < r["attention_effective_frames_mean"] < 0.9 * r["frames"], (name, r)
        assert r["tdnn_relu_zero_fraction"] < 0.9, (name, r)

    dump_json(
        out_dir / "expected.json",
        {
            "speaker_encoder_config": SPEAKER_CONFIG,
            "mel_args": MEL_ARGS,
            "clips": {n: {k: report["clips"][n][k] for k in ["samples", "frames", "mel_vs_f64"]} for n in CLIPS},
            "too_short": errors,
            "speech_source": {**SPEECH, "espeak": espeak_version(), "resample": "librosa.resample soxr_hq 22050->24000"},
            "weights": {"seed": SEED, "gain": GAIN, "bias_std": BIAS_STD, "calibrate": CALIBRATE, "scales": scales},
            "xvector_cosine": cos,
        },
    )
    report["verify"] = verify_saved(out_dir)
    RUN_NOTES["tts_speaker"] = {"seed": SEED, "gain": GAIN, "bias_std": BIAS_STD, "calibration_scales": scales}
    return report


def verify_saved(out_dir: Path) -> Dict[str, float]:
    """Reload the saved weights into a fresh model and recompute every saved x-vector and mel."""
    import json

    import torch
    from qwen_tts.core.models.modeling_qwen3_tts import mel_spectrogram
    from safetensors.torch import load_file

    model = build_model()  # fresh random weights, replaced below
    cfg = json.loads((out_dir / "config.json").read_text())
    assert cfg["speaker_encoder_config"] == SPEAKER_CONFIG
    missing, unexpected = model.load_state_dict(load_file(str(out_dir / "model.safetensors")), strict=False)
    assert not unexpected and not [k for k in missing if k.startswith("speaker_encoder.")], (missing, unexpected)
    worst = 0.0
    for name in CLIPS:
        saved = load_file(str(out_dir / f"{name}.safetensors"))
        wav = saved["waveform"].numpy()
        mel = mel_spectrogram(torch.from_numpy(wav).unsqueeze(0), **MEL_ARGS)[0]
        check_close(f"verify {name} mel", mel, saved["mel"], rtol=0, atol=0)
        worst = max(worst, check_close(f"verify {name} xvector", model.extract_speaker_embedding(wav, SR),
                                       saved["xvector"], rtol=0, atol=0))  # fmt: skip
    batch = load_file(str(out_dir / "batch.safetensors"))
    t = len(load_file(str(out_dir / "chirp.safetensors"))["waveform"]) // 256
    mels = [load_file(str(out_dir / f"{n}.safetensors"))["mel"][:, :t] for n in ["chirp", "speech"]]
    batch_in = torch.stack(mels).transpose(1, 2)
    check_close("verify batch", model.speaker_encoder(batch_in), batch["xvector"], rtol=0, atol=0)
    return {"max_abs_diff": worst}


if __name__ == "__main__":
    import json

    from common import setup_determinism

    setup_determinism()
    print(json.dumps(main(), indent=1))
