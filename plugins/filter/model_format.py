"""Filters of the deepspeech_model role, run on the controller against its artifact cache."""
from __future__ import annotations

from typing import Any, Callable, Dict

# A TFLite FlatBuffer carries the file identifier TFL3 at offset 4; a frozen TensorFlow GraphDef
# starts with the protobuf tag of its repeated `node` field (0x0a).
TFLITE_MAGIC = b"TFL3"


def deepspeech_model_format(path: str) -> str:
    """The format of a model file: 'tflite', 'protobuf' or 'unknown'."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if len(head) == 8 and head[4:8] == TFLITE_MAGIC:
        return "tflite"
    if head[:1] == b"\x0a":
        return "protobuf"
    return "unknown"


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"deepspeech_model_format": deepspeech_model_format}
