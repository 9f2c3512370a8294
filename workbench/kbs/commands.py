"""CLI: ``kbs serve|resource|policy|approve|deny|pending|audit|get-resource|openapi`` and
``audit verify``. Heavy imports (FastAPI, uvicorn, SQLAlchemy) happen inside the handlers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from workbench.errors import InputError, WorkbenchError, about
from workbench.kbs.listing import DEFAULT_PAGE, MAX_PAGE

POLICY_MAX_BYTES = 1024 * 1024
KEY_MAX_BYTES = 64 * 1024


def _read_bytes(path: str, what: str, limit: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as err:
        raise InputError(about(path, f"cannot read {what} ({err.strerror or err})")) from None
    if len(data) > limit:
        raise InputError(about(path, f"{what} is larger than {limit} bytes"))
    if not data:
        raise InputError(about(path, f"{what} is empty"))
    return data


def read_policy(path: str) -> dict[str, Any]:
    try:
        document = json.loads(_read_bytes(path, "policy", POLICY_MAX_BYTES))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(about(path, f"policy is not valid JSON ({err})")) from None
    if not isinstance(document, dict):
        raise InputError(about(path, "policy must be a JSON object"))
    return document


def _admin(args: argparse.Namespace) -> Any:
    from workbench.kbs.admin_token import client_token
    from workbench.kbs.adminclient import AdminClient

    return AdminClient(args.url, client_token(args.admin_token_file))


def _emit(args: argparse.Namespace, value: Any, human: str) -> int:
    print(json.dumps(value, indent=2) if getattr(args, "json", False) else human)
    return 0


def _describe_resource(info: dict[str, Any]) -> str:
    approval = (f"approval required (timeout {info['approval_timeout_s']} s)"
                if info["require_approval"] else "no approval")
    who = [f"{kind} {','.join(info[kind])}" for kind in ("users", "groups") if info.get(kind)]
    key = f"  key sha256:{info['key_fingerprint']}" if info.get("key_fingerprint") else ""
    return (f"{info['path']}  {info['status']}  v{info['version']}  {info['key_length']} bytes  "
            f"policy {info['policy_id']}  {approval}  "
            + ("; ".join(who) if who else "any user") + key)


# -- server ---------------------------------------------------------------------------------

def _serve(args: argparse.Namespace) -> int:
    from workbench.kbs.config import load_config
    from workbench.kbs.server import serve

    config = load_config(args.config, {
        "db": args.db, "host": args.host, "port": args.port, "kek_file": args.kek_file,
        "admin_token_file": args.admin_token_file, "log_level": args.log_level,
        "workers": args.workers, "hub_api_url": args.hub_api_url,
        "audit_witness": args.audit_witness,
    })
    serve(config)
    return 0


def _openapi(args: argparse.Namespace) -> int:
    from workbench.kbs.openapi import openapi_text

    text = openapi_text()
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text)
        print(f"wrote the broker's OpenAPI description to {args.out}")
    return 0


# -- admin ----------------------------------------------------------------------------------

def _key_from_keyring(keyring: str, resource: str) -> bytes:
    """The key of ``resource`` read from the owner's keyring, kept in memory only."""
    from workbench.sealing.keyring import Keyring
    from workbench.sealing.keys import KeyUnavailable

    try:
        return Keyring.open(keyring).get_key(resource)
    except KeyUnavailable as err:
        raise InputError(str(err)) from None


def _resource_add(args: argparse.Namespace) -> int:
    key = (_key_from_keyring(args.keyring, args.path) if args.keyring
           else _read_bytes(args.file, "key", KEY_MAX_BYTES))
    policy = read_policy(args.policy)
    with _admin(args) as admin:
        info = admin.add_resource(args.path, key, policy, require_approval=args.require_approval,
                                  approval_timeout_s=args.approval_timeout,
                                  users=args.users or None, groups=args.groups or None)
    return _emit(args, info, f"added {_describe_resource(info)}")


def _resource_list(args: argparse.Namespace) -> int:
    with _admin(args) as admin:
        items = admin.list_resources()
    lines = "\n".join(_describe_resource(i) for i in items) or "no resources"
    return _emit(args, items, lines)


