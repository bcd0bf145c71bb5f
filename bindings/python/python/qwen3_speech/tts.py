"""Speech synthesis (Qwen3-TTS), its speech tokenizer (codec) and the text tokenizer."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from . import _native
from ._audio import _numpy, to_array, to_native
from ._options import device_and_dtype

AudioLike = Any  # str | os.PathLike | bytes | (samples, sample_rate)

# Generation keyword arguments of the reference's generate_* methods, and ours (seed).
_GENERATION_KEYS = (
    "do_sample",
    "top_k",
    "top_p",
    "temperature",
    "repetition_penalty",
    "max_new_tokens",
    "seed",
    "subtalker_dosample",
    "subtalker_top_k",
    "subtalker_top_p",
    "subtalker_temperature",
)


def _generation(kwargs: Dict[str, Any], what: str) -> Dict[str, Any]:
    unknown = sorted(k for k in kwargs if k not in _GENERATION_KEYS)
    if unknown:
        raise TypeError(f"{what}: unexpected keyword argument(s): {', '.join(unknown)}")
    do_sample = kwargs.get("do_sample")
    max_new = kwargs.get("max_new_tokens")
    return {
        "seed": int(kwargs.get("seed", 0)),
        "greedy": do_sample is not None and not do_sample,
        "temperature": _opt(float, kwargs.get("temperature")),
        "top_k": _opt(int, kwargs.get("top_k")),
        "top_p": _opt(float, kwargs.get("top_p")),
        "repetition_penalty": _opt(float, kwargs.get("repetition_penalty")),
        "max_frames": _opt(int, max_new),
    }


def _opt(conv: Any, v: Any) -> Any:
    return None if v is None else conv(v)


def _list(v: Any, n: int, what: str) -> List[Any]:
    vs = v if isinstance(v, list) else [v]
    if len(vs) == 1 and n > 1:
        vs = vs * n
    if len(vs) != n:
        raise ValueError(f"Batch size mismatch: text={n}, {what}={len(vs)}")
    return vs


@dataclass(frozen=True)
class Synthesis:
    """One synthesized utterance: float32 samples at ``sample_rate``, the codec ``frames``
    (one row of codes per 80 ms), whether generation hit the frame limit, and warnings."""

    audio: Any
    sample_rate: int
    frames: List[List[int]] = field(default_factory=list)
    truncated: bool = False
    warnings: List[str] = field(default_factory=list)


class SpeechStream:
    """Audio chunks (float32 numpy arrays) of one synthesis, generated on a worker thread while
    they are consumed; every chunk is final. Use as an iterator (``for chunk in stream``) and
    preferably as a context manager, or call :meth:`close` to stop early. ``frames``,
    ``truncated`` and ``warnings`` are complete once the iterator is exhausted."""

    def __init__(self, native: "_native.SpeechStream"):
        self._native = native

    def __iter__(self) -> "SpeechStream":
        return self

    def __next__(self) -> Any:
        return to_array(next(self._native))

    def __enter__(self) -> "SpeechStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stops the synthesis (the rest is not generated)."""
        self._native.close()

    @property
    def sample_rate(self) -> int:
        return self._native.sample_rate

    @property
    def frames(self) -> List[List[int]]:
        return self._native.frames

    @property
    def truncated(self) -> bool:
        return self._native.truncated

    @property
    def warnings(self) -> List[str]:
        return self._native.warnings


