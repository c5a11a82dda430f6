"""Export trained weights with the DeepSpeech 0.7.4 inference interface: .tflite and frozen .pb."""
from __future__ import annotations

import struct
from typing import Dict, List, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2
from tensorflow.lite.tools import flatbuffer_utils
from tensorflow.python.framework import op_def_registry

from fixture_train import N_CONTEXT, N_FEATURES, STEP, WIN, Weights

N_STEPS = 16
GRAPH_VERSION = 6  # ds_graph_version() of 0.7.x
METADATA_INT = ("metadata_version", "metadata_sample_rate", "metadata_feature_win_len",
                "metadata_feature_win_step", "metadata_beam_width")


def serialize_alphabet(labels: Sequence[str]) -> bytes:
    """uint16 count, then per label uint16 index, uint16 byte length, UTF-8 bytes (little-endian)."""
    out = struct.pack("<H", len(labels))
    for i, label in enumerate(labels):
        raw = label.encode("utf-8")
        out += struct.pack("<HH", i, len(raw)) + raw
    return out


def metadata_values(beam_width: int) -> Dict[str, int]:
    return {"metadata_version": GRAPH_VERSION, "metadata_sample_rate": 16000,
            "metadata_feature_win_len": WIN * 1000 // 16000,
            "metadata_feature_win_step": STEP * 1000 // 16000, "metadata_beam_width": beam_width}


def _mfcc_subgraph(input_samples: tf.Tensor) -> tf.Tensor:
    samples = tf.expand_dims(input_samples, -1)  # [512, 1]
    spec = tf.raw_ops.AudioSpectrogram(input=samples, window_size=WIN, stride=STEP,
                                       magnitude_squared=True)
    mfcc = tf.raw_ops.Mfcc(spectrogram=spec, sample_rate=tf.constant(16000, tf.int32),
                           upper_frequency_limit=8000.0, lower_frequency_limit=20.0,
                           filterbank_channel_count=40, dct_coefficient_count=N_FEATURES)
    return tf.reshape(mfcc, [1, N_FEATURES], name="mfccs")


def _placeholders(cell: int) -> Dict[str, tf.Tensor]:
    v1 = tf.compat.v1
    return {
        "input_node": v1.placeholder(tf.float32, [1, N_STEPS, 2 * N_CONTEXT + 1, N_FEATURES],
                                     name="input_node"),
        "previous_state_c": v1.placeholder(tf.float32, [1, cell], name="previous_state_c"),
        "previous_state_h": v1.placeholder(tf.float32, [1, cell], name="previous_state_h"),
        "input_samples": v1.placeholder(tf.float32, [WIN], name="input_samples"),
    }


# ---------------------------------------------------------------------------------------------
# TFLite: LSTM unrolled by hand so the converter emits only version-1 builtin ops.

def tflite_bytes(w: Weights, alphabet: Sequence[str], beam_width: int) -> bytes:
    cell = w.recurrent.shape[0]
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        ph = _placeholders(cell)
        x = tf.reshape(ph["input_node"], [N_STEPS, (2 * N_CONTEXT + 1) * N_FEATURES])
        x = tf.nn.relu(tf.matmul(x, w.w1) + w.b1)
        gate_w = np.concatenate([w.kernel, w.recurrent], axis=0)  # [H1 + H, 4H], gates i f c o
        c, h = ph["previous_state_c"], ph["previous_state_h"]
        outputs: List[tf.Tensor] = []
        for x_t in tf.split(x, N_STEPS, axis=0):
            z = tf.matmul(tf.concat([x_t, h], axis=1), gate_w) + w.bias
            i, f, g, o = tf.split(z, 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            outputs.append(h)
        seq = tf.concat(outputs, axis=0)  # [16, H]
        logits = tf.nn.softmax(tf.matmul(seq, w.w3) + w.b3, name="logits")  # [16, n_classes]
        new_c = tf.identity(c, name="new_state_c")
        new_h = tf.identity(h, name="new_state_h")
        mfccs = _mfcc_subgraph(ph["input_samples"])
        inputs = [ph["input_node"], ph["previous_state_c"], ph["previous_state_h"], ph["input_samples"]]
        converter = tf.compat.v1.lite.TFLiteConverter.from_session(
            sess, inputs, [logits, new_c, new_h, mfccs])
        converter.allow_custom_ops = True
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        flat = converter.convert()
    return _add_metadata(bytes(flat), alphabet, beam_width)


def _add_metadata(flat: bytes, alphabet: Sequence[str], beam_width: int) -> bytes:
    """Append the metadata outputs, each produced by a RESHAPE of a constant.

    The 0.7.4 runtime finds metadata by the *producing op* of each output (a bare constant
    output crashes DS_CreateModel), and the string `metadata_alphabet` makes its producer's
    output dynamic, so that op must be the very last one.
    """
    schema = flatbuffer_utils.schema_fb
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flat))
    sub = model.subgraphs[0]
    reshape_code = None
    for k, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.RESHAPE:
            reshape_code = k
    if reshape_code is None:
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.RESHAPE
        code.version = 1
        model.operatorCodes.append(code)
        reshape_code = len(model.operatorCodes) - 1

    def add_buffer(data: bytes) -> int:
        buf = schema.BufferT()
        buf.data = np.frombuffer(data, dtype=np.uint8) if data else None
        model.buffers.append(buf)
        return len(model.buffers) - 1

    def add_tensor(name: str, ttype: int, shape: List[int], data: bytes) -> int:
        t = schema.TensorT()
        t.name = name.encode()
        t.type = ttype
        t.shape = np.array(shape, dtype=np.int32)
        t.buffer = add_buffer(data)
        sub.tensors.append(t)
        return len(sub.tensors) - 1

    shape_idx = add_tensor("metadata_shape", schema.TensorType.INT32, [1], struct.pack("<i", 1))
    values = metadata_values(beam_width)
    serialized = serialize_alphabet(alphabet)
    # TFLite string tensor: count, offsets (count + 1), bytes.
    string_buf = struct.pack("<iii", 1, 12, 12 + len(serialized)) + serialized
    specs = [(n, schema.TensorType.INT32, struct.pack("<i", values[n])) for n in METADATA_INT]
    specs.append(("metadata_alphabet", schema.TensorType.STRING, string_buf))
    for name, ttype, data in specs:
        src = add_tensor(name + "_const", ttype, [1], data)
        dst = add_tensor(name, ttype, [1], b"")
        op = schema.OperatorT()
        op.opcodeIndex = reshape_code
        op.inputs = np.array([src, shape_idx], dtype=np.int32)
        op.outputs = np.array([dst], dtype=np.int32)
        op.builtinOptionsType = schema.BuiltinOptions.ReshapeOptions
        opts = schema.ReshapeOptionsT()
        opts.newShape = np.array([1], dtype=np.int32)
        op.builtinOptions = opts
        sub.operators.append(op)  # metadata_alphabet is appended last
        sub.outputs = np.append(sub.outputs, np.int32(dst)).astype(np.int32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def tflite_summary(flat: bytes) -> Dict[str, object]:
    """Operator names/versions and tensor names of the I/O, for checks and the manifest."""
    schema = flatbuffer_utils.schema_fb
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flat))
    sub = model.subgraphs[0]
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops = []
    for op in sub.operators:
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        label = code.customCode.decode() if code.customCode else names[builtin]
        ops.append("%s/v%d" % (label, code.version))
    tname = lambda i: sub.tensors[i].name.decode()  # noqa: E731
    return {"ops": ops, "inputs": [tname(i) for i in sub.inputs],
            "outputs": [tname(i) for i in sub.outputs]}


