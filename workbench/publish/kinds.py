"""Kinds of assets a data owner publishes, as a table: adding a kind is one row.

Each row names the command word (``workbench publish WORD``), the catalog kind it becomes
(which fixes its broker resources: :func:`workbench.kernel.catalog.resources_of`), the
sealed file's suffix, and how the command reads the asset from its arguments. An asset is
anything with ``name``, ``seal(out, keyring)`` and ``same_as(sealed, keyring)``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from workbench.sealing.keyring import Keyring


class Asset(Protocol):
    name: str

    def seal(self, out: Path, keyring: Keyring) -> None:
        """Write the sealed asset to ``out`` (creating missing keys in the keyring)."""
        ...

    def same_as(self, sealed: Path, keyring: Keyring) -> bool:
        """Whether ``sealed`` already holds exactly this asset, sealed the same way."""
        ...


@dataclass(frozen=True)
class AssetKind:
    word: str
    catalog_kind: str
    suffix: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    read: Callable[[Path, str, argparse.Namespace], Asset]


def _columns(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected COL,COL,...")
    return names


def _table_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--protect", required=True, type=_columns, metavar="COL,COL,...",
                        help="identifier columns, sealed under the PHI key")


def _read_table(source: Path, name: str, args: argparse.Namespace) -> Asset:
    from workbench.publish.table import TableAsset

    return TableAsset.read(source, name, args.protect)


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    card = parser.add_mutually_exclusive_group()
    card.add_argument("--card", type=Path, metavar="CARD.json",
                      help="the model card to embed (which columns feed which input)")
    card.add_argument("--features", type=_columns, metavar="A,B,...",
                      help="the columns feeding the model's inputs, in order (the card is derived "
                           "from the graph)")


def _read_model(source: Path, name: str, args: argparse.Namespace) -> Asset:
    from workbench.publish.model import ModelAsset

    return ModelAsset.read(source, name, card=args.card, features=args.features)


def _shape(text: str) -> tuple[int, int]:
    try:
        rows, columns = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError("expected ROWSxCOLUMNS, e.g. 256x256") from None
    if rows < 1 or columns < 1:
        raise argparse.ArgumentTypeError("rows and columns must be at least 1")
    return rows, columns


def _image_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shape", type=_shape, metavar="ROWSxCOLUMNS",
                        help="resample every image to this size (default: the images must "
                             "share one size)")
    parser.add_argument("--compression", choices=("none", "zstd"), default="none",
                        help="pixel pages: none (fastest to score) or zstd (smaller)")


def _read_images(source: Path, name: str, args: argparse.Namespace) -> Asset:
    from workbench.publish.images import ImageAsset

    return ImageAsset.read(source, name, shape=args.shape, compression=args.compression)


ASSET_KINDS: dict[str, AssetKind] = {kind.word: kind for kind in (
    AssetKind("table", "dataset", ".sealed.parquet",
              "seal a Parquet or CSV table (identifiers under their own key) and publish it",
              _table_arguments, _read_table),
    AssetKind("model", "model", ".sealed",
              "seal an ONNX model with its card and publish it",
              _model_arguments, _read_model),
    AssetKind("images", "images", ".sealed.parquet",
              "seal DICOM images or NumPy arrays (a file or a directory; identifying tags "
              "under the PHI key) and publish them as an image set",
              _image_arguments, _read_images),
)}
