/**
 * The sealed channel of docs/sealed-sessions.md, in the browser: what
 * workbench/sealed/channel.py computes, with WebCrypto only (ECDH deriveBits, HKDF,
 * AES-GCM with additionalData). tests/sealed/test_browser_vector.py and the jest vector
 * test hold both implementations to the same bytes.
 *
 * WebCrypto is asynchronous, so two opens started one after the other could finish in
 * either order; a channel therefore chains its opens (and its seals) so each one runs
 * after the one started before it: messages are checked in the order they arrived.
 */

export const SEALED_VERSION = 1;
export type Direction = 'to-kernel' | 'to-frontend';
export type Lane = 'shell' | 'comm' | 'stdin' | 'iopub';
export const LANES: readonly Lane[] = ['shell', 'comm', 'stdin', 'iopub'];
export const DIRECTIONS: readonly Direction[] = ['to-kernel', 'to-frontend'];

const SALT_LABEL = 'workbench sealed session v1';
// A message larger than this is refused before any cryptography (as in channel.py).
const MAX_CIPHERTEXT_BYTES = 64 * 1024 * 1024;
const ENVELOPE_MEMBERS = ['ciphertext', 'counter', 'direction', 'lane', 'session', 'v'];
// Only the kernel's IOPub is lossy (a PUB socket, the server's rate limits).
const LOSSY: ReadonlyArray<[Direction, Lane]> = [['to-frontend', 'iopub']];

/** The kinds are channel.py's `SealRefused.kind`s, so logs and tests read the same. */
export type RefusalKind =
  | 'malformed'
  | 'other-session'
  | 'wrong-direction'
  | 'replayed'
  | 'out-of-order'
  | 'tampered'
  | 'exhausted'
  // Above the channel (sealedMessages.ts, as in workbench/sealed/messages.py):
  | 'spliced'
  | 'unsealed';

export class SealRefused extends Error {
  constructor(readonly kind: RefusalKind, message: string) {
    super(message);
    this.name = 'SealRefused';
  }
}

export interface ISealedEnvelope {
  v: number;
  session: string;
  direction: Direction;
  lane: Lane;
  counter: number;
  ciphertext: string;
}

export function subtle(): SubtleCrypto {
  const api = globalThis.crypto?.subtle;
  if (!api) {
    throw new Error('WebCrypto is not available (a secure context, https or localhost, is needed)');
  }
  return api;
}

// -- bytes ------------------------------------------------------------------------------

export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) {
    out += b.toString(16).padStart(2, '0');
  }
  return out;
}

export function fromHex(hex: string): Uint8Array {
  if (!/^([0-9a-fA-F]{2})*$/.test(hex)) {
    throw new Error('not hex');
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  }
  return out;
}

export function toBase64(bytes: Uint8Array): string {
  let binary = '';
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    binary += String.fromCharCode(...bytes.subarray(i, i + chunk));
  }
  return btoa(binary);
}

// Python's b64decode(validate=True): the standard alphabet and correct padding only. Two
// linear checks instead of one regular expression over the whole text (a 1 MB output's
// ciphertext is 1.3 MB of base64: a grouped pattern takes 20 ms there, these 3 ms).
const NOT_BASE64 = /[^A-Za-z0-9+/=]/;

export function isBase64(text: string): boolean {
  if (text.length % 4 !== 0 || NOT_BASE64.test(text)) {
    return false;
  }
  const padding = text.indexOf('=');
  return padding === -1 || (padding >= text.length - 2 && /^=+$/.test(text.slice(padding)));
}

type NativeBase64 = { fromBase64?: (text: string, options?: object) => Uint8Array };

export function fromBase64(text: string): Uint8Array {
  if (!isBase64(text)) {
    throw new Error('not base64');
  }
  return decodeBase64(text);
}