def _resource_show(args: argparse.Namespace) -> int:
    with _admin(args) as admin:
        info = admin.show_resource(args.path)
    return _emit(args, info, _describe_resource(info))


def _resource_rotate(args: argparse.Namespace) -> int:
    key = _read_bytes(args.file, "key", KEY_MAX_BYTES) if args.file else None
    with _admin(args) as admin:
        info = admin.rotate(args.path, key)
    return _emit(args, info, f"rotated {_describe_resource(info)}")


def _resource_delete(args: argparse.Namespace) -> int:
    with _admin(args) as admin:
        info = admin.delete_resource(args.path)
    return _emit(args, info, f"deleted {info['path']} (it was never released)")


def _resource_revoke(args: argparse.Namespace) -> int:
    with _admin(args) as admin:
        info = admin.revoke(args.path)
    return _emit(args, info, f"revoked {info['path']}: key material destroyed, releases refused")


def _policy_set(args: argparse.Namespace) -> int:
    policy = read_policy(args.policy)
    with _admin(args) as admin:
        users, groups = ([], []) if args.any_user else (args.users, args.groups)
        info = admin.set_policy(args.path, policy, require_approval=args.require_approval,
                                approval_timeout_s=args.approval_timeout, users=users,
                                groups=groups)
    return _emit(args, info, f"policy set: {_describe_resource(info)}")


def _policy_show(args: argparse.Namespace) -> int:
    with _admin(args) as admin:
        shown = admin.show_policy(args.path)
    print(json.dumps(shown, indent=2))
    return 0


def _decide(args: argparse.Namespace, approve: bool) -> int:
    with _admin(args) as admin:
        result = admin.decide(args.id, approve=approve, reason=args.reason)
    return _emit(args, result, f"{result['id']}: {result['state']} ({result['resource']})")


def _pending(args: argparse.Namespace) -> int:
    with _admin(args) as admin:
        page = admin.approvals("all" if args.all else "pending", limit=args.limit,
                               before=args.before)
    items = page.items
    if page.more:
        # On stderr, so that --json output stays the list it always was.
        more = " --all" if args.all else ""
        print(f"{page.more} older request(s) not shown ({page.total} in all): "
              f"workbench kbs pending{more} --before {page.next_before}", file=sys.stderr)
    lines = []
    for item in items:
        kernel = item["kernel"].get("kernel", {})
        who = ", ".join(f"{k}={v}" for k, v in kernel.items())
        user = (item["kernel"].get("user") or {}).get("name", "(no user identity)")
        lines.append(f"{item['id']}  {item['state']}  {item['resource']}  deadline "
                     f"{item['deadline']}  user {user}  verdict {item['kernel'].get('verdict')}"
                     f"  {who}")
    return _emit(args, items, "\n".join(lines) or "no pending requests")


def _audit_list(args: argparse.Namespace) -> int:
    with _admin(args) as admin:
        items = admin.audit(after=args.after, limit=args.limit, kind=args.kind)
    lines = [f"{r['seq']:>6}  {r['time']}  {r['kind']:<8}  "
             f"{json.dumps(r['payload'], sort_keys=True)}" for r in items]
    return _emit(args, items, "\n".join(lines) or "no records")


def _audit_verify(args: argparse.Namespace) -> int:
    from workbench.kbs import checkpoint
    from workbench.kbs.audit import verify_chain
    from workbench.kbs.audit_keys import check_fingerprints, trusted_keys
    from workbench.kbs.broker_key import public_keys
    from workbench.kbs.config import default_db_url
    from workbench.kbs.key_file import key_file_path

    url = args.db or default_db_url()
    pins = args.fingerprints or []
    check_fingerprints(pins)
    # Bad input is refused before the store is opened.
    checkpoints = [(path, checkpoint.read(path)) for path in args.checkpoints or []]
    store = _open_store(url)
    try:
        with store.read() as conn:
            keys = trusted_keys(files=args.keys or [], urls=args.jwks or [], pins=pins,
                                stored=public_keys(conn).values() if pins else (),
                                default_file=key_file_path(url))
            for source, point in checkpoints:
                checkpoint.check_signature(point, keys.keys, source)
            verdict = verify_chain(conn, keys.keys,
                                   [point.anchor(source) for source, point in checkpoints])
    finally:
        store.dispose()
    human = "\n".join([verdict.describe(), *(f"  broker key {s}" for s in keys.sources),
                        *(f"  checkpoint {source}: record {point.seq} {point.hash}"
                          for source, point in checkpoints)])
    _emit(args, {"ok": verdict.ok, "records": verdict.records, "bad_seq": verdict.bad_seq,
                 "head_seq": verdict.head_seq, "head_hash": verdict.head_hash,
                 "keys": keys.sources, "checkpoints": [s for s, _ in checkpoints],
                 "detail": verdict.describe()}, human)
    if not verdict.ok:
        raise WorkbenchError(verdict.describe())
    return 0


