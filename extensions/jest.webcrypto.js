// jsdom has no crypto.subtle; the sealed channel needs WebCrypto, which Node 20 has.
// Node's webcrypto also provides getRandomValues and randomUUID, which jsdom's did.
const { webcrypto } = require('crypto');
if (!globalThis.crypto || !globalThis.crypto.subtle) {
  Object.defineProperty(globalThis, 'crypto', { value: webcrypto, configurable: true });
}
