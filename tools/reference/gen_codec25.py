"""tests/fixtures/codec25-tiny/: a tiny Qwen3-TTS 25 Hz speech tokenizer and its goldens.

The checkpoint is built with qwen_tts's own classes (`Qwen3TTSTokenizerV1Config`,
`Qwen3TTSTokenizerV1Model`, `save_pretrained`), plus the files `from_pretrained` needs next to
it: `preprocessor_config.json` (a 16 kHz EncodecFeatureExtractor) and `campplus.onnx`. The real
CAM++ x-vector model is not redistributable here, so `campplus.onnx` is a tiny random network
with CAM++'s input/output contract (input `(1, T, 80)` fbank features, output `(1, 192)`),
exported with `torch.onnx.export` (TorchScript exporter). It is CAM++ in miniature (see
`TinyCamPlus`), so the graph has the op kinds of an exported CAM++: Conv 2-D/1-D (strided,
dilated), BatchNormalization, Relu, Sigmoid, ReduceMean, ceil-mode AveragePool with
Unsqueeze/Expand/Reshape/Slice and shape arithmetic (segment pooling), Concat, the unbiased std.

Tiny config (codecs.md §7.3, narrowed to stay well under 2 MB): encoder n_state 48, 4 heads,
3 layers, VQ after layer 2, windows of 4 post-conv frames (conv chunks of 8 mel frames), codebook
64 x 48; DiT 4 layers (hidden 32, 2 heads x 16) with look-back layers [0, 3] and look-ahead [2] (all three mask kinds plus a
block-local layer), block size 4, repeats 2, ECAPA with Res2Net scale 4 (chained branch);
BigVGAN 32 -> 16 -> 8 -> 4 channels at rates 5, 3, 2 (two causal "type 2" stages and one
"type 1" stage): 30 samples per mel frame, 60 per code.

Goldens (expected/*.safetensors): the utterance mel, the codes (two lengths), the x-vector path
(sox-normalised audio, CMN fbank, raw and normalised embedding, reference mel), the decoder
with injected noise (the reference's own `torch.randn` draw after `manual_seed`), the time grid,
the DiT velocity at step 0, the DiT output mel, and the BigVGAN waveform.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any, Dict

import numpy as np

from common import FIXTURES, check_close, check_equal, dump_json, save_tensors

CODEC_DIR = "codec25-tiny"
SAMPLE_RATE = 16000
SEED = 7
NOISE_SEED = 1234
LEN_A = 7000  # padded to 7040: 44 mel frames, conv chunks 8x5 + 4, 11 codes
LEN_B = 6400  # an exact multiple of 640: 10 codes

ENCODER_CONFIG: Dict[str, Any] = {
    "n_mels": 128,
    "n_ctx": 8,
    "n_state": 48,
    "n_head": 4,
    "n_layer": 3,
    "n_window": 4,
    "output_dim": 16,
    "audio_vq_type": "GRVQ",
    "audio_vq_layers": 2,
    "audio_vq_codebook_size": 64,
    "audio_vq_codebook_dim": 48,
    "audio_vq_pe": True,
    "audio_vq_ds_rate": 2,
}
DIT_CONFIG: Dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 4,
    "num_attention_heads": 2,
    "ff_mult": 2,
    "emb_dim": 32,
    "head_dim": 16,
    "block_size": 4,
    "look_ahead_layers": [2],
    "look_backward_layers": [0, 3],
    "repeats": 2,
    "num_embeds": 64,
    "mel_dim": 80,
    "enc_emb_dim": 192,
    "enc_dim": 16,
    "enc_channels": [16, 16, 16, 16, 48],
    "enc_kernel_sizes": [5, 3, 3, 3, 1],
    "enc_dilations": [1, 2, 3, 4, 1],
    "enc_attention_channels": 16,
    "enc_res2net_scale": 4,
    "enc_se_channels": 16,
}
BIGVGAN_CONFIG: Dict[str, Any] = {
    "mel_dim": 80,
    "upsample_initial_channel": 32,
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "upsample_rates": [5, 3, 2],
    "upsample_kernel_sizes": [11, 7, 4],
}
TOP_CONFIG: Dict[str, Any] = {
    "input_sample_rate": SAMPLE_RATE,
    "output_sample_rate": 1500,  # 25 codes/s x 60 samples per code
    "decode_upsample_rate": 60,
    "encode_downsample_rate": 640,
}


def _classes():
    from qwen_tts.core.tokenizer_25hz.configuration_qwen3_tts_tokenizer_v1 import Qwen3TTSTokenizerV1Config
    from qwen_tts.core.tokenizer_25hz.modeling_qwen3_tts_tokenizer_v1 import Qwen3TTSTokenizerV1Model

    return Qwen3TTSTokenizerV1Config, Qwen3TTSTokenizerV1Model


def tiny_config():
    Config, _ = _classes()
    cfg = Config(
        encoder_config=copy.deepcopy(ENCODER_CONFIG),
        decoder_config={"dit_config": copy.deepcopy(DIT_CONFIG), "bigvgan_config": copy.deepcopy(BIGVGAN_CONFIG)},
        **TOP_CONFIG,
    )
    cfg.architectures = ["Qwen3TTSTokenizerV1Model"]
    return cfg


def calibration_signal(n: int, seed: int) -> np.ndarray:
    """Deterministic speech-like signal: harmonics with moving pitch, syllable envelope, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SAMPLE_RATE
    f0 = 140 + 50 * np.sin(2 * np.pi * 1.7 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    x = sum(rng.uniform(0.2, 1.0) / k * np.sin(k * phase + rng.uniform(0, 6)) for k in range(1, 12))
    env = 0.4 + 0.6 * np.sin(2 * np.pi * 5.0 * t + rng.uniform(0, 6)) ** 2
    noise = rng.standard_normal(n) * (np.sin(2 * np.pi * 3.1 * t) > 0.5)
    y = 0.3 * env * x + 0.04 * noise
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def _init_weights(model, seed: int) -> None:
    """Fan-in scaled random weights; non-trivial AdaLN, norms, Snake alpha/beta and biases."""
    import torch

    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            fan_in = p[0].numel()
            std = 1.0 / np.sqrt(max(fan_in, 1))
            if "codec_embed" in name or "audio_bos" in name:
                std = 1.0
            p.data.copy_(torch.randn(p.shape, generator=g) * std)
        elif name.endswith(".alpha") or name.endswith(".beta"):
            p.data.copy_(torch.randn(p.shape, generator=g) * 0.4)
        elif name.endswith("ln.weight") or name.endswith("ln_post.weight"):
            p.data.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
        else:
            p.data.copy_(torch.randn(p.shape, generator=g) * 0.1)
    # AdaLN modulation: keep the gates and scales O(0.3) so every branch matters.
    dit = model.decoder.dit
    for lin in [b.attn_norm.linear for b in dit.transformer_blocks] + [dit.norm_out.linear]:
        lin.weight.data.mul_(0.3)
    # Output scale: keep the waveform mostly inside the final clamp (a clamped sample hides
    # differences); measured in `report["decode"]["clamped_fraction"]`.
    model.decoder.bigvgan.conv_post.weight.data.mul_(0.12)


def _init_codebook(model, wave: np.ndarray, seed: int) -> Dict[str, Any]:
    """Codebook entries = pre-VQ vectors of the calibration signal plus noise, so that codes are
    diverse; report the smallest relative distance gap on the golden inputs."""
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    pre = pre_vq(model, wave)
    n = model.encoder.tokenizer.audio_vq_codebook_size
    d = pre.shape[1]
    idx = torch.randint(0, pre.shape[0], (n,), generator=g)
    scale = pre.std()
    cb = pre[idx] + torch.randn(n, d, generator=g) * scale * 0.8
    q = model.encoder.tokenizer.audio_quantizer.rvqs[0]
    q.embed.data[0].copy_(cb)
    q.embed_avg.data[0].copy_(cb)
    q.cluster_size.data.fill_(1.0)
    q.inited.data.fill_(1.0)
    return {"pre_vq_std": float(scale)}


def pre_vq(model, wave: np.ndarray):
    """Packed output of `audio_vq_downsample` (N, D) for one utterance, via a forward hook."""
    import torch

    enc = model.encoder
    got = {}
    h = enc.tokenizer.audio_vq_downsample.register_forward_hook(lambda m, i, o: got.__setitem__("x", o))
    enc.quantize_speech([torch.from_numpy(wave)])
    h.remove()
    return got["x"][0].transpose(0, 1).contiguous()


def code_margin(model, wave: np.ndarray) -> float:
    import torch

    x = pre_vq(model, wave)
    e = model.encoder.tokenizer.audio_quantizer.rvqs[0].embed[0]
    dist = (x.double()[:, None, :] - e.double()[None]).pow(2).sum(-1)
    top2 = dist.topk(2, dim=1, largest=False).values
    return float(((top2[:, 1] - top2[:, 0]) / top2[:, 0]).min())


class TinyCamPlus:
    """Factory of the tiny speaker network (CAM++ contract: (1, T, 80) -> (1, 192))."""

    @staticmethod
    def build(seed: int):
        import torch
        import torch.nn.functional as F
        from torch import nn

        class Net(nn.Module):
            """CAM++ in miniature (3D-Speaker's layout): FCM 2-D head with a (2, 1)-strided
            conv, flatten to (B, C*F, T), a strided TDNN, a dense CAM block (BN -> ReLU -> 1x1
            bottleneck, BN -> ReLU -> context-aware masking with the utterance mean plus
            ceil-mode segment pooling expanded back over time, dense concatenation), a transit
            layer, statistics pooling with the unbiased std, and a dense layer (1x1 conv + affine-free
            BN on a (B, C, 1) view)."""

            def __init__(self):
                super().__init__()
                self.conv2d = nn.Conv2d(1, 4, 3, stride=(2, 1), padding=1, bias=False)
                self.bn2d = nn.BatchNorm2d(4)
                self.tdnn = nn.Conv1d(4 * 40, 16, 5, stride=2, padding=2, bias=False)
                self.tdnn_bn = nn.BatchNorm1d(16)
                self.bn_a = nn.BatchNorm1d(16)
                self.bottleneck = nn.Conv1d(16, 12, 1, bias=False)
                self.bn_b = nn.BatchNorm1d(12)
                self.local = nn.Conv1d(12, 8, 3, padding=2, dilation=2, bias=False)
                self.cam1 = nn.Conv1d(12, 6, 1)
                self.cam2 = nn.Conv1d(6, 8, 1)
                self.bn_t = nn.BatchNorm1d(24)
                self.transit = nn.Conv1d(24, 16, 1, bias=False)
                self.dense = nn.Conv1d(32, 192, 1, bias=False)
                self.bn_out = nn.BatchNorm1d(192, affine=False)

            @staticmethod
            def seg_pooling(x, seg_len=5):
                seg = F.avg_pool1d(x, kernel_size=seg_len, stride=seg_len, ceil_mode=True)
                shape = seg.shape
                seg = seg.unsqueeze(-1).expand(*shape, seg_len).reshape(*shape[:-1], -1)
                return seg[..., : x.shape[-1]]

            def forward(self, x):
                x = x.permute(0, 2, 1)  # (B, 80, T)
                x = x.unsqueeze(1)  # (B, 1, 80, T)
                x = F.relu(self.bn2d(self.conv2d(x)))  # (B, 4, 40, T)
                shape = x.shape
                x = x.reshape(shape[0], shape[1] * shape[2], shape[3])
                x = F.relu(self.tdnn_bn(self.tdnn(x)))  # (B, 16, T/2)
                h = self.bottleneck(F.relu(self.bn_a(x)))
                h = F.relu(self.bn_b(h))
                y = self.local(h)
                context = h.mean(-1, keepdim=True) + self.seg_pooling(h)
                m = torch.sigmoid(self.cam2(F.relu(self.cam1(context))))
                x = torch.cat([x, y * m], dim=1)  # dense connection
                x = self.transit(F.relu(self.bn_t(x)))
                stats = torch.cat([x.mean(dim=-1), x.std(dim=-1, unbiased=True)], dim=-1)
                y = self.bn_out(self.dense(stats.unsqueeze(dim=-1)))
                return y.squeeze(dim=-1)

        g = torch.Generator().manual_seed(seed)
        net = Net().eval()
        for name, p in net.named_parameters():
            if p.dim() >= 2:
                p.data.copy_(torch.randn(p.shape, generator=g) / np.sqrt(p[0].numel()))
            elif name.endswith("weight"):
                p.data.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.data.copy_(0.1 * torch.randn(p.shape, generator=g))
        for name, b in net.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.2 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
        return net

    @staticmethod
    def export(net, path: Path) -> None:
        import io
        import warnings

        import torch

        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                torch.randn(1, 50, 80),
                buf,
                dynamo=False,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "B", 1: "T"}, "output": {0: "B"}},
                opset_version=13,
                do_constant_folding=True,
            )
        path.write_bytes(buf.getvalue())
        path.chmod(0o644)