def _read_public_key(path: str) -> dict[str, Any]:
    """An analyst's public key file: a JWK (``workbench analyst keygen``) or a PEM key."""
    data = _read_bytes(path, "public key", 64 * 1024)
    try:
        document = json.loads(data)
    except ValueError:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        from workbench.sealed.certificate import jwk_of

        try:
            key = load_pem_public_key(data)
            return jwk_of(key)  # type: ignore[arg-type]
        except (ValueError, TypeError, AttributeError):
            raise InputError(about(Path(path), "neither a JWK nor a PEM EC P-256 public key")) \
                from None
    if not isinstance(document, dict):
        raise InputError(about(Path(path), "a JWK is a JSON object"))
    return document


def _analyst_add(args: argparse.Namespace) -> int:
    with _admin(args) as admin:
        analyst = admin.add_analyst(args.name, _read_public_key(args.public_key), args.group)
    return _emit(args, analyst, f"registered analyst {analyst['name']} "
                                f"{analyst['fingerprint']} groups "
                                f"{', '.join(analyst['groups']) or '(none)'}")


def _analyst_list(args: argparse.Namespace) -> int:
    with _admin(args) as admin:
        items = admin.analysts()
    lines = [f"{a['name']:<24} {a['fingerprint']}  groups {','.join(a['groups']) or '-'}  "
             + (f"REVOKED {a['revoked_at']}" if a["revoked_at"] else f"added {a['added_at']}")
             for a in items]
    return _emit(args, items, "\n".join(lines) or "no analysts registered")


def _analyst_revoke(args: argparse.Namespace) -> int:
    with _admin(args) as admin:
        analyst = admin.revoke_analyst(args.name)
    return _emit(args, analyst, f"revoked analyst {analyst['name']} at "
                                f"{analyst['revoked_at']}: their sessions get nothing more")


def _audit_checkpoint(args: argparse.Namespace) -> int:
    from workbench.kbs import checkpoint

    out = Path(args.out)
    if out.exists():
        raise InputError(about(out, "already exists: a checkpoint is evidence, so each one "
                                    "goes to a new file"))
    if not out.parent.is_dir():
        raise InputError(about(out.parent, "output directory does not exist"))
    with _admin(args) as admin:
        point = checkpoint.parse(admin.audit_checkpoint(), f"the key broker at {args.url}")
    checkpoint.save(point, out)
    return _emit(args, point.to_json(),
                 f"checkpoint of audit record {point.seq} ({point.hash}, {point.time}, signed "
                 f"by SHA256:{point.kid}) written to {out}: keep it where the broker's host "
                 "cannot reach, and give it to `workbench audit verify --checkpoint`")


def _open_store(url: str) -> Any:
    """The store at ``url``; InputError when a SQLite file there does not exist."""
    from workbench.kbs.store import Store, sqlite_path

    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise InputError(about(path, "no such store"))
    return Store(url)


