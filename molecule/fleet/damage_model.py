"""Write a damaged build of a TFLite model: the same graph with its largest weight tensor zeroed.

It still loads (TFL3, every table intact) and decodes audio, so only the health check's transcript
can tell it is broken: what a bad model build that was pinned by mistake looks like.
Usage: damage_model.py IN.tflite OUT.tflite
"""
from __future__ import annotations

import struct
import sys
from typing import List, Tuple


def _table_field(data: bytes, table: int, field: int) -> int:
    """Absolute position of a table's field (0 if absent)."""
    vtable = table - struct.unpack_from("<i", data, table)[0]
    vtable_size = struct.unpack_from("<H", data, vtable)[0]
    if 4 + 2 * field >= vtable_size:
        return 0
    offset = struct.unpack_from("<H", data, vtable + 4 + 2 * field)[0]
    return table + offset if offset else 0


def _deref(data: bytes, position: int) -> int:
    return position + struct.unpack_from("<I", data, position)[0]


def buffers(data: bytes) -> List[Tuple[int, int]]:
    """(start, length) of every Model.buffers[i].data (Model field 4, Buffer field 0)."""
    if data[4:8] != b"TFL3":
        raise SystemExit("not a TFLite model (no TFL3 identifier)")
    model = _deref(data, 0)
    field = _table_field(data, model, 4)
    vector = _deref(data, field)
    spans = []
    for i in range(struct.unpack_from("<I", data, vector)[0]):
        buffer = _deref(data, vector + 4 + 4 * i)
        data_field = _table_field(data, buffer, 0)
        if data_field:
            start = _deref(data, data_field)
            spans.append((start + 4, struct.unpack_from("<I", data, start)[0]))
    return spans


def main() -> int:
    source, target = sys.argv[1], sys.argv[2]
    data = bytearray(open(source, "rb").read())
    start, length = max(buffers(bytes(data)), key=lambda span: span[1])
    data[start:start + length] = bytes(length)
    with open(target, "wb") as out:
        out.write(bytes(data))
    print("zeroed {} bytes of weights at {}".format(length, start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
