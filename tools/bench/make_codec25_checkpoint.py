"""Writes a full-size, random-weight Qwen3-TTS 25 Hz speech tokenizer (Qwen3TTSTokenizerV1) for speed benchmarks.

The 25 Hz tokenizer's weights are not released (codecs.md §3), so "full size" means the shapes
of the package's config class defaults (`Qwen3TTSTokenizerV1Config` and its sub-configs in
qwen-tts 0.1.1, codecs.md §3.6), with the changes the digest identifies as needed for the code
to run at all / as the intended release shapes:

- `input_sample_rate` 16000 (the class default 24000 is a copy-paste: the Whisper mel, the
  fbank and the reference mel all hard-code 16 kHz), `encode_downsample_rate` 640 (what the
  code computes: 160 x 2 x audio_vq_ds_rate);
- `repeats` 4 instead of 2: with 2 the decoder makes 480 samples per code, i.e. 12 kHz for
  25 Hz codes; 4 gives the 100 Hz mel (the rate of the reference mel) and 960 samples per code
  = 24 kHz = `output_sample_rate` (codecs.md §3.1: "the real config uses repeats=4");
  `decode_upsample_rate` 960 accordingly (the default 1920 is a placeholder used only to trim);
- `num_embeds` 32768 instead of 8193: the codebook has 32768 entries, and with 8193 rows the
  reference's code embedding would fail on any code >= 8194 (codecs.md §3.6 "contradictions").

Everything else is the class default: encoder n_state 1280, 20 heads, 32 layers (VQ after
layer 6; layers 7..32 are stored and loaded but never run by tokenization), n_window 100,
codebook 32768 x 1280; DiT 1024 wide, 22 layers, 16 heads x 64, ff_mult 2, block 24,
look-ahead [10], look-back [0, 20], ECAPA (256,256,256,256,768); BigVGAN 1536 initial
channels, rates 5,3,2,2,2,2 (240 samples per mel frame). The checkpoint is float32
(1,210.6 M stored elements, 4.84 GB).

`campplus.onnx`: a CAM++ with the shapes of 3D-Speaker's `CAMPPlus(embedding_size=192)` as
CosyVoice ships it (about 7.2 M parameters): FCM head (32-channel 3x3 conv, two stages of two
basic residual blocks with frequency stride 2, a (2,1)-strided conv: 32 x 10 = 320 channels),
a 5-tap stride-2 TDNN to 128 channels, three dense CAM blocks of (12, 24, 16) layers (growth
32, bottleneck 4 x 32 = 128, kernel 3, dilation 1/2/2, CAM context = utterance mean +
100-frame segment means) each followed by a halving transit layer (512->256, 1024->512,
1024->512), BN+ReLU, mean+std statistics pooling and a 1024->192 dense layer with affine-free
BatchNorm. The layout follows 3D-Speaker's speakerlab/models/campplus (DTDNN.py, layers.py),
read through the `search` tool; this is an independent re-implementation, random weights and
random BatchNorm statistics, exported with `torch.onnx.export` exactly as the tiny fixture's
`TinyCamPlus` (tools/reference/gen_codec25.py: TorchScript exporter, opset 13, dynamic T).

Weights: fan-in scaled N(0, 1/fan_in) matrices, small random biases and Snake alpha/beta,
the AdaLN linears x 0.3, BigVGAN's last conv x 0.12 (gen_codec25's `_init_weights`); the
codebook is the pre-VQ vectors of the bench speech plus noise (as in the tiny fixture), so the
codes are diverse and far from ties (the smallest relative distance gap is recorded).

It also writes `bench-audio/speech_30s.wav`: 30 s of espeak-ng speech at 16 kHz, float32 (the
same source as make_asr_checkpoint.py; its synthetic fallback when espeak-ng is missing). Both
benches encode the first N seconds of it.

Idempotent: if `<out>/bench_checkpoint.json` exists with the same generator version and every
file is present, nothing is done (`--force` rebuilds).

    /work/venv-ref/bin/python tools/bench/make_codec25_checkpoint.py [--out bench-models/codec25]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(REPO_ROOT / "tools" / "reference"))
sys.path.insert(0, str(HERE))

from common import dump_json  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "bench-models" / "codec25"
GENERATOR_VERSION = 1
SEED = 20250125
SAMPLE_RATE = 16000
AUDIO_SECONDS = 30
AUDIO_FILE = "bench-audio/speech_30s.wav"
FILES = ["config.json", "model.safetensors", "preprocessor_config.json", "campplus.onnx", AUDIO_FILE]

# Only the values that differ from the config class defaults (see the docstring).
OVERRIDES = {
    "input_sample_rate": 16000,
    "output_sample_rate": 24000,
    "encode_downsample_rate": 640,
    "decode_upsample_rate": 960,
}
DIT_OVERRIDES = {"repeats": 4, "num_embeds": 32768}

# CAM++ (3D-Speaker CAMPPlus as in CosyVoice's campplus.onnx)
CAMPP_FEAT = 80
CAMPP_EMBED = 192
CAMPP_GROWTH = 32
CAMPP_BN_SIZE = 4
CAMPP_INIT_CHANNELS = 128
CAMPP_BLOCKS = ((12, 3, 1), (24, 3, 2), (16, 3, 2))  # (layers, kernel, dilation)
CAMPP_FCM_CHANNELS = 32
CAMPP_SEGMENT = 100


def build_campplus(seed: int):
    """A CAM++ with the released shapes and random weights / BatchNorm statistics (eval mode)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    def bn_relu(ch):
        return nn.Sequential(nn.BatchNorm1d(ch), nn.ReLU())

    class ResBlock2d(nn.Module):
        def __init__(self, cin, cout, fstride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride=(fstride, 1), padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = nn.Sequential()
            if fstride != 1 or cin != cout:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride=(fstride, 1), bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y)) + self.shortcut(x)
            return F.relu(y)

    class Fcm(nn.Module):
        def __init__(self, ch=CAMPP_FCM_CHANNELS, feat=CAMPP_FEAT):
            super().__init__()
            self.conv1 = nn.Conv2d(1, ch, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(ch)
            self.layer1 = nn.Sequential(ResBlock2d(ch, ch, 2), ResBlock2d(ch, ch, 1))
            self.layer2 = nn.Sequential(ResBlock2d(ch, ch, 2), ResBlock2d(ch, ch, 1))
            self.conv2 = nn.Conv2d(ch, ch, 3, stride=(2, 1), padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(ch)
            self.out_channels = ch * (feat // 8)

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
            y = self.layer2(self.layer1(y))
            y = F.relu(self.bn2(self.conv2(y)))
            b, c, f, t = y.shape
            return y.reshape(b, c * f, t)

    class CamLayer(nn.Module):
        """BN-ReLU, 1x1 bottleneck, BN-ReLU, then a dilated conv masked by a context gate."""

        def __init__(self, cin, growth, bottleneck, kernel, dilation):
            super().__init__()
            self.pre = bn_relu(cin)
            self.bottleneck = nn.Conv1d(cin, bottleneck, 1, bias=False)
            self.mid = bn_relu(bottleneck)
            pad = (kernel - 1) // 2 * dilation
            self.local = nn.Conv1d(bottleneck, growth, kernel, padding=pad, dilation=dilation, bias=False)
            self.gate1 = nn.Conv1d(bottleneck, bottleneck // 2, 1)
            self.gate2 = nn.Conv1d(bottleneck // 2, growth, 1)

        @staticmethod
        def segment_means(h):
            seg = F.avg_pool1d(h, kernel_size=CAMPP_SEGMENT, stride=CAMPP_SEGMENT, ceil_mode=True)
            shape = seg.shape
            seg = seg.unsqueeze(-1).expand(*shape, CAMPP_SEGMENT).reshape(*shape[:-1], -1)
            return seg[..., : h.shape[-1]]

        def forward(self, x):
            h = self.mid(self.bottleneck(self.pre(x)))
            context = h.mean(-1, keepdim=True) + self.segment_means(h)
            gate = torch.sigmoid(self.gate2(F.relu(self.gate1(context))))
            return self.local(h) * gate

    class DenseBlock(nn.Module):
        def __init__(self, layers, cin, kernel, dilation):
            super().__init__()
            self.layers = nn.ModuleList(
                CamLayer(cin + i * CAMPP_GROWTH, CAMPP_GROWTH, CAMPP_BN_SIZE * CAMPP_GROWTH, kernel, dilation)
                for i in range(layers)
            )

        def forward(self, x):
            for layer in self.layers:
                x = torch.cat([x, layer(x)], dim=1)
            return x

    class CamPlus(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = Fcm()
            ch = self.head.out_channels
            body = [nn.Conv1d(ch, CAMPP_INIT_CHANNELS, 5, stride=2, padding=2, bias=False)]
            body.append(bn_relu(CAMPP_INIT_CHANNELS))
            ch = CAMPP_INIT_CHANNELS
            for layers, kernel, dilation in CAMPP_BLOCKS:
                body.append(DenseBlock(layers, ch, kernel, dilation))
                ch += layers * CAMPP_GROWTH
                body.append(bn_relu(ch))
                body.append(nn.Conv1d(ch, ch // 2, 1, bias=False))
                ch //= 2
            body.append(bn_relu(ch))
            self.body = nn.Sequential(*body)
            self.channels = ch
            self.dense = nn.Conv1d(2 * ch, CAMPP_EMBED, 1, bias=False)
            self.dense_bn = nn.BatchNorm1d(CAMPP_EMBED, affine=False)

        def forward(self, x):
            y = self.body(self.head(x.permute(0, 2, 1)))
            stats = torch.cat([y.mean(dim=-1), y.std(dim=-1, unbiased=True)], dim=-1)
            return self.dense_bn(self.dense(stats.unsqueeze(-1)).squeeze(-1))

    g = torch.Generator().manual_seed(seed)
    net = CamPlus().eval()
    for name, p in net.named_parameters():
        if p.dim() >= 2:
            p.data.copy_(torch.randn(p.shape, generator=g) * np.sqrt(2.0 / p[0].numel()))
        elif name.endswith("weight"):
            p.data.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
        else:
            p.data.copy_(0.05 * torch.randn(p.shape, generator=g))
    for name, b in net.named_buffers():
        if name.endswith("running_mean"):
            b.copy_(0.1 * torch.randn(b.shape, generator=g))
        elif name.endswith("running_var"):
            b.copy_(0.5 + torch.rand(b.shape, generator=g))
    return net


def code_margin(model, wave) -> float:
    """Smallest relative gap between the nearest and second-nearest codebook entry (f64, by
    matmul: the tiny fixture's broadcast form would need 84 GB here)."""
    import gen_codec25 as g25

    x = g25.pre_vq(model, wave).double()
    e = model.encoder.tokenizer.audio_quantizer.rvqs[0].embed[0].double()
    dist = (x * x).sum(1, keepdim=True) - 2.0 * x @ e.T + (e * e).sum(1)[None]
    top2 = dist.topk(2, dim=1, largest=False).values
    return float(((top2[:, 1] - top2[:, 0]) / top2[:, 0].clamp_min(1e-30)).min())


def campplus_shape_report(net) -> dict:
    n = sum(p.numel() for p in net.parameters())
    return {
        "parameters": n,
        "fcm_out_channels": net.head.out_channels,
        "final_channels": net.channels,
        "embedding": CAMPP_EMBED,
        "blocks": [list(b) for b in CAMPP_BLOCKS],
        "growth": CAMPP_GROWTH,
        "bn_size": CAMPP_BN_SIZE,
        "init_channels": CAMPP_INIT_CHANNELS,
    }


def write_audio(out: Path) -> dict:
    import numpy as np
    import soundfile as sf

    from make_asr_checkpoint import espeak_speech

    speech, source = espeak_speech()
    need = AUDIO_SECONDS * SAMPLE_RATE
    clip = np.ascontiguousarray(np.tile(speech, -(-need // len(speech)))[:need])
    (out / AUDIO_FILE).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(out / AUDIO_FILE), clip, SAMPLE_RATE, subtype="FLOAT")
    return {"source": source, "speech_seconds": len(speech) / SAMPLE_RATE, "samples": need}, clip


def is_complete(out: Path) -> bool:
    marker = out / "bench_checkpoint.json"
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except ValueError:
        return False
    return info.get("generator_version") == GENERATOR_VERSION and all((out / f).is_file() for f in FILES)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    out = args.out.resolve()
    if not args.force and is_complete(out):
        print(f"{out} is complete (bench_checkpoint.json); --force rebuilds", file=sys.stderr)
        return

    import numpy as np
    import onnxruntime
    import torch
    from safetensors import safe_open
    from transformers import EncodecFeatureExtractor

    import gen_codec25 as g25

    torch.set_grad_enabled(False)
    t_start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    marker = out / "bench_checkpoint.json"
    if marker.exists():
        marker.unlink()
    audio_info, speech = write_audio(out)

    Config, Model = g25._classes()
    # Empty sub-config dicts = the class defaults; only the overrides are given.
    cfg = Config(
        encoder_config={},
        decoder_config={"dit_config": dict(DIT_OVERRIDES), "bigvgan_config": {}},
        **OVERRIDES,
    )
    cfg.architectures = ["Qwen3TTSTokenizerV1Model"]
    torch.manual_seed(SEED)
    print("building the model (class defaults + overrides) ...", file=sys.stderr)
    model = Model(cfg).eval()
    g25._init_weights(model, SEED)
    # Codebook from the pre-VQ vectors of the first 10 s of the bench speech, plus noise.
    calib = speech[: 10 * SAMPLE_RATE].copy()
    print("codebook from the pre-VQ vectors of the speech ...", file=sys.stderr)
    pre = g25.pre_vq(model, calib)
    gen = torch.Generator().manual_seed(SEED + 1)
    n_codes = model.encoder.tokenizer.audio_vq_codebook_size
    idx = torch.randint(0, pre.shape[0], (n_codes,), generator=gen)
    cb = pre[idx] + torch.randn(n_codes, pre.shape[1], generator=gen) * pre.std() * 0.8
    q = model.encoder.tokenizer.audio_quantizer.rvqs[0]
    q.embed.data[0].copy_(cb)
    q.embed_avg.data[0].copy_(cb)
    q.cluster_size.data.fill_(1.0)
    q.inited.data.fill_(1.0)
    margin = code_margin(model, calib)

    print(f"saving to {out} ...", file=sys.stderr)
    for f in out.glob("model*.safetensors*"):
        f.unlink()
    model.save_pretrained(str(out), safe_serialization=True, max_shard_size="20GB")
    EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0).save_pretrained(str(out))
    saved = json.loads((out / "config.json").read_text())
    for sub in (saved, saved["encoder_config"], saved["decoder_config"]):
        sub.pop("_attn_implementation_autoset", None)
        sub.pop("attn_implementation", None)
    dit_saved = saved["decoder_config"]["dit_config"]
    assert saved["input_sample_rate"] == 16000 and saved["decode_upsample_rate"] == 960
    assert dit_saved["repeats"] == 4 and dit_saved["num_embeds"] == 32768
    assert dit_saved["hidden_size"] == 1024 and dit_saved["num_hidden_layers"] == 22
    assert saved["encoder_config"]["n_state"] == 1280 and saved["encoder_config"]["n_layer"] == 32
    assert saved["encoder_config"]["audio_vq_codebook_size"] == 32768
    assert saved["decoder_config"]["bigvgan_config"]["upsample_initial_channel"] == 1536
    dump_json(out / "config.json", saved)
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        n_tensors = len(list(f.keys()))
    n_elements = sum(t.numel() for t in model.state_dict().values())
    del model

    print("CAM++ -> campplus.onnx ...", file=sys.stderr)
    net = build_campplus(SEED + 2)
    g25.TinyCamPlus.export(net, out / "campplus.onnx")
    # The exported graph must agree with the module (onnxruntime, as the reference runs it).
    x = torch.randn(1, 997, CAMPP_FEAT, generator=torch.Generator().manual_seed(SEED + 3))
    sess = onnxruntime.InferenceSession(str(out / "campplus.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    want = net(x).numpy()
    assert got.shape == (1, CAMPP_EMBED), got.shape
    err = float(np.abs(got - want).max() / (np.abs(want).max() + 1e-12))
    assert err < 1e-4, err
    campp = campplus_shape_report(net)
    campp["onnx_vs_torch_rel_err"] = err
    campp["onnx_bytes"] = (out / "campplus.onnx").stat().st_size

    info = {
        "generator_version": GENERATOR_VERSION,
        "seed": SEED,
        "config_overrides": {**OVERRIDES, "decoder_config.dit_config": DIT_OVERRIDES},
        "state_dict_elements": n_elements,
        "tensors": n_tensors,
        "checkpoint_bytes": (out / "model.safetensors").stat().st_size,
        "min_code_margin_10s": margin,
        "campplus": campp,
        "audio": audio_info,
        "seconds_to_build": round(time.time() - t_start, 1),
    }
    dump_json(marker, info)
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
