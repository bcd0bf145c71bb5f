"""Type stubs of the native extension ``qwen3_speech._native`` (pyo3).

This module is the thin layer over the Rust facade; use the classes of ``qwen3_speech``
instead. Audio crosses the boundary as ``str`` (a path), ``bytes`` (an encoded file) or
``(bytes, int)`` (little-endian float32 mono samples and their rate); samples come back as
``bytearray`` of little-endian float32.
"""

from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

NativeAudio = Union[str, bytes, Tuple[bytes, int]]
# (word, start seconds, end seconds, char_start, char_end)
NativeWord = Tuple[str, float, float, int, int]

__version__: str
CUDA_COMPILED: bool

class SpeechError(Exception): ...
class AudioError(SpeechError): ...
class ModelError(SpeechError): ...
class HubError(SpeechError): ...

class Transcriber:
    def __init__(
        self,
        model: str,
        *,
        language: Optional[str] = None,
        context: str = "",
        max_new_tokens: Optional[int] = None,
        device: str = "auto",
        dtype: Optional[str] = None,
        attention: Optional[str] = None,
        aligner: Optional[str] = None,
        batch_size: int = 4,
        chunk_seconds: Optional[float] = None,
        offline: Optional[bool] = None,
    ) -> None: ...
    def transcribe(
        self,
        audio: List[NativeAudio],
        *,
        language: Optional[str] = None,
        context: Optional[str] = None,
        word_timestamps: Optional[bool] = None,
        max_new_tokens: Optional[int] = None,
    ) -> List[Dict[str, Any]]: ...
    @property
    def has_aligner(self) -> bool: ...
    @property
    def model_path(self) -> str: ...
    @staticmethod
    def supported_languages() -> List[str]: ...
    def stream(
        self,
        *,
        chunk_seconds: float = 2.0,
        unfixed_chunks: int = 2,
        rollback_tokens: int = 5,
        mode: str = "incremental",
        language: Optional[str] = None,
        context: str = "",
        max_new_tokens: Optional[int] = None,
        max_segment_seconds: Optional[float] = 30.0,
    ) -> StreamingTranscriber: ...

class StreamingTranscriber:
    def __init__(
        self,
        model: str,
        *,
        chunk_seconds: float = 2.0,
        unfixed_chunks: int = 2,
        rollback_tokens: int = 5,
        mode: str = "incremental",
        language: Optional[str] = None,
        context: str = "",
        max_new_tokens: Optional[int] = None,
        max_segment_seconds: Optional[float] = 30.0,
        device: str = "auto",
        dtype: Optional[str] = None,
        offline: Optional[bool] = None,
    ) -> None: ...
    def push_f32(self, samples: bytes, sample_rate: int) -> List[Dict[str, Any]]: ...
    def finish(self) -> Dict[str, Any]: ...
    def finish_with_f32(self, samples: bytes, sample_rate: int) -> Dict[str, Any]: ...
    def reset(self) -> None: ...
    @property
    def text(self) -> str: ...
    @property
    def language(self) -> str: ...
    @property
    def audio_seconds(self) -> float: ...

class Aligner:
    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: Optional[str] = None,
        attention: Optional[str] = None,
        offline: Optional[bool] = None,
    ) -> None: ...
    def align(self, audio: NativeAudio, text: str, language: str) -> List[NativeWord]: ...
    @property
    def max_seconds(self) -> float: ...
    def supported_languages(self) -> List[str]: ...

class Synthesizer:
    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: Optional[str] = None,
        offline: Optional[bool] = None,
    ) -> None: ...
    @property
    def model_type(self) -> str: ...
    @property
    def sample_rate(self) -> int: ...
    def speakers(self) -> List[str]: ...
    def languages(self) -> List[str]: ...
    # request: dict with keys text, language, speaker, instruct, ref_audio (NativeAudio),
    # ref_text, x_vector_only, non_streaming_mode, seed, greedy, temperature, top_k, top_p,
    # repetition_penalty, max_frames.
    def speak(
        self, request: Dict[str, Any]
    ) -> Tuple[bytearray, int, List[List[int]], bool, List[str]]: ...
    def stream(
        self, request: Dict[str, Any], first_chunk_frames: int, chunk_frames: int
    ) -> SpeechStream: ...

class SpeechStream:
    def __iter__(self) -> Iterator[bytearray]: ...
    def __next__(self) -> bytearray: ...
    def close(self) -> None: ...
    @property
    def sample_rate(self) -> int: ...
    @property
    def frames(self) -> List[List[int]]: ...
    @property
    def truncated(self) -> bool: ...
    @property
    def warnings(self) -> List[str]: ...

class SpeechTokenizer:
    def __init__(self, model: str, *, device: str = "auto", offline: Optional[bool] = None) -> None: ...
    def encode(self, audio: NativeAudio) -> Tuple[List[int], int]: ...
    def decode(self, codes: List[int], num_quantizers: int) -> bytearray: ...
    @property
    def model_type(self) -> str: ...
    @property
    def input_sample_rate(self) -> int: ...
    @property
    def output_sample_rate(self) -> int: ...
    @property
    def num_quantizers(self) -> int: ...
    @property
    def frame_rate(self) -> float: ...

class Tokenizer:
    def __init__(self, model: str, *, offline: Optional[bool] = None) -> None: ...
    def encode(self, text: str) -> List[int]: ...
    def decode(self, ids: List[int], skip_special_tokens: bool = False) -> str: ...
    def token_to_id(self, token: str) -> Optional[int]: ...
    def id_to_token(self, id: int) -> Optional[str]: ...
    @property
    def vocab_size(self) -> int: ...

def _busy_wait(seconds: float) -> int: ...
