"""tests/fixtures/codec12-tiny/: a tiny Qwen3-TTS 12 Hz speech tokenizer and its goldens.

The checkpoint is built with qwen_tts's own classes (`Qwen3TTSTokenizerV2Config`,
`Qwen3TTSTokenizerV2Model`, `save_pretrained`) plus the `EncodecFeatureExtractor` that
`Qwen3TTSTokenizer.from_pretrained` loads, so the folder has the files of a released
`speech_tokenizer/` folder: config.json, model.safetensors, preprocessor_config.json.

`build_tiny_codec12(out_dir)` is importable on its own (other generators put the same codec
into tiny TTS checkpoints as `speech_tokenizer/`); it needs neither espeak-ng nor the fixtures.

Tiny config (codecs.md §7.3, adapted so that every path of the released model runs):
* encoder (Mimi): 3 strided SEANet stages (strides 2, 3, 4; channels 4 -> 8 -> 16 -> 32),
  2 transformer layers with 4 heads x 16 (q/k/v width 64 != hidden 32) and 2 kv heads (GQA),
  a configured `sliding_window` of 16 that the reference ignores (fully causal attention),
  the k4/s2 replicate-padded downsample (hop 24 -> 48 samples per code frame), split RVQ with
  1 semantic + 5 acoustic levels of 64 x 8, of which `encoder_valid_num_quantizers` = 4 are kept;
* decoder: 4 quantizers, codebook_dim 16 (RVQ dim 8), pre_conv to latent 32, 2 transformer
  layers with hidden 24, 4 heads x 8, 2 kv heads, sliding window 6, 2 upsample stages (x2 x2,
  ConvNeXt), conv decoder 48 -> 24 -> 12 -> 6 channels with rates 2, 3, 2 (total 48).
So one code frame is 48 samples at 24 kHz (500 Hz frame rate) and the reference's chunked
decode (300 frames + 25 frames of left context) already runs 3 chunks on 1.5 s of audio.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict, List

import librosa
import numpy as np

from common import FIXTURES, RUN_NOTES, check_close, check_equal, dump_json, save_tensors

CODEC_DIR = "codec12-tiny"
SAMPLE_RATE = 24000
# Picked among seeds 0..39 (codebook draws): the largest smallest code margin on the golden
# inputs (3.6e-4 relative distance gap on the speech clip, >= 5e-4 elsewhere), so that float
# differences between implementations (~1e-6) cannot flip a code.
SEED = 30

ENCODER_CONFIG: Dict[str, Any] = {
    "sampling_rate": SAMPLE_RATE,
    "frame_rate": 500.0,  # stored as `_frame_rate`, as in the released config (12.5 there)
    "audio_channels": 1,
    "hidden_size": 32,
    "num_filters": 4,
    "num_residual_layers": 1,
    "upsampling_ratios": [4, 3, 2],
    "kernel_size": 7,
    "last_kernel_size": 3,
    "residual_kernel_size": 3,
    "dilation_growth_rate": 2,
    "use_causal_conv": True,
    "pad_mode": "constant",
    "compress": 2,
    "trim_right_ratio": 1.0,
    "codebook_size": 64,
    "codebook_dim": 8,
    "num_quantizers": 6,
    "use_conv_shortcut": False,
    "vector_quantization_hidden_dimension": 8,
    "num_semantic_quantizers": 1,
    "upsample_groups": 32,
    "num_hidden_layers": 2,
    "intermediate_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "hidden_act": "gelu",
    "max_position_embeddings": 8000,
    "initializer_range": 0.02,
    "norm_eps": 1e-5,
    "use_cache": False,
    "rope_theta": 10000.0,
    "sliding_window": 16,
    "attention_dropout": 0.0,
    "layer_scale_initial_scale": 0.01,
    "attention_bias": False,
}

DECODER_CONFIG: Dict[str, Any] = {
    "attention_bias": False,
    "attention_dropout": 0.0,
    "latent_dim": 32,
    "codebook_dim": 16,
    "codebook_size": 64,
    "decoder_dim": 48,
    "hidden_act": "silu",
    "hidden_size": 24,
    "intermediate_size": 40,
    "layer_scale_initial_scale": 0.01,
    "max_position_embeddings": 8000,
    "head_dim": 8,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "num_quantizers": 4,
    "num_semantic_quantizers": 1,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000,
    "semantic_codebook_size": 128,  # present in the released JSON, ignored by the code
    "sliding_window": 16,
    "upsample_rates": [2, 3, 2],
    "upsampling_ratios": [2, 2],
    "vector_quantization_hidden_dimension": 16,  # present in the released JSON, ignored
}

TOP_CONFIG: Dict[str, Any] = {
    "encoder_valid_num_quantizers": 4,
    "input_sample_rate": SAMPLE_RATE,
    "output_sample_rate": SAMPLE_RATE,
    "decode_upsample_rate": 48,
    "encode_downsample_rate": 48,
}

SAMPLES_PER_FRAME = 48
# Codebook entries whose cluster_usage is below the 1e-5 clamp: a port that divides by the raw
# usage (or uses another epsilon) gets different vectors for them.
TINY_USAGE_ENTRY = 5


def _import_tokenizer_classes():
    from qwen_tts.core.tokenizer_12hz.configuration_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2Config
    from qwen_tts.core.tokenizer_12hz.modeling_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2Model

    return Qwen3TTSTokenizerV2Config, Qwen3TTSTokenizerV2Model


def tiny_config(attn: str = "eager"):
    Config, _ = _import_tokenizer_classes()
    cfg = Config(
        encoder_config=copy.deepcopy(ENCODER_CONFIG),
        decoder_config=copy.deepcopy(DECODER_CONFIG),
        **TOP_CONFIG,
    )
    cfg.architectures = ["Qwen3TTSTokenizerV2Model"]
    cfg._attn_implementation = attn
    cfg.encoder_config._attn_implementation = attn
    cfg.decoder_config._attn_implementation = attn
    return cfg


def calibration_signal(n: int, seed: int) -> np.ndarray:
    """A deterministic speech-like test signal (no espeak-ng needed): a few harmonic tones with
    moving pitch under a syllable-rate envelope, plus noise bursts."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SAMPLE_RATE
    f0 = 120 + 60 * np.sin(2 * np.pi * 1.3 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    x = sum(rng.uniform(0.2, 1.0) / k * np.sin(k * phase + rng.uniform(0, 6)) for k in range(1, 9))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)) ** 2
    noise = rng.standard_normal(n) * (np.sin(2 * np.pi * 2.7 * t) > 0.6)
    y = 0.3 * env * x + 0.05 * noise
    return (0.7 * y / np.abs(y).max()).astype(np.float32)


