/**
 * The analyst's long-term key in the browser (docs/sealed-sessions.md, "Analysts"): an
 * ECDSA P-256 key pair made by WebCrypto with `extractable: false`, kept by this browser
 * profile in IndexedDB (a CryptoKey is structured-cloneable: the browser stores the key
 * itself, and no script, this one included, can ever read its private part). Its public
 * part is exported as a JWK for the data owner to register (`workbench kbs analyst add
 * NAME --public-key analyst-key.pub.jwk`); its fingerprint is `SHA256:` and the RFC 7638
 * thumbprint, as workbench.sealed.certificate.fingerprint computes it.
 *
 * The key is made only when the analyst asks (the trust panel, a command): a tab without
 * one locks kernels uncertified, as before.
 */

import { ISignal, Signal } from '@lumino/signaling';

import { IPublicJwk, fingerprintOf, publicJwk, thumbprint } from './lock';
import { subtle } from './sealedChannel';

export const ANALYST_DB = 'workbench-analyst';
const STORE = 'keys';
const RECORD = 'analyst';
export const EXPORT_FILENAME = 'analyst-key.pub.jwk';

/** The analyst key of this browser profile. */
export interface IAnalystKey {
  /** Non-extractable: it signs, nothing reads it. */
  privateKey: CryptoKey;
  jwk: IPublicJwk;
  /** `SHA256:<RFC 7638 thumbprint>`. */
  fingerprint: string;
  createdAt: string;
}

interface IStoredKey {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: IPublicJwk;
  createdAt: string;
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
  });
}

/** The one record of the analyst key, in IndexedDB. */
export class IndexedDbKeyStore {
  constructor(factory?: IDBFactory | null, name = ANALYST_DB) {
    this._factory = factory === undefined ? globalThis.indexedDB ?? null : factory;
    this._name = name;
  }

  async get(): Promise<IStoredKey | null> {
    const db = await this._open();
    try {
      const tx = db.transaction(STORE, 'readonly');
      const value = await request(tx.objectStore(STORE).get(RECORD));
      return (value as IStoredKey | undefined) ?? null;
    } finally {
      db.close();
    }
  }

  /** Store `value` unless a key is there already; the key that is kept. */
  async putIfAbsent(value: IStoredKey): Promise<IStoredKey> {
    const db = await this._open();
    try {
      const tx = db.transaction(STORE, 'readwrite');
      const store = tx.objectStore(STORE);
      const existing = (await request(store.get(RECORD))) as IStoredKey | undefined;
      if (existing) {
        return existing;
      }
      await request(store.add(value, RECORD));
      await new Promise<void>((resolve, reject) => {
        tx.oncomplete = () => resolve();
        tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'));
        tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
      });
      return value;
    } finally {
      db.close();
    }
  }

  private _open(): Promise<IDBDatabase> {
    if (!this._factory) {
      return Promise.reject(new Error('this browser has no IndexedDB: an analyst key cannot be kept'));
    }
    const open = this._factory.open(this._name, 1);
    open.onupgradeneeded = () => {
      if (!open.result.objectStoreNames.contains(STORE)) {
        open.result.createObjectStore(STORE);
      }
    };
    return request(open);
  }

  private _factory: IDBFactory | null;
  private _name: string;
}

async function toKey(stored: IStoredKey): Promise<IAnalystKey> {
  const jwk = publicJwk(stored.jwk);
  return {
    privateKey: stored.privateKey,
    jwk,
    fingerprint: fingerprintOf(await thumbprint(jwk)),
    createdAt: stored.createdAt
  };
}

/** Make a key pair whose private part cannot be exported. */
export async function generateAnalystKey(now = new Date()): Promise<IStoredKey> {
  const pair = (await subtle().generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
    'sign',
    'verify'
  ])) as CryptoKeyPair;
  // A public key is always exportable, whatever `extractable` says.
  const exported = await subtle().exportKey('jwk', pair.publicKey);
  return {
    privateKey: pair.privateKey,
    publicKey: pair.publicKey,
    jwk: publicJwk(exported),
    createdAt: now.toISOString()
  };
}

/** The public JWK as a file the data owner registers. */
export function exportText(key: IAnalystKey): string {
  const { kty, crv, x, y } = key.jwk;
  return `${JSON.stringify({ kty, crv, x, y }, null, 2)}\n`;
}

/** This tab's view of the profile's analyst key: loaded once, made on request. */
export class AnalystKeys {
  constructor(store: IndexedDbKeyStore = new IndexedDbKeyStore()) {
    this._store = store;
  }

  /** The key, once loaded; null when this profile has none (or none could be read). */
  get current(): IAnalystKey | null {
    return this._current;
  }

  /** Why the key could not be read or made, if it could not. */
  get problem(): string {
    return this._problem;
  }

  get changed(): ISignal<this, IAnalystKey | null> {
    return this._changed;
  }

  /** The stored key, or null; never makes one. */
  load(): Promise<IAnalystKey | null> {
    if (!this._loading) {
      this._loading = this._store
        .get()
        .then(async stored => {
          this._set(stored ? await toKey(stored) : null);
          return this._current;
        })
        .catch(error => {
          this._problem = `cannot read the analyst key: ${(error as Error).message ?? error}`;
          this._changed.emit(null);
          return null;
        });
    }
    return this._loading;
  }

  /** The stored key, made (and stored) on first use. */
  async getOrCreate(): Promise<IAnalystKey> {
    const existing = await this.load();
    if (existing) {
      return existing;
    }
    try {
      const kept = await this._store.putIfAbsent(await generateAnalystKey());
      const key = await toKey(kept);
      this._problem = '';
      this._set(key);
      return key;
    } catch (error) {
      this._problem = `cannot make the analyst key: ${(error as Error).message ?? error}`;
      this._changed.emit(null);
      throw error;
    }
  }

  private _set(key: IAnalystKey | null): void {
    this._current = key;
    this._changed.emit(key);
  }

  private _store: IndexedDbKeyStore;
  private _current: IAnalystKey | null = null;
  private _loading: Promise<IAnalystKey | null> | null = null;
  private _problem = '';
  private _changed = new Signal<this, IAnalystKey | null>(this);
}
