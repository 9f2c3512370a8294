/**
 * Session certificates and signed approvals (certificate.ts) against the vector made by
 * workbench.sealed.certificate (tests/sealed/test_browser_certificate.py checks the
 * browser's part of the same file in Python): the same canonical bytes, thumbprint and
 * token hash, and each side's ES256 signatures verify on the other.
 */
import {
  ISessionCertificate,
  approvalMessageBytes,
  canonicalJson,
  certificateBody,
  certify,
  createSigningKey,
  isoSeconds,
  signApproval,
  tokenHash,
  verifyCertificate,
  verifyEs256Raw
} from '../certificate';
import { IPublicJwk, thumbprint } from '../lock';
import { createSessionKey, fromHex, subtle, toBase64Url } from '../sealedChannel';
import vector from './certificateVector.json';

declare const require: any;
declare const process: any;
declare const __dirname: string;

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** The JWK of an uncompressed P-256 point (hex). */
function jwkOfPoint(hex: string): IPublicJwk {
  const point = fromHex(hex);
  return { kty: 'EC', crv: 'P-256', x: toBase64Url(point.slice(1, 33)), y: toBase64Url(point.slice(33)) };
}

async function nonExtractableAnalyst() {
  const pair = (await subtle().generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as CryptoKeyPair;
  const e = await subtle().exportKey('jwk', pair.publicKey);
  return { privateKey: pair.privateKey, jwk: { kty: 'EC', crv: 'P-256', x: e.x, y: e.y } as IPublicJwk };
}

describe('canonical JSON', () => {
  it('writes what Python json.dumps(sort_keys=True, separators=(",", ":")) writes', () => {
    for (const { value, canonical } of vector.canonical) {
      expect(canonicalJson(value)).toBe(canonical);
    }
  });

  it('refuses what Python would write differently', () => {
    expect(() => canonicalJson({ x: 1.5 })).toThrow('integers only');
  });
});

describe('the Python-made certificate and approval', () => {
  const python = vector.python;
  const certificate = python.certificate as ISessionCertificate;

  it('computes the same signed bytes, thumbprint and token hash', async () => {
    expect(text(certificateBody(certificate))).toBe(python.body);
    expect(await thumbprint(python.kernel_jwk)).toBe(certificate.kernel_key);
    expect(`SHA256:${await thumbprint(certificate.analyst_key)}`).toBe(python.analyst_fingerprint);
    const approval = python.approval;
    expect(await tokenHash(approval.token)).toBe(approval.token_sha256);
    expect(text(approvalMessageBytes(approval))).toBe(approval.message);
  });

  it('verifies both signatures with WebCrypto, and not when altered', async () => {
    expect(await verifyCertificate(certificate)).toBe(true);
    expect(await verifyCertificate({ ...certificate, issued_at: '2026-12-04T18:00:01+00:00' })).toBe(false);
    const signing = jwkOfPoint(certificate.signing_key);
    const approval = python.approval;
    expect(await verifyEs256Raw(signing, approval.signature, approvalMessageBytes(approval))).toBe(true);
    expect(
      await verifyEs256Raw(signing, approval.signature, approvalMessageBytes({ ...approval, request_id: 'another' }))
    ).toBe(false);
    expect(await verifyEs256Raw(signing, 'not a signature', approvalMessageBytes(approval))).toBe(false);
  });
});

describe('certifying a session in the browser', () => {
  it('signs with a non-extractable analyst key; the certificate names the session and kernel', async () => {
    const analyst = await nonExtractableAnalyst();
    const session = await createSessionKey();
    const signing = await createSigningKey();
    expect(signing.privateKey.extractable).toBe(false);
    const kernel = vector.python.kernel_jwk;
    const certificate = await certify({
      analyst: analyst.privateKey,
      analystJwk: analyst.jwk,
      sessionPoint: session.point,
      signingPoint: signing.point,
      kernelJwk: kernel,
      now: new Date('2026-12-04T18:00:00.750Z')
    });
    expect(Object.keys(certificate).sort()).toEqual(
      ['analyst_key', 'issued_at', 'kernel_key', 'session_key', 'signature', 'signing_key', 'v']
    );
    expect(certificate.issued_at).toBe('2026-12-04T18:00:00+00:00');
    expect(certificate.kernel_key).toBe(vector.python.certificate.kernel_key);
    expect(certificate.session_key).toMatch(/^04[0-9a-f]{128}$/);
    expect(certificate.signature).toMatch(/^[A-Za-z0-9_-]{86}$/);
    expect(await verifyCertificate(certificate)).toBe(true);
    expect(await verifyCertificate({ ...certificate, kernel_key: 'A'.repeat(43) })).toBe(false);
    expect(isoSeconds(new Date('2026-01-02T03:04:05.999Z'))).toBe('2026-01-02T03:04:05+00:00');

    const token = vector.python.approval.token;
    const approval = {
      request_id: 'r-1',
      resource: 'cohort/table-key/phi',
      kernel_key: certificate.kernel_key,
      token_sha256: await tokenHash(token)
    };
    const signature = await signApproval(signing.privateKey, approval);
    const signer = jwkOfPoint(certificate.signing_key);
    expect(await verifyEs256Raw(signer, signature, approvalMessageBytes(approval))).toBe(true);
    expect(await verifyEs256Raw(signer, signature, approvalMessageBytes({ ...approval, resource: 'x' }))).toBe(false);

    if (process.env.WORKBENCH_WRITE_VECTOR) {
      // The browser's part of the vector, for tests/sealed/test_browser_certificate.py.
      const fs = require('fs');
      const path = require('path');
      const file = path.join(__dirname, 'certificateVector.json');
      const current = JSON.parse(fs.readFileSync(file, 'utf-8'));
      current.browser = {
        kernel_jwk: kernel,
        certificate,
        body: text(certificateBody(certificate)),
        analyst_fingerprint: `SHA256:${await thumbprint(analyst.jwk)}`,
        approval: {
          ...approval,
          token,
          message: text(approvalMessageBytes(approval)),
          signature
        }
      };
      fs.writeFileSync(file, `${JSON.stringify(current, null, 2)}\n`);
    }
  });

  it('the committed browser part verifies here too', async () => {
    const browser = (vector as any).browser;
    expect(browser).toBeDefined();
    expect(await verifyCertificate(browser.certificate)).toBe(true);
    expect(text(certificateBody(browser.certificate))).toBe(browser.body);
    const signer = jwkOfPoint(browser.certificate.signing_key);
    expect(await verifyEs256Raw(signer, browser.approval.signature, approvalMessageBytes(browser.approval))).toBe(true);
  });
});
