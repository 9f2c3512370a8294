/**
 * One sealed session per locked kernel: its channel, and the opener every sealed message
 * from that kernel goes through.
 *
 * Order is the point. The kernel's IOPub lane carries both outputs and comm messages, and
 * the channel accepts a lane's messages only in order; WebCrypto is asynchronous. So the
 * session opens each message the moment the kernel connection receives it (its
 * `anyMessage` signal fires synchronously, in arrival order, before any handler runs), and
 * the handlers (the output hook, the comm, the executor) collect the result by message id.
 *
 * Plaintext lives here, in this tab's memory only, keyed by session, lane and counter:
 * the notebook model (and so the saved .ipynb) keeps the ciphertext.
 */

import { Kernel, KernelMessage as KM } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { ISessionKey, SealRefused, SealedChannel, toHex } from './sealedChannel';
import { IOpened, openIncoming, outputKey, sealRequest, sealedPart } from './sealedMessages';

// Results nobody collected (messages of no future in this tab) are forgotten past this.
const MAX_PENDING = 2000;
const MAX_KEPT_OUTPUTS = 20000;

export type OpenResult = IOpened | SealRefused;

/**
 * A session the analyst's key certified: the key that signs its approvals (made for this
 * session, non-extractable), the kernel key it is bound to (RFC 7638 thumbprint) and the
 * analyst key's fingerprint.
 */
export interface ICertification {
  /** The certificate as the lock carried it (the evidence binds its digest). */
  certificate: { [key: string]: unknown };
  signingKey: CryptoKey;
  kernelKey: string;
  analyst: string;
}

/**
 * What this tab opened of a sealed output, by its envelope, and the session key (hex) of
 * the session it was sealed under: an attestation report sealed in a session binds that
 * key, which the server needs to check it.
 */
export type KeptOutput = { opened: IOpened; sessionKey?: string };

/** Outputs this tab opened, for the renderer; never written anywhere. */
export class SealedOutputs {
  get(envelope: unknown): KeptOutput | null {
    if (typeof envelope !== 'object' || envelope === null) {
      return null;
    }
    return this._kept.get(outputKey(envelope as any)) ?? null;
  }

  keep(envelope: unknown, value: KeptOutput): void {
    if (typeof envelope !== 'object' || envelope === null) {
      return;
    }
    this._kept.set(outputKey(envelope as any), value);
    if (this._kept.size > MAX_KEPT_OUTPUTS) {
      const oldest = this._kept.keys().next().value;
      if (oldest !== undefined) {
        this._kept.delete(oldest);
        this._marks.delete(oldest);
      }
    }
    this._changed.emit(outputKey(envelope as any));
  }

  /**
   * Marks the output the hook opened from its own message (random, per showing): the
   * renderer draws the plaintext only for an output model carrying this mark.
   */
  mark(envelope: unknown): string {
    const key = typeof envelope === 'object' && envelope !== null ? outputKey(envelope as any) : null;
    const bytes = new Uint8Array(16);
    globalThis.crypto.getRandomValues(bytes);
    const token = toHex(bytes);
    if (key !== null && this._kept.has(key)) {
      const marks = this._marks.get(key) ?? new Set<string>();
      marks.add(token);
      this._marks.set(key, marks);
    }
    return token;
  }

  /** What was opened for `envelope`, if `mark` is one the hook gave an output of it. */
  shown(envelope: unknown, mark: unknown): KeptOutput | null {
    if (typeof envelope !== 'object' || envelope === null || typeof mark !== 'string') {
      return null;
    }
    const key = outputKey(envelope as any);
    return this._marks.get(key)?.has(mark) ? this._kept.get(key) ?? null : null;
  }

  get changed(): ISignal<this, string> {
    return this._changed;
  }

  private _kept = new Map<string, KeptOutput>();
  private _marks = new Map<string, Set<string>>();
  private _changed = new Signal<this, string>(this);
}