def _init_weights(model, seed: int) -> None:
    """Random weights scaled so that every branch matters: fan-in scaled matrices, non-trivial
    norms, layer scales, ConvNeXt gammas and SnakeBeta alpha/beta (zeros/0.01 at init would hide
    bugs), codebooks from data (below)."""
    import torch

    g = torch.Generator().manual_seed(seed)

    def normal(shape, std):
        return torch.randn(shape, generator=g) * std

    def uniform(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=g)

    with torch.no_grad():
        owners = dict(model.named_modules())
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            owner_name, leaf = name.rsplit(".", 1)
            owner = owners[owner_name]
            if "codebook" in name:
                continue
            if leaf == "weight" and isinstance(owner, torch.nn.ConvTranspose1d):
                # (in, out, k): every output sample sees k / stride input frames
                fan_in = p.shape[0] * p.shape[2] // owner.stride[0]
                p.copy_(normal(p.shape, 1.0 / np.sqrt(fan_in)))
            elif leaf == "weight" and p.dim() >= 2:
                fan_in = p.shape[1] * (p.shape[2] if p.dim() == 3 else 1)
                p.copy_(normal(p.shape, 1.0 / np.sqrt(fan_in)))
            elif leaf == "bias":
                p.copy_(normal(p.shape, 0.1))
            elif leaf == "weight":  # LayerNorm / RMSNorm
                p.copy_(uniform(p.shape, 0.9, 1.1))
            elif leaf == "scale":  # LayerScale
                p.copy_(uniform(p.shape, 0.2, 0.8))
            elif leaf == "gamma":  # ConvNeXt
                p.copy_(uniform(p.shape, 0.2, 0.8))
            elif leaf in ("alpha", "beta"):  # SnakeBeta, log space
                p.copy_(normal(p.shape, 0.3))
            else:
                raise AssertionError(f"unhandled parameter {name}")
        # Residual units add up: keep the conv decoder's activations near unit scale.
        for name, p in model.named_parameters():
            if name.startswith("decoder.decoder.") and ".conv2.conv." in name:
                p.mul_(0.4)
        for name, b in model.named_buffers():
            if name.endswith("initialized"):
                b.fill_(1.0)


