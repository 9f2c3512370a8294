"""Sealed output throughput (issue 12): kernel seal plus browser unseal of a 50 MB output.

Run: .venv/bin/python benchmarks/bench_sealed_browser.py [--megabytes 50]

The kernel's half is the kernel's own code (``workbench.sealed.messages.seal_outgoing``:
the output message to its sealed bundle), 1 MB stream messages. The browser's half is the
lab extension's own built modules (``extensions/lib/sealedChannel.js`` and
``sealedMessages.js``: WebCrypto ECDH, HKDF, AES-GCM) in the system Chromium, on a page
served from 127.0.0.1: open each bundle, in order, as the tab does (``openIncoming``).
Jupyter's own message serialization (JSON in the kernel's session, JSON.parse in the
browser), which every output goes through sealed or not, is timed apart: the baseline is
that work on the same output unsealed. Target: 50 MB over (kernel seal time + browser
open time) >= 50 MB/s.

The frontend's private key is handed to the page as a JWK here so that the kernel's side
can be prepared in Python; in the product the tab makes it non-extractable.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "extensions" / "lib"
TARGET_MB_S = 50.0
sys.path.insert(0, str(ROOT / "tests" / "browser"))

PAGE = """<!doctype html><script type="module">
import { SealedChannel } from '/lib/sealedChannel.js';
import { openIncoming } from '/lib/sealedMessages.js';
window.bench = async () => {
  const setup = await (await fetch('/setup.json')).json();
  const sealed = await (await fetch('/sealed.json')).json();
  const plain = await (await fetch('/plain.json')).json();
  const own = await crypto.subtle.importKey('jwk', setup.frontend, {name: 'ECDH',
    namedCurve: 'P-256'}, false, ['deriveBits']);
  const hex = h => new Uint8Array(h.match(/../g).map(b => parseInt(b, 16)));
  const channel = await SealedChannel.create({own, ownPoint: hex(setup.frontend_point),
    peerPoint: hex(setup.kernel_point), sends: 'to-kernel'});
  let start = performance.now(), chars = 0;
  for (const text of plain) { chars += JSON.parse(text).text.length; }
  const plainMs = performance.now() - start;
  start = performance.now();
  const bundles = sealed.map(text => JSON.parse(text));
  const parseMs = performance.now() - start;
  start = performance.now();
  let opened = 0;
  for (const bundle of bundles) {
    const inner = await openIncoming(channel, 'display_data', bundle);
    opened += inner.content.text.length;
  }
  const openMs = performance.now() - start;
  return {plainMs, parseMs, openMs, chars, opened};
};
window.ready = true;
</script>"""


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_args: object) -> None:
        return None

    def translate_path(self, path: str) -> str:
        # The built modules import './sealedChannel' without the extension, as tsc leaves it.
        path = path.split("?", 1)[0]
        if path.startswith("/lib/") and not path.endswith(".js"):
            path += ".js"
        return super().translate_path(path)

    def guess_type(self, path: str) -> str:  # type: ignore[override]
        return "text/javascript" if str(path).endswith(".js") else super().guess_type(path)


def kernel_side(megabytes: int, where: Path) -> tuple[float, float, float]:
    """Seal the output as the kernel does; write what the page needs.

    (seal s, serializing the sealed bundles s, serializing the plain output s)"""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwcrypto.jwk import JWK

    from workbench.sealed import Direction, SealedChannel
    from workbench.sealed.channel import public_point
    from workbench.sealed.messages import seal_outgoing

    kernel_key, frontend_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
    kernel = SealedChannel(kernel_key, frontend_key.public_key(), Direction.TO_FRONTEND)
    messages = [{"name": "stdout", "text": "x" * 999_999 + "\n"} for _ in range(megabytes)]
    start = time.perf_counter()
    plain = [json.dumps(m) for m in messages]
    plain_s = time.perf_counter() - start
    start = time.perf_counter()
    bundles = [seal_outgoing(kernel, "stream", m)[1] for m in messages]
    seal_s = time.perf_counter() - start
    start = time.perf_counter()
    sealed = [json.dumps(b) for b in bundles]
    serialize_s = time.perf_counter() - start
    pem = frontend_key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    frontend_jwk = JWK.from_pem(pem).export(private_key=True, as_dict=True)
    (where / "setup.json").write_text(json.dumps({
        "frontend": {k: frontend_jwk[k] for k in ("kty", "crv", "x", "y", "d")},
        "frontend_point": public_point(frontend_key.public_key()).hex(),
        "kernel_point": public_point(kernel_key.public_key()).hex()}))
    (where / "sealed.json").write_text(json.dumps(sealed))
    (where / "plain.json").write_text(json.dumps(plain))
    (where / "index.html").write_text(PAGE)
    (where / "lib").symlink_to(LIB)
    return seal_s, serialize_s, plain_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=50)
    args = parser.parse_args()
    if not (LIB / "sealedChannel.js").is_file():
        print(f"{LIB}/sealedChannel.js is missing: build the extension (make install)")
        return 1
    from browser_launch import launched_chromium

    where = Path(tempfile.mkdtemp(prefix="bench-sealed-browser-"))
    seal_s, serialize_s, plain_s = kernel_side(args.megabytes, where)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Files, directory=str(where)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with launched_chromium() as chromium:
            page = chromium.new_page()
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
            page.wait_for_function("window.ready === true", timeout=30_000)
            result = page.evaluate("window.bench()")
    finally:
        server.shutdown()
    size = args.megabytes * 1_000_000
    if result["opened"] != size or result["chars"] != size:
        print(f"output incomplete: opened {result['opened']} of {size} characters")
        return 1
    open_s, parse_s = result["openMs"] / 1000, result["parseMs"] / 1000
    plain_parse_s = result["plainMs"] / 1000
    combined = size / (seal_s + open_s) / 1e6
    baseline = size / (plain_s + plain_parse_s) / 1e6
    carried = size / (serialize_s + parse_s) / 1e6
    rate = lambda seconds: size / seconds / 1e6  # noqa: E731
    print(f"{args.megabytes} MB of output in 1 MB messages")
    print(f"kernel seal {rate(seal_s):.0f} MB/s; browser open (WebCrypto, Chromium) "
          f"{rate(open_s):.0f} MB/s; together {combined:.0f} "
          f"MB/s (target >= {TARGET_MB_S:g} MB/s)")
    end_to_end = rate(seal_s + serialize_s + parse_s + open_s)
    print(f"Jupyter's serialize + parse (every output, sealed or not): unsealed output "
          f"{baseline:.0f} MB/s, sealed bundles {carried:.0f} MB/s; all of it, sealed, "
          f"{end_to_end:.0f} MB/s (ratio to unsealed {end_to_end / baseline:.2f})")
    met = combined >= TARGET_MB_S
    print("target met" if met else "TARGET MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
