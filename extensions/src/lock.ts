/**
 * The browser's own check of a lock (docs/sealed-sessions.md, "The lock", step 5), made
 * before anything sealed is sent: the broker's EAR token verified here, with WebCrypto,
 * against the broker key this browser pinned for that broker URL. The lab server's verdict
 * is still asked for and shown, but it only advises: a server that relays ciphertext is
 * exactly what a sealed session must not have to trust.
 */

import { JSONObject } from './protocol';
import { fromBase64Url, pointOfJwk, subtle, toBase64Url, toHex } from './sealedChannel';

export const PINS_STORAGE_KEY = 'workbench.pinnedBrokerKeys';

/** A public P-256 JWK, reduced to the members RFC 7638 hashes. */
export interface IPublicJwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
}

export interface IPin {
  /** The RFC 7638 thumbprint (base64url): the token's `kid`. */
  kid: string;
  jwk: IPublicJwk;
  pinnedAt: string;
}

/** What the kernel sends, sealed, once it is locked. */
export interface ILockedMessage {
  type: 'locked';
  session: string;
  tee_pubkey: JSONObject;
  transport_key: string;
  broker: string;
  broker_jwk: JSONObject;
  evidence: JSONObject;
}

export class LockRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LockRefused';
  }
}

export function publicJwk(jwk: unknown): IPublicJwk {
  const j = (jwk ?? {}) as JSONObject;
  pointOfJwk(j); // throws unless EC P-256 with 32-byte coordinates
  return { kty: 'EC', crv: 'P-256', x: j.x as string, y: j.y as string };
}

/** RFC 7638 thumbprint: SHA-256 of {"crv","kty","x","y"} (sorted, no spaces), base64url. */
export async function thumbprint(jwk: unknown): Promise<string> {
  const k = publicJwk(jwk);
  const canonical = `{"crv":"${k.crv}","kty":"${k.kty}","x":"${k.x}","y":"${k.y}"}`;
  const digest = await subtle().digest('SHA-256', new TextEncoder().encode(canonical));
  return toBase64Url(new Uint8Array(digest));
}

/** The fingerprint the data owner publishes (`workbench kbs fingerprint`). */
export const fingerprintOf = (kid: string) => `SHA256:${kid}`;

/**
 * Broker keys pinned per broker URL, trust on first use, kept in localStorage so every
 * later session of this browser holds the broker to the same key.
 */
export class BrokerPins {
  constructor(storage?: Storage | null, key = PINS_STORAGE_KEY) {
    this._storage = storage === undefined ? globalThis.localStorage ?? null : storage;
    this._key = key;
  }

  all(): { [broker: string]: IPin } {
    try {
      const value = JSON.parse(this._storage?.getItem(this._key) ?? '{}');
      return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : {};
    } catch {
      return {};
    }
  }

  get(broker: string): IPin | null {
    const pin = this.all()[broker];
    return pin && typeof pin.kid === 'string' && pin.jwk ? pin : null;
  }

  set(broker: string, pin: IPin): void {
    const all = this.all();
    all[broker] = pin;
    this._storage?.setItem(this._key, JSON.stringify(all));
  }

  private _storage: Storage | null;
  private _key: string;
}

export interface ILockCheck {
  locked: ILockedMessage;
  /** The session fingerprint this browser derived. */
  session: string;
  /** This browser's session point (65 bytes). */
  sessionPoint: Uint8Array;
  /** The kernel key (status.tee_pubkey) the session was derived from. */
  kernelKey: JSONObject;
  /** Transport keys the kernel reported elsewhere (status, kernel_info): all must agree. */
  transportKeys: string[];
  pins: BrokerPins;
  now?: number;
}

export interface ILockResult {
  broker: string;
  kid: string;
  fingerprint: string;
  /** True when this check pinned the key (the analyst should compare the fingerprint). */
  firstUse: boolean;
  expiresAt: number;
}

function decodeJson(part: string, what: string): JSONObject {
  try {
    const value = JSON.parse(new TextDecoder().decode(fromBase64Url(part)));
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      return value;
    }
  } catch {
    // fall through
  }
  throw new LockRefused(`the broker's token is not a JWT (its ${what} is not a JSON object)`);
}

const sameKey = (a: unknown, b: unknown): boolean => {
  try {
    const x = publicJwk(a);
    const y = publicJwk(b);
    return x.x === y.x && x.y === y.y;
  } catch {
    return false;
  }
};

