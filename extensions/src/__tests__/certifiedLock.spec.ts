/**
 * A tab with an analyst key: every lock carries the analyst's certificate of the session,
 * and an approved release request is answered with the session signing key's signature,
 * after the request's kernel key and token hash were checked against what this tab knows.
 * Against a fake kernel that seals as the Python one does.
 */
import { IAnalystKey } from '../analystKey';
import { approvalMessageBytes, tokenHash, verifyCertificate, verifyEs256Raw } from '../certificate';
import { KernelWatcher } from '../connection';
import { IAsker, ReleaseGate } from '../dialog';
import { BrokerPins, fingerprintOf, thumbprint } from '../lock';
import { SealedChannel, fromHex, subtle, toBase64Url } from '../sealedChannel';
import { plaintextOf } from '../sealedMessages';
import { TrustStore } from '../store';
import { server, simulatedVerdict } from './fixtures';
import { BROKER, FakeKernel, KERNEL_JWK, TRANSPORT, brokerToken, tick } from './kernelFakes';
import vector from './sealedVector.json';

let requests = 0;
const status = { type: 'status', v: 1, runtime: 'simulated', tee: 'simulated', simulated: true, broker: BROKER, tee_pubkey: KERNEL_JWK, transport_key: TRANSPORT, report: null, released: [], sealed: null };

