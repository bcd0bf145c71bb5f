"""Streaming ASR goldens: writes tests/fixtures/asr-stream/streaming.json.

The reference streams only through its vLLM backend (``Qwen3ASRModel.init_streaming_state`` /
``streaming_transcribe`` / ``finish_streaming_transcribe``), and vLLM is not installed here. The
streaming algorithm itself is backend-independent: the reference code is run **unchanged**, with
``asr.backend`` set to ``"vllm"`` and ``asr.model`` replaced by a small object whose
``generate([{"prompt", "multi_modal_data": {"audio": [wav]}}], sampling_params, use_tqdm)`` does
what vLLM does for one request, with the transformers model of the tiny checkpoint:

* the audio is zero-padded to a multiple of 160 samples (vLLM's Qwen3-Omni processor
  ``pad_to_hop_length``, so the clip gets ``ceil(L / 160)`` mel frames);
* the prompt string (``prompt_raw + prefix``) goes through the reference processor (chat text
  tokenized whole, ``<|audio_pad|>`` expanded to the audio's token count);
* the audio encoder uses **windowed** attention (vLLM computes flash-attention over
  ``cu_seqlens``; here the reference's own ``_prepare_attention_mask(hidden, cu_seqlens)`` is
  injected into every encoder layer, as for the ``windowed_*`` encoder goldens);
* greedy decoding (vLLM ``temperature=0``), ``max_tokens`` = 32 (the streaming demo's
  ``max_new_tokens``), stopping on the tiny ``<|im_end|>`` / ``<|endoftext|>``;
* the output text is ``batch_decode(skip_special_tokens=True)`` of the new tokens.

Audio: the real-speech waveforms of ``tests/fixtures/asr-real/waveforms.safetensors``
(``normalize_audio_input`` of each file) concatenated in a fixed order; nothing new is stored.
Each case records the chunk settings, how the audio was pushed, and for every decode call the
prefix, prompt ids, generated ids, generated text, parsed (language, text) and the smallest
top-1/top-2 logit margin of the greedy steps (how robust the golden is to float noise).
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from common import FIXTURES, check_equal, dump_json, import_qwen_asr

SR = 16000
HOP = 160
MAX_NEW_TOKENS = 32

# Order of the clips in the stream (names in asr-real/waveforms.safetensors). Starting with
# digital silence makes the clip-wide mel maximum jump when speech arrives (the dynamic-range
# floor then changes the features of windows that were already complete).
STREAM_ALL = ["silence_16k.wav", "en_16k.wav", "de_16k.wav", "es_16k.wav", "zh_16k.wav",
              "fr_stereo_44k.flac", "it_22k.mp3", "pt_48k.ogg"]  # fmt: skip
STREAM_SPEECH = ["en_16k.wav", "de_16k.wav", "es_16k.wav", "it_22k.mp3"]

# name, clips, init_streaming_state kwargs, push pattern (seconds per push, cycled)
CASES: List[Dict[str, Any]] = [
    dict(name="defaults_auto", clips=STREAM_ALL,
         init=dict(context="", language=None, unfixed_chunk_num=2, unfixed_token_num=5, chunk_size_sec=2.0),
         push_seconds=[0.5]),
    dict(name="defaults_forced_english", clips=STREAM_ALL,
         init=dict(context="", language="English", unfixed_chunk_num=2, unfixed_token_num=5, chunk_size_sec=2.0),
         push_seconds=[0.5]),
    dict(name="demo_1s_forced_german_context", clips=STREAM_SPEECH,
         init=dict(context="Wetter, Morgen", language="German", unfixed_chunk_num=4, unfixed_token_num=5,
                   chunk_size_sec=1.0),
         push_seconds=[0.5]),
    dict(name="odd_chunk_forced_spanish", clips=STREAM_SPEECH,
         init=dict(context="", language="spanish", unfixed_chunk_num=1, unfixed_token_num=3,
                   chunk_size_sec=0.7731),
         push_seconds=[0.3, 1.1, 0.05]),
]  # fmt: skip


class TransformersAsVllm:
    """The piece of vllm.LLM that streaming_transcribe uses, run with transformers."""

    def __init__(self, model, processor, eos: List[int]):
        self.model = model
        self.processor = processor
        self.eos = eos
        self.calls: List[Dict[str, Any]] = []

    def generate(self, inputs, sampling_params=None, use_tqdm=False):
        import torch

        from hooks import capture_encoder

        check_equal("requests per call", len(inputs), 1)
        prompt = inputs[0]["prompt"]
        (wav,) = inputs[0]["multi_modal_data"]["audio"]
        wav = np.asarray(wav, dtype=np.float32)
        n = wav.shape[0]
        if n % HOP:
            wav = np.pad(wav, (0, HOP - n % HOP))  # vLLM pad_to_hop_length
        enc = self.processor(text=[prompt], audio=[wav], return_tensors="pt", padding=True)
        enc = enc.to(self.model.device).to(self.model.dtype)
        check_equal("mel frames", int(enc["feature_attention_mask"].sum()), wav.shape[0] // HOP)
        plen = enc["input_ids"].shape[1]
        with torch.no_grad(), capture_encoder(self.model.thinker.audio_tower, windowed=True) as caps:
            out = self.model.generate(
                **enc,
                max_new_tokens=MAX_NEW_TOKENS,
                eos_token_id=self.eos,
                output_logits=True,
            )
        assert caps.get("window_mask_applied"), "windowed attention was not applied"
        gen = out.sequences[0, plen:].tolist()
        trimmed = []
        for t in gen:
            if t in self.eos:
                break
            trimmed.append(t)
        margins = []
        for step_logits in out.logits[: len(trimmed) + 1]:
            top = torch.topk(step_logits[0].double(), 2).values
            margins.append(float(top[0] - top[1]))
        text = self.processor.batch_decode([gen], skip_special_tokens=True, clean_up_tokenization_spaces=False)[0]
        self.calls.append({
            "samples": int(n),
            "mel_frames": int(wav.shape[0] // HOP),
            "prompt_text": prompt,
            "prompt_ids": enc["input_ids"][0].tolist(),
            "generated_ids": trimmed,
            "stopped_on_eos": len(trimmed) < len(gen) or (len(gen) > 0 and gen[-1] in self.eos),
            "generated_text": text,
            "min_margin": min(margins) if margins else None,
        })  # fmt: skip
        return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=text)])]


def load(fixtures: Path):
    import torch

    import_qwen_asr()
    from gen_asr_goldens import eos_ids
    from gen_asr_tiny import tiny_ids
    from qwen_asr.inference.qwen3_asr import Qwen3ASRModel

    ids = tiny_ids(fixtures)
    asr = Qwen3ASRModel.from_pretrained(str(fixtures / "asr-tiny"), max_new_tokens=MAX_NEW_TOKENS, dtype=torch.float32)
    asr.model.eval()
    fake = TransformersAsVllm(asr.model, asr.processor, eos_ids(ids))
    # The reference checks `self.backend == "vllm"` and calls `self.model.generate(...)`.
    asr.backend = "vllm"
    asr.model = fake
    asr.sampling_params = None
    return asr, fake, ids


def waveforms(fixtures: Path) -> Dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(fixtures / "asr-real" / "waveforms.safetensors"))


def run_case(asr, fake, waves, case) -> Dict[str, Any]:
    from qwen_asr.inference.utils import parse_asr_output

    audio = np.concatenate([waves[c] for c in case["clips"]]).astype(np.float32)
    state = asr.init_streaming_state(**case["init"])
    fake.calls.clear()
    steps: List[Dict[str, Any]] = []
    pushes: List[int] = []
    pos = 0
    k = 0
    while pos < audio.shape[0]:
        n = int(round(case["push_seconds"][k % len(case["push_seconds"])] * SR))
        k += 1
        piece = audio[pos : pos + n]
        pos += piece.shape[0]
        pushes.append(int(piece.shape[0]))
        before = len(fake.calls)
        prev_raw = state._raw_decoded
        asr.streaming_transcribe(piece, state)
        for call in fake.calls[before:]:
            steps.append(call)
        # Every decode of this push updated the state; record what the user sees after the push.
        if len(fake.calls) > before:
            steps[-1]["state_after"] = {"language": state.language, "text": state.text,
                                        "raw_decoded": state._raw_decoded, "chunk_id": state.chunk_id}
        del prev_raw
    before = len(fake.calls)
    buffered = int(state.buffer.shape[0])
    res = asr.finish_streaming_transcribe(state)
    # qwen-asr 0.0.6 returns the state (asr.md §7 says None; the source returns `state`).
    assert res is state
    finish_decoded = len(fake.calls) > before
    if finish_decoded:
        steps.append(fake.calls[-1])
        steps[-1]["state_after"] = {"language": state.language, "text": state.text,
                                    "raw_decoded": state._raw_decoded, "chunk_id": state.chunk_id}
    # Re-derive each step's prefix and parse from the recorded prompt text (the prefix is what
    # follows prompt_raw) so the Rust test can check them one by one.
    for s in steps:
        assert s["prompt_text"].startswith(state.prompt_raw)
        s["prefix"] = s["prompt_text"][len(state.prompt_raw):]
        s["raw_decoded"] = s["prefix"] + s["generated_text"]
        s["parsed"] = list(parse_asr_output(s["raw_decoded"], user_language=state.force_language))
        del s["prompt_text"]
    check_equal("final text", [state.language, state.text], steps[-1]["parsed"] if steps else ["", ""])
    return {
        "name": case["name"],
        "clips": case["clips"],
        "num_samples": int(audio.shape[0]),
        "init": case["init"],
        "chunk_size_samples": state.chunk_size_samples,
        "force_language": state.force_language,
        "prompt_raw": state.prompt_raw,
        "push_sizes": pushes,
        "tail_samples_at_finish": buffered,
        "finish_decoded": finish_decoded,
        "steps": steps,
        "final": {"language": state.language, "text": state.text, "raw_decoded": state._raw_decoded,
                  "chunk_id": state.chunk_id},
        "min_margin": min((s["min_margin"] for s in steps if s["min_margin"] is not None), default=None),
    }  # fmt: skip


def main(fixtures: Path = FIXTURES) -> Dict[str, Any]:
    asr, fake, ids = load(fixtures)
    waves = waveforms(fixtures)
    out_dir = fixtures / "asr-stream"
    out_dir.mkdir(parents=True, exist_ok=True)
    cases = [run_case(asr, fake, waves, c) for c in CASES]
    doc = {
        "description": "Reference streaming ASR (qwen_asr Qwen3ASRModel.init_streaming_state / "
        "streaming_transcribe / finish_streaming_transcribe, run unchanged) on the tiny checkpoint, "
        "with the vLLM generate call replaced by the transformers model: audio zero-padded to a "
        "multiple of 160 samples, windowed encoder attention, greedy, max_new_tokens "
        f"{MAX_NEW_TOKENS}, EOS = tiny <|im_end|>/<|endoftext|>, text = batch_decode("
        "skip_special_tokens=True) of the new tokens. Audio = concatenation of "
        "asr-real/waveforms.safetensors entries in the order of `clips`, pushed in pieces of "
        "`push_sizes` samples. One entry of `steps` per decode call: samples (audio so far), "
        "mel_frames, prefix, prompt_ids, generated_ids (without the stop token), generated_text, "
        "raw_decoded = prefix + generated_text, parsed = parse_asr_output(raw_decoded, "
        "force_language), min_margin = smallest top-1 minus top-2 logit over the greedy steps.",
        "model": "asr-tiny",
        "max_new_tokens": MAX_NEW_TOKENS,
        "eos_token_ids": fake.eos,
        "cases": cases,
    }
    dump_json(out_dir / "streaming.json", doc)
    size = (out_dir / "streaming.json").stat().st_size
    assert size < 1_000_000, size
    return {
        "bytes": size,
        "cases": {c["name"]: {"decodes": len(c["steps"]), "final": c["final"]["text"][:60],
                              "language": c["final"]["language"], "min_margin": c["min_margin"]}
                  for c in cases},
    }  # fmt: skip


if __name__ == "__main__":
    from common import setup_determinism

    setup_determinism()
    import json

    print(json.dumps(main(), ensure_ascii=False, indent=1))