/** Decode text already checked by isBase64 (an envelope's ciphertext, checked on parsing). */
function decodeBase64(text: string): Uint8Array {
  // The platform's decoder where there is one (Chromium 140+), else atob.
  const native = (Uint8Array as unknown as NativeBase64).fromBase64;
  if (native) {
    return native(text, { lastChunkHandling: 'loose' });
  }
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) {
    out[i] = binary.charCodeAt(i);
  }
  return out;
}

export function fromBase64Url(text: string): Uint8Array {
  const std = text.replace(/-/g, '+').replace(/_/g, '/');
  return fromBase64(std + '='.repeat((4 - (std.length % 4)) % 4));
}

export function toBase64Url(bytes: Uint8Array): string {
  return toBase64(bytes).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

const utf8 = (text: string) => new TextEncoder().encode(text);

export async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await subtle().digest('SHA-256', data));
}

// -- keys -------------------------------------------------------------------------------

/** The uncompressed point (65 bytes) of a public P-256 JWK: 0x04 || x || y. */
export function pointOfJwk(jwk: { [key: string]: unknown }): Uint8Array {
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.x !== 'string' || typeof jwk.y !== 'string') {
    throw new Error('sealed sessions use EC P-256 keys');
  }
  const x = fromBase64Url(jwk.x);
  const y = fromBase64Url(jwk.y);
  if (x.length !== 32 || y.length !== 32) {
    throw new Error('a P-256 key has 32-byte coordinates');
  }
  return concat(new Uint8Array([4]), x, y);
}

export interface ISessionKey {
  /** Non-extractable: the session's secret never leaves WebCrypto. */
  privateKey: CryptoKey;
  /** The uncompressed public point, 65 bytes. */
  point: Uint8Array;
}

/** A fresh session key pair (a lock's nonce): the private half can never be exported. */
export async function createSessionKey(): Promise<ISessionKey> {
  const pair = (await subtle().generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, [
    'deriveBits'
  ])) as CryptoKeyPair;
  const point = new Uint8Array(await subtle().exportKey('raw', pair.publicKey));
  return { privateKey: pair.privateKey, point };
}

/** SHA-256 over the frontend's point then the kernel's, hex: names one session. */
export async function sessionFingerprint(frontend: Uint8Array, kernel: Uint8Array): Promise<string> {
  return toHex(await sha256(concat(frontend, kernel)));
}

// -- the envelope -----------------------------------------------------------------------

/** Parse strictly, as SealedEnvelope.from_json: exactly the six members, each typed. */
export function parseEnvelope(value: unknown): ISealedEnvelope {
  const members = ENVELOPE_MEMBERS.join(', ');
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SealRefused('malformed', `a sealed message has exactly the members ${members}`);
  }
  const v = value as { [key: string]: unknown };
  const keys = Object.keys(v).sort();
  if (keys.length !== ENVELOPE_MEMBERS.length || keys.some((k, i) => k !== ENVELOPE_MEMBERS[i])) {
    throw new SealRefused('malformed', `a sealed message has exactly the members ${members}`);
  }
  if (v.v !== SEALED_VERSION) {
    throw new SealRefused('malformed', `sealed message version ${JSON.stringify(v.v)} is not ${SEALED_VERSION}`);
  }
  // Counters above 2**53 cannot be told apart in JavaScript; no session sends that many.
  if (typeof v.counter !== 'number' || !Number.isSafeInteger(v.counter) || v.counter < 0) {
    throw new SealRefused('malformed', 'the counter of a sealed message must be an integer from 0 to 2**64-1');
  }
  if (!DIRECTIONS.includes(v.direction as Direction)) {
    throw new SealRefused('malformed', `unknown direction ${JSON.stringify(v.direction)}`);
  }
  if (!LANES.includes(v.lane as Lane)) {
    throw new SealRefused('malformed', `unknown lane ${JSON.stringify(v.lane)}`);
  }
  if (typeof v.ciphertext !== 'string' || v.ciphertext.length > (MAX_CIPHERTEXT_BYTES * 4) / 3 + 4) {
    throw new SealRefused('malformed', `the ciphertext must be base64 of at most ${MAX_CIPHERTEXT_BYTES} bytes`);
  }
  if (!isBase64(v.ciphertext)) {
    throw new SealRefused('malformed', 'the ciphertext is not valid base64');
  }
  if (typeof v.session !== 'string') {
    throw new SealRefused('malformed', 'the session of a sealed message must be a string');
  }
  return {
    v: SEALED_VERSION,
    session: v.session,
    direction: v.direction as Direction,
    lane: v.lane as Lane,
    counter: v.counter,
    ciphertext: v.ciphertext
  };
}