/** This tab's opened outputs: one store, shared by the comm, the hook and the renderers. */
export const sealedOutputs = new SealedOutputs();

export class SealedSession {
  constructor(options: {
    kernel: Kernel.IKernelConnection;
    channel: SealedChannel;
    key: ISessionKey;
    outputs: SealedOutputs;
    certification?: ICertification | null;
  }) {
    this.kernel = options.kernel;
    this.certification = options.certification ?? null;
    this.channel = options.channel;
    this.key = options.key;
    this.outputs = options.outputs;
    this.kernel.anyMessage.connect(this._onAny, this);
  }

  readonly kernel: Kernel.IKernelConnection;
  readonly channel: SealedChannel;
  readonly key: ISessionKey;
  readonly outputs: SealedOutputs;
  /** null: the session is not certified (this tab has no analyst key). */
  readonly certification: ICertification | null;

  get fingerprint(): string {
    return this.channel.fingerprint;
  }

  get sessionKeyHex(): string {
    return toHex(this.key.point);
  }

  /** Messages the kernel's IOPub skipped (dropped by Jupyter or a relay). */
  get dropped(): number {
    return this.channel.dropped.iopub ?? 0;
  }

  /**
   * The opened form of a received message (by msg_id), or null when it was not sealed.
   * Messages are opened on arrival; this only waits for that open to finish.
   */
  take(msg: KM.IMessage): Promise<OpenResult | null> {
    const pending = this._pending.get(msg.header.msg_id);
    if (pending) {
      this._pending.delete(msg.header.msg_id);
      return pending;
    }
    // Not seen on arrival (should not happen): open it now, in call order still.
    return this._open(msg);
  }

  /** What this session refused of what the relay delivered (newest last, bounded). */
  readonly refused: { kind: string; message: string }[] = [];

  /** Records a refusal (shown in the cell by whoever refused it). */
  recordRefusal(kind: string, message: string): void {
    this.refused.push({ kind, message });
    if (this.refused.length > 200) {
      this.refused.shift();
    }
    console.warn(`workbench: sealed session ${this.fingerprint.slice(0, 16)} refused (${kind}): ${message}`);
  }

  /** The outer content of a sealed request standing for `content`. */
  seal(msgType: string, content: { [key: string]: any }): Promise<{ [key: string]: any }> {
    return sealRequest(this.channel, msgType, content);
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this.kernel.anyMessage.disconnect(this._onAny, this);
    this._pending.clear();
  }

  private _onAny(_: Kernel.IKernelConnection, args: Kernel.IAnyMessageArgs): void {
    if (args.direction !== 'recv') {
      return;
    }
    const msg = args.msg;
    if (!sealedPart(msg.header.msg_type, msg.content as any)) {
      return;
    }
    this._pending.set(msg.header.msg_id, this._open(msg));
    if (this._pending.size > MAX_PENDING) {
      const oldest = this._pending.keys().next().value;
      if (oldest !== undefined) {
        this._pending.delete(oldest);
      }
    }
  }

  private async _open(msg: KM.IMessage): Promise<OpenResult | null> {
    const content = msg.content as any;
    const part = sealedPart(msg.header.msg_type, content);
    let result: OpenResult | null;
    try {
      result = await openIncoming(this.channel, msg.header.msg_type, content);
    } catch (error) {
      result =
        error instanceof SealRefused ? error : new SealRefused('malformed', (error as Error).message ?? String(error));
    }
    // Opened outputs are kept for the renderer. A refused one is not: a replay carries the
    // same envelope as the genuine output, whose plaintext must stay as it was (the output
    // hook marks the refused message itself).
    if (part && msg.header.msg_type === 'display_data' && result && !(result instanceof SealRefused)) {
      this.outputs.keep(part.envelope, { opened: result, sessionKey: this.sessionKeyHex });
    }
    return result;
  }

  private _pending = new Map<string, Promise<OpenResult | null>>();
  private _disposed = false;
}
