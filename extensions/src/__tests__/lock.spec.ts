/**
 * The browser's own check of a lock: the broker's ES256 token against the pinned broker
 * key, its expiry and the keys it binds. Tokens are signed here with a WebCrypto key.
 */
import { BrokerPins, ILockedMessage, PINS_STORAGE_KEY, checkLock, fingerprintOf, thumbprint } from '../lock';
import { fromHex, subtle, toBase64Url } from '../sealedChannel';
import vector from './sealedVector.json';

const BROKER = 'https://kbs.example:8080';
const { d: _kd, ...KERNEL_JWK } = vector.kernel.jwk;
const TRANSPORT = 'ab'.repeat(32);

async function brokerKey() {
  const pair = (await subtle().generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const jwk = await subtle().exportKey('jwk', pair.publicKey);
  return { privateKey: pair.privateKey, jwk: { kty: 'EC', crv: 'P-256', x: jwk.x as string, y: jwk.y as string } };
}

const b64json = (value: unknown) => toBase64Url(new TextEncoder().encode(JSON.stringify(value)));

async function sign(key: CryptoKey, kid: string, claims: { [k: string]: unknown }): Promise<string> {
  const input = `${b64json({ alg: 'ES256', typ: 'JWT', kid })}.${b64json(claims)}`;
  const signature = await subtle().sign({ name: 'ECDSA', hash: 'SHA-256' }, key, new TextEncoder().encode(input));
  return `${input}.${toBase64Url(new Uint8Array(signature))}`;
}

function claims(overrides: { [k: string]: unknown } = {}) {
  return {
    iat: Math.floor(Date.now() / 1000),
    exp: Math.floor(Date.now() / 1000) + 300,
    'tee-pubkey': { ...KERNEL_JWK, alg: 'ECDH-ES+A256KW' },
    'workbench.session-key': vector.frontend.point,
    'workbench.transport-key': TRANSPORT,
    ...overrides
  };
}

function memoryStorage(): Storage {
  const data = new Map<string, string>();
  return {
    getItem: (k: string) => data.get(k) ?? null,
    setItem: (k: string, v: string) => void data.set(k, v),
    removeItem: (k: string) => void data.delete(k),
    clear: () => data.clear(),
    key: (i: number) => Array.from(data.keys())[i] ?? null,
    get length() {
      return data.size;
    }
  } as Storage;
}

async function locked(broker: { privateKey: CryptoKey; jwk: any }, overrides = {}): Promise<ILockedMessage> {
  const kid = await thumbprint(broker.jwk);
  return {
    type: 'locked',
    session: vector.fingerprint,
    tee_pubkey: { ...KERNEL_JWK },
    transport_key: TRANSPORT,
    broker: BROKER,
    broker_jwk: broker.jwk,
    evidence: { token: await sign(broker.privateKey, kid, claims(overrides)) }
  };
}

function check(message: ILockedMessage, pins: BrokerPins, transportKeys = [TRANSPORT]) {
  return checkLock({
    locked: message,
    session: vector.fingerprint,
    sessionPoint: fromHex(vector.frontend.point),
    kernelKey: { ...KERNEL_JWK },
    transportKeys,
    pins
  });
}

describe('the broker key fingerprint', () => {
  it('is the RFC 7638 thumbprint jwcrypto computes, as SHA256:...', async () => {
    // jwcrypto's JWK(**kernel public jwk).thumbprint() for the vector's kernel key.
    expect(await thumbprint(KERNEL_JWK)).toBe('x5YnZqPeJEO2doXgr9qd8lzbOV3PGvr1vRG05ki1jH4');
    expect(fingerprintOf('abc')).toBe('SHA256:abc');
  });
});

describe('checking a lock in the browser', () => {
  it('accepts a good token, pins the broker key on first use, and keeps it in localStorage', async () => {
    localStorage.clear();
    const broker = await brokerKey();
    const pins = new BrokerPins(localStorage);
    const first = await check(await locked(broker), pins);
    const kid = await thumbprint(broker.jwk);
    expect(first).toMatchObject({ broker: BROKER, kid, fingerprint: `SHA256:${kid}`, firstUse: true });
    const stored = JSON.parse(localStorage.getItem(PINS_STORAGE_KEY) as string);
    expect(stored[BROKER]).toMatchObject({ kid, jwk: broker.jwk });
    expect(typeof stored[BROKER].pinnedAt).toBe('string');
    // Another tab, later: the pin is there, this is no first use.
    const again = await check(await locked(broker), new BrokerPins(localStorage));
    expect(again.firstUse).toBe(false);
  });

  it('refuses another broker key than the pinned one, naming both fingerprints', async () => {
    const pins = new BrokerPins(memoryStorage());
    const pinned = await brokerKey();
    await check(await locked(pinned), pins);
    const other = await brokerKey();
    const error = await check(await locked(other), pins).catch(e => e);
    expect(error.name).toBe('LockRefused');
    expect(error.message).toContain(fingerprintOf(await thumbprint(pinned.jwk)));
    expect(error.message).toContain(fingerprintOf(await thumbprint(other.jwk)));
    // The pin is unchanged.
    expect(pins.get(BROKER)?.kid).toBe(await thumbprint(pinned.jwk));
  });

  it('refuses a token not signed by the key the kernel presents (and pins nothing)', async () => {
    const pins = new BrokerPins(memoryStorage());
    const presented = await brokerKey();
    const signer = await brokerKey();
    const message = await locked(signer);
    message.broker_jwk = presented.jwk;
    await expect(check(message, pins)).rejects.toThrow(/signature does not verify/);
    expect(pins.get(BROKER)).toBeNull();
  });

  it('refuses an expired token', async () => {
    const broker = await brokerKey();
    const message = await locked(broker, { exp: Math.floor(Date.now() / 1000) - 1 });
    await expect(check(message, new BrokerPins(memoryStorage()))).rejects.toThrow(/expired/);
  });

  it('refuses a token bound to another session key', async () => {
    const broker = await brokerKey();
    const message = await locked(broker, { 'workbench.session-key': vector.kernel.point });
    await expect(check(message, new BrokerPins(memoryStorage()))).rejects.toThrow(/session key/);
    const none = await locked(broker, { 'workbench.session-key': undefined });
    await expect(check(none, new BrokerPins(memoryStorage()))).rejects.toThrow(/\(none\)/);
  });

  it('refuses a token bound to another kernel key than the session was derived from', async () => {
    const broker = await brokerKey();
    const { d: _d, ...frontendJwk } = vector.frontend.jwk;
    const message = await locked(broker, { 'tee-pubkey': frontendJwk });
    await expect(check(message, new BrokerPins(memoryStorage()))).rejects.toThrow(/another kernel key/);
  });

  it('refuses a token whose transport key is not the one the kernel reports', async () => {
    const broker = await brokerKey();
    const message = await locked(broker, { 'workbench.transport-key': 'cd'.repeat(32) });
    await expect(check(message, new BrokerPins(memoryStorage()))).rejects.toThrow(/transport key/);
    // Also when kernel_info reports another one than the token and the lock.
    const good = await locked(broker);
    await expect(check(good, new BrokerPins(memoryStorage()), [TRANSPORT, 'ef'.repeat(32)])).rejects.toThrow(
      /transport key/
    );
  });

  it('refuses a lock of another session, or sealed with another kernel key', async () => {
    const broker = await brokerKey();
    const other = { ...(await locked(broker)), session: '00'.repeat(32) };
    await expect(check(other, new BrokerPins(memoryStorage()))).rejects.toThrow(/not this tab's/);
    const { d: _d, ...frontendJwk } = vector.frontend.jwk;
    const moved = { ...(await locked(broker)), tee_pubkey: frontendJwk };
    await expect(check(moved, new BrokerPins(memoryStorage()))).rejects.toThrow(/another key/);
  });
});