function nonce(counter: number): Uint8Array {
  const out = new Uint8Array(12);
  const view = new DataView(out.buffer);
  view.setUint32(4, Math.floor(counter / 2 ** 32));
  view.setUint32(8, counter % 2 ** 32);
  return out;
}

/** The associated data: compact JSON, keys sorted, exactly as channel.py's json.dumps. */
export function associatedData(session: string, direction: Direction, lane: Lane, counter: number): Uint8Array {
  return utf8(
    `{"counter":${counter},"direction":${JSON.stringify(direction)},` +
      `"lane":${JSON.stringify(lane)},"session":${JSON.stringify(session)},"v":${SEALED_VERSION}}`
  );
}

const laneKey = (direction: Direction, lane: Lane) => `${direction} ${lane}`;

/**
 * One end of a sealed session. `sends` is the direction this end writes in: the browser
 * is always `to-kernel`; tests build the kernel's end too, to check both directions.
 */
export class SealedChannel {
  /** Derive the per-direction, per-lane keys from this end's private key and the peer's point. */
  static async create(options: {
    own: CryptoKey;
    ownPoint: Uint8Array;
    peerPoint: Uint8Array;
    sends: Direction;
  }): Promise<SealedChannel> {
    const { own, ownPoint, peerPoint, sends } = options;
    const [frontend, kernel] = sends === 'to-kernel' ? [ownPoint, peerPoint] : [peerPoint, ownPoint];
    const fingerprint = await sessionFingerprint(frontend, kernel);
    const peer = await subtle().importKey('raw', peerPoint, { name: 'ECDH', namedCurve: 'P-256' }, false, []);
    const shared = await subtle().deriveBits({ name: 'ECDH', public: peer }, own, 256);
    const ikm = await subtle().importKey('raw', shared, 'HKDF', false, ['deriveKey']);
    const salt = await sha256(concat(utf8(SALT_LABEL), fromHex(fingerprint)));
    const keys = new Map<string, CryptoKey>();
    for (const direction of DIRECTIONS) {
      for (const lane of LANES) {
        const key = await subtle().deriveKey(
          { name: 'HKDF', hash: 'SHA-256', salt, info: utf8(`workbench sealed ${direction} ${lane}`) },
          ikm,
          { name: 'AES-GCM', length: 256 },
          false,
          ['encrypt', 'decrypt']
        );
        keys.set(laneKey(direction, lane), key);
      }
    }
    return new SealedChannel(fingerprint, sends, keys);
  }

  private constructor(readonly fingerprint: string, readonly sends: Direction, keys: Map<string, CryptoKey>) {
    this.receives = sends === 'to-kernel' ? 'to-frontend' : 'to-kernel';
    this._keys = keys;
    for (const lane of LANES) {
      this._nextOut[lane] = 0;
      this._nextIn[lane] = 0;
      this.dropped[lane] = 0;
    }
  }

  readonly receives: Direction;
  /** Messages a lossy lane skipped (Jupyter, or a relay, dropped them). */
  readonly dropped: { [lane in Lane]?: number } = {};

