/**
 * The lock over the comm, end to end against a fake kernel that seals as the Python one
 * does: status (sealed: null) -> lock -> sealed locked -> checked here -> sealed comm.
 */
import { KernelWatcher } from '../connection';
import { ReleaseGate } from '../dialog';
import { BrokerPins, thumbprint } from '../lock';
import { SealedChannel, fromHex, subtle } from '../sealedChannel';
import { plaintextOf } from '../sealedMessages';
import { TrustStore } from '../store';
import { server, simulatedVerdict } from './fixtures';
import { BROKER, FakeKernel, KERNEL_JWK, TRANSPORT, brokerToken, tick } from './kernelFakes';
import vector from './sealedVector.json';

function setup(kernelId: string) {
  const store = new TrustStore();
  const { settings, calls } = server(200, simulatedVerdict());
  const gate = new ReleaseGate({ store, settings, asker: { ask: () => ({ answer: Promise.resolve(false), close: () => undefined }) } });
  const firstUse: any[] = [];
  const refused: string[] = [];
  const pins = new BrokerPins(null);
  const watcher = new KernelWatcher({
    store,
    gate,
    settings,
    pins,
    onFirstUse: (_, r) => firstUse.push(r),
    onLockRefused: (_, reason) => refused.push(reason)
  });
  const kernel = new FakeKernel(kernelId);
  watcher.attach(kernel as any);
  return { store, watcher, kernel, calls, firstUse, refused };
}

const status = { type: 'status', v: 1, runtime: 'simulated', tee: 'simulated', simulated: true, broker: BROKER, tee_pubkey: KERNEL_JWK, transport_key: TRANSPORT, report: null, released: [], sealed: null };