/** Verify an ES256 compact JWS with `jwk`; the claims when the signature holds. */
export async function verifyEs256(token: string, jwk: IPublicJwk): Promise<JSONObject> {
  const parts = token.split('.');
  if (parts.length !== 3) {
    throw new LockRefused("the broker's token is not a compact JWS");
  }
  const header = decodeJson(parts[0], 'header');
  if (header.alg !== 'ES256') {
    throw new LockRefused(`the broker's token is signed with ${String(header.alg)}, not ES256`);
  }
  let signature: Uint8Array;
  try {
    signature = fromBase64Url(parts[2]);
  } catch {
    throw new LockRefused("the broker's token signature is not base64url");
  }
  // A JWS ES256 signature is the raw r || s, as WebCrypto's ECDSA takes it.
  const key = await subtle().importKey('jwk', { ...jwk, ext: true }, { name: 'ECDSA', namedCurve: 'P-256' }, false, [
    'verify'
  ]);
  const ok =
    signature.length === 64 &&
    (await subtle().verify(
      { name: 'ECDSA', hash: 'SHA-256' },
      key,
      signature,
      new TextEncoder().encode(`${parts[0]}.${parts[1]}`)
    ));
  if (!ok) {
    throw new LockRefused("the broker's token signature does not verify with the pinned broker key");
  }
  return decodeJson(parts[1], 'payload');
}

/**
 * Check a `locked` message as docs/sealed-sessions.md says; pins the broker key on first
 * use (only once everything else held). Throws LockRefused naming what failed.
 */
export async function checkLock(check: ILockCheck): Promise<ILockResult> {
  const { locked, pins } = check;
  if (locked.session !== check.session) {
    throw new LockRefused(
      `the kernel locked session ${String(locked.session).slice(0, 16)}, not this tab's ${check.session.slice(0, 16)}`
    );
  }
  if (!sameKey(locked.tee_pubkey, check.kernelKey)) {
    throw new LockRefused('the kernel sealed the lock with another key than the one it reported');
  }
  const broker = locked.broker;
  if (!broker) {
    throw new LockRefused('the lock names no broker');
  }
  let presented: IPublicJwk;
  try {
    presented = publicJwk(locked.broker_jwk);
  } catch (error) {
    throw new LockRefused(`the broker key the kernel presents is not an EC P-256 key (${(error as Error).message})`);
  }
  const presentedKid = await thumbprint(presented);
  const pinned = pins.get(broker);
  if (pinned && pinned.kid !== presentedKid) {
    throw new LockRefused(
      `the broker ${broker} now presents key ${fingerprintOf(presentedKid)}, but this browser pinned ` +
        `${fingerprintOf(pinned.kid)} for it on ${pinned.pinnedAt}: nothing is sent to this kernel. ` +
        'If the data owner really changed the broker key, compare the new fingerprint with the one ' +
        'they published and remove the old pin.'
    );
  }
  const verifyWith = pinned ? publicJwk(pinned.jwk) : presented;
  const token = typeof locked.evidence?.token === 'string' ? (locked.evidence.token as string) : '';
  if (!token) {
    throw new LockRefused('the lock carries no attestation token');
  }
  const claims = await verifyEs256(token, verifyWith);
  const now = check.now ?? Date.now();
  if (typeof claims.exp !== 'number' || claims.exp * 1000 <= now) {
    throw new LockRefused(
      typeof claims.exp === 'number'
        ? `the broker's token expired at ${new Date(claims.exp * 1000).toISOString()}`
        : "the broker's token has no expiry"
    );
  }
  const ownKey = toHex(check.sessionPoint);
  const stated = String(claims['workbench.session-key'] ?? '');
  if (stated !== ownKey) {
    throw new LockRefused(
      `the token binds session key ${stated.slice(0, 16) || '(none)'}…, not this tab's ${ownKey.slice(0, 16)}…`
    );
  }
  if (!sameKey(claims['tee-pubkey'], check.kernelKey)) {
    throw new LockRefused("the token binds another kernel key than the one this session was derived from");
  }
  const transport = String(claims['workbench.transport-key'] ?? '');
  for (const reported of [locked.transport_key, ...check.transportKeys]) {
    if (reported !== undefined && reported !== null && String(reported) !== transport) {
      throw new LockRefused(
        `the token binds transport key ${transport.slice(0, 16) || '(none)'}…, the kernel reports ` +
          `${String(reported).slice(0, 16) || '(none)'}…`
      );
    }
  }
  if (!pinned) {
    pins.set(broker, { kid: presentedKid, jwk: presented, pinnedAt: new Date(now).toISOString() });
  }
  return {
    broker,
    kid: presentedKid,
    fingerprint: fingerprintOf(presentedKid),
    firstUse: !pinned,
    expiresAt: claims.exp * 1000
  };
}

/** Parse the `locked` message's members (types only; checkLock decides). */
export function parseLocked(data: JSONObject): ILockedMessage | null {
  const obj = (v: unknown): JSONObject =>
    typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JSONObject) : {};
  if (typeof data.session !== 'string') {
    return null;
  }
  return {
    type: 'locked',
    session: data.session,
    tee_pubkey: obj(data.tee_pubkey),
    transport_key: typeof data.transport_key === 'string' ? data.transport_key : '',
    broker: typeof data.broker === 'string' ? data.broker : '',
    broker_jwk: obj(data.broker_jwk),
    evidence: obj(data.evidence)
  };
}