def _init_codebooks(model, seed: int) -> Dict[str, Any]:
    """Codebooks from data, level by level (one k-means-style draw): each level's entries are
    residual vectors of a calibration signal at that level plus a little noise, stored as
    `embed_sum = vector * cluster_usage` with random usages (one below the 1e-5 clamp). The
    decoder's codebooks are the encoder's first levels (a consistent codec)."""
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    enc = model.encoder
    x = torch.from_numpy(calibration_signal(3 * SAMPLE_RATE, seed + 2))[None, None]
    with torch.no_grad():
        emb = enc.encoder(x)
        emb = enc.encoder_transformer(emb.transpose(1, 2)).last_hidden_state.transpose(1, 2)
        emb = enc.downsample(emb)  # (1, D, T)
        q = enc.quantizer
        levels = []
        for rvq in (q.semantic_residual_vector_quantizer, q.acoustic_residual_vector_quantizer):
            residual = rvq.input_proj(emb)[0].T  # (T, d)
            for layer in rvq.layers:
                cb = layer.codebook
                n = cb.codebook_size
                pick = torch.randperm(residual.shape[0], generator=g)[:n]
                vecs = residual[pick] + 0.05 * residual.std() * torch.randn(n, residual.shape[1], generator=g)
                usage = 0.5 + 1.5 * torch.rand(n, generator=g)
                usage[TINY_USAGE_ENTRY] = 1e-7
                eff_usage = usage.clamp(min=1e-5)
                cb.embed_sum.copy_(vecs * eff_usage[:, None])
                cb.cluster_usage.copy_(usage)
                cb._embed = None
                levels.append((vecs.clone(), usage.clone()))
                d = torch.cdist(residual[None], cb.embed[None])[0]
                residual = residual - cb.embed[d.argmin(-1)]
        dec_q = model.decoder.quantizer
        dec_layers = list(dec_q.rvq_first.vq.layers) + list(dec_q.rvq_rest.vq.layers)
        n_sem = q.semantic_residual_vector_quantizer.num_quantizers
        order = [0] + [n_sem + i for i in range(len(dec_layers) - 1)]
        for layer, src in zip(dec_layers, order):
            vecs, usage = levels[src]
            cb = layer._codebook
            cb.embedding_sum.copy_(vecs * usage.clamp(min=1e-5)[:, None])
            cb.cluster_usage.copy_(usage)
    return {"levels": len(levels), "calibration_samples": int(x.shape[-1])}


def _scale_output(model, seed: int) -> float:
    """Rescale the last decoder conv so that decoded calibration audio has std ~0.25 (not ~0,
    not mostly clamped)."""
    import torch

    x = torch.from_numpy(calibration_signal(2 * SAMPLE_RATE, seed + 3))[None]
    with torch.no_grad():
        codes = model.encode(x, torch.ones_like(x, dtype=torch.long), return_dict=True).audio_codes[0]
        dec = model.decoder
        last = dec.decoder[-1]
        hidden = _decoder_until_last_conv(dec, codes.T[None])
        pre = last(hidden)
        factor = 0.25 / float(pre.std())
        last.conv.weight.mul_(factor)
        last.conv.bias.mul_(factor)
    return factor


def _decoder_until_last_conv(dec, codes):
    hidden = dec.quantizer.decode(codes)
    hidden = dec.pre_conv(hidden).transpose(1, 2)
    hidden = dec.pre_transformer(inputs_embeds=hidden).last_hidden_state.permute(0, 2, 1)
    for blocks in dec.upsample:
        for block in blocks:
            hidden = block(hidden)
    for block in dec.decoder[:-1]:
        hidden = block(hidden)
    return hidden