class Qwen3TTSModel:
    """A loaded Qwen3-TTS model (the reference's ``qwen_tts.Qwen3TTSModel``): CustomVoice
    (named speakers), VoiceDesign (a described voice) or Base (voice cloning)."""

    def __init__(self, native: "_native.Synthesizer"):
        self._native = native

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: Union[str, "os.PathLike[str]"],
        *,
        device: Optional[str] = None,
        dtype: Any = None,
        offline: Optional[bool] = None,
        **kwargs: Any,
    ) -> "Qwen3TTSModel":
        """Loads a model from a local folder or a hub id (``device_map``/``dtype`` as the
        reference; ``attn_implementation`` is accepted and ignored)."""
        dev, dt = device_and_dtype(device, dtype, kwargs, "Qwen3TTSModel.from_pretrained")
        return cls(
            _native.Synthesizer(
                os.fspath(pretrained_model_name_or_path), device=dev, dtype=dt, offline=offline
            )
        )

    @property
    def model_type(self) -> str:
        """"custom_voice", "voice_design" or "base" (the reference's ``tts_model_type``)."""
        return self._native.model_type

    @property
    def sample_rate(self) -> int:
        return self._native.sample_rate

    def get_supported_speakers(self) -> Optional[List[str]]:
        """Named speakers (lower-case), ``None`` unless CustomVoice (as the reference)."""
        s = self._native.speakers()
        return sorted(s) if s else None

    def get_supported_languages(self) -> Optional[List[str]]:
        return list(self._native.languages())

    def _check_type(self, want: str, method: str) -> None:
        if self.model_type != want:
            raise ValueError(
                f"{method} needs a {want} model; this one is {self.model_type}"
            )

    def _request(self, **r: Any) -> Dict[str, Any]:
        full = {
            "language": None,
            "speaker": None,
            "instruct": None,
            "ref_audio": None,
            "ref_text": None,
            "x_vector_only": False,
            "codec_speaker": None,
            "non_streaming_mode": None,
        }
        full.update(r)
        if not isinstance(full["text"], str):
            raise TypeError(f"text must be a string, got {type(full['text']).__name__}")
        return full

    def synthesize(
        self,
        text: str,
        *,
        speaker: Optional[str] = None,
        language: Optional[str] = None,
        instruct: Optional[str] = None,
        ref_audio: Optional[AudioLike] = None,
        ref_text: Optional[str] = None,
        x_vector_only_mode: bool = False,
        non_streaming_mode: Optional[bool] = None,
        codec_speaker: Optional[AudioLike] = None,
        **generation: Any,
    ) -> Synthesis:
        """One utterance with everything the model reports (our API; the ``generate_*``
        methods build on it). The arguments that apply depend on the model type.
        ``codec_speaker``: a recording of the voice for a model with the 25 Hz speech
        tokenizer, whose decoder renders a speaker's voice (voice clones use ``ref_audio``);
        the ``generate_*`` methods accept it too."""
        request = self._request(
            text=text,
            speaker=speaker,
            language=language,
            instruct=instruct or None,
            ref_audio=None if ref_audio is None else to_native(ref_audio),
            ref_text=ref_text,
            x_vector_only=bool(x_vector_only_mode),
            non_streaming_mode=non_streaming_mode,
            codec_speaker=None if codec_speaker is None else to_native(codec_speaker),
            **_generation(generation, "synthesize"),
        )
        samples, rate, frames, truncated, warnings = self._native.speak(request)
        return Synthesis(to_array(samples), rate, frames, truncated, list(warnings))

    def stream(
        self,
        text: str,
        *,
        speaker: Optional[str] = None,
        language: Optional[str] = None,
        instruct: Optional[str] = None,
        ref_audio: Optional[AudioLike] = None,
        ref_text: Optional[str] = None,
        x_vector_only_mode: bool = False,
        non_streaming_mode: Optional[bool] = None,
        codec_speaker: Optional[AudioLike] = None,
        first_chunk_frames: int = 2,
        chunk_frames: int = 4,
        **generation: Any,
    ) -> SpeechStream:
        """Streaming synthesis: an iterator of audio chunks, the first after
        ``first_chunk_frames`` frames (80 ms each), then one per ``chunk_frames`` frames.
        Their concatenation equals :meth:`synthesize`'s audio (up to float rounding)."""
        request = self._request(
            text=text,
            speaker=speaker,
            language=language,
            instruct=instruct or None,
            ref_audio=None if ref_audio is None else to_native(ref_audio),
            ref_text=ref_text,
            x_vector_only=bool(x_vector_only_mode),
            non_streaming_mode=non_streaming_mode,
            codec_speaker=None if codec_speaker is None else to_native(codec_speaker),
            **_generation(generation, "stream"),
        )
        return SpeechStream(self._native.stream(request, int(first_chunk_frames), int(chunk_frames)))

    def generate_custom_voice(
        self,
        text: Union[str, List[str]],
        speaker: Union[str, List[str]],
        language: Optional[Union[str, List[Optional[str]]]] = None,
        instruct: Optional[Union[str, List[Optional[str]]]] = None,
        non_streaming_mode: bool = True,
        **kwargs: Any,
    ) -> Tuple[List[Any], int]:
        """CustomVoice: ``(wavs, sample_rate)`` with one float32 array per text, as the
        reference. Generation keywords: ``do_sample``, ``top_k``, ``top_p``, ``temperature``,
        ``repetition_penalty``, ``max_new_tokens`` (the checkpoint's generation config by
        default), ``seed`` (ours; the reference uses torch's global generator). The
        ``subtalker_*`` keywords are accepted; the code predictor uses the same settings."""
        self._check_type("custom_voice", "generate_custom_voice")
        texts = text if isinstance(text, list) else [text]
        n = len(texts)
        speakers = _list(speaker, n, "speaker")
        languages = _list(language, n, "language")
        instructs = _list(instruct, n, "instruct")
        out = [
            self.synthesize(
                t,
                speaker=s,
                language=lang,
                instruct=i,
                non_streaming_mode=non_streaming_mode,
                **kwargs,
            )
            for t, s, lang, i in zip(texts, speakers, languages, instructs)
        ]
        return [o.audio for o in out], self.sample_rate

    def generate_voice_design(
        self,
        text: Union[str, List[str]],
        instruct: Union[str, List[str]],
        language: Optional[Union[str, List[Optional[str]]]] = None,
        non_streaming_mode: bool = True,
        **kwargs: Any,
    ) -> Tuple[List[Any], int]:
        """VoiceDesign: the voice described by ``instruct``; ``(wavs, sample_rate)``."""
        self._check_type("voice_design", "generate_voice_design")
        texts = text if isinstance(text, list) else [text]
        n = len(texts)
        instructs = _list(instruct, n, "instruct")
        languages = _list(language, n, "language")
        out = [
            self.synthesize(
                t, language=lang, instruct=i, non_streaming_mode=non_streaming_mode, **kwargs
            )
            for t, i, lang in zip(texts, instructs, languages)
        ]
        return [o.audio for o in out], self.sample_rate

    def generate_voice_clone(
        self,
        text: Union[str, List[str]],
        language: Optional[Union[str, List[Optional[str]]]] = None,
        ref_audio: Optional[Union[AudioLike, List[AudioLike]]] = None,
        ref_text: Optional[Union[str, List[Optional[str]]]] = None,
        x_vector_only_mode: Union[bool, List[bool]] = False,
        voice_clone_prompt: Any = None,
        non_streaming_mode: bool = False,
        **kwargs: Any,
    ) -> Tuple[List[Any], int]:
        """Base: clone the voice of ``ref_audio``. With ``ref_text`` (its transcript) the clone
        is in-context; ``x_vector_only_mode=True`` uses the speaker embedding alone.
        ``voice_clone_prompt`` (the reference's precomputed prompts) is not supported: pass
        ``ref_audio`` / ``ref_text``."""
        self._check_type("base", "generate_voice_clone")
        if voice_clone_prompt is not None:
            raise ValueError(
                "voice_clone_prompt is not supported; pass ref_audio (and ref_text) instead"
            )
        if ref_audio is None:
            raise ValueError("generate_voice_clone needs ref_audio")
        texts = text if isinstance(text, list) else [text]
        n = len(texts)
        languages = _list(language, n, "language")
        refs = _list(ref_audio, n, "ref_audio")
        ref_texts = _list(ref_text, n, "ref_text")
        xvec = _list(x_vector_only_mode, n, "x_vector_only_mode")
        out = []
        for t, lang, a, rt, xv in zip(texts, languages, refs, ref_texts, xvec):
            if not xv and not (rt and rt.strip()):
                raise ValueError(
                    "ref_text is required for in-context cloning (or set x_vector_only_mode=True)"
                )
            out.append(
                self.synthesize(
                    t,
                    language=lang,
                    ref_audio=a,
                    ref_text=None if xv else rt,
                    x_vector_only_mode=bool(xv),
                    non_streaming_mode=non_streaming_mode,
                    **kwargs,
                )
            )
        return [o.audio for o in out], self.sample_rate


