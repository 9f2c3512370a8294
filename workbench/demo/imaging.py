"""The imaging walkthrough's assets: real CT slices from pydicom's wheel and a tissue model.

The slices are the three CT images pydicom ships with its tests (nothing is downloaded):
``CT_small.dcm`` (a neck slice, 128x128, from NEMA's WG04 CT1 sample), ``693_J2KI.dcm``
(a head slice, 512x512, JPEG 2000, from the CQ500 collection) and
``J2K_pixelrep_mismatch.dcm`` (a head slice, 512x512, JPEG 2000). They come in two sizes,
so the hospital seals them resampled to one (``SHAPE``), as the image-set format asks.

The model ``ct-tissue`` is built with ``onnx.helper``, not trained: it labels each pixel
of a CT slice by the Hounsfield windows body-composition studies use (adipose tissue -190
to -30 HU, skeletal muscle and other soft tissue -29 to +150 HU; bone above, air below),
after a 3x3 binomial smoothing that quiets single-pixel noise. Soft edges (a logistic of
``EDGE_WIDTH_HU``) make each pixel's labels probabilities that sum to one. Per slice it
returns the areas in cm² (from the pixel spacing, a second input fed from the rows'
``spacing_row_mm`` and ``spacing_col_mm``), each tissue's fraction of the body, and the
per-pixel mask. It is a demonstration of an image model's plumbing, not a clinical tool.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.demo.environment import Hospital

NOTEBOOK = "imaging-demo.ipynb"
IMAGE_SET = "ct-slices"
MODEL = "ct-tissue"
SEALED_IMAGES = "ct-slices.sealed.parquet"
SEALED_MODEL = "ct-tissue.sealed"
CT_FILES = ("CT_small.dcm", "693_J2KI.dcm", "J2K_pixelrep_mismatch.dcm")
SHAPE = (256, 256)
CLASSES = ("air", "fat", "soft_tissue", "bone")
# Upper edges of air, fat and soft tissue (HU). Air below -190 HU counts lung and the
# partial-volume rim of the body as air.
EDGES_HU = (-190.0, -30.0, 150.0)
EDGE_WIDTH_HU = 5.0
OPSET = 17
# The graph against numpy's float64 rendering of the same arithmetic.
REFERENCE_TOLERANCE = 1e-4
AREA_COLUMNS = ("body_cm2", "fat_cm2", "soft_tissue_cm2", "bone_cm2")
FRACTION_COLUMNS = ("fat_fraction", "soft_tissue_fraction", "bone_fraction")
SPACING_COLUMNS = ("spacing_row_mm", "spacing_col_mm")


def ct_files() -> list[Path]:
    """The CT slices of the installed pydicom wheel (refused if one is absent, never fetched)."""
    from pydicom.data import get_testdata_file

    found = []
    for name in CT_FILES:
        path = get_testdata_file(name, download=False)
        if path is None:
            raise WorkbenchError(f"pydicom's wheel lacks its test file {name}: the imaging "
                                 "walkthrough needs pydicom>=3 as installed from PyPI")
        found.append(Path(path))
    return found


def notebook_path() -> Path:
    """The imaging walkthrough, next to the first one in the source tree's notebooks/."""
    import workbench

    return Path(workbench.__file__).resolve().parent.parent / "notebooks" / NOTEBOOK


# -- the model --------------------------------------------------------------------------

def _smoothing_kernel() -> np.ndarray:
    row = np.array([1.0, 2.0, 1.0])
    return (np.outer(row, row) / 16.0).astype(np.float32).reshape(1, 1, 3, 3)


def _difference_weights() -> tuple[np.ndarray, np.ndarray]:
    """1x1 convolution from P(x > edge_k), k = 0..2, to the four class probabilities."""
    weights = np.array([[-1, 0, 0], [1, -1, 0], [0, 1, -1], [0, 0, 1]], dtype=np.float32)
    return weights.reshape(4, 3, 1, 1), np.array([1, 0, 0, 0], dtype=np.float32)