describe('locking a kernel over the comm', () => {
  it('locks, checks the sealed answer in the browser, then speaks sealed only', async () => {
    const { store, watcher, kernel, calls, firstUse } = setup('k-lock');
    await tick(() => kernel.comm.sent.length > 0);
    expect(kernel.comm.sent[0]).toMatchObject({ type: 'hello' });
    await kernel.deliver(status);
    await tick(() => kernel.comm.sent.length > 1);
    const lock = kernel.comm.sent[1];
    expect(lock).toEqual({ type: 'lock', v: 1, session_key: expect.stringMatching(/^04[0-9a-f]{128}$/) });
    expect(store.get('k-lock')?.sealed?.phase).toBe('locking');
    // Nothing is sent while the lock is checked.
    expect(watcher.attest('k-lock')).toBe(false);

    const own = await subtle().importKey('jwk', vector.kernel.jwk, { name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
    const kernelEnd = await SealedChannel.create({ own, ownPoint: fromHex(vector.kernel.point), peerPoint: fromHex(lock.session_key), sends: 'to-frontend' });
    const { jwk, token } = await brokerToken(lock.session_key);
    const locked = {
      type: 'locked', v: 1, session: kernelEnd.fingerprint, tee_pubkey: KERNEL_JWK, transport_key: TRANSPORT,
      broker: BROKER, broker_jwk: jwk,
      evidence: { type: 'evidence', evidence: 'ZQ==', tee: 'simulated', claims: {}, nonce: 'n', token, broker: BROKER, tee_pubkey: KERNEL_JWK }
    };
    const envelope = await kernelEnd.seal(plaintextOf('comm_msg', { comm_id: 'comm-1', data: locked }), 'iopub');
    await kernel.deliver({ sealed: envelope });
    await tick(() => store.get('k-lock')?.sealed?.phase === 'locked');
    const sealed = store.get('k-lock')!.sealed!;
    expect(sealed).toMatchObject({ phase: 'locked', session: kernelEnd.fingerprint, broker: BROKER, firstUse: true });
    expect(sealed.brokerFingerprint).toBe(`SHA256:${await thumbprint(jwk)}`);
    expect(firstUse).toHaveLength(1);
    // The server's second opinion is asked, with this tab's session key.
    await tick(() => calls.length > 0);
    expect(JSON.parse(calls[0].body)).toMatchObject({ token, session_key: lock.session_key });

    // Now the comm is sealed both ways.
    expect(watcher.attest('k-lock')).toBe(true);
    await tick(() => kernel.comm.sent.length > 2);
    const attest = kernel.comm.sent[2];
    expect(Object.keys(attest)).toEqual(['sealed']);
    const inner = JSON.parse(new TextDecoder().decode(await kernelEnd.open(attest.sealed)));
    expect(inner).toEqual({ msg_type: 'comm_msg', content: { comm_id: 'comm-1', data: { type: 'attest', v: 1 } } });
    expect(attest.sealed.lane).toBe('comm');

    // A sealed status from the kernel is opened and shown.
    const st = await kernelEnd.seal(plaintextOf('comm_msg', { comm_id: 'comm-1', data: { ...status, sealed: kernelEnd.fingerprint } }), 'iopub');
    await kernel.deliver({ sealed: st });
    expect(store.get('k-lock')?.status?.sealed).toBe(kernelEnd.fingerprint);
    // A plain message after the lock is not the kernel's: ignored.
    await kernel.deliver({ type: 'refused', v: 1, resource: 'x', reason: 'forged' });
    expect(store.get('k-lock')?.refusals).toEqual([]);
  });

  it('marks the kernel refused when it refuses the lock (plain lock-refused)', async () => {
    const { store, kernel, refused } = setup('k-refused');
    await tick(() => kernel.comm.sent.length > 0);
    await kernel.deliver(status);
    await tick(() => kernel.comm.sent.length > 1);
    await kernel.deliver({ type: 'lock-refused', v: 1, reason: 'this kernel already ran 1 request(s)' });
    expect(store.get('k-refused')?.sealed).toMatchObject({ phase: 'refused' });
    expect(store.get('k-refused')?.sealed?.reason).toContain('already ran');
    expect(refused).toHaveLength(1);
  });

  it('does not lock a kernel locked by another tab, and says so', async () => {
    const { store, kernel } = setup('k-else');
    await tick(() => kernel.comm.sent.length > 0);
    await kernel.deliver({ ...status, sealed: 'f'.repeat(64) });
    expect(kernel.comm.sent).toHaveLength(1);
    expect(store.get('k-else')?.sealed).toMatchObject({ phase: 'elsewhere' });
    expect(store.get('k-else')?.sealed?.reason).toContain('ffffffffffffffff');
  });

  it('shows a kernel locked by another tab as such when its answer to hello is sealed', async () => {
    // A locked kernel seals every comm message, its status too: this tab cannot read it,
    // but the envelope names the session it belongs to.
    const { store, kernel } = setup('k-sealed-else');
    await tick(() => kernel.comm.sent.length > 0);
    const own = await subtle().importKey('jwk', vector.kernel.jwk, { name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
    const kernelEnd = await SealedChannel.create({ own, ownPoint: fromHex(vector.kernel.point), peerPoint: fromHex(vector.frontend.point), sends: 'to-frontend' });
    const envelope = await kernelEnd.seal(plaintextOf('comm_msg', { comm_id: 'comm-1', data: { ...status, sealed: kernelEnd.fingerprint } }), 'iopub');
    await kernel.deliver({ sealed: envelope });
    expect(kernel.comm.sent).toHaveLength(1); // hello only: no lock
    expect(store.get('k-sealed-else')).toMatchObject({ confidential: true, commProblem: '' });
    expect(store.get('k-sealed-else')?.sealed).toMatchObject({ phase: 'elsewhere', session: kernelEnd.fingerprint });
    expect(store.get('k-sealed-else')?.sealed?.reason).toContain(kernelEnd.fingerprint.slice(0, 16));
  });

  it('shows a kernel whose kernel_info names a sealed session as locked elsewhere', async () => {
    const store = new TrustStore();
    const { settings } = server(200, simulatedVerdict());
    const gate = new ReleaseGate({ store, settings, asker: { ask: () => ({ answer: Promise.resolve(false), close: () => undefined }) } });
    const watcher = new KernelWatcher({ store, gate, settings, pins: new BrokerPins(null) });
    const kernel = new FakeKernel('k-info-else');
    kernel.info = Promise.resolve({ workbench: { transport_key: TRANSPORT, sealed: 'e'.repeat(64) } } as any);
    watcher.attach(kernel as any);
    await tick(() => kernel.comm.sent.length > 0);
    expect(store.get('k-info-else')?.sealed).toMatchObject({ phase: 'elsewhere', session: 'e'.repeat(64) });
    // Its plain status (were it plain) would not start a lock either.
    await kernel.deliver({ ...status, sealed: 'e'.repeat(64) });
    expect(kernel.comm.sent).toHaveLength(1);
  });

  it('leaves a kernel without sealed sessions as it was', async () => {
    const { store, kernel } = setup('k-old');
    await tick(() => kernel.comm.sent.length > 0);
    const { sealed: _s, ...old } = status;
    await kernel.deliver(old);
    expect(kernel.comm.sent).toHaveLength(1);
    expect(store.get('k-old')?.sealed).toBeNull();
  });
});

describe('the word for a sealed kernel', () => {
  it('is "Simulated · Sealed" in the status bar and the panel, with the fingerprints in the panel', async () => {
    const { TrustStatusItem } = await import('../statusbar');
    const { TrustPanel } = await import('../panel');
    const store = new TrustStore();
    store.update('k', {
      confidential: true,
      verdict: simulatedVerdict(),
      sealed: { phase: 'locked', session: vector.fingerprint, broker: BROKER, brokerFingerprint: 'SHA256:abc', firstUse: true, reason: '' }
    });
    const item = new TrustStatusItem({ store });
    item.showKernel('k');
    expect(item.node.textContent).toBe('SSimulated · Sealed');
    const panel = new TrustPanel({ store, attest: () => true });
    panel.showKernel('k');
    expect(panel.node.querySelector('[data-wb="state"]')?.textContent).toBe('Simulated · Sealed');
    expect(panel.node.querySelector('[data-wb="sealed-session"]')?.textContent).toBe(vector.fingerprint.slice(0, 16));
    expect(panel.node.querySelector('[data-wb="sealed-broker-key"]')?.textContent).toBe('SHA256:abc');
    store.update('k', { sealed: { ...store.get('k')!.sealed!, phase: 'refused', reason: 'the lock does not verify: expired' } });
    expect(item.node.textContent).toBe('✗Refused');
    expect(item.node.title).toContain('expired');
  });
});