def build_tiny_codec12(out_dir: Path, seed: int = SEED) -> Dict[str, Any]:
    """Create the tiny random-weight 12 Hz tokenizer with the reference classes and save it in
    the layout of a released `speech_tokenizer/` folder (config.json, model.safetensors,
    preprocessor_config.json) under `out_dir`. Deterministic for a given seed. Returns a small
    report. Files already in `out_dir` are replaced; subfolders are kept."""
    import torch
    from safetensors.torch import load_file
    from transformers import EncodecFeatureExtractor

    _, Model = _import_tokenizer_classes()
    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    model = Model(tiny_config("eager")).eval()
    _init_weights(model, seed)
    cb_report = _init_codebooks(model, seed)
    out_scale = _scale_output(model, seed)

    out_dir.mkdir(parents=True, exist_ok=True)
    for f in out_dir.iterdir():
        if f.is_file():
            f.unlink()
    model.save_pretrained(str(out_dir), safe_serialization=True)
    fe = EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0)
    fe.save_pretrained(str(out_dir))
    # save_pretrained records the attention implementation we built with; the released
    # config has none (the tokenizer runs sdpa by default).
    cfg = json.loads((out_dir / "config.json").read_text())
    for sub in (cfg, cfg["encoder_config"], cfg["decoder_config"]):
        sub.pop("_attn_implementation_autoset", None)
        sub.pop("attn_implementation", None)
    dump_json(out_dir / "config.json", cfg)
    allowed = {"config.json", "model.safetensors", "preprocessor_config.json"}
    for f in out_dir.iterdir():
        if f.is_file() and f.name not in allowed:
            f.unlink()
        elif f.is_file():
            f.chmod(0o644)
    stored = load_file(str(out_dir / "model.safetensors"))
    sd = model.state_dict()
    check_equal("stored tensor names", sorted(stored), sorted(sd))
    for k, v in stored.items():
        check_equal(f"stored dtype {k}", v.dtype, torch.float32)
    total = sum(f.stat().st_size for f in out_dir.iterdir() if f.is_file())
    assert total < 1024 * 1024, f"tiny codec too big: {total} bytes"
    return {
        "seed": seed,
        "n_tensors": len(stored),
        "n_encoder_tensors": sum(k.startswith("encoder.") for k in stored),
        "n_decoder_tensors": sum(k.startswith("decoder.") for k in stored),
        "n_params_stored": int(sum(v.numel() for v in stored.values())),
        "checkpoint_bytes": total,
        "codebooks": cb_report,
        "output_conv_scale": out_scale,
    }


# ----------------------------------------------------------------------------
# Goldens
# ----------------------------------------------------------------------------

SPEECH = dict(voice="en-us", speed=170, text="Hello, this is a tiny codec.")
SYNTH_LEN = 4801  # not a multiple of the 48-sample frame, odd number of 25 Hz-style frames
SYNTH_SEED = 11
EDGE_LENGTHS = [1, 47, 48, 49, 95, 97]
STEP_FRAMES = 48  # decoder intermediates: the first 48 frames of the synthetic signal's codes
LONG_FRAMES = 700  # > 2 decode chunks of 300 frames
LONG_SEED = 5
# Short chunked decodes with other chunk parameters (codecs.md §7.1 item 10).
SMALL_CHUNKS = [(7, 3), (2, 3)]
SMALL_CHUNK_FRAMES = 20


def espeak_version() -> str:
    return subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout.strip()


def load_tokenizer(path: Path, attn: str = "eager"):
    """The tiny codec the way a user loads it (`Qwen3TTSTokenizer.from_pretrained`)."""
    import torch

    from qwen_tts.inference.qwen3_tts_tokenizer import Qwen3TTSTokenizer

    kw = {"dtype": torch.float32}
    if attn != "sdpa":
        kw["attn_implementation"] = attn
    return Qwen3TTSTokenizer.from_pretrained(str(path), **kw)


def speech_24k(tok) -> np.ndarray:
    """espeak-ng (22.05 kHz) -> the wrapper's own loader (librosa.load, soxr_hq to 24 kHz)."""
    with tempfile.TemporaryDirectory() as td:
        wav = Path(td) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", SPEECH["voice"], "-s", str(SPEECH["speed"]), "-w", str(wav), SPEECH["text"]],
            check=True,
            capture_output=True,
        )
        y = tok.load_audio(str(wav), target_sr=SAMPLE_RATE)
    assert y.dtype == np.float32 and y.ndim == 1 and np.abs(y).max() > 0.05
    # espeak's leading/trailing silence is cut (keeping 20 ms): silent frames share one latent,
    # so a near-tie there would repeat in every silent frame.
    _, (start, end) = librosa.effects.trim(y, top_db=40)
    return np.ascontiguousarray(y[max(0, start - 480) : end + 480])