def build_model() -> bytes:
    """The tissue model as ONNX bytes (no card yet)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def const(name: str, value: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(value), name)

    difference, bias = _difference_weights()
    initializers = [
        const("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64)),
        const("smooth_w", _smoothing_kernel()),
        const("edges", np.array(EDGES_HU, dtype=np.float32).reshape(1, 3, 1, 1)),
        const("edge_width", np.array(EDGE_WIDTH_HU, dtype=np.float32)),
        const("diff_w", difference),
        const("diff_b", bias),
        const("zero", np.array([0], dtype=np.int64)),
        const("one", np.array([1], dtype=np.int64)),
        const("two", np.array([2], dtype=np.int64)),
        const("four", np.array([4], dtype=np.int64)),
        const("mm2_per_cm2", np.array(100.0, dtype=np.float32)),
        const("tiny", np.array(1e-6, dtype=np.float32)),
    ]
    nodes = [
        # Edge padding: a zero pad would read as water (0 HU) around the slice.
        helper.make_node("Pad", ["image", "pads"], ["padded"], mode="edge"),
        helper.make_node("Conv", ["padded", "smooth_w"], ["smoothed"]),
        helper.make_node("Sub", ["smoothed", "edges"], ["above"]),
        helper.make_node("Div", ["above", "edge_width"], ["scaled"]),
        helper.make_node("Sigmoid", ["scaled"], ["exceeds"]),
        helper.make_node("Conv", ["exceeds", "diff_w", "diff_b"], ["mask"]),
        helper.make_node("ReduceSum", ["mask", "two_three"], ["pixels"], keepdims=0),
        helper.make_node("Slice", ["pixels", "one", "four", "one"], ["tissue"]),
        helper.make_node("ReduceSum", ["tissue", "one"], ["body"], keepdims=1),
        helper.make_node("Slice", ["spacing", "zero", "one", "one"], ["row_mm"]),
        helper.make_node("Slice", ["spacing", "one", "two", "one"], ["col_mm"]),
        helper.make_node("Mul", ["row_mm", "col_mm"], ["pixel_mm2"]),
        helper.make_node("Div", ["pixel_mm2", "mm2_per_cm2"], ["pixel_cm2"]),
        helper.make_node("Concat", ["body", "tissue"], ["counts"], axis=1),
        helper.make_node("Mul", ["counts", "pixel_cm2"], ["area_cm2"]),
        helper.make_node("Max", ["body", "tiny"], ["body_or_tiny"]),
        helper.make_node("Div", ["tissue", "body_or_tiny"], ["fractions"]),
    ]
    initializers.append(const("two_three", np.array([2, 3], dtype=np.int64)))
    graph = helper.make_graph(
        nodes, "ct_tissue",
        inputs=[helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "H", "W"]),
                helper.make_tensor_value_info("spacing", TensorProto.FLOAT, ["N", 2])],
        outputs=[helper.make_tensor_value_info("area_cm2", TensorProto.FLOAT, ["N", 4]),
                 helper.make_tensor_value_info("fractions", TensorProto.FLOAT, ["N", 3]),
                 helper.make_tensor_value_info("mask", TensorProto.FLOAT,
                                               ["N", 4, "H", "W"])],
        initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="workbench.demo.imaging")
    model.ir_version = 8  # what onnxruntime releases since 1.14 accept
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def reference(images: np.ndarray, spacing: np.ndarray) -> dict[str, np.ndarray]:
    """The model's arithmetic in numpy (float64), to check the graph against."""
    padded = np.pad(images[:, 0].astype(np.float64), ((0, 0), (1, 1), (1, 1)), mode="edge")
    kernel = _smoothing_kernel()[0, 0].astype(np.float64)
    height, width = images.shape[2:]
    smoothed = sum(kernel[i, j] * padded[:, i:i + height, j:j + width]
                   for i in range(3) for j in range(3))
    scaled = (smoothed[:, None] - np.array(EDGES_HU)[None, :, None, None]) / EDGE_WIDTH_HU
    exceeds = 0.5 * (1 + np.tanh(scaled / 2))  # the logistic, without overflow in exp
    mask = np.concatenate([1 - exceeds[:, :1], exceeds[:, :-1] - exceeds[:, 1:],
                           exceeds[:, -1:]], axis=1)
    pixels = mask.sum(axis=(2, 3))
    body = pixels[:, 1:].sum(axis=1, keepdims=True)
    pixel_cm2 = (spacing[:, :1].astype(np.float64) * spacing[:, 1:2]) / 100
    return {"area_cm2": np.concatenate([body, pixels[:, 1:]], axis=1) * pixel_cm2,
            "fractions": pixels[:, 1:] / np.maximum(body, 1e-6), "mask": mask}


