"""CLI: ``card show MODEL`` (the card a model carries, or the one derived from its graph).

onnx loads inside the handler, so ``workbench --help`` and other commands start without it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workbench.errors import InputError, about
from workbench.modelcard.document import ModelCard
from workbench.modelcard.signature import shape_text

ORIGINS = {
    "carried": "the card the model carries",
    "derived": "derived from the graph (the model carries no card)",
    "features": "derived from the graph and --features",
}


def feature_list(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected COL,COL,...")
    return names


def read_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(about(path, "file not found")) from None
    except OSError as err:
        raise InputError(about(path, f"cannot read ({err.strerror or err})")) from None


def describe(card: ModelCard) -> str:
    """The card as a few aligned lines: descriptive fields, then each input and output."""
    lines = [f"name         {card.name}"]
    lines += [f"{k:<12} {v}" for k, v in card.about.items() if not isinstance(v, dict | list)]
    rows = [("inputs", i.name, i.dtype or "?", shape_text(i.shape),
             f"array {i.array}" if i.array else "columns " + ", ".join(i.columns))
            for i in card.inputs]
    rows += [("outputs", o.name, o.dtype or "?", shape_text(o.shape),
              f"array {o.array}" if o.array else "columns " + ", ".join(map(str, o.columns)))
             for o in card.outputs]
    widths = [max(len(r[k]) for r in rows) for k in range(1, 4)]
    heading = None
    for group, name, dtype, shape, source in rows:
        if group != heading:
            lines.append(group)
            heading = group
        lines.append(f"  {name:<{widths[0]}}  {dtype:<{widths[1]}}  {shape:<{widths[2]}}  "
                     f"{source}")
    return "\n".join(lines)


def card_json(document: dict) -> str:
    """The card as JSON to read and edit: one line per field, one line per input or output."""
    lines = []
    for key, value in document.items():
        if key in ("inputs", "outputs"):
            items = ",\n".join(f"    {json.dumps(v)}" for v in value)
            lines.append(f"  {json.dumps(key)}: [\n{items}\n  ]")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}"


def _show(args: argparse.Namespace) -> int:
    from workbench.modelcard.check import resolve
    from workbench.modelcard.derive import derive_from_model
    from workbench.modelcard.embed import carried_card, parse_model
    from workbench.modelcard.signature import signature_from_onnx

    model_bytes = read_bytes(args.model)
    model = parse_model(model_bytes, source=args.model)
    name = args.name or Path(args.model).name.split(".")[0]
    carried = None if args.features else carried_card(model, source=args.model)
    if carried is not None:
        card, origin = carried, "carried"
    else:
        card = derive_from_model(model, args.features, name=name, source=args.model)
        origin = "features" if args.features else "derived"
    card = resolve(card, signature_from_onnx(model), source=args.model)
    if args.json:
        print(card_json(card.to_json()))
    else:
        print(f"{args.model}: {ORIGINS[origin]}")
        print(describe(card))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    card = subparsers.add_parser("card", help="model cards: what a model reads and returns")
    actions = card.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="the card an ONNX model carries, or the one "
                                           "derived from its graph")
    show.add_argument("model", help="ONNX model (plain, not sealed)")
    show.add_argument("--features", type=feature_list,
                      help="feature columns in input order (derive the card with them)")
    show.add_argument("--name", help="the model's name in a derived card (default: the "
                                     "file name stem)")
    show.add_argument("--json", action="store_true",
                      help="print the card as JSON (format 2), e.g. to edit and seal with")
    show.set_defaults(func=_show)