def _fingerprint(args: argparse.Namespace) -> int:
    from jwcrypto.jwk import JWK

    from workbench.kbs.audit_keys import keys_from_file
    from workbench.kbs.broker_key import public_keys
    from workbench.kbs.config import default_db_url
    from workbench.kbs.key_file import key_file_path

    url = args.db or default_db_url()
    # The broker's key file holds keys it derived from private keys it could open under the
    # KEK; rows of the table can be inserted by whoever writes the database.
    published = key_file_path(url)
    if published.is_file():
        keys = [key.thumbprint() for key in keys_from_file(str(published))]
    else:
        store = _open_store(url)
        try:
            with store.read() as conn:
                keys = [JWK.from_pyca(k).thumbprint() for k in public_keys(conn).values()]
        finally:
            store.dispose()
    if not keys:
        raise WorkbenchError(f"the store {url} holds no broker key yet: start the broker "
                             "once (`workbench kbs serve`) to create it")
    prints = sorted("SHA256:" + thumbprint for thumbprint in keys)
    return _emit(args, prints, "\n".join(prints))


# -- attested client --------------------------------------------------------------------------

def _get_resource(args: argparse.Namespace) -> int:
    from workbench.brokerclient import BrokerSession, PendingRelease
    from workbench.kbs.errors import KbsError
    from workbench.kbs.paths import check_path
    from workbench.sealing.atomic import atomic_output

    try:
        check_path(args.path)
    except KbsError as err:
        raise InputError(err.detail) from None
    out = Path(args.out)
    if not out.parent.is_dir():
        raise InputError(about(out.parent, "output directory does not exist"))

    def waiting(pending: PendingRelease) -> None:
        print(f"{pending.resource}: pending approval by the data owner (request "
              f"{pending.request_id}, deadline {pending.deadline}); waiting...", file=sys.stderr)

    with BrokerSession(args.url, tee=args.tee) as session:
        session.attest([args.path])
        claims = session.verified_claims()
        verdict = claims["submods"]["kernel"]["ear.status"]
        print(f"attested ({args.tee}): token verified with broker key "
              f"{session.broker_keys()[0].thumbprint()}, verdict {verdict}", file=sys.stderr)
        data = session.get_resource(args.path, wait_s=args.wait, on_pending=waiting)
    with atomic_output(out, mode=0o600) as handle:
        handle.write(data)
    print(f"released {args.path} -> {out} ({len(data)} bytes, mode 0600)")
    return 0


# -- registration -----------------------------------------------------------------------------