def model_card() -> dict[str, Any]:
    """The card (workbench-card/2) sealed inside the model."""
    return {
        "format": "workbench-card/2",
        "name": MODEL,
        "task": "tissue areas of a CT slice by Hounsfield windows",
        "description": (
            "Labels each pixel of a CT slice (in HU) as air, fat (-190 to -30 HU), soft "
            "tissue (-30 to +150 HU) or bone (above +150 HU) after a 3x3 binomial "
            f"smoothing, with logistic edges {EDGE_WIDTH_HU:g} HU wide; returns the body's "
            "and each tissue's area in cm², each tissue's fraction of the body, and the "
            "per-pixel class probabilities. Any slice size. Not trained, not a clinical "
            "tool: a demonstration of scoring sealed images."),
        "trained_on": "not trained: fixed Hounsfield windows used in CT body-composition "
                      "analysis (adipose -190 to -30 HU, muscle -29 to +150 HU)",
        "estimator": "onnx.helper graph (Pad, Conv, Sigmoid, Conv 1x1, ReduceSum)",
        "classes": list(CLASSES),
        "edges_hu": list(EDGES_HU),
        "inputs": [
            {"name": "image", "dtype": "float32", "shape": [None, 1, None, None],
             "array": "pixels"},
            {"name": "spacing", "dtype": "float32", "shape": [None, 2],
             "columns": list(SPACING_COLUMNS)},
        ],
        "outputs": [
            {"name": "area_cm2", "dtype": "float32", "shape": [None, 4],
             "columns": list(AREA_COLUMNS)},
            {"name": "fractions", "dtype": "float32", "shape": [None, 3],
             "columns": list(FRACTION_COLUMNS)},
            {"name": "mask", "dtype": "float32", "shape": [None, 4, None, None],
             "array": "mask"},
        ],
    }


def check_model(model_bytes: bytes, images: np.ndarray, spacing: np.ndarray) -> float:
    """Largest difference between onnxruntime and the numpy reference; must be tiny."""
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    got = dict(zip(["area_cm2", "fractions", "mask"],
                   session.run(["area_cm2", "fractions", "mask"],
                               {"image": images.astype(np.float32),
                                "spacing": spacing.astype(np.float32)}), strict=True))
    expected = reference(images, spacing)
    gap = max(float(np.max(np.abs(got[k] - v) / np.maximum(1.0, np.abs(v))))
              for k, v in expected.items())
    if gap > REFERENCE_TOLERANCE:
        raise WorkbenchError(f"the {MODEL} graph disagrees with its numpy reference by "
                             f"{gap:.2e} (> {REFERENCE_TOLERANCE:.0e})")
    return gap


def model_with_card() -> bytes:
    """The model, checked against its reference on the real slices, with its card inside
    (checked against the graph as ``seal file --card`` checks it)."""
    from workbench.modelcard.attach import card_for_sealing
    from workbench.sealing.dicom import read_header, read_slices

    model = build_model()
    slices = [s for path in ct_files() for s in read_slices(read_header(path))]
    for piece in slices:
        spacing = np.array([[piece.fields["spacing_row_mm"], piece.fields["spacing_col_mm"]]])
        check_model(model, piece.pixels[None, None], spacing)
    return card_for_sealing(model, name=MODEL, card=model_card(),
                            source=f"the {MODEL} model").model_bytes


# -- the hospital's side of the imaging walkthrough -------------------------------------------

@dataclass(frozen=True)
class ImagingAssets:
    images: Path
    model: Path
    rows: int
    shape: tuple[int, int]
    card: dict[str, Any]


def publish_imaging(site: Hospital) -> ImagingAssets:
    """Seal the CT slices and the tissue model, register their keys, list them.

    Runs after ``site.prepare()`` (which made the keyring, the policy and the catalog);
    the same policy guards the image set's keys and the model's.
    """
    from workbench.demo.environment import KEYRING_NAME
    from workbench.publish.broker import Release
    from workbench.publish.core import Target, publish
    from workbench.publish.images import ImageAsset
    from workbench.publish.kinds import ASSET_KINDS
    from workbench.publish.model import ModelAsset

    keyring = site.workdir / KEYRING_NAME
    plain = site.workdir / "imaging-plaintext"
    plain.mkdir(parents=True, exist_ok=True)
    release = Release(site.policy, False, None)
    try:
        onnx_path = plain / f"{MODEL}.onnx"
        onnx_path.write_bytes(site.timed("hospital: build the CT tissue model",
                                         model_with_card))
        images = ImageAsset.read(ct_files(), IMAGE_SET, shape=SHAPE)
        with site.admin() as admin:
            site.timed("hospital: publish the CT slices (PHI and clinical keys, register, "
                       "catalog)", lambda: publish(
                           ASSET_KINDS["images"], images,
                           Target(site.data_dir, keyring, admin, release,
                                  f"{images.plan.rows} real CT slices from pydicom's test "
                                  f"files, resampled to {SHAPE[0]}x{SHAPE[1]}, identifying "
                                  "DICOM tags under the PHI key")))
            model = site.timed("hospital: publish the CT tissue model", lambda: publish(
                ASSET_KINDS["model"], ModelAsset.read(onnx_path, MODEL),
                Target(site.data_dir, keyring, admin, release,
                       "CT tissue areas by Hounsfield windows (ONNX, built with onnx.helper)")))
    finally:
        shutil.rmtree(plain)
    return ImagingAssets(site.data_dir / SEALED_IMAGES, model.path, images.plan.rows,
                         images.plan.shape, model_card())