  /**
   * Seal `plaintext` as the next message of `lane`. The counter is taken at call time and
   * seals resolve in call order, so sending in `.then` keeps a lane in order.
   */
  seal(plaintext: Uint8Array, lane: Lane): Promise<ISealedEnvelope> {
    const counter = this._nextOut[lane] as number;
    if (!Number.isSafeInteger(counter + 1)) {
      return Promise.reject(new SealRefused('exhausted', 'this sealed session has sent all the messages it may; lock a new one'));
    }
    this._nextOut[lane] = counter + 1;
    const run = async (): Promise<ISealedEnvelope> => {
      const key = this._keys.get(laneKey(this.sends, lane)) as CryptoKey;
      const ciphertext = await subtle().encrypt(
        { name: 'AES-GCM', iv: nonce(counter), additionalData: associatedData(this.fingerprint, this.sends, lane, counter) },
        key,
        plaintext
      );
      return {
        v: SEALED_VERSION,
        session: this.fingerprint,
        direction: this.sends,
        lane,
        counter,
        ciphertext: toBase64(new Uint8Array(ciphertext))
      };
    };
    const result = this._sealChain.then(run);
    this._sealChain = result.then(
      () => undefined,
      () => undefined
    );
    return result;
  }

  /**
   * The plaintext of the next message of its lane, or SealRefused (state unchanged).
   * Opens run one at a time in call order: call this in the order messages arrived.
   */
  open(value: unknown): Promise<Uint8Array> {
    const result = this._openChain.then(() => this._openNow(value));
    this._openChain = result.then(
      () => undefined,
      () => undefined
    );
    return result;
  }

  private async _openNow(value: unknown): Promise<Uint8Array> {
    const envelope = parseEnvelope(value);
    if (envelope.session !== this.fingerprint) {
      throw new SealRefused('other-session', `the message belongs to another sealed session (${envelope.session.slice(0, 16)}...)`);
    }
    if (envelope.direction !== this.receives) {
      throw new SealRefused('wrong-direction', `a ${envelope.direction} message cannot be received here (reflected?)`);
    }
    const lane = envelope.lane;
    const expected = this._nextIn[lane] as number;
    if (envelope.counter < expected) {
      throw new SealRefused(
        'replayed',
        `${lane} message ${envelope.counter} was already received or skipped (next is ${expected}): replayed or late`
      );
    }
    const lossy = LOSSY.some(([d, l]) => d === this.receives && l === lane);
    if (envelope.counter > expected && !lossy) {
      throw new SealRefused(
        'out-of-order',
        `${lane} message ${envelope.counter} arrived before message ${expected}: reordered or a message was dropped`
      );
    }
    const ciphertext = decodeBase64(envelope.ciphertext);
    if (ciphertext.length > MAX_CIPHERTEXT_BYTES) {
      throw new SealRefused('malformed', `the ciphertext must be base64 of at most ${MAX_CIPHERTEXT_BYTES} bytes`);
    }
    let plaintext: ArrayBuffer;
    try {
      plaintext = await subtle().decrypt(
        {
          name: 'AES-GCM',
          iv: nonce(envelope.counter),
          additionalData: associatedData(this.fingerprint, envelope.direction, lane, envelope.counter)
        },
        this._keys.get(laneKey(this.receives, lane)) as CryptoKey,
        ciphertext
      );
    } catch {
      throw new SealRefused(
        'tampered',
        `${lane} message ${envelope.counter} does not authenticate: altered, or sealed under another key`
      );
    }
    // Only now, after it authenticated (opens are serialized: nothing ran in between).
    this.dropped[lane] = (this.dropped[lane] as number) + envelope.counter - expected;
    this._nextIn[lane] = envelope.counter + 1;
    return new Uint8Array(plaintext);
  }

  private _keys: Map<string, CryptoKey>;
  private _nextOut: { [lane in Lane]?: number } = {};
  private _nextIn: { [lane in Lane]?: number } = {};
  private _openChain: Promise<void> = Promise.resolve();
  private _sealChain: Promise<void> = Promise.resolve();
}