# ---------------------------------------------------------------------------------------------
# Frozen GraphDef for the full-TF runtime: only kernels that its (TF 1.15-era) build has.

def pb_bytes(w: Weights, alphabet: Sequence[str], beam_width: int) -> bytes:
    cell = w.recurrent.shape[0]
    n_classes = w.w3.shape[1]
    hidden = w.w1.shape[1]
    graph = tf.Graph()
    with graph.as_default():
        ph = _placeholders(cell)
        tf.compat.v1.placeholder(tf.int32, [1], name="input_lengths")  # fed by the runtime, unused
        x = tf.reshape(ph["input_node"], [N_STEPS, (2 * N_CONTEXT + 1) * N_FEATURES])
        x = tf.nn.relu(tf.nn.bias_add(tf.matmul(x, tf.constant(w.w1)), tf.constant(w.b1)))
        x = tf.reshape(x, [N_STEPS, 1, hidden])
        # BlockLSTM gate order is i, c, f, o; Keras stores i, f, c, o.
        i, f, g, o = np.split(np.concatenate([w.kernel, w.recurrent], axis=0), 4, axis=1)
        bi, bf, bg, bo = np.split(w.bias, 4)
        zeros = tf.constant(np.zeros(cell, np.float32))
        lstm = tf.raw_ops.BlockLSTM(
            seq_len_max=tf.constant(N_STEPS, tf.int64), x=x, cs_prev=ph["previous_state_c"],
            h_prev=ph["previous_state_h"], w=tf.constant(np.concatenate([i, g, f, o], axis=1)),
            wci=zeros, wcf=zeros, wco=zeros, b=tf.constant(np.concatenate([bi, bg, bf, bo])),
            forget_bias=0.0, cell_clip=-1.0, use_peephole=False)
        last = tf.constant([[N_STEPS - 1, 0]], tf.int32)
        tf.identity(tf.gather_nd(lstm.cs, last), name="new_state_c")
        tf.identity(tf.gather_nd(lstm.h, last), name="new_state_h")
        seq = tf.reshape(lstm.h, [N_STEPS, cell])
        out = tf.nn.bias_add(tf.matmul(seq, tf.constant(w.w3)), tf.constant(w.b3))
        out = tf.reshape(out, tf.constant([N_STEPS, 1, n_classes], name="logits_shape"))
        tf.nn.softmax(out, name="logits")
        _mfcc_subgraph(ph["input_samples"])
        for name, value in metadata_values(beam_width).items():
            tf.constant([value], tf.int32, name=name)
        tf.constant([serialize_alphabet(alphabet)], tf.string, name="metadata_alphabet")
        keep = ["logits", "new_state_c", "new_state_h", "mfccs", "input_lengths",
                "metadata_alphabet"] + list(METADATA_INT)
        gdef = tf.compat.v1.graph_util.extract_sub_graph(graph.as_graph_def(), keep)
    _strip_default_attrs(gdef)
    return gdef.SerializeToString()


def _strip_default_attrs(gdef: graph_pb2.GraphDef) -> None:
    """Drop attrs equal to their default: an older runtime rejects attrs it does not know."""
    for node in gdef.node:
        op_def = op_def_registry.get(node.op)
        if op_def is None:
            continue
        for attr in op_def.attr:
            if attr.HasField("default_value") and attr.name in node.attr \
                    and node.attr[attr.name] == attr.default_value:
                del node.attr[attr.name]
        for key in [k for k in node.attr if k.startswith("_")]:
            del node.attr[key]


def pb_ops(data: bytes) -> List[str]:
    gdef = graph_pb2.GraphDef()
    gdef.ParseFromString(data)
    return sorted({n.op for n in gdef.node})
