"""CLI: ``workbench demo [--headless]`` (the walkthrough) and ``workbench demo assets``."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from workbench.demo.walkthroughs import DEFAULT, WALKTHROUGHS


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _workdir(args: argparse.Namespace) -> Path:
    return Path(args.out or tempfile.mkdtemp(prefix="workbench-demo-")).resolve()


def _demo(args: argparse.Namespace) -> int:
    if args.headless:
        from workbench.demo.headless import run_headless

        report = run_headless(_workdir(args), rows=args.rows, seed=args.seed,
                              walkthrough=args.walkthrough)
        print("\n".join(report.lines()), flush=True)
        return 0 if report.ok else 1
    from workbench.demo.lab import run_lab

    return run_lab(_workdir(args), rows=args.rows, seed=args.seed,
                   open_browser=False if args.no_browser else None,
                   walkthrough=args.walkthrough)


def _assets(args: argparse.Namespace) -> int:
    from workbench.demo.assets import build_assets

    assets = build_assets(args.out, rows=args.rows, seed=args.seed)
    card = assets.card_data
    print(f"wrote {assets.cohort} ({args.rows} patients), {assets.model} "
          f"(held-out AUC {card['held_out_auc']:.4f}), {assets.card}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo", help="the healthcare walkthrough: a key broker, sealed data and JupyterLab")
    demo.add_argument("--headless", action="store_true",
                      help="execute the notebook through a sealed session (releases approved in "
                           "that session) and "
                           "print a summary instead of opening JupyterLab")
    demo.add_argument("--walkthrough", choices=sorted(WALKTHROUGHS), default=DEFAULT,
                      help="healthcare (a table and a risk model, the default) or imaging "
                           "(sealed CT slices and a tissue model)")
    demo.add_argument("--no-browser", action="store_true",
                      help="do not open a web browser (the URL is printed either way)")
    demo.add_argument("--out", help="working directory (default: a new temporary directory)")
    demo.add_argument("--rows", type=_positive, default=569, help="patients (default 569)")
    demo.add_argument("--seed", type=int, default=7, help="seed for synthetic identifiers")
    demo.set_defaults(func=_demo)
    actions = demo.add_subparsers(dest="action", metavar="ACTION")
    assets = actions.add_parser("assets", help="write cohort.parquet, risk-model.onnx and card")
    assets.add_argument("--out", required=True, help="directory to write into")
    assets.add_argument("--rows", type=_positive, default=569, help="patients (default 569)")
    assets.add_argument("--seed", type=int, default=7, help="seed (default 7)")
    assets.set_defaults(func=_assets)
