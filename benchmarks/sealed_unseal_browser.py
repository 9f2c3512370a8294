"""The browser half of the sealed-session throughput: seal a 50 MB output stream in Python
(the kernel's side: workbench.sealed.messages, 1 MB of stream text per message) and open all
of it in Chromium with the lab extension's own code (extensions/lib/sealedChannel.js and
sealedMessages.js, as built by `make install`), in a page served from 127.0.0.1.

Prints MB/s (of stream text) for sealing in Python, opening in the browser, and the two
together, and how opening compares with what the browser does with any output message:
JSON.parse of the same bytes. Target: at least 50 MB/s combined.

    .venv/bin/python benchmarks/sealed_unseal_browser.py [--mb 50] [--chunk-mb 1]

Not run by `make bench` (it needs Chromium: /usr/bin/chromium, or WORKBENCH_CHROMIUM).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric import ec

from workbench.sealed import Direction, SealedChannel
from workbench.sealed.channel import public_point
from workbench.sealed.messages import seal_outgoing

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "extensions" / "lib"
CHROMIUM = Path(os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium"))
TARGET_MB_S = 50.0
MB = 1_000_000

PAGE = """<!doctype html><meta charset="utf-8"><title>sealed unseal benchmark</title>"""

# Runs in the page: the frontend's key imported (non-extractable, for ECDH only), the
# channel derived as the extension derives it, then every message opened in arrival order.
OPEN_ALL = """
async ({ jwk, ownPoint, peerPoint }) => {
  const channelModule = await import('/sealedChannel.js');
  const messagesModule = await import('/sealedMessages.js');
  const { SealedChannel, fromHex, subtle } = channelModule;
  const own = await subtle().importKey('jwk', jwk, { name: 'ECDH', namedCurve: 'P-256' },
                                       false, ['deriveBits']);
  const channel = await SealedChannel.create({ own, ownPoint: fromHex(ownPoint),
                                               peerPoint: fromHex(peerPoint),
                                               sends: 'to-kernel' });
  const wire = (await (await fetch('/wire.txt')).text()).split('\\n');
  const plain = (await (await fetch('/plain.txt')).text()).split('\\n');
  // Baseline: what the browser does with an output message anyway, on the same bytes.
  let t0 = performance.now();
  let outerChars = 0;
  for (const line of wire) { outerChars += Object.keys(JSON.parse(line)).length; }
  const parseWireMs = performance.now() - t0;
  t0 = performance.now();
  for (const line of plain) { outerChars += Object.keys(JSON.parse(line)).length; }
  const parsePlainMs = performance.now() - t0;
  // Opening: parse the outer message, then open its envelope (base64, AES-GCM, inner JSON).
  t0 = performance.now();
  let textChars = 0;
  let first = '';
  for (const line of wire) {
    const content = JSON.parse(line);
    const opened = await messagesModule.openIncoming(channel, 'display_data', content);
    if (!opened || opened.msg_type !== 'stream') { throw new Error('not a sealed stream'); }
    textChars += opened.content.text.length;
    if (!first) { first = opened.content.text.slice(0, 40); }
  }
  const openMs = performance.now() - t0;
  return { parseWireMs, parsePlainMs, openMs, textChars, first, messages: wire.length,
           wireChars: wire.reduce((n, l) => n + l.length, 0), outerChars };
}
"""


def _text(size: int, seed: int) -> str:
    """Stream text as a long computation prints it: numbered lines, ``size`` characters."""
    lines, total, i = [], 0, 0
    while total < size:
        line = f"patient {seed:03d}-{i:07d} risk 0.{(i * 7919 + seed) % 1_000_000:06d}\n"
        lines.append(line)
        total += len(line)
        i += 1
    return "".join(lines)[:size]


def _serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map: ClassVar[dict[str, str]] = {
        **http.server.SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript"}

    def log_message(self, *_args: object) -> None:
        pass


def _copy_lib(dest: Path) -> None:
    """The extension's built modules, their relative imports given the .js a browser needs."""
    for name in ("sealedChannel.js", "sealedMessages.js"):
        source = (LIB / name).read_text()
        dest.joinpath(name).write_text(
            re.sub(r"from '(\./[A-Za-z]+)'", r"from '\1.js'", source))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=50, help="MB of stream text (default 50)")
    parser.add_argument("--chunk-mb", type=float, default=1.0,
                        help="MB of stream text per message (default 1)")
    args = parser.parse_args()
    if not (LIB / "sealedChannel.js").is_file():
        print(f"{LIB / 'sealedChannel.js'} missing: run `make install`", file=sys.stderr)
        return 2
    if not CHROMIUM.is_file():
        print(f"{CHROMIUM} not found (set WORKBENCH_CHROMIUM)", file=sys.stderr)
        return 2
    chunk = int(args.chunk_mb * MB)
    count = max(1, int(args.mb * MB) // chunk)
    texts = [_text(chunk, i) for i in range(count)]
    total = sum(len(t) for t in texts)

    kernel_key = ec.generate_private_key(ec.SECP256R1())
    frontend_key = ec.generate_private_key(ec.SECP256R1())
    kernel = SealedChannel(kernel_key, frontend_key.public_key(), Direction.TO_FRONTEND)

    # Python, the kernel's side: seal each output and serialize it for the wire.
    contents = [{"name": "stdout", "text": text} for text in texts]
    start = time.perf_counter()
    plain = [json.dumps(c, separators=(",", ":")) for c in contents]
    dumps_s = time.perf_counter() - start
    start = time.perf_counter()
    wire = []
    for content in contents:
        outer_type, outer = seal_outgoing(kernel, "stream", content)
        assert outer_type == "display_data"
        wire.append(json.dumps(outer, separators=(",", ":")))
    seal_s = time.perf_counter() - start

    numbers = frontend_key.private_numbers()

    def b64(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()

    jwk = {"kty": "EC", "crv": "P-256", "x": b64(numbers.public_numbers.x),
           "y": b64(numbers.public_numbers.y), "d": b64(numbers.private_value)}
    own_point = public_point(frontend_key.public_key()).hex()
    peer_point = public_point(kernel_key.public_key()).hex()

    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT / "tests" / "browser"))
    from browser_launch import CHROMIUM_ARGS

    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        _copy_lib(site)
        (site / "index.html").write_text(PAGE)
        (site / "wire.txt").write_text("\n".join(wire))
        (site / "plain.txt").write_text("\n".join(plain))
        server, url = _serve(site)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                     headless=True, args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page()
                    page.goto(f"{url}/index.html")
                    result = page.evaluate(OPEN_ALL, {"jwk": jwk, "ownPoint": own_point,
                                                      "peerPoint": peer_point})
                finally:
                    browser.close()
        finally:
            server.shutdown()
            with contextlib.suppress(Exception):
                shutil.rmtree(site, ignore_errors=True)

    if result["textChars"] != total or result["first"] != texts[0][:40]:
        print(f"the browser opened {result['textChars']} characters, not {total}",
              file=sys.stderr)
        return 1
    open_s = result["openMs"] / 1000
    wire_bytes = sum(len(w) for w in wire)
    mb = total / MB
    combined = mb / (seal_s + open_s)
    print(f"{count} messages of {chunk / MB:g} MB of stream text ({mb:g} MB), "
          f"{wire_bytes / MB:.1f} MB on the wire sealed")
    print(f"seal (Python, seal_outgoing + json.dumps): {mb / seal_s:8.1f} MB/s "
          f"({seal_s:.2f} s; json.dumps of the plain messages alone: {mb / dumps_s:.1f} MB/s)")
    print(f"unseal (Chromium, JSON.parse + openIncoming): {mb / open_s:8.1f} MB/s "
          f"({open_s:.2f} s)")
    print(f"combined: {combined:8.1f} MB/s (target {TARGET_MB_S:g})")
    parse_wire = result["parseWireMs"] / 1000
    parse_plain = result["parsePlainMs"] / 1000
    print(f"baseline (Chromium, JSON.parse of the same sealed bytes): {mb / parse_wire:.1f} MB/s;"
          f" opening costs {open_s / parse_wire:.1f}x that")
    print(f"baseline (Chromium, JSON.parse of the plain messages, unsealed): "
          f"{mb / parse_plain:.1f} MB/s; opening costs {open_s / parse_plain:.1f}x that")
    return 0 if combined >= TARGET_MB_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