def build_tiny_codec25(out_dir: Path, seed: int = SEED) -> Dict[str, Any]:
    import torch
    from safetensors.torch import load_file
    from transformers import EncodecFeatureExtractor

    _, Model = _classes()
    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    model = Model(tiny_config()).eval()
    _init_weights(model, seed)
    cb = _init_codebook(model, calibration_signal(LEN_A, seed + 100), seed)
    # Output scale: keep the waveform mostly inside the clamp.
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in out_dir.iterdir():
        if f.is_file():
            f.unlink()
    model.save_pretrained(str(out_dir), safe_serialization=True)
    # The wrapper calls the extractor with `raw_audio` and reads `input_values`/`padding_mask`:
    # an EncodecFeatureExtractor at 16 kHz (what the 12 Hz folders ship, at their rate).
    fe = EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0)
    fe.save_pretrained(str(out_dir))
    cfg = json.loads((out_dir / "config.json").read_text())
    for sub in (cfg, cfg["encoder_config"], cfg["decoder_config"]):
        sub.pop("_attn_implementation_autoset", None)
        sub.pop("attn_implementation", None)
    dump_json(out_dir / "config.json", cfg)
    TinyCamPlus.export(TinyCamPlus.build(seed + 2), out_dir / "campplus.onnx")
    for f in out_dir.iterdir():
        if f.is_file():
            f.chmod(0o644)
    stored = load_file(str(out_dir / "model.safetensors"))
    sd = model.state_dict()
    check_equal("stored tensor names", sorted(stored), sorted(sd))
    total = sum(f.stat().st_size for f in out_dir.iterdir() if f.is_file())
    assert total < 2 * 1024 * 1024, f"tiny codec too big: {total} bytes"
    return {"seed": seed, "n_tensors": len(stored), "checkpoint_bytes": total, "codebook": cb}


