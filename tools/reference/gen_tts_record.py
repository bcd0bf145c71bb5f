"""Observers for the Qwen3-TTS reference: record what the reference computes, change nothing.

`Recorder(wrapper)` is a context manager that wraps (as instance attributes, restored on exit):

* `model.generate`                      -> the ids, languages, speakers, voice-clone prompt it was given and the codes
* `model.talker.generate`               -> prompt embeddings, attention mask, trailing text queue, tts_pad embedding;
                                          adds output_logits/output_scores=True (pure outputs) to keep raw and
                                          processed code-0 logits per step
* `model.talker._get_logits_processor`  -> the LogitsProcessorList the talker builds (to replay it on chosen inputs)
* `model.talker.code_predictor.generate`-> per frame: the 2-position prefill input, the codes, raw logits per step
* `model.talker.model` (forward hooks)  -> inputs_embeds of every talker call (prefill + one per frame) and the
                                          final-normed hidden states
* `speech_tokenizer.encode / decode`    -> codes and waveforms
* `torch.multinomial`                   -> for every draw: probabilities p, the Exp(1) noise q that the CPU kernel
                                          consumes (replayed from the same generator state) and the id; asserts
                                          id == argmax(p / q) (torch's n_sample=1 algorithm)
"""

from __future__ import annotations

import contextlib
from typing import Any, Dict, List

import torch


def _clone(x):
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, (list, tuple)):
        return type(x)(_clone(v) for v in x)
    if isinstance(x, dict):
        return {k: _clone(v) for k, v in x.items()}
    return x


class Recorder(contextlib.AbstractContextManager):
    def __init__(self, wrapper, keep_model_io: bool = True):
        self.w = wrapper
        self.m = wrapper.model
        self.keep_model_io = keep_model_io
        self.reset()

    def reset(self):
        self.model_generate_calls: List[Dict[str, Any]] = []
        self.talker_calls: List[Dict[str, Any]] = []
        self.logits_processors: List[Any] = []
        self.cp_calls: List[Dict[str, Any]] = []
        self.talker_inputs: List[torch.Tensor] = []
        self.talker_normed: List[torch.Tensor] = []
        self.talker_position_ids: List[Any] = []
        self.encode_calls: List[Dict[str, Any]] = []
        self.decode_calls: List[Dict[str, Any]] = []
        self.draws: List[Dict[str, torch.Tensor]] = []

    # -- wrappers -------------------------------------------------------------
    def __enter__(self):
        m, talker = self.m, self.m.talker
        cp = talker.code_predictor
        st = self.m.speech_tokenizer
        orig_model_generate = m.generate
        orig_talker_generate = talker.generate
        orig_glp = talker._get_logits_processor
        orig_cp_generate = cp.generate
        orig_encode = st.encode
        orig_decode = st.decode
        orig_multinomial = torch.multinomial
        self._restore = []

        def model_generate(*args, **kw):
            rec = {"kwargs": _clone({k: v for k, v in kw.items()})}
            out = orig_model_generate(*args, **kw)
            rec["codes"] = _clone(out[0])
            self.model_generate_calls.append(rec)
            return out

        def talker_generate(*args, **kw):
            rec = {
                "inputs_embeds": _clone(kw.get("inputs_embeds")),
                "attention_mask": _clone(kw.get("attention_mask")),
                "trailing_text_hidden": _clone(kw.get("trailing_text_hidden")),
                "tts_pad_embed": _clone(kw.get("tts_pad_embed")),
                "settings": {k: v for k, v in kw.items() if not isinstance(v, torch.Tensor)},
                "first_input": len(self.talker_inputs),
                "first_cp": len(self.cp_calls),
            }
            kw = dict(kw, output_logits=True, output_scores=True)
            out = orig_talker_generate(*args, **kw)
            rec["sequences"] = _clone(out.sequences)
            rec["logits"] = torch.stack([x.detach().clone() for x in out.logits], 0)
            rec["scores"] = torch.stack([x.detach().clone() for x in out.scores], 0)
            rec["last_input"] = len(self.talker_inputs)
            rec["last_cp"] = len(self.cp_calls)
            self.talker_calls.append(rec)
            return out

        def glp(*args, **kw):
            procs = orig_glp(*args, **kw)
            self.logits_processors.append(procs)
            return procs

        def cp_generate(*args, **kw):
            rec = {"inputs_embeds": _clone(kw.get("inputs_embeds")),
                   "settings": {k: v for k, v in kw.items() if not isinstance(v, torch.Tensor)}}  # fmt: skip
            kw = dict(kw, output_logits=True)
            out = orig_cp_generate(*args, **kw)
            rec["sequences"] = _clone(out.sequences)
            rec["logits"] = torch.stack([x.detach().clone() for x in out.logits], 0)  # (G-1, B, K)
            self.cp_calls.append(rec)
            return out

        def encode(*args, **kw):
            out = orig_encode(*args, **kw)
            self.encode_calls.append({"args": _clone(args), "kwargs": _clone(kw), "codes": _clone(out.audio_codes)})
            return out

        def decode(encoded):
            out = orig_decode(encoded)
            self.decode_calls.append({"codes": [_clone(e["audio_codes"]) for e in encoded],
                                      "wavs": [w.copy() for w in out[0]], "sr": out[1]})  # fmt: skip
            return out

        def multinomial(input, num_samples, replacement=False, *, generator=None, out=None):
            assert num_samples == 1 and generator is None and out is None, "unexpected multinomial call"
            state = torch.get_rng_state()
            q = torch.empty_like(input).exponential_(1)
            torch.set_rng_state(state)
            r = orig_multinomial(input, num_samples, replacement)
            alt = torch.argmax(input / q, dim=-1, keepdim=True)
            if not torch.equal(r, alt):
                raise AssertionError("torch.multinomial != argmax(p / q) with the replayed Exp(1) noise")
            self.draws.append({"p": input.detach().clone(), "q": q, "id": r.detach().clone()})
            return r

        def pre_hook(_mod, args, kwargs):
            x = kwargs.get("inputs_embeds")
            self.talker_inputs.append(x.detach().clone())
            pid = kwargs.get("position_ids")
            self.talker_position_ids.append(None if pid is None else pid.detach().clone())

        def norm_hook(_mod, _i, o):
            self.talker_normed.append(o.detach().clone())

        m.generate = model_generate
        talker.generate = talker_generate
        talker._get_logits_processor = glp
        cp.generate = cp_generate
        st.encode = encode
        st.decode = decode
        torch.multinomial = multinomial
        h1 = talker.model.register_forward_pre_hook(pre_hook, with_kwargs=True)
        h2 = talker.model.norm.register_forward_hook(norm_hook)

        def restore():
            for obj, name in [(m, "generate"), (talker, "generate"), (talker, "_get_logits_processor"),
                              (cp, "generate"), (st, "encode"), (st, "decode")]:  # fmt: skip
                del obj.__dict__[name]
            torch.multinomial = orig_multinomial
            h1.remove()
            h2.remove()

        self._restore = restore
        return self

    def __exit__(self, *exc):
        self._restore()
        return False