class EncoderCapture:
    """Forward hooks on the Mimi encoder: SEANet stages, transformer layers, downsample and the
    quantizer input projections."""

    def __init__(self, mimi, stages: bool):
        self.mimi = mimi
        self.stages = stages
        self.out: Dict[str, Any] = {}

    def _hook(self, key, pick=lambda o: o):
        def f(_m, _i, o):
            self.out[key] = pick(o).detach().clone()[0]

        return f

    def __enter__(self):
        import torch

        m = self.mimi
        hs = [
            m.encoder.register_forward_hook(self._hook("seanet_out")),
            m.encoder_transformer.layers[0].register_forward_hook(self._hook("transformer_layer0_out", lambda o: o[0])),
            m.encoder_transformer.register_forward_hook(self._hook("transformer_out", lambda o: o[0])),
            m.downsample.register_forward_hook(self._hook("downsampled")),
            m.quantizer.semantic_residual_vector_quantizer.input_proj.register_forward_hook(
                self._hook("semantic_proj")
            ),
            m.quantizer.acoustic_residual_vector_quantizer.input_proj.register_forward_hook(
                self._hook("acoustic_proj")
            ),
        ]
        if self.stages:
            hs.append(m.encoder.layers[0].register_forward_hook(self._hook("seanet_conv0")))
            conv_idx = [i for i, l in enumerate(m.encoder.layers) if type(l).__name__ == "MimiConv1d"]
            for n, i in enumerate(conv_idx[1:-1]):
                hs.append(m.encoder.layers[i].register_forward_hook(self._hook(f"seanet_stage{n}")))
        self.hs = hs
        _ = torch
        return self

    def __exit__(self, *exc):
        for h in self.hs:
            h.remove()
        return False


def code_margins(mimi, downsampled, n_levels: int):
    """Per level and frame: (second-best - best) / best Euclidean distance, in float64, along the
    residual path the reference takes. A port's codes can only flip where this is ~1e-6."""
    import torch

    q = mimi.quantizer
    out = []
    x = downsampled[None].double()
    for rvq in (q.semantic_residual_vector_quantizer, q.acoustic_residual_vector_quantizer):
        residual = torch.nn.functional.conv1d(x, rvq.input_proj.weight.double())[0].T
        for layer in rvq.layers:
            if len(out) == n_levels:
                break
            emb = layer.codebook.embed.double()
            d = torch.cdist(residual, emb)
            two = d.topk(2, largest=False).values
            out.append(((two[:, 1] - two[:, 0]) / two[:, 0].clamp(min=1e-12)).float())
            residual = residual - emb[d.argmin(-1)]
    return torch.stack(out)


