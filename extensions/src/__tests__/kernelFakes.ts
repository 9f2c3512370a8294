/**
 * What the lock tests share: a kernel that delivers comm messages as the kernel connection
 * does, its comm, the kernel's public key from the channel vector, and a broker token
 * signed by a fresh ES256 key for a given session key.
 */
import { Signal } from '@lumino/signaling';

import { thumbprint } from '../lock';
import { subtle, toBase64Url } from '../sealedChannel';
import vector from './sealedVector.json';

const { d: _d, ...KERNEL_PUBLIC } = vector.kernel.jwk;
export const KERNEL_JWK = KERNEL_PUBLIC;
export const BROKER = 'http://127.0.0.1:8080';
export const TRANSPORT = 'ab'.repeat(32);
let serial = 0;

export class FakeComm {
  commId = 'comm-1';
  isDisposed = false;
  sent: any[] = [];
  onMsg: (msg: any) => any = () => undefined;
  onClose: (msg: any) => any = () => undefined;
  open() {
    return null;
  }
  send(data: any) {
    this.sent.push(data);
    return null;
  }
}

export class FakeKernel {
  constructor(readonly id: string) {}
  name = 'confidential';
  status = 'idle';
  isDisposed = false;
  comm = new FakeComm();
  statusChanged = new Signal<any, any>(this);
  disposed = new Signal<any, any>(this);
  anyMessage = new Signal<any, any>(this);
  info = Promise.resolve({ workbench: { transport_key: TRANSPORT } });
  spec = Promise.resolve({ metadata: { workbench: { confidential: true } } });
  createComm() {
    return this.comm;
  }
  /** As the kernel connection does: anyMessage on arrival, then the comm handler. */
  async deliver(data: any): Promise<void> {
    const msg = {
      header: { msg_id: `m${serial++}`, msg_type: 'comm_msg' },
      parent_header: {},
      metadata: {},
      channel: 'iopub',
      content: { comm_id: this.comm.commId, data }
    };
    this.anyMessage.emit({ msg, direction: 'recv' });
    await this.comm.onMsg(msg);
  }
}

export const tick = async (until: () => boolean) => {
  for (let i = 0; i < 500 && !until(); i++) {
    await new Promise(r => setTimeout(r, 2));
  }
};

export const b64json = (value: unknown) => toBase64Url(new TextEncoder().encode(JSON.stringify(value)));

export async function brokerToken(sessionKey: string) {
  const pair = (await subtle().generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const exported = await subtle().exportKey('jwk', pair.publicKey);
  const jwk = { kty: 'EC', crv: 'P-256', x: exported.x, y: exported.y };
  const claims = {
    exp: Math.floor(Date.now() / 1000) + 300,
    'tee-pubkey': KERNEL_JWK,
    'workbench.session-key': sessionKey,
    'workbench.transport-key': TRANSPORT
  };
  const input = `${b64json({ alg: 'ES256', kid: await thumbprint(jwk) })}.${b64json(claims)}`;
  const sig = await subtle().sign({ name: 'ECDSA', hash: 'SHA-256' }, pair.privateKey, new TextEncoder().encode(input));
  return { jwk, token: `${input}.${toBase64Url(new Uint8Array(sig))}` };
}

/** The parts of a code cell's model the sealed executor touches, untrusted and idle. */
export function fakeCellModel(code: string, id: string): any {
  return {
    type: 'code',
    metadata: {},
    executionState: 'idle',
    executionCount: null,
    trusted: false,
    sharedModel: { getSource: () => code, getId: () => id, transact: (fn: () => void) => fn() },
    clearExecution: () => undefined
  };
}