def _with_admin(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from workbench.kbs.adminclient import default_url

    parser.add_argument("--url", default=default_url(),
                        help="broker URL (default: $WORKBENCH_KBS_URL or %(default)s)")
    parser.add_argument("--admin-token-file",
                        help="file holding the admin token (default: $WORKBENCH_KBS_ADMIN_TOKEN)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _with_who(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", dest="users", action="append", metavar="NAME",
                        help="release only to this hub user (repeatable; with --group: either)")
    parser.add_argument("--group", dest="groups", action="append", metavar="NAME",
                        help="release only to members of this hub group (repeatable)")


def register(subparsers: argparse._SubParsersAction) -> None:
    kbs = subparsers.add_parser("kbs", help="the key broker service (server, admin, client)")
    sub = kbs.add_subparsers(dest="kbs_command", metavar="COMMAND")
    sub.required = True

    serve = sub.add_parser("serve", help="run the key broker (HTTP)")
    serve.add_argument("--db", help="SQLAlchemy URL (default: SQLite under $WORKBENCH_HOME/kbs)")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (default 8080)")
    serve.add_argument("--config", help="TOML or JSON settings file")
    serve.add_argument("--kek-file", help="key-encryption key file (default: $WORKBENCH_KBS_KEK"
                                          "_FILE, $WORKBENCH_KBS_KEK, or a dev key beside the DB)")
    serve.add_argument("--admin-token-file", help="admin token file (default: "
                                                  "$WORKBENCH_KBS_ADMIN_TOKEN)")
    serve.add_argument("--log-level", choices=("critical", "error", "warning", "info", "debug"))
    serve.add_argument("--workers", type=int, help="server processes (default 1)")
    serve.add_argument("--hub-api-url", help="JupyterHub REST API that resolves the analysts' "
                                             "identity tokens, e.g. http://127.0.0.1:8081/hub/api")
    serve.add_argument("--audit-witness", metavar="DIR_OR_URL",
                       help="push signed audit checkpoints to this directory or URL")
    serve.set_defaults(func=_serve)

    openapi = sub.add_parser("openapi", help="print or write the broker's OpenAPI description")
    openapi.add_argument("--out", default="-", help="file to write (default: stdout)")
    openapi.set_defaults(func=_openapi)

    resource = sub.add_parser("resource", help="register and manage resources (keys)")
    rsub = resource.add_subparsers(dest="resource_command", metavar="COMMAND")
    rsub.required = True
    add = _with_admin(rsub.add_parser("add", help="register a key under REPO/TYPE/TAG"))
    add.add_argument("path", metavar="REPO/TYPE/TAG")
    material = add.add_mutually_exclusive_group(required=True)
    material.add_argument("--file", help="the key material")
    material.add_argument("--keyring", help="the data owner's keyring: register its key for "
                                            "REPO/TYPE/TAG (read in memory, never written out)")
    add.add_argument("--policy", required=True, help="appraisal policy JSON")
    add.add_argument("--require-approval", action="store_true",
                     help="each release waits for 'kbs approve'")
    add.add_argument("--approval-timeout", type=int, metavar="SECONDS",
                     help="refuse when no decision comes in time (default: broker setting)")
    _with_who(add)
    add.set_defaults(func=_resource_add)
    listing = _with_admin(rsub.add_parser("list", help="list resources"))
    listing.set_defaults(func=_resource_list)
    show = _with_admin(rsub.add_parser("show", help="show one resource"))
    show.add_argument("path", metavar="REPO/TYPE/TAG")
    show.set_defaults(func=_resource_show)
    rotate = _with_admin(rsub.add_parser("rotate", help="replace a resource's key"))
    rotate.add_argument("path", metavar="REPO/TYPE/TAG")
    rotate.add_argument("--file", help="new key material (default: fresh random 32 bytes)")
    rotate.set_defaults(func=_resource_rotate)
    delete = _with_admin(rsub.add_parser("delete", help="remove a resource that was never "
                                                        "released (else: revoke)"))
    delete.add_argument("path", metavar="REPO/TYPE/TAG")
    delete.set_defaults(func=_resource_delete)
    revoke = _with_admin(rsub.add_parser("revoke", help="destroy a key and refuse releases"))
    revoke.add_argument("path", metavar="REPO/TYPE/TAG")
    revoke.set_defaults(func=_resource_revoke)

    policy = sub.add_parser("policy", help="a resource's appraisal policy")
    psub = policy.add_subparsers(dest="policy_command", metavar="COMMAND")
    psub.required = True
    pset = _with_admin(psub.add_parser("set", help="replace a resource's policy"))
    pset.add_argument("path", metavar="REPO/TYPE/TAG")
    pset.add_argument("--policy", required=True, help="appraisal policy JSON")
    approval = pset.add_mutually_exclusive_group()
    approval.add_argument("--require-approval", dest="require_approval", action="store_true",
                          default=None)
    approval.add_argument("--no-require-approval", dest="require_approval",
                          action="store_false")
    pset.add_argument("--approval-timeout", type=int, metavar="SECONDS")
    _with_who(pset)
    pset.add_argument("--any-user", action="store_true",
                      help="lift the user and group restrictions")
    pset.set_defaults(func=_policy_set)
    pshow = _with_admin(psub.add_parser("show", help="show a resource's policy"))
    pshow.add_argument("path", metavar="REPO/TYPE/TAG")
    pshow.set_defaults(func=_policy_show)

    for verb, approve in (("approve", True), ("deny", False)):
        decide = _with_admin(sub.add_parser(verb, help=f"{verb} a pending release"))
        decide.add_argument("id", metavar="REQUEST_ID")
        decide.add_argument("--reason", default="", help="recorded in the audit log")
        decide.set_defaults(func=lambda a, approve=approve: _decide(a, approve))

    pending = _with_admin(sub.add_parser("pending", help="list releases waiting for approval"))
    pending.add_argument("--all", action="store_true", help="include decided requests")
    pending.add_argument("--limit", type=int, metavar="N",
                         help=f"at most N requests, newest first (default {DEFAULT_PAGE}, "
                              f"at most {MAX_PAGE})")
    pending.add_argument("--before", metavar="ID",
                         help="requests older than request ID (the next page)")
    pending.set_defaults(func=_pending)

    audit = _with_admin(sub.add_parser("audit", help="show audit records"))
    audit.add_argument("--after", type=int, default=0, help="records after this sequence number")
    audit.add_argument("--limit", type=int, default=100)
    audit.add_argument("--kind", help="only records of this kind")
    audit.set_defaults(func=_audit_list)

    get = sub.add_parser("get-resource", help="attest and fetch a resource (like kbs-client)")
    get.add_argument("path", metavar="REPO/TYPE/TAG")
    get.add_argument("--url", required=True, help="broker URL")
    get.add_argument("--tee", default="simulated",
                     help="evidence provider: simulated, configfs-tsm, gramine")
    get.add_argument("--out", required=True, help="file for the key (written 0600)")
    get.add_argument("--wait", type=float, default=900.0, metavar="SECONDS",
                     help="how long to wait for a human approval (default %(default)s)")
    get.set_defaults(func=_get_resource)

    analyst = sub.add_parser("analyst", help="analysts the data owner knows (their keys)")
    ansub = analyst.add_subparsers(dest="analyst_command", metavar="COMMAND")
    ansub.required = True
    aadd = _with_admin(ansub.add_parser("add", help="register an analyst's public key"))
    aadd.add_argument("name")
    aadd.add_argument("--public-key", required=True, metavar="FILE",
                      help="the analyst's public key: JWK (workbench analyst keygen's "
                           ".pub.jwk, or the trust panel's export) or PEM")
    aadd.add_argument("--group", action="append", help="an analyst group (repeatable)")
    aadd.set_defaults(func=_analyst_add)
    alist = _with_admin(ansub.add_parser("list", help="list registered analysts"))
    alist.set_defaults(func=_analyst_list)
    arevoke = _with_admin(ansub.add_parser("revoke", help="revoke an analyst"))
    arevoke.add_argument("name")
    arevoke.set_defaults(func=_analyst_revoke)

    fingerprint = sub.add_parser(
        "fingerprint", help="print the broker's signing key fingerprint(s), for analysts to "
                            "compare with what their frontend pinned (read from the store)")
    fingerprint.add_argument("--db", help="SQLAlchemy URL of the store (default: the local "
                                          "store)")
    fingerprint.add_argument("--json", action="store_true")
    fingerprint.set_defaults(func=_fingerprint)

    top = subparsers.add_parser("audit", help="the key broker's audit log")
    asub = top.add_subparsers(dest="audit_command", metavar="COMMAND")
    asub.required = True
    verify = asub.add_parser(
        "verify", help="check the audit chain and signatures in the store against the "
                       "broker's keys and your checkpoints, both kept outside the store")
    verify.add_argument("--db", help="SQLAlchemy URL of the store (default: the local store)")
    verify.add_argument("--keys", action="append", metavar="FILE",
                        help="the broker's public key(s), a JWK or JWK set: its key file "
                             "(broker-keys.jwks in its home) or your copy (repeatable; "
                             "default: the key file beside the store)")
    verify.add_argument("--jwks", action="append", metavar="URL",
                        help="the broker's published keys, e.g. "
                             "http://127.0.0.1:8080/.well-known/jwks.json (repeatable)")
    verify.add_argument("--fingerprint", dest="fingerprints", action="append",
                        metavar="SHA256:...",
                        help="a broker key fingerprint as `workbench kbs fingerprint` "
                             "printed it; a key in the store is used only if pinned so "
                             "(repeatable)")
    verify.add_argument("--checkpoint", dest="checkpoints", action="append", metavar="FILE",
                        help="a signed checkpoint (`workbench audit checkpoint`, or from "
                             "the witness): the log must still hold that record unchanged "
                             "(repeatable)")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(func=_audit_verify)

    point = _with_admin(asub.add_parser(
        "checkpoint", help="fetch a signed checkpoint of the audit log's head from the "
                           "running broker, to keep elsewhere"))
    point.add_argument("--out", required=True, metavar="FILE",
                       help="new file for the checkpoint (an existing one is not replaced)")
    point.set_defaults(func=_audit_checkpoint)
