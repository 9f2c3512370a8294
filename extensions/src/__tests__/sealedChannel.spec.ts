/**
 * The browser's sealed channel against the vector workbench.sealed.channel produced
 * (tests/sealed/test_browser_vector.py keeps both to it): same envelopes, same refusals.
 */
import {
  Direction,
  SealRefused,
  SealedChannel,
  createSessionKey,
  fromBase64,
  fromHex,
  isBase64,
  parseEnvelope,
  subtle,
  toHex
} from '../sealedChannel';
import vector from './sealedVector.json';

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const utf8 = (s: string) => new TextEncoder().encode(s);

async function end(name: 'frontend' | 'kernel'): Promise<SealedChannel> {
  const own = await subtle().importKey('jwk', vector[name].jwk, { name: 'ECDH', namedCurve: 'P-256' }, false, [
    'deriveBits'
  ]);
  const peer = name === 'frontend' ? 'kernel' : 'frontend';
  const sends: Direction = name === 'frontend' ? 'to-kernel' : 'to-frontend';
  return SealedChannel.create({
    own,
    ownPoint: fromHex(vector[name].point),
    peerPoint: fromHex(vector[peer].point),
    sends
  });
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof SealRefused) {
      return error.kind;
    }
    throw error;
  }
  return 'accepted';
}

describe('the sealed channel, against the Python vector', () => {
  it('derives the same session fingerprint', async () => {
    expect((await end('frontend')).fingerprint).toBe(vector.fingerprint);
    expect((await end('kernel')).fingerprint).toBe(vector.fingerprint);
  });

  it('seals byte-identical envelopes in both directions', async () => {
    const frontend = await end('frontend');
    const kernel = await end('kernel');
    for (const message of vector.messages) {
      const sender = message.direction === 'to-kernel' ? frontend : kernel;
      const envelope = await sender.seal(utf8(message.plaintext), message.lane as any);
      expect(envelope).toEqual(message.envelope);
      expect(JSON.stringify(envelope)).toBe(JSON.stringify(message.envelope));
    }
  });

  it('opens every envelope of the vector', async () => {
    const frontend = await end('frontend');
    const kernel = await end('kernel');
    for (const message of vector.messages) {
      const receiver = message.direction === 'to-kernel' ? kernel : frontend;
      expect(text(await receiver.open(message.envelope))).toBe(message.plaintext);
    }
  });

  for (const item of vector.refusals) {
    it(`refuses as the Python channel does: ${item.name}`, async () => {
      const receiver = await end(item.receiver as 'frontend' | 'kernel');
      for (const i of item.first) {
        await receiver.open(vector.messages[i].envelope);
      }
      expect(await refusal(receiver.open(item.envelope))).toBe(item.kind);
      for (const i of item.then) {
        expect(text(await receiver.open(vector.messages[i].envelope))).toBe(vector.messages[i].plaintext);
      }
      if ('dropped' in item) {
        expect(receiver.dropped.iopub).toBe((item as any).dropped);
      }
    });
  }
});

describe('the sealed channel', () => {
  it('opens in call order even though WebCrypto is asynchronous', async () => {
    const frontend = await end('frontend');
    const kernel = await end('kernel');
    const sent = await Promise.all([0, 1, 2, 3].map(i => frontend.seal(utf8(`m${i}`), 'shell')));
    // Started together, not awaited one by one: each must see the counter the one before left.
    const opened = await Promise.all(sent.map(e => kernel.open(e)));
    expect(opened.map(text)).toEqual(['m0', 'm1', 'm2', 'm3']);
    // A refused one in the middle of a burst changes nothing for the ones after it.
    const more = await Promise.all([4, 5].map(i => frontend.seal(utf8(`m${i}`), 'shell')));
    const burst = [kernel.open(more[1]), kernel.open(more[0]), kernel.open(more[1])];
    expect(await refusal(burst[0])).toBe('out-of-order');
    expect(text(await burst[1])).toBe('m4');
    expect(text(await burst[2])).toBe('m5');
  });

  it('seals with counters in call order, per lane', async () => {
    const frontend = await end('frontend');
    const sealed = await Promise.all([
      frontend.seal(utf8('a'), 'shell'),
      frontend.seal(utf8('b'), 'comm'),
      frontend.seal(utf8('c'), 'shell')
    ]);
    expect(sealed.map(e => [e.lane, e.counter])).toEqual([
      ['shell', 0],
      ['comm', 0],
      ['shell', 1]
    ]);
  });

  it('makes a session key whose private half cannot be exported', async () => {
    const key = await createSessionKey();
    expect(key.privateKey.extractable).toBe(false);
    expect(key.point).toHaveLength(65);
    expect(key.point[0]).toBe(4);
    await expect(subtle().exportKey('jwk', key.privateKey)).rejects.toBeTruthy();
    // And it makes a working session with the kernel's key.
    const kernelOwn = await subtle().importKey('jwk', vector.kernel.jwk, { name: 'ECDH', namedCurve: 'P-256' }, false, [
      'deriveBits'
    ]);
    const a = await SealedChannel.create({
      own: key.privateKey,
      ownPoint: key.point,
      peerPoint: fromHex(vector.kernel.point),
      sends: 'to-kernel'
    });
    const b = await SealedChannel.create({
      own: kernelOwn,
      ownPoint: fromHex(vector.kernel.point),
      peerPoint: key.point,
      sends: 'to-frontend'
    });
    expect(a.fingerprint).toBe(b.fingerprint);
    expect(text(await b.open(await a.seal(utf8('hi'), 'comm')))).toBe('hi');
    expect(toHex(key.point)).toMatch(/^04[0-9a-f]{128}$/);
  });

  it('parses envelopes strictly', () => {
    const good = vector.messages[0].envelope;
    expect(parseEnvelope(good)).toEqual(good);
    for (const bad of [null, [], 'x', { ...good, counter: 1.5 }, { ...good, direction: 'sideways' }]) {
      expect(() => parseEnvelope(bad)).toThrow(SealRefused);
    }
    const { ciphertext: _, ...missing } = good;
    expect(() => parseEnvelope(missing)).toThrow(/exactly the members/);
  });
});

describe('base64 as Python reads it (b64decode, validate=True)', () => {
  // What the strict grouping expression accepted; isBase64 scans linearly instead.
  const GROUPED = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
  it('accepts exactly the well-padded standard alphabet', () => {
    const cases = ['', 'QQ==', 'QUI=', 'QUJD', 'QUJDRA==', 'a+/b', 'QQ=', 'QQ', 'Q===', '====', 'QQ==QUJD',
      'QU=D', 'QUJD\n', ' QUJD', 'QUJ-', 'QUJ_', 'QUJDR===', '=QUJ', 'QUJD=', 'Q=Q='];
    for (const text of cases) {
      expect([text, isBase64(text)]).toEqual([text, GROUPED.test(text)]);
    }
    expect(() => fromBase64('QQ=')).toThrow('not base64');
    expect(Array.from(fromBase64('QUI='))).toEqual([65, 66]);
  });
});