@dataclass(frozen=True)
class EncodeOutput:
    """Codes of each encoded input: int64 arrays of shape ``(frames, num_quantizers)`` (the
    reference's ``audio_codes``)."""

    audio_codes: List[Any]


class Qwen3TTSTokenizer:
    """The Qwen3-TTS speech tokenizer (12 Hz codec), as the reference's
    ``qwen_tts.Qwen3TTSTokenizer``: audio to discrete codes and back."""

    def __init__(self, native: "_native.SpeechTokenizer"):
        self._native = native

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: Union[str, "os.PathLike[str]"],
        *,
        device: Optional[str] = None,
        offline: Optional[bool] = None,
        **kwargs: Any,
    ) -> "Qwen3TTSTokenizer":
        """A speech tokenizer folder, or a Qwen3-TTS model folder (its ``speech_tokenizer/``)."""
        dev, _ = device_and_dtype(device, None, kwargs, "Qwen3TTSTokenizer.from_pretrained")
        return cls(
            _native.SpeechTokenizer(
                os.fspath(pretrained_model_name_or_path), device=dev, offline=offline
            )
        )

    def encode(self, audios: Any, sr: Optional[int] = None) -> EncodeOutput:
        """Codes of one input or a list of inputs (paths, bytes, ``(samples, rate)``, or
        arrays with ``sr``); audio is resampled to :meth:`get_input_sample_rate`."""
        np = _numpy()
        items = audios if isinstance(audios, list) else [audios]
        codes = []
        for a in items:
            flat, q = self._native.encode(to_native(a, sr))
            codes.append(np.asarray(flat, dtype=np.int64).reshape(-1, q))
        return EncodeOutput(audio_codes=codes)

    def decode(self, encoded: Any) -> Tuple[List[Any], int]:
        """Audio of codes: an :class:`EncodeOutput`, a dict with ``audio_codes``, one
        ``(frames, num_quantizers)`` array or a list of them. Returns ``(wavs, sample_rate)``."""
        np = _numpy()
        if isinstance(encoded, EncodeOutput):
            items: Sequence[Any] = encoded.audio_codes
        elif isinstance(encoded, dict):
            items = encoded["audio_codes"]
        else:
            items = encoded
        if not isinstance(items, (list, tuple)):
            items = [items]
        elif items and np.asarray(items[0]).ndim == 1:
            # A single (frames, levels) nested list.
            items = [items]
        wavs = []
        for c in items:
            a = np.asarray(c)
            if hasattr(c, "detach"):  # a torch tensor
                a = np.asarray(c.detach().cpu())
            if a.ndim != 2:
                raise ValueError(f"codes must be (frames, num_quantizers), got shape {a.shape}")
            if a.size and (a.min() < 0):
                raise ValueError("codes must be non-negative")
            wavs.append(
                to_array(self._native.decode([int(x) for x in a.reshape(-1)], int(a.shape[1])))
            )
        return wavs, self.get_output_sample_rate()

    def get_model_type(self) -> str:
        return self._native.model_type

    def get_input_sample_rate(self) -> int:
        return self._native.input_sample_rate

    def get_output_sample_rate(self) -> int:
        return self._native.output_sample_rate

    @property
    def num_quantizers(self) -> int:
        return self._native.num_quantizers

    @property
    def frame_rate(self) -> float:
        return self._native.frame_rate


class Tokenizer:
    """The text tokenizer of a Qwen3 speech model folder (Qwen2 byte-level BPE, as
    transformers builds it from vocab.json/merges.txt/tokenizer_config.json)."""

    def __init__(self, native: "_native.Tokenizer"):
        self._native = native

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: Union[str, "os.PathLike[str]"], *, offline: Optional[bool] = None
    ) -> "Tokenizer":
        return cls(_native.Tokenizer(os.fspath(pretrained_model_name_or_path), offline=offline))

    def encode(self, text: str) -> List[int]:
        """Token ids of ``text`` (special tokens written in the text are recognised)."""
        return list(self._native.encode(text))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self._native.decode([int(i) for i in ids], skip_special_tokens)

    def token_to_id(self, token: str) -> Optional[int]:
        return self._native.token_to_id(token)

    def id_to_token(self, id: int) -> Optional[str]:
        return self._native.id_to_token(int(id))

    @property
    def vocab_size(self) -> int:
        return self._native.vocab_size