def encode_case(tok, wave: np.ndarray, stages: bool) -> Dict[str, Any]:
    import torch

    mimi = tok.model.encoder
    with EncoderCapture(mimi, stages) as cap:
        enc = tok.encode(wave, sr=SAMPLE_RATE)
    codes = enc.audio_codes[0]  # (T, 4)
    t = dict(cap.out)
    if not stages:
        del t["transformer_layer0_out"]  # size: kept for the short synthetic signal only
    valid = tok.model.encoder_valid_num_quantizers
    n_all = mimi.config.num_quantizers
    with torch.no_grad():
        all_codes = mimi.quantizer.encode(t["downsampled"][None].clone(), n_all)[:, 0]  # (32-style, T)
    assert torch.equal(codes.T, all_codes[:valid]), "codes = first levels of all levels"
    frames = -(-len(wave) // SAMPLES_PER_FRAME)
    check_equal("frames = ceil(L / 48)", codes.shape[0], frames)
    margins = code_margins(mimi, t["downsampled"], n_all)
    t.update(waveform=torch.from_numpy(wave), codes=codes, all_codes=all_codes, code_margins=margins)
    return t


def decoder_steps(dec, codes_tq) -> Dict[str, Any]:
    """The decoder's forward step by step with its own modules (codes (T, Q)); the final
    waveform is checked to equal `decoder(codes)` bit for bit."""
    import torch

    out: Dict[str, Any] = {}
    with torch.no_grad():
        c = codes_tq.T[None].clone()
        q = dec.quantizer
        sem = q.rvq_first.decode(c[:, : q.n_q_semantic])
        aco = q.rvq_rest.decode(c[:, q.n_q_semantic :])
        h = q.decode(c)
        check_close("quantizer sum", h, sem + aco, rtol=0, atol=0)
        out.update(quantizer_semantic=sem[0], quantizer_acoustic=aco[0], quantizer_out=h[0])
        h = dec.pre_conv(h)
        out["pre_conv_out"] = h[0]
        tr = dec.pre_transformer
        layers: List[Any] = []
        hooks = [l.register_forward_hook(lambda _m, _i, o: layers.append(o.detach().clone()[0])) for l in tr.layers]
        hooks.append(tr.norm.register_forward_hook(lambda _m, _i, o: out.__setitem__("transformer_norm_out", o[0].clone())))
        hooks.append(
            tr.input_proj.register_forward_hook(lambda _m, _i, o: out.__setitem__("transformer_input_proj", o[0].clone()))
        )
        h = tr(inputs_embeds=h.transpose(1, 2)).last_hidden_state
        for hk in hooks:
            hk.remove()
        for i, l in enumerate(layers):
            out[f"transformer_layer{i}_out"] = l
        out["transformer_out"] = h[0]
        h = h.permute(0, 2, 1)
        for i, (trans, convnext) in enumerate(dec.upsample):
            h = trans(h)
            out[f"upsample{i}_transconv"] = h[0]
            h = convnext(h)
            out[f"upsample{i}_convnext"] = h[0]
        h = dec.decoder[0](h)
        out["decoder0_out"] = h[0]
        n_blocks = len(dec.decoder) - 3
        for i in range(n_blocks):
            blk = dec.decoder[1 + i]
            y = blk.block[1](blk.block[0](h))
            out[f"block{i}_transconv"] = y[0]
            h = blk(h)
            out[f"block{i}_out"] = h[0]
        h = dec.decoder[-2](h)
        out["final_snake"] = h[0]
        h = dec.decoder[-1](h)
        out["pre_clamp"] = h[0, 0]
        wav = h.clamp(-1, 1)
        full = dec(c)
        check_close("step-by-step decoder = decoder(codes)", wav, full, rtol=0, atol=0)
        out["waveform"] = wav[0, 0]
    return out


def random_codes(n: int, seed: int, codebook_size: int, q: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, codebook_size, (n, q), generator=g)
    codes[::37, :] = TINY_USAGE_ENTRY  # the entries whose usage is below the clamp
    return codes


def main(fixtures: Path = FIXTURES) -> Dict[str, Any]:
    import torch

    torch.set_grad_enabled(False)
    out = fixtures / CODEC_DIR
    exp = out / "expected"
    report: Dict[str, Any] = {"checkpoint": build_tiny_codec12(out)}
    if exp.exists():
        shutil.rmtree(exp)
    exp.mkdir(parents=True)

    # The user path: `Qwen3TTSTokenizer.from_pretrained`. Its sub-models always run sdpa (they are
    # built with `_from_config`, which ignores an `attn_implementation` kwarg); the goldens come
    # from it, and an eager-attention copy of the same weights cross-checks them.
    tok = load_tokenizer(out, "sdpa")
    model = tok.model
    check_equal("model type", tok.get_model_type(), "qwen3_tts_tokenizer_12hz")
    check_equal("decoder attention", model.decoder.config._attn_implementation, "sdpa")
    check_equal(
        "encoder attention", type(model.encoder.encoder_transformer.layers[0].self_attn).__name__, "MimiSdpaAttention"
    )
    eager = eager_model(out)
    report["attention"] = {
        "from_pretrained": "sdpa (encoder MimiSdpaAttention, decoder sdpa), also with attn_implementation='eager'",
        "eager_probe": probe_eager_kwarg(out),
    }
    report["reload"] = verify_reload(out, model)

    # --- encode: espeak speech and a synthetic signal -------------------------------------
    speech = speech_24k(tok)
    synth = calibration_signal(SYNTH_LEN, SYNTH_SEED)
    cases = {}
    for name, wave, stages in [("speech", speech, False), ("synth", synth, True)]:
        t = encode_case(tok, wave, stages)
        x = torch.from_numpy(wave)[None]
        enc_eager = eager.encode(x, torch.ones_like(x, dtype=torch.long), return_dict=True).audio_codes[0]
        n_diff = int((enc_eager != t["codes"]).sum())
        assert n_diff == 0, f"{name}: {n_diff} eager codes differ from sdpa"
        wav, sr = tok.decode({"audio_codes": [t["codes"]]})
        check_equal("output rate", sr, SAMPLE_RATE)
        t["decoded"] = torch.from_numpy(wav[0])
        wav_eager = eager.decode(t["codes"][None].clone(), return_dict=True).audio_values[0]
        sdpa_diff = check_close(f"{name}: eager decode", wav_eager, wav[0], rtol=0, atol=1e-5)
        save_tensors(exp / f"encode_{name}.safetensors", t)
        codes = t["codes"]
        if name == "synth":
            synth_codes = codes.clone()
        cases[name] = {
            "samples": int(len(wave)),
            "frames": int(codes.shape[0]),
            "frames_25hz": int(t["seanet_out"].shape[-1]),
            "distinct_codes_per_level": [len(set(codes[:, q].tolist())) for q in range(codes.shape[1])],
            "min_code_margin_kept_levels": float(t["code_margins"][: codes.shape[1]].min()),
            "min_code_margin_all_levels": float(t["code_margins"].min()),
            "decoded_std": float(np.std(wav[0])),
            "decoded_clamped_fraction": float(np.mean(np.abs(wav[0]) >= 1.0)),
            "eager_vs_sdpa_decode_max_abs": sdpa_diff,
        }
        assert cases[name]["min_code_margin_kept_levels"] > 1e-4, cases[name]
        assert min(cases[name]["distinct_codes_per_level"]) >= 8, cases[name]
        assert 0.05 < cases[name]["decoded_std"] < 0.6 and cases[name]["decoded_clamped_fraction"] < 0.05, cases[name]
    report["encode"] = cases

    # --- encode: edge lengths ----------------------------------------------------------------
    edge = {}
    for n in EDGE_LENGTHS:
        w = synth[:n].copy()
        codes = tok.encode(w, sr=SAMPLE_RATE).audio_codes[0]
        check_equal(f"frames for {n} samples", codes.shape[0], -(-n // SAMPLES_PER_FRAME))
        edge[f"waveform_{n}"] = torch.from_numpy(w)
        edge[f"codes_{n}"] = codes
    silence = np.zeros(100, dtype=np.float32)
    edge["waveform_silence"] = torch.from_numpy(silence)
    edge["codes_silence"] = tok.encode(silence, sr=SAMPLE_RATE).audio_codes[0]
    save_tensors(exp / "encode_lengths.safetensors", edge)

    # --- decoder step by step (single chunk) ----------------------------------------------
    steps = decoder_steps(model.decoder, synth_codes[:STEP_FRAMES])
    save_tensors(exp / "decode_steps.safetensors", steps)
    report["decode_steps"] = {k: list(v.shape) for k, v in steps.items()}

    # --- decode longer than one chunk ------------------------------------------------------
    dcfg = model.config.decoder_config
    long_codes = random_codes(LONG_FRAMES, LONG_SEED, dcfg.codebook_size, dcfg.num_quantizers)
    wav_long = torch.from_numpy(tok.decode({"audio_codes": [long_codes]})[0][0])
    chunked = model.decoder.chunked_decode(long_codes.T[None])[0, 0]
    check_close("wrapper decode = chunked_decode", wav_long, chunked, rtol=0, atol=0)
    full = model.decoder(long_codes.T[None])[0, 0]
    first = 300 * SAMPLES_PER_FRAME
    check_close("chunk 1 = full forward", chunked[:first], full[:first], rtol=0, atol=1e-5)
    full_vs_chunked = float((chunked[first:] - full[first:]).abs().max())
    assert full_vs_chunked > 1e-3, "the chunk restart must matter for this test"
    # Causality: every prefix decode equals the prefix of the long decode (chunk boundaries are
    # absolute), so the Rust tests can check prefixes against `waveform` alone.
    prefix_checks = {}
    for t in [1, 6, 7, 300, 301, 325, 326, 601]:
        w = torch.from_numpy(tok.decode({"audio_codes": [long_codes[:t]]})[0][0])
        prefix_checks[t] = check_close(f"prefix {t}", w, wav_long[: t * SAMPLES_PER_FRAME], rtol=0, atol=1e-5)
    small = {}
    for cs, ctx in SMALL_CHUNKS:
        c = long_codes[:SMALL_CHUNK_FRAMES].T[None]
        small[f"chunked_{cs}_{ctx}"] = model.decoder.chunked_decode(c, chunk_size=cs, left_context_size=ctx)[0, 0]
    # Sliding window bites: the same 40 frames with a window as long as the input differ.
    win_model = model.decoder.pre_transformer
    saved = win_model.config.sliding_window
    c40 = long_codes[:40].T[None]
    base = model.decoder(c40)
    win_model.config.sliding_window = 10_000
    for layer in win_model.layers:
        layer.self_attn.sliding_window = 10_000
    wide = model.decoder(c40)
    win_model.config.sliding_window = saved
    for layer in win_model.layers:
        layer.self_attn.sliding_window = saved
    check_close("window restored", model.decoder(c40), base, rtol=0, atol=0)
    window_effect = float((wide - base).abs().max())
    assert window_effect > 1e-3, "the sliding window must matter for this test"
    save_tensors(
        exp / "decode_long.safetensors",
        {"codes": long_codes, "waveform": wav_long, "full_forward": full, **small},
    )
    report["decode_long"] = {
        "frames": LONG_FRAMES,
        "chunks": [300, 300, 100],
        "max_abs_full_vs_chunked_after_frame_300": full_vs_chunked,
        "prefix_decode_max_abs_vs_long": {str(k): v for k, v in prefix_checks.items()},
        "sliding_window_effect_max_abs_40_frames": window_effect,
        "small_chunks": [list(x) for x in SMALL_CHUNKS],
    }

    # --- what the encoder's configured sliding_window does (nothing under eager/sdpa) ------
    report["encoder_sliding_window_ignored"] = encoder_window_probe(tok, speech)

    meta = {
        "espeak": {"version": espeak_version(), **SPEECH},
        "samples_per_frame": SAMPLES_PER_FRAME,
        "sample_rate": SAMPLE_RATE,
        "tiny_usage_entry": TINY_USAGE_ENTRY,
        "edge_lengths": EDGE_LENGTHS,
        "report": report,
    }
    dump_json(exp / "codec12_cases.json", meta)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert total < 4 * 1024 * 1024, f"codec12-tiny fixtures too big: {total}"
    for p in out.rglob("*"):
        assert p.stat().st_size < 3 * 1024 * 1024, p
    report["total_bytes"] = total
    RUN_NOTES["codec12"] = {"espeak": meta["espeak"]}
    return report


def eager_model(out: Path):
    """The saved codec with eager attention in every sub-model (built from the config, then the
    stored weights loaded strictly)."""
    from safetensors.torch import load_file

    _, Model = _import_tokenizer_classes()
    m = Model(tiny_config("eager")).eval()
    m.load_state_dict(load_file(str(out / "model.safetensors")), strict=True)
    check_equal("eager encoder", type(m.encoder.encoder_transformer.layers[0].self_attn).__name__, "MimiAttention")
    check_equal("eager decoder", m.decoder.config._attn_implementation, "eager")
    return m


def probe_eager_kwarg(out: Path) -> Dict[str, str]:
    tok = load_tokenizer(out, "eager")
    m = tok.model
    return {
        "top": m.config._attn_implementation,
        "encoder_attention_class": type(m.encoder.encoder_transformer.layers[0].self_attn).__name__,
        "decoder": m.decoder.config._attn_implementation,
    }


def verify_reload(out: Path, model) -> Dict[str, Any]:
    from safetensors.torch import load_file

    stored = load_file(str(out / "model.safetensors"))
    sd = model.state_dict()
    check_equal("state dict keys", sorted(sd), sorted(stored))
    for k, v in stored.items():
        check_close(f"reloaded {k}", sd[k], v, rtol=0, atol=0)
    fe = json.loads((out / "preprocessor_config.json").read_text())
    check_equal("feature extractor", fe["feature_extractor_type"], "EncodecFeatureExtractor")
    check_equal("feature extractor rate", fe["sampling_rate"], SAMPLE_RATE)
    return {"reload_bit_exact": True, "n_tensors": len(stored)}


def encoder_window_probe(tok, wave: np.ndarray) -> Dict[str, Any]:
    """Encoder transformer output with the configured sliding_window vs an unlimited one: the
    reference builds a plain causal mask, so they are identical."""
    import torch

    mimi = tok.model.encoder
    x = torch.from_numpy(wave)[None, None]
    emb = mimi.encoder(x).transpose(1, 2)
    a = mimi.encoder_transformer(emb).last_hidden_state
    saved = mimi.config.sliding_window
    mimi.config.sliding_window = 1
    for layer in mimi.encoder_transformer.layers:
        layer.self_attn.sliding_window = 1
    b = mimi.encoder_transformer(emb).last_hidden_state
    mimi.config.sliding_window = saved
    for layer in mimi.encoder_transformer.layers:
        layer.self_attn.sliding_window = saved
    check_close("encoder sliding window has no effect", a, b, rtol=0, atol=0)
    return {"frames_25hz": int(emb.shape[1]), "configured_window": saved, "identical_with_window_1": True}
