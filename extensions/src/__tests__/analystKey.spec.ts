/**
 * The analyst key kept in IndexedDB (a fake one here: jsdom has none): made once, never
 * extractable, the same key read back by a later tab, its fingerprint the RFC 7638
 * thumbprint of the exported public JWK.
 */
import { IDBFactory } from 'fake-indexeddb';

import { AnalystKeys, EXPORT_FILENAME, IndexedDbKeyStore, exportText } from '../analystKey';
import { fingerprintOf, thumbprint } from '../lock';
import { subtle } from '../sealedChannel';

describe('the analyst key store', () => {
  it('has no key until asked, then makes one non-extractable key and keeps it', async () => {
    const factory = new IDBFactory();
    const keys = new AnalystKeys(new IndexedDbKeyStore(factory));
    expect(await keys.load()).toBeNull();
    expect(keys.current).toBeNull();
    const seen: unknown[] = [];
    keys.changed.connect((_, k) => void seen.push(k));

    const key = await keys.getOrCreate();
    expect(key.privateKey.extractable).toBe(false);
    expect(key.privateKey.algorithm).toMatchObject({ name: 'ECDSA', namedCurve: 'P-256' });
    await expect(subtle().exportKey('jwk', key.privateKey)).rejects.toThrow();
    expect(Object.keys(key.jwk).sort()).toEqual(['crv', 'kty', 'x', 'y']);
    expect(key.fingerprint).toBe(fingerprintOf(await thumbprint(key.jwk)));
    expect(key.fingerprint).toMatch(/^SHA256:[A-Za-z0-9_-]{43}$/);
    expect(seen).toEqual([key]);
    // Asked again, the same key.
    expect((await keys.getOrCreate()).fingerprint).toBe(key.fingerprint);

    // Another tab of the same profile reads the same key, and it signs as the stored one.
    const later = new AnalystKeys(new IndexedDbKeyStore(factory));
    const again = await later.load();
    expect(again?.fingerprint).toBe(key.fingerprint);
    const message = new TextEncoder().encode('hello');
    const signature = await subtle().sign({ name: 'ECDSA', hash: 'SHA-256' }, again!.privateKey, message);
    const verifier = await subtle().importKey('jwk', key.jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
    expect(await subtle().verify({ name: 'ECDSA', hash: 'SHA-256' }, verifier, signature, message)).toBe(true);

    // Another profile (another database) has its own key.
    const other = await new AnalystKeys(new IndexedDbKeyStore(new IDBFactory())).getOrCreate();
    expect(other.fingerprint).not.toBe(key.fingerprint);
  });

  it('exports the public JWK only, whose thumbprint is the fingerprint', async () => {
    const key = await new AnalystKeys(new IndexedDbKeyStore(new IDBFactory())).getOrCreate();
    const exported = JSON.parse(exportText(key));
    expect(exported).toEqual({ kty: 'EC', crv: 'P-256', x: key.jwk.x, y: key.jwk.y });
    expect(exported.d).toBeUndefined();
    expect(fingerprintOf(await thumbprint(exported))).toBe(key.fingerprint);
    expect(EXPORT_FILENAME).toBe('analyst-key.pub.jwk');
  });

  it('says why when the browser has no IndexedDB', async () => {
    const keys = new AnalystKeys(new IndexedDbKeyStore(null));
    expect(await keys.load()).toBeNull();
    expect(keys.problem).toContain('this browser has no IndexedDB');
    await expect(keys.getOrCreate()).rejects.toThrow('no IndexedDB');
    expect(keys.problem).toContain('cannot make the analyst key');
  });
});

describe('the trust panel shows the analyst key', () => {
  it('offers to make one, then shows its fingerprint and offers its export', async () => {
    const { TrustPanel } = await import('../panel');
    const { TrustStore } = await import('../store');
    const keys = new AnalystKeys(new IndexedDbKeyStore(new IDBFactory()));
    await keys.load();
    const exported: string[] = [];
    const panel = new TrustPanel({
      store: new TrustStore(),
      attest: () => true,
      analyst: { keys, actions: { create: () => void keys.getOrCreate(), export: () => void exported.push('x') } }
    });
    const q = (key: string) => panel.node.querySelector(`[data-wb="${key}"]`) as HTMLElement | null;
    expect(q('analyst-none')?.textContent).toContain('This browser has no analyst key');
    expect(q('analyst-export')).toBeNull();
    q('analyst-create')!.click();
    for (let i = 0; i < 200 && !keys.current; i++) {
      await new Promise(r => setTimeout(r, 5));
    }
    expect(q('analyst-key')?.textContent).toBe(keys.current!.fingerprint);
    expect(q('analyst-note')?.textContent).toContain('workbench kbs analyst add NAME --public-key analyst-key.pub.jwk');
    q('analyst-export')!.click();
    expect(exported).toEqual(['x']);
  });
});