def load_tokenizer(path: Path):
    import torch

    from qwen_tts.inference.qwen3_tts_tokenizer import Qwen3TTSTokenizer

    return Qwen3TTSTokenizer.from_pretrained(str(path), dtype=torch.float32)


def main(fixtures: Path = FIXTURES) -> Dict[str, Any]:
    import torch
    import torchaudio.compliance.kaldi as kaldi

    from qwen_tts.core.tokenizer_25hz.vq.whisper_encoder import get_mel_audio

    torch.set_grad_enabled(False)
    out = fixtures / CODEC_DIR
    exp = out / "expected"
    report: Dict[str, Any] = {"checkpoint": build_tiny_codec25(out)}
    if exp.exists():
        shutil.rmtree(exp)
    exp.mkdir(parents=True)

    tok = load_tokenizer(out)
    model = tok.model.eval()
    check_equal("model type", tok.get_model_type(), "qwen3_tts_tokenizer_25hz")
    xv = model.encoder_xvector_extractor

    wave_a = calibration_signal(LEN_A, SEED + 100)
    wave_b = calibration_signal(LEN_B, SEED + 200)

    # --- encode ----------------------------------------------------------------------------
    enc = tok.encode([wave_a, wave_b], sr=SAMPLE_RATE)
    codes_a, codes_b = enc.audio_codes[0], enc.audio_codes[1]
    check_equal("codes a", codes_a.shape[0], 11)
    check_equal("codes b", codes_b.shape[0], 10)
    single = tok.encode(wave_a, sr=SAMPLE_RATE)
    check_equal("batch vs single codes", single.audio_codes[0].tolist(), codes_a.tolist())
    mel_a = get_mel_audio(torch.from_numpy(wave_a), padding=True, audio_vq_ds_rate=2)
    margins = [code_margin(model, wave_a), code_margin(model, wave_b)]
    assert min(margins) > 2e-4, margins
    assert len(set(codes_a.tolist())) >= 5, codes_a

    # --- x-vector path ---------------------------------------------------------------------
    norm_a = xv.sox_norm(wave_a)
    feat = kaldi.fbank(torch.from_numpy(norm_a.copy())[None], num_mel_bins=80, dither=0, sample_frequency=16000)
    feat_cmn = feat - feat.mean(dim=0, keepdim=True)
    raw = xv.ort_session.run(None, {xv.ort_session.get_inputs()[0].name: feat_cmn[None].numpy()})[0]
    xvec, ref_mel = xv.extract_code(wave_a)
    check_close("xvector", enc.xvectors[0], xvec, rtol=0, atol=0)
    check_close("ref mel", enc.ref_mels[0], ref_mel, rtol=0, atol=0)

    save_tensors(
        exp / "encode.safetensors",
        {
            "waveform_a": wave_a,
            "waveform_b": wave_b,
            "mel_a": mel_a,
            "codes_a": codes_a,
            "codes_b": codes_b,
            "pre_vq_a": pre_vq(model, wave_a),
            "sox_norm_a": norm_a,
            "fbank_a": feat,
            "fbank_cmn_a": feat_cmn,
            "xvector_raw_a": raw,
            "xvector_a": enc.xvectors[0],
            "ref_mel_a": enc.ref_mels[0],
            "xvector_b": enc.xvectors[1],
            "ref_mel_b": enc.ref_mels[1],
        },
    )

    # --- decode with the reference's noise draw -------------------------------------------
    dit = model.decoder.dit
    t_mel = codes_a.shape[0] * DIT_CONFIG["repeats"]
    torch.manual_seed(NOISE_SEED)
    noise = torch.randn([1, 30000, DIT_CONFIG["mel_dim"]])[:, :t_mel].clone()

    steps = {}
    orig = type(dit).forward

    def spy(self, *a, **k):
        o = orig(self, *a, **k)
        if "velocity_raw_0" not in steps:
            steps["velocity_raw_0"] = o.clone()
        return o

    type(dit).forward = spy
    try:
        torch.manual_seed(NOISE_SEED)
        mel = dit.sample(enc.xvectors[0][None], enc.ref_mels[0][None], codes_a[None], num_steps=10,
                         guidance_scale=0.5, sway_coefficient=-1.0)
    finally:
        type(dit).forward = orig
    wav = model.decoder.bigvgan(mel)
    torch.manual_seed(NOISE_SEED)
    dec = tok.decode({"audio_codes": [codes_a], "xvectors": [enc.xvectors[0]], "ref_mels": [enc.ref_mels[0]]})
    full_wav = torch.from_numpy(dec[0][0])
    check_equal("decode length", full_wav.shape[0], codes_a.shape[0] * TOP_CONFIG["decode_upsample_rate"])
    check_close("decode vs pieces", full_wav, wav[0][: full_wav.shape[0]], rtol=0, atol=0)
    grid = torch.linspace(0, 1, 10)
    grid = grid + -1.0 * (torch.cos(torch.pi / 2 * grid) - 1 + grid)
    # Two-step solve as well (other grid).
    torch.manual_seed(NOISE_SEED)
    mel2 = dit.sample(enc.xvectors[0][None], enc.ref_mels[0][None], codes_a[None], num_steps=3)
    w = wav[0].numpy()
    assert np.mean(np.abs(w) >= 1.0) < 0.05 and w.std() > 0.02, (w.std(), np.mean(np.abs(w) >= 1.0))
    report["decode"] = {
        "t_mel": t_mel,
        "samples": int(w.shape[0]),
        "std": float(w.std()),
        "clamped_fraction": float(np.mean(np.abs(w) >= 1.0)),
        "mel_range": [float(mel.min()), float(mel.max())],
    }
    save_tensors(
        exp / "decode.safetensors",
        {
            "codes": codes_a,
            "xvector": enc.xvectors[0],
            "ref_mel": enc.ref_mels[0],
            "noise": noise[0],
            "time_grid": grid,
            "velocity_raw_0": steps["velocity_raw_0"],
            "mel": mel[0],
            "mel_3steps": mel2[0],
            "waveform": wav[0],
            "decoded": full_wav,
        },
    )
    report["encode"] = {"codes_a": codes_a.tolist(), "codes_b": codes_b.tolist(), "min_code_margin": min(margins)}
    dump_json(exp / "codec25_cases.json", report)
    return report


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
