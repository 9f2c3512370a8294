"""CLI: ``workbench publish table|model|images`` (one row of ``ASSET_KINDS`` each)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workbench.publish.kinds import ASSET_KINDS, AssetKind
from workbench.publish.options import add_broker, add_data_dir, data_dir_of


def _describe(outcome) -> str:
    if not outcome.changed:
        return (f"{outcome.kind} '{outcome.name}' is already published as {outcome.path}: "
                "sealed file, keys, broker and catalog unchanged")
    lines = [f"published {outcome.kind} '{outcome.name}' as {outcome.path}",
             f"  sealed file: {outcome.file}"]
    lines += [f"  {resource}: {action} in the key broker"
              for resource, action in outcome.resources.items()]
    lines.append(f"  catalog entry: {outcome.catalog}")
    return "\n".join(lines)


def _publish(kind: AssetKind, args: argparse.Namespace) -> int:
    from workbench.kbs.admin_token import client_token
    from workbench.kbs.adminclient import AdminClient
    from workbench.kbs.commands import read_policy
    from workbench.publish.broker import Release
    from workbench.publish.core import Target, checked_name, publish

    name = checked_name(args.name)
    asset = kind.read(Path(args.input), name, args)
    release = Release(policy=read_policy(args.policy) if args.policy else None,
                      require_approval=args.require_approval,
                      approval_timeout_s=args.approval_timeout, users=args.users,
                      groups=args.groups)
    data_dir = data_dir_of(args, create=True)
    with AdminClient(args.url, client_token(args.admin_token_file)) as admin:
        outcome = publish(kind, asset, Target(data_dir, Path(args.keyring), admin, release,
                                              args.description, args.rotate))
    print(json.dumps(outcome.to_json(), indent=2) if args.json else _describe(outcome))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    publish = subparsers.add_parser(
        "publish", help="the data owner's one step: seal, register the keys, list in the "
                        "catalog")
    kinds = publish.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind in ASSET_KINDS.values():
        parser = kinds.add_parser(kind.word, help=kind.help)
        parser.add_argument("input", help="the plaintext file (or, for images, a directory)")
        parser.add_argument("--name", required=True,
                            help="its name in the catalog (and in its broker resources)")
        kind.arguments(parser)
        parser.add_argument("--keyring", required=True, help="the data owner's keyring")
        parser.add_argument("--policy", metavar="POLICY.json",
                            help="release policy for keys not yet in the broker")
        parser.add_argument("--rotate", action="store_true",
                            help="new keys: re-seal, and replace the broker's keys")
        parser.add_argument("--description", help="catalog description (default: unchanged)")
        parser.add_argument("--require-approval", action="store_true",
                            help="new keys: each release waits for 'kbs approve'")
        parser.add_argument("--approval-timeout", type=int, metavar="SECONDS",
                            help="new keys: refuse when no decision comes in time")
        parser.add_argument("--user", dest="users", action="append", metavar="NAME",
                            help="new keys: release only to this hub user (repeatable)")
        parser.add_argument("--group", dest="groups", action="append", metavar="NAME",
                            help="new keys: release only to this hub group (repeatable)")
        add_data_dir(parser)
        add_broker(parser)
        parser.add_argument("--json", action="store_true", help="print what changed as JSON")
        parser.set_defaults(func=lambda args, kind=kind: _publish(kind, args))
