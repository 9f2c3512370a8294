"""CLI: ``seal table|file``, ``unseal``, ``keyring new|list`` (the data owner's side).

``seal file`` seals an ONNX model with a checked card inside: the one given (``--card``),
one derived with ``--features``, the one it carries, or one derived from its graph.

pyarrow, pandas and Tink load inside the handlers, so ``workbench --help`` and other
commands start without them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.errors import InputError, about
from workbench.sealing.keyring import Keyring
from workbench.sealing.resources import check_name


def _columns(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected COL,COL,...")
    return names


def _dataset_name(args: argparse.Namespace) -> str:
    name = args.name or Path(args.input).name.split(".")[0]
    try:
        return check_name(name)
    except ValueError as err:
        raise InputError(str(err)) from None


def _refuse_same_path(args: argparse.Namespace) -> None:
    if Path(args.input).resolve() == Path(args.out).resolve():
        raise InputError(about(args.out, "output would overwrite the input"))


def _seal_table(args: argparse.Namespace) -> int:
    from workbench.sealing.table import seal_table

    _refuse_same_path(args)
    keyring = Keyring.open(args.keyring)
    dataset = _dataset_name(args)
    out = seal_table(args.input, args.out, protect=args.protect, keyring=keyring, dataset=dataset)
    print(f"sealed table {args.input} -> {out} as dataset '{dataset}' "
          f"(identifier key {dataset}/table-key/phi, clinical key {dataset}/table-key/clinical)")
    return 0


_CARD_ORIGINS = {"given": "the card given", "carried": "the card it carries",
                 "derived": "a card derived from its graph"}


def _carded_model(args: argparse.Namespace):
    """The model with its card checked (and embedded if given or derived), or None when the
    input is not an ONNX model (``seal_file`` then refuses it as before)."""
    import json

    from workbench.modelcard.attach import card_for_sealing
    from workbench.modelcard.commands import read_bytes
    from workbench.sealing.formats import Kind, detect

    try:
        if detect(Path(args.input)) is not Kind.ONNX:
            return None
    except OSError:
        return None  # seal_file names the file and why it cannot be read
    document = None
    if args.card:
        try:
            document = json.loads(read_bytes(args.card))
        except ValueError as err:
            raise InputError(about(args.card, f"model card is not JSON ({err})")) from None
    return card_for_sealing(read_bytes(args.input), name=args.name, card=document,
                            features=args.features, source=args.input)


def _seal_file(args: argparse.Namespace) -> int:
    import tempfile

    from workbench.sealing.files import seal_file

    _refuse_same_path(args)
    keyring = Keyring.open(args.keyring)
    carded = _carded_model(args)
    if carded is None or carded.origin == "carried":
        out = seal_file(args.input, args.out, name=args.name, keyring=keyring)
    else:
        # The model with its card embedded is sealed from a private directory (0700) beside
        # the output, under the input's name (the sealed header records it), then removed.
        try:
            private = tempfile.TemporaryDirectory(dir=Path(args.out).resolve().parent,
                                                  prefix=".workbench-seal-")
        except OSError as err:
            raise InputError(about(args.out, f"cannot write ({err.strerror or err})")) from None
        with private as folder:
            carded_path = Path(folder) / Path(args.input).name
            carded_path.write_bytes(carded.model_bytes)
            out = seal_file(carded_path, args.out, name=args.name, keyring=keyring)
    card = "" if carded is None else f" with {_CARD_ORIGINS[carded.origin]} " + (
        f"({len(carded.card.inputs)} input(s), outputs: "
        f"{', '.join(map(str, carded.card.output_columns))})")
    print(f"sealed file {args.input} -> {out} as resource '{args.name}/file-keyset/main'{card}")
    return 0


def _unseal(args: argparse.Namespace) -> int:
    from workbench.sealing.atomic import atomic_output
    from workbench.sealing.files import open_file, read_header
    from workbench.sealing.formats import Kind, detect
    from workbench.sealing.table import read_sealed_table

    _refuse_same_path(args)
    source = Path(args.input)
    try:
        kind = detect(source)
    except FileNotFoundError:
        raise InputError(about(source, "file not found")) from None
    except OSError as err:
        raise InputError(about(source, f"cannot read ({err.strerror or err})")) from None
    keys = Keyring.open(args.keyring)
    if kind in (Kind.SEALED_TABLE, Kind.TRUNCATED_PARQUET):
        import pyarrow.parquet as pq

        table = read_sealed_table(source, keys)
        with atomic_output(args.out, mode=0o600) as handle:
            pq.write_table(table, handle)
        print(f"unsealed table {source} -> {args.out} ({table.num_rows} rows)")
    elif kind is Kind.SEALED_FILE:
        with source.open("rb") as handle:
            header, _ = read_header(handle, source)
        data = open_file(source, header.name, keys)
        with atomic_output(args.out, mode=0o600) as handle:
            handle.write(data)
        print(f"unsealed file {source} -> {args.out} (resource '{header.name}', {len(data)} bytes)")
    else:
        raise InputError(about(source, f"is {kind.value}, not a sealed table or file"))
    return 0


def _keyring_new(args: argparse.Namespace) -> int:
    ring = Keyring.create(args.path)
    print(f"created keyring {ring.path} (mode 0600)")
    return 0


def _keyring_list(args: argparse.Namespace) -> int:
    ring = Keyring.open(args.path)
    entries = ring.entries()
    if not entries:
        print(f"{ring.path}: no keys")
    for entry in entries:
        print(
            f"{entry.resource}\t{entry.kind}\tcreated {entry.created}"
            f"\tsha256:{entry.fingerprint}"
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    seal = subparsers.add_parser("seal", help="encrypt a table or a model")
    seal_kinds = seal.add_subparsers(dest="kind", metavar="KIND", required=True)

    table = seal_kinds.add_parser("table", help="seal a Parquet or CSV table (per-column keys)")
    table.add_argument("input", help="Parquet or CSV file")
    table.add_argument("--out", required=True, help="sealed Parquet file to write")
    table.add_argument("--protect", required=True, type=_columns, help="identifier columns")
    table.add_argument("--keyring", required=True, help="the data owner's keyring")
    table.add_argument("--name", help="dataset name (default: the input's file name stem)")
    table.set_defaults(func=_seal_table)

    file = seal_kinds.add_parser("file", help="seal an ONNX model (Tink streaming AEAD)")
    file.add_argument("input", help="ONNX model")
    file.add_argument("--out", required=True, help="sealed file to write")
    file.add_argument("--keyring", required=True, help="the data owner's keyring")
    file.add_argument("--name", required=True, help="resource name, bound to the ciphertext")
    card = file.add_mutually_exclusive_group()
    card.add_argument("--card", metavar="CARD.json",
                      help="the model card to embed (checked against the graph first; default: "
                           "the card the model carries, else one derived from its graph)")
    card.add_argument("--features", type=_columns, metavar="COL,COL,...",
                      help="feature columns in input order: derive the card with these names")
    file.set_defaults(func=_seal_file)

    unseal = subparsers.add_parser("unseal", help="decrypt a sealed table or file (owner side)")
    unseal.add_argument("input", help="sealed table or sealed file")
    unseal.add_argument("--out", required=True, help="plaintext output (written 0600)")
    unseal.add_argument("--keyring", required=True, help="the data owner's keyring")
    unseal.set_defaults(func=_unseal)

    keyring = subparsers.add_parser("keyring", help="the data owner's local keyring")
    keyring_actions = keyring.add_subparsers(dest="action", metavar="ACTION", required=True)
    new = keyring_actions.add_parser("new", help="create an empty keyring (mode 0600)")
    new.add_argument("path")
    new.set_defaults(func=_keyring_new)
    listing = keyring_actions.add_parser("list", help="list keys (names and fingerprints only)")
    listing.add_argument("path")
    listing.set_defaults(func=_keyring_list)
