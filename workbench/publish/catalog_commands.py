"""CLI: ``workbench catalog list|add|remove``, the data owner's edits of catalog.json."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from workbench.errors import InputError, about
from workbench.kernel.catalog import KINDS, Catalog
from workbench.publish.options import add_data_dir, data_dir_of

CATALOG_KINDS = tuple(KINDS.values())
COLUMNS = ("KIND", "NAME", "FILE", "RESOURCES", "DESCRIPTION")


def _rows(catalog: Catalog) -> list[dict[str, object]]:
    return [{**entry.to_json(), "file": catalog.stored_path(entry.kind, entry.name),
             "present": entry.path.is_file()} for entry in catalog.entries()]


def _list(args: argparse.Namespace) -> int:
    catalog = Catalog.load_or_new(data_dir_of(args))
    rows = _rows(catalog)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"{catalog.path}: no entries")
        return 0
    table = [COLUMNS] + [(str(r["kind"]), str(r["name"]),
                          f"{r['file']}" + ("" if r["present"] else " (missing)"),
                          ",".join(r["resources"]), str(r["description"])) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS) - 1)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
              + "  " + row[-1])
    return 0


def _relative(data_dir: Path, file: Path) -> str:
    """The file's path as the catalog stores it: inside the data directory, relative."""
    resolved, base = file.resolve(), data_dir.resolve()
    if not resolved.is_relative_to(base):
        raise InputError(about(file, f"is not inside the data directory {data_dir}: kernels "
                                     "find files relative to it; move the file there first"))
    return os.path.relpath(resolved, base)


def _add(args: argparse.Namespace) -> int:
    from workbench.publish.checks import check_sealed_for
    from workbench.publish.core import checked_name

    data_dir = data_dir_of(args)
    name = checked_name(args.name)
    file = Path(args.file)
    check_sealed_for(args.kind, name, file)
    relative = _relative(data_dir, file)
    catalog = Catalog.load_or_new(data_dir)
    existing = catalog.find(args.kind, name)
    if existing is not None and catalog.stored_path(args.kind, name) != relative:
        raise InputError(f"{catalog.path}: already lists the {args.kind} '{name}' as "
                         f"{catalog.stored_path(args.kind, name)}; remove it first")
    description = (args.description if args.description is not None
                   else existing.description if existing else "")
    if catalog.put(args.kind, name, relative, description):
        catalog.save()
        print(f"{'updated' if existing else 'added'} {args.kind} '{name}' ({relative}) in "
              f"{catalog.path}")
    else:
        print(f"{args.kind} '{name}' ({relative}) is already in {catalog.path}: unchanged")
    return 0


def _remove(args: argparse.Namespace) -> int:
    catalog = Catalog.load(data_dir_of(args))
    entry = catalog.remove(args.kind, args.name)
    catalog.save()
    said = f"removed {args.kind} '{args.name}' from {catalog.path}"
    if args.delete_file:
        # After the catalog no longer names it: no kernel is sent to a file being deleted.
        entry.path.unlink(missing_ok=True)
        said += f" and deleted {entry.path}"
    else:
        said += f" (the file {entry.path} stays)"
    print(said + f"; its keys stay in the key broker (revoke them with `workbench kbs "
                 f"resource revoke`): {', '.join(entry.resources)}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    catalog = subparsers.add_parser("catalog", help="the data catalog kernels read "
                                                    "(catalog.json beside the sealed files)")
    actions = catalog.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="kind, name, file, resources and description "
                                              "of every entry")
    add_data_dir(listing)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_list)

    add = actions.add_parser("add", help="list a sealed file (checked to be sealed for NAME)")
    add.add_argument("kind", choices=CATALOG_KINDS, metavar="KIND",
                     help=f"one of {', '.join(CATALOG_KINDS)}")
    add.add_argument("name")
    add.add_argument("file", help="the sealed file, inside the data directory")
    add.add_argument("--description", help="what it is (default: unchanged, or empty)")
    add_data_dir(add)
    add.set_defaults(func=_add)

    remove = actions.add_parser("remove", help="drop an entry (the file stays unless "
                                               "--delete-file)")
    remove.add_argument("kind", choices=CATALOG_KINDS, metavar="KIND",
                        help=f"one of {', '.join(CATALOG_KINDS)}")
    remove.add_argument("name")
    remove.add_argument("--delete-file", action="store_true",
                        help="also delete the sealed file")
    add_data_dir(remove)
    remove.set_defaults(func=_remove)