async function analystKey(): Promise<IAnalystKey> {
  const pair = (await subtle().generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as CryptoKeyPair;
  const e = await subtle().exportKey('jwk', pair.publicKey);
  const jwk = { kty: 'EC' as const, crv: 'P-256' as const, x: e.x!, y: e.y! };
  return { privateKey: pair.privateKey, jwk, fingerprint: fingerprintOf(await thumbprint(jwk)), createdAt: 'now' };
}

class Asker implements IAsker {
  asked: any[] = [];
  constructor(private answer: boolean) {}
  ask(prompt: any) {
    this.asked.push(prompt);
    return { answer: Promise.resolve(this.answer), close: () => undefined };
  }
}

/** A watcher (with or without an analyst key) and a kernel locked to it. */
async function locked(kernelId: string, key: IAnalystKey | null, answer = true) {
  const store = new TrustStore();
  const { settings, calls } = server(200, simulatedVerdict());
  const asker = new Asker(answer);
  const gate = new ReleaseGate({ store, settings, asker });
  const declined: string[] = [];
  const watcher = new KernelWatcher({
    store,
    gate,
    settings,
    pins: new BrokerPins(null),
    analystKey: () => Promise.resolve(key),
    onApprovalRefused: (_, reason) => declined.push(reason)
  });
  const kernel = new FakeKernel(kernelId);
  watcher.attach(kernel as any);
  await tick(() => kernel.comm.sent.length > 0);
  await kernel.deliver(status);
  await tick(() => kernel.comm.sent.length > 1);
  const lock = kernel.comm.sent[1];
  const own = await subtle().importKey('jwk', vector.kernel.jwk, { name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
  const kernelEnd = await SealedChannel.create({ own, ownPoint: fromHex(vector.kernel.point), peerPoint: fromHex(lock.session_key), sends: 'to-frontend' });
  const { jwk, token } = await brokerToken(lock.session_key);
  const message = {
    type: 'locked', v: 1, session: kernelEnd.fingerprint, tee_pubkey: KERNEL_JWK, transport_key: TRANSPORT, broker: BROKER, broker_jwk: jwk,
    evidence: { type: 'evidence', evidence: 'ZQ==', tee: 'simulated', claims: {}, nonce: 'n', token, broker: BROKER, tee_pubkey: KERNEL_JWK }
  };
  await kernel.deliver({ sealed: await kernelEnd.seal(plaintextOf('comm_msg', { comm_id: 'comm-1', data: message }), 'iopub') });
  await tick(() => store.get(kernelId)?.sealed?.phase === 'locked');
  expect(store.get(kernelId)?.sealed?.phase).toBe('locked');
  // The kernel's status (sealed) gives the panel a report, so the release dialog can ask.
  const report = message.evidence;
  await kernel.deliver({ sealed: await kernelEnd.seal(plaintextOf('comm_msg', { comm_id: 'comm-1', data: { ...status, sealed: kernelEnd.fingerprint, report } }), 'iopub') });

  /** Send a sealed release request; the kernel's opened answer. */
  const request = async (fields: { [k: string]: string }) => {
    const before = kernel.comm.sent.length;
    const data = { type: 'release-request', v: 1, request_id: `r-${requests++}`, resource: 'cohort/table-key/phi', dataset: 'cohort', broker: BROKER, summary: { status: 'affirming', failed_rules: [] }, token, kernel_key: await thumbprint(KERNEL_JWK), token_sha256: await tokenHash(token), ...fields };
    await kernel.deliver({ sealed: await kernelEnd.seal(plaintextOf('comm_msg', { comm_id: 'comm-1', data }), 'iopub') });
    await tick(() => kernel.comm.sent.length > before);
    expect(kernel.comm.sent.length).toBeGreaterThan(before);
    const opened = JSON.parse(new TextDecoder().decode(await kernelEnd.open(kernel.comm.sent[before].sealed)));
    return { data, answer: opened.content.data };
  };
  return { store, kernel, lock, kernelEnd, token, asker, declined, request, calls };
}

describe('a tab with an analyst key', () => {
  it('certifies its lock: the certificate names this session, this kernel and the analyst key', async () => {
    const key = await analystKey();
    const { store, lock, calls } = await locked('k-cert', key);
    expect(Object.keys(lock).sort()).toEqual(['certificate', 'session_key', 'type', 'v']);
    const certificate = lock.certificate;
    // Exactly the members workbench.sealed.certificate parses (strictly).
    expect(Object.keys(certificate).sort()).toEqual(['analyst_key', 'issued_at', 'kernel_key', 'session_key', 'signature', 'signing_key', 'v']);
    expect(certificate.v).toBe(1);
    expect(certificate.analyst_key).toEqual(key.jwk);
    expect(certificate.session_key).toBe(lock.session_key);
    expect(certificate.signing_key).toMatch(/^04[0-9a-f]{128}$/);
    expect(certificate.signing_key).not.toBe(lock.session_key);
    expect(certificate.kernel_key).toBe(await thumbprint(KERNEL_JWK));
    expect(certificate.issued_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$/);
    expect(await verifyCertificate(certificate)).toBe(true);
    expect(store.get('k-cert')?.sealed?.analyst).toBe(key.fingerprint);
    // The server's second opinion gets the certificate too: the evidence binds its digest.
    await tick(() => calls.length > 0);
    expect(JSON.parse(calls[0].body)).toMatchObject({ session_key: lock.session_key, session_certificate: certificate });
  });

  it('signs an approved release over the request, resource, kernel key and token hash', async () => {
    const { lock, asker, request, token } = await locked('k-sign', await analystKey());
    const { data, answer } = await request({});
    expect(asker.asked).toHaveLength(1);
    expect(answer).toMatchObject({ type: 'approval', v: 1, request_id: data.request_id, approved: true });
    const signer = lock.certificate.signing_key;
    const point = fromHex(signer);
    const jwk = { kty: 'EC' as const, crv: 'P-256' as const, x: toBase64Url(point.slice(1, 33)), y: toBase64Url(point.slice(33)) };
    const signed = { request_id: data.request_id, resource: data.resource, kernel_key: lock.certificate.kernel_key, token_sha256: await tokenHash(token) };
    expect(await verifyEs256Raw(jwk, answer.signature, approvalMessageBytes(signed))).toBe(true);
    expect(await verifyEs256Raw(jwk, answer.signature, approvalMessageBytes({ ...signed, resource: 'cohort/table-key/clinical' }))).toBe(false);
  });

  it('refuses to sign a request naming another kernel key or another token, without asking', async () => {
    const { asker, request, declined, store } = await locked('k-mismatch', await analystKey());
    const other = await request({ kernel_key: 'A'.repeat(43) });
    expect(other.answer).toMatchObject({ type: 'approval', approved: false });
    expect(other.answer.signature).toBeUndefined();
    expect(declined[0]).toContain(`names kernel key ${'A'.repeat(43)}, but this session's kernel key is`);
    const forged = await request({ token_sha256: 'f'.repeat(64) });
    expect(forged.answer).toMatchObject({ approved: false });
    expect(forged.answer.signature).toBeUndefined();
    expect(declined[1]).toContain('names token hash ffffffffffffffff…, but the token it shows hashes to');
    expect(store.get('k-mismatch')?.commProblem).toContain('declined unsigned');
    expect(asker.asked).toHaveLength(0);
  });

  it('sends no signature when the analyst refuses', async () => {
    const { request } = await locked('k-no', await analystKey(), false);
    const { answer } = await request({});
    expect(answer).toMatchObject({ approved: false });
    expect(answer.signature).toBeUndefined();
  });
});

describe('a tab without an analyst key', () => {
  it('locks uncertified and approves unsigned, as before', async () => {
    const { lock, request, store } = await locked('k-plain', null);
    expect(lock).toEqual({ type: 'lock', v: 1, session_key: expect.stringMatching(/^04[0-9a-f]{128}$/) });
    expect(store.get('k-plain')?.sealed?.analyst).toBe('');
    const { answer } = await request({ kernel_key: '', token_sha256: '' });
    expect(answer).toMatchObject({ approved: true });
    expect(answer.signature).toBeUndefined();
  });
});
