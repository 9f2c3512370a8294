"""Small ONNX models built with onnx.helper, each exercising one shape of model the card
must describe: an image model (4-D input fed from an ArrayBatch, a per-row array output)
and a multi-input, multi-output model (float, bool and int64 inputs; 1-D, 2-D and 3-D
outputs)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
# onnxruntime reads IR versions up to the one its ONNX release knew; 9 is read by all we
# support (onnx>=1.16 writes newer ones by default).
IR_VERSION = 9


def _model(nodes, inputs, outputs, initializers=(), name="test") -> bytes:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="workbench-tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model.SerializeToString()


def image_model(size: int = 16, batch: int | None = None) -> bytes:
    """``pixels`` [N, 1, size, size] and ``age`` [N, 1] -> ``probabilities`` [N, 2] (softmax
    of the mean intensity and the age) and ``mask`` [N, 1, size, size] (a smoothed sigmoid)."""
    rows = batch if batch is not None else "N"
    weights = np.array([[2.0, -1.0], [0.03, -0.02]], dtype=np.float32)
    return _model(
        [helper.make_node("Conv", ["pixels", "kernel"], ["smooth"], pads=[1, 1, 1, 1]),
         helper.make_node("Sigmoid", ["smooth"], ["mask"]),
         helper.make_node("GlobalAveragePool", ["pixels"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["mean"]),
         helper.make_node("Concat", ["mean", "age"], ["both"], axis=1),
         helper.make_node("Gemm", ["both", "weights", "bias"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [rows, 1, size, size]),
         helper.make_tensor_value_info("age", TensorProto.FLOAT, [rows, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [rows, 2]),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, [rows, 1, size, size])],
        [numpy_helper.from_array(np.full((1, 1, 3, 3), 1 / 9, np.float32), "kernel"),
         numpy_helper.from_array(weights, "weights"),
         numpy_helper.from_array(np.array([0.1, -0.1], np.float32), "bias")],
        name="image")


def multi_model() -> bytes:
    """``x`` float [N, 3], ``flag`` bool [N, 1], ``count`` int64 [N, 1] -> ``total`` [N],
    ``scaled`` [N, 3], ``flag_out`` bool [N, 1], ``count_plus`` int64 [N, 1] and
    ``column_view`` [N, 3, 1] (rank 3: one array per row)."""
    return _model(
        [helper.make_node("ReduceSum", ["x", "axis1"], ["total"], keepdims=0),
         helper.make_node("Mul", ["x", "two"], ["scaled"]),
         helper.make_node("Not", ["flag"], ["flag_out"]),
         helper.make_node("Add", ["count", "one"], ["count_plus"]),
         helper.make_node("Unsqueeze", ["x", "axis2"], ["column_view"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("flag", TensorProto.BOOL, ["N", 1]),
         helper.make_tensor_value_info("count", TensorProto.INT64, ["N", 1])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, ["N"]),
         helper.make_tensor_value_info("scaled", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("flag_out", TensorProto.BOOL, ["N", 1]),
         helper.make_tensor_value_info("count_plus", TensorProto.INT64, ["N", 1]),
         helper.make_tensor_value_info("column_view", TensorProto.FLOAT, ["N", 3, 1])],
        [numpy_helper.from_array(np.array([1], np.int64), "axis1"),
         numpy_helper.from_array(np.array([2], np.int64), "axis2"),
         numpy_helper.from_array(np.array(2.0, np.float32), "two"),
         numpy_helper.from_array(np.array(1, np.int64), "one")],
        name="multi")


def vector_model() -> bytes:
    """1-D inputs: ``age`` float [N] -> ``doubled`` [N]; ``ward`` string [N] -> ``ward_out``
    string [N] (string outputs come back as a column of str)."""
    return _model(
        [helper.make_node("Mul", ["age", "two"], ["doubled"]),
         helper.make_node("Identity", ["ward"], ["ward_out"])],
        [helper.make_tensor_value_info("age", TensorProto.FLOAT, ["N"]),
         helper.make_tensor_value_info("ward", TensorProto.STRING, ["N"])],
        [helper.make_tensor_value_info("doubled", TensorProto.FLOAT, ["N"]),
         helper.make_tensor_value_info("ward_out", TensorProto.STRING, ["N"])],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two")],
        name="vector")


def sequence_model() -> bytes:
    """``x`` [N, 2] and a scalar ``scale`` -> ``parts``, a seq(tensor(float)): neither the
    scalar input nor the sequence output has a place in a table."""
    return _model(
        [helper.make_node("Mul", ["x", "scale"], ["scaled"]),
         helper.make_node("SequenceConstruct", ["scaled"], ["parts"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2]),
         helper.make_tensor_value_info("scale", TensorProto.FLOAT, [])],
        [helper.make_tensor_sequence_value_info("parts", TensorProto.FLOAT, None)],
        name="sequence")
