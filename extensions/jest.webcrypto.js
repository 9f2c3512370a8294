// jsdom has no crypto.subtle; the sealed channel needs WebCrypto, which Node 20 has.
// Node's webcrypto also provides getRandomValues and randomUUID, which jsdom's did.
const { webcrypto } = require('crypto');
if (!globalThis.crypto || !globalThis.crypto.subtle) {
  Object.defineProperty(globalThis, 'crypto', { value: webcrypto, configurable: true });
}
// fake-indexeddb (the analyst key store's tests) clones values with structuredClone, which
// jsdom's window lacks: Node's own, which clones CryptoKeys as a browser does.
if (typeof globalThis.structuredClone !== 'function') {
  const nodeClone = new (require('vm').Script)('structuredClone').runInThisContext();
  Object.defineProperty(globalThis, 'structuredClone', { value: nodeClone, configurable: true });
}
