"""The package imports and exposes its API (also run in a venv without numpy)."""

import qwen3_speech as qs


def test_version_and_api():
    assert qs.__version__.count(".") == 2
    for name in qs.__all__:
        assert hasattr(qs, name), name
    assert issubclass(qs.AudioError, qs.SpeechError)
    assert issubclass(qs.ModelError, qs.SpeechError)
    assert issubclass(qs.SpeechError, Exception)
    assert qs._native.__name__ == "qwen3_speech._native"
