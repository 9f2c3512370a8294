/**
 * Session certificates and signed approvals in the browser: what
 * workbench/sealed/certificate.py makes and checks (docs/sealed-sessions.md, "Analysts").
 * The analyst's long-term key (analystKey.ts) signs a certificate naming the session's two
 * public keys (the ECDH key of the channel and an ECDSA key that signs approvals) and the
 * kernel (the RFC 7638 thumbprint of its attested key); an approval is the session signing
 * key's signature over the request id, the resource, the kernel's key and the hash of the
 * token the analyst was shown. Signatures are ES256 as WebCrypto makes them: raw r || s,
 * base64url without padding. tests/sealed/test_browser_certificate.py and
 * __tests__/certificate.spec.ts hold both implementations to one committed vector.
 */

import { IPublicJwk, publicJwk, thumbprint } from './lock';
import { fromBase64Url, subtle, toBase64Url, toHex } from './sealedChannel';

export const CERTIFICATE_VERSION = 1;
const ECDSA = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const ES256 = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface ISessionCertificate {
  v: number;
  analyst_key: IPublicJwk;
  session_key: string;
  signing_key: string;
  kernel_key: string;
  issued_at: string;
  signature: string;
}

/** Python's json.dumps(value, sort_keys=True, separators=(",", ":")) (ensure_ascii). */
export function canonicalJson(value: unknown): string {
  // JSON.stringify escapes quotes, backslashes and control characters as Python does;
  // Python's ensure_ascii also writes everything past '~' as \uXXXX (lowercase hex).
  const text = (s: string) =>
    JSON.stringify(s).replace(/[\u007f-\uffff]/g, c => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (value === null || typeof value === 'boolean') {
    return String(value);
  }
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) {
      throw new Error('canonical JSON here holds integers only (Python writes floats otherwise)');
    }
    return String(value);
  }
  if (typeof value === 'string') {
    return text(value);
  }
  if (Array.isArray(value)) {
    return `[${value.map(canonicalJson).join(',')}]`;
  }
  if (typeof value === 'object') {
    // Keys by UTF-16 code unit, as Python sorts str (they differ only past U+FFFF).
    const object = value as { [key: string]: unknown };
    const keys = Object.keys(object)
      .filter(k => object[k] !== undefined)
      .sort();
    return `{${keys.map(k => `${text(k)}:${canonicalJson(object[k])}`).join(',')}}`;
  }
  throw new Error(`canonical JSON cannot hold a ${typeof value}`);
}

const utf8 = (text: string) => new TextEncoder().encode(text);

/** ES256 over `message`: raw r || s, base64url. */
export async function signEs256(key: CryptoKey, message: Uint8Array): Promise<string> {
  return toBase64Url(new Uint8Array(await subtle().sign(ES256, key, message)));
}

export async function verifyEs256Raw(jwk: IPublicJwk, signature: string, message: Uint8Array): Promise<boolean> {
  let raw: Uint8Array;
  try {
    raw = fromBase64Url(signature);
  } catch {
    return false;
  }
  if (raw.length !== 64) {
    return false;
  }
  const key = await subtle().importKey('jwk', { ...publicJwk(jwk), ext: true }, ECDSA, false, ['verify']);
  return subtle().verify(ES256, key, raw, message);
}

/** SHA-256 hex of a token, as the kernel's release-request states it (token_sha256). */
export async function tokenHash(token: string): Promise<string> {
  return toHex(new Uint8Array(await subtle().digest('SHA-256', utf8(token))));
}

/** ISO 8601 to the second, UTC, as Python's isoformat(timespec="seconds") writes it. */
export function isoSeconds(date: Date): string {
  return `${date.toISOString().slice(0, 19)}+00:00`;
}

/** What the analyst key signs: the certificate without its signature. */
export function certificateBody(certificate: Omit<ISessionCertificate, 'signature'>): Uint8Array {
  const { v, analyst_key, session_key, signing_key, kernel_key, issued_at } = certificate;
  return utf8(canonicalJson({ v, analyst_key, session_key, signing_key, kernel_key, issued_at }));
}

export interface ICertifyOptions {
  /** The analyst's long-term private key (ECDSA P-256, may be non-extractable). */
  analyst: CryptoKey;
  analystJwk: IPublicJwk;
  /** The session's ECDH point (65 bytes, uncompressed). */
  sessionPoint: Uint8Array;
  /** The session's ECDSA signing point (65 bytes, uncompressed). */
  signingPoint: Uint8Array;
  /** The kernel's attested key (status.tee_pubkey), the session is derived from. */
  kernelJwk: unknown;
  now?: Date;
}

/** The analyst's certificate for one session with one kernel. */
export async function certify(options: ICertifyOptions): Promise<ISessionCertificate> {
  const unsigned = {
    v: CERTIFICATE_VERSION,
    analyst_key: publicJwk(options.analystJwk),
    session_key: toHex(options.sessionPoint),
    signing_key: toHex(options.signingPoint),
    kernel_key: await thumbprint(options.kernelJwk),
    issued_at: isoSeconds(options.now ?? new Date())
  };
  return { ...unsigned, signature: await signEs256(options.analyst, certificateBody(unsigned)) };
}

/** Whether the certificate's signature verifies under the analyst key it names. */
export function verifyCertificate(certificate: ISessionCertificate): Promise<boolean> {
  return verifyEs256Raw(certificate.analyst_key, certificate.signature, certificateBody(certificate));
}

export interface IApproval {
  request_id: string;
  resource: string;
  kernel_key: string;
  token_sha256: string;
}

/** What a signed approval signs (canonical JSON), as approval_message in Python. */
export function approvalMessageBytes(approval: IApproval): Uint8Array {
  return utf8(
    canonicalJson({
      v: CERTIFICATE_VERSION,
      approve: true,
      request_id: approval.request_id,
      resource: approval.resource,
      kernel_key: approval.kernel_key,
      token_sha256: approval.token_sha256
    })
  );
}

export function signApproval(signingKey: CryptoKey, approval: IApproval): Promise<string> {
  return signEs256(signingKey, approvalMessageBytes(approval));
}

/** A fresh ECDSA P-256 key pair for one session's approvals; the private part never leaves. */
export async function createSigningKey(): Promise<{ privateKey: CryptoKey; point: Uint8Array }> {
  const pair = (await subtle().generateKey(ECDSA, false, ['sign', 'verify'])) as CryptoKeyPair;
  const point = new Uint8Array(await subtle().exportKey('raw', pair.publicKey));
  return { privateKey: pair.privateKey, point };
}
