/**
 * One `workbench.attestation` comm per kernel, opened when a kernel starts or restarts,
 * whatever number of notebooks or session events point at it. Messages go to the store;
 * every report goes to the server for its verdict; release requests go to the gate.
 *
 * A kernel that can be locked (its status says `sealed: null`) is locked at once
 * (docs/sealed-sessions.md, "The lock"): this tab makes a session key, sends `lock`, opens
 * the sealed `locked` answer and checks the broker's token itself (lock.ts) before it
 * sends anything sealed. From then on every message on the comm is sealed both ways.
 */

import { ISessionContext } from '@jupyterlab/apputils';
import { Kernel, KernelMessage as KM, ServerConnection } from '@jupyterlab/services';

import { IAnalystKey } from './analystKey';
import { createSigningKey, certify, signApproval, tokenHash } from './certificate';
import { ReleaseGate } from './dialog';
import { BrokerPins, ILockResult, checkLock, parseLocked } from './lock';
import {
  COMM_TARGET,
  IEvidenceReport,
  IReleaseRequest,
  IStatusMessage,
  JSONObject,
  OutgoingMessage,
  PROTOCOL_VERSION,
  approvalMessage,
  attestMessage,
  helloMessage,
  lockMessage,
  parseKernelMessage,
  parseReport,
  reportBody
} from './protocol';
import { verifyReport } from './request';
import { SealRefused, SealedChannel, createSessionKey, pointOfJwk, toHex } from './sealedChannel';
import { SEALED_FIELD, isObject } from './sealedMessages';
import { ICertification, SealedOutputs, SealedSession } from './sealedSession';
import { ISealedState, TrustStore } from './store';

/** How long a kernel may take to answer `hello` before it counts as not answering. */
export const HELLO_TIMEOUT_MS = 15000;
// Re-check a little after the token's expiry, so the word changes when it lapses.
const EXPIRY_SLACK_MS = 1000;
const MAX_TIMER_MS = 2 ** 31 - 1;
/** How long the kernel may take to attest and answer a lock (it asks the broker). */
export const LOCK_TIMEOUT_MS = 60000;

interface IPendingLock {
  session: SealedSession;
  status: IStatusMessage;
  timer: ReturnType<typeof setTimeout> | null;
}

interface ICommRecord {
  comm: Kernel.IComm;
  answered: boolean;
  timer: ReturnType<typeof setTimeout> | null;
}

export interface IWatcherOptions {
  store: TrustStore;
  gate: ReleaseGate;
  settings: ServerConnection.ISettings;
  client?: string;
  /** Who answers release requests, as recorded by the kernel and broker. */
  who?: () => string;
  helloTimeoutMs?: number;
  /** Broker keys pinned by this browser (trust on first use). */
  pins?: BrokerPins;
  /** Where opened sealed outputs are kept for the renderer. */
  outputs?: SealedOutputs;
  /** Told when a lock pinned a broker key, for the analyst to compare its fingerprint. */
  onFirstUse?: (kernelId: string, result: ILockResult) => void;
  /** Told when a lock is refused (the reason is in the store too). */
  onLockRefused?: (kernelId: string, reason: string) => void;
  lockTimeoutMs?: number;
  /**
   * This browser's analyst key (analystKey.ts), or null: with one, every lock carries
   * the analyst's certificate of the session and approvals are signed.
   */
  analystKey?: () => Promise<IAnalystKey | null>;
  /** Told when a release request is declined unasked (it names another kernel or token). */
  onApprovalRefused?: (kernelId: string, reason: string) => void;
}

export class KernelWatcher {
  constructor(options: IWatcherOptions) {
    this._store = options.store;
    this._gate = options.gate;
    this._settings = options.settings;
    this._client = options.client ?? 'jupyterlab';
    this._who = options.who ?? (() => 'jupyterlab');
    this._helloTimeoutMs = options.helloTimeoutMs ?? HELLO_TIMEOUT_MS;
    this._pins = options.pins ?? new BrokerPins();
    this._outputs = options.outputs ?? new SealedOutputs();
    this._onFirstUse = options.onFirstUse ?? (() => undefined);
    this._onLockRefused = options.onLockRefused ?? (() => undefined);
    this._lockTimeoutMs = options.lockTimeoutMs ?? LOCK_TIMEOUT_MS;
    this._analystKey = options.analystKey ?? (() => Promise.resolve(null));
    this._onApprovalRefused = options.onApprovalRefused ?? (() => undefined);
  }

  /** The sealed session of a kernel this tab locked and verified, or null. */
  session(kernelId: string): SealedSession | null {
    return this._sessions.get(kernelId) ?? null;
  }

  /** Follow a notebook's (or console's) session: its kernel now and after every change. */
  watch(sessionContext: ISessionContext): void {
    const attach = () => {
      const kernel = sessionContext.session?.kernel;
      if (kernel) {
        this.attach(kernel);
      }
    };
    sessionContext.kernelChanged.connect(attach);
    sessionContext.ready.then(attach).catch(() => undefined);
    attach();
  }

  /** Open the comm to ``kernel`` unless one is open or being opened. */
  attach(kernel: Kernel.IKernelConnection): void {
    if (!this._kernels.has(kernel.id)) {
      this._kernels.set(kernel.id, kernel);
      kernel.statusChanged.connect(this._onStatus, this);
      kernel.disposed.connect(() => this._drop(kernel.id, true));
    }
    if (kernel.status === 'idle' || kernel.status === 'busy') {
      this._open(kernel);
    }
  }

  /** Ask the kernel for a fresh attestation. */
  attest(kernelId: string): boolean {
    return this._send(kernelId, attestMessage());
  }

  /**
   * Send on the kernel's comm: sealed (comm lane) once this tab verified the lock; nothing
   * while a lock is being checked; plain for a kernel that is not locked.
   */
  private _send(kernelId: string, data: OutgoingMessage): boolean {
    const record = this._comms.get(kernelId);
    if (!record || record.comm.isDisposed) {
      return false;
    }
    const session = this._sessions.get(kernelId);
    if (session) {
      const comm = record.comm;
      session
        .seal('comm_msg', { comm_id: comm.commId, data })
        .then(outer => {
          if (!comm.isDisposed) {
            comm.send(outer.data);
          }
        })
        .catch(error => console.error('workbench: could not seal a comm message', error));
      return true;
    }
    if (this._pendingLocks.has(kernelId) || this._store.get(kernelId)?.sealed) {
      return false; // locking, refused or locked elsewhere: nothing plain, nothing sealed yet
    }
    record.comm.send(data);
    return true;
  }

  private _onStatus(kernel: Kernel.IKernelConnection, status: Kernel.Status): void {
    if (status === 'restarting' || status === 'autorestarting' || status === 'dead') {
      this._drop(kernel.id, status === 'dead');
      this._store.update(kernel.id, {
        confidential: null,
        status: null,
        report: null,
        verdict: null,
        checking: false,
        released: [],
        refusals: [],
        commProblem: status === 'dead' ? 'the kernel died' : '',
        sealed: null
      });
    } else if (status === 'idle' && !this._comms.has(kernel.id)) {
      this._open(kernel);
    }
  }

  private _drop(kernelId: string, forget: boolean): void {
    const record = this._comms.get(kernelId);
    if (record?.timer) {
      clearTimeout(record.timer);
    }
    this._comms.delete(kernelId);
    this._noTarget.delete(kernelId);
    const timer = this._expiry.get(kernelId);
    if (timer) {
      clearTimeout(timer);
      this._expiry.delete(kernelId);
    }
    if (forget) {
      this._kernels.delete(kernelId);
    }
    // A restart is a new kernel and needs a new lock; the old session is over.
    this._sessions.get(kernelId)?.dispose();
    this._sessions.delete(kernelId);
    const pending = this._pendingLocks.get(kernelId);
    if (pending) {
      if (pending.timer) {
        clearTimeout(pending.timer);
      }
      pending.session.dispose();
      this._pendingLocks.delete(kernelId);
    }
  }

  private _open(kernel: Kernel.IKernelConnection): void {
    if (this._comms.has(kernel.id) || this._opening.has(kernel.id) || this._noTarget.has(kernel.id)) {
      return;
    }
    // Only once the kernel has answered kernel_info: it has finished starting then.
    this._opening.add(kernel.id);
    kernel.info
      .then(info => {
        this._opening.delete(kernel.id);
        if (!kernel.isDisposed && (kernel.status === 'idle' || kernel.status === 'busy')) {
          // kernel_info (never sealed) names the session a kernel is locked to.
          const locked = (info as any)?.workbench?.sealed;
          if (typeof locked === 'string' && locked) {
            this._store.update(kernel.id, { confidential: true, kernelName: kernel.name });
            this._markElsewhere(kernel.id, locked, '');
          }
          this._openNow(kernel);
        }
      })
      .catch(() => this._opening.delete(kernel.id));
  }

  private _openNow(kernel: Kernel.IKernelConnection): void {
    if (this._comms.has(kernel.id)) {
      return;
    }
    let comm: Kernel.IComm;
    try {
      comm = kernel.createComm(COMM_TARGET);
    } catch (error) {
      this._store.update(kernel.id, {
        confidential: false,
        commProblem: `cannot open the ${COMM_TARGET} comm (${(error as Error).message})`
      });
      return;
    }
    const record: ICommRecord = { comm, answered: false, timer: null };
    this._comms.set(kernel.id, record);
    comm.onMsg = msg => this._onMessage(kernel, record, msg);
    comm.onClose = () => this._onClose(kernel, record);
    comm.open({ v: PROTOCOL_VERSION });
    comm.send(helloMessage(this._client));
    record.timer = setTimeout(() => {
      record.timer = null;
      if (!record.answered) {
        void this._noAnswer(kernel, `the kernel did not answer on the ${COMM_TARGET} comm`);
      }
    }, this._helloTimeoutMs);
  }

  private async _confidentialSpec(kernel: Kernel.IKernelConnection): Promise<boolean> {
    try {
      const spec = await kernel.spec;
      const marker = (spec?.metadata as any)?.workbench;
      return marker?.confidential === true;
    } catch {
      return false;
    }
  }

  private async _noAnswer(kernel: Kernel.IKernelConnection, problem: string): Promise<void> {
    const confidential = await this._confidentialSpec(kernel);
    this._store.update(kernel.id, {
      kernelName: kernel.name,
      confidential: confidential ? true : false,
      commProblem: confidential
        ? `${problem}: this confidential kernel cannot be checked`
        : `${kernel.name} is an ordinary kernel (${problem})`
    });
  }

  private _onClose(kernel: Kernel.IKernelConnection, record: ICommRecord): void {
    if (this._comms.get(kernel.id) === record) {
      this._comms.delete(kernel.id);
    }
    if (record.timer) {
      clearTimeout(record.timer);
      record.timer = null;
    }
    if (!record.answered) {
      // ipykernel closes a comm whose target it does not know: not a confidential kernel.
      this._noTarget.add(kernel.id);
      void this._noAnswer(kernel, `it has no ${COMM_TARGET} comm target`);
    }
  }

  private async _onMessage(
    kernel: Kernel.IKernelConnection,
    record: ICommRecord,
    msg: KM.ICommMsgMsg
  ): Promise<void> {
    let data: unknown = msg.content.data;
    const session = this._sessions.get(kernel.id) ?? this._pendingLocks.get(kernel.id)?.session;
    // Sealed: data is {"sealed": ENVELOPE}. (The plain status has a `sealed` member too.)
    const sealed = isObject(data) && isObject(data[SEALED_FIELD]);
    if (sealed) {
      if (!session) {
        // Sealed for a session this tab does not hold: the kernel is locked to another
        // tab or client (a locked kernel seals its comm, the answer to our hello too).
        const other = (data as JSONObject)[SEALED_FIELD] as JSONObject;
        this._answered(kernel, record);
        this._markElsewhere(kernel.id, typeof other.session === 'string' ? other.session : '', '');
        return;
      }
      const opened = await session.take(msg);
      if (!opened || opened instanceof SealRefused) {
        const why = opened ? `${opened.kind}: ${opened.message}` : 'not a sealed message';
        this._store.update(kernel.id, { commProblem: `a sealed message from the kernel was refused (${why})` });
        return;
      }
      data = opened.content.data;
    } else if (session) {
      // After the lock only `lock-refused` may come plain; anything else is not the kernel's.
      const plain = parseKernelMessage(data);
      if (plain?.type === 'lock-refused' && this._pendingLocks.has(kernel.id)) {
        this._refuseLock(kernel.id, `the kernel refused the lock: ${plain.reason}`);
      }
      return;
    }
    if (sealed && (data as JSONObject)?.type === 'locked') {
      await this._onLocked(kernel, data as JSONObject);
      return;
    }
    const message = parseKernelMessage(data);
    if (!message) {
      return;
    }
    this._answered(kernel, record);
    const id = kernel.id;
    switch (message.type) {
      case 'status': {
        this._store.update(id, { status: message });
        for (const item of message.released) {
          this._store.addReleased(id, item);
        }
        if (message.report && message.report.token !== this._store.get(id)?.report?.token) {
          void this._check(id, this._withSession(id, message.report));
        }
        if (!session && this._comms.get(id) === record) {
          this._lockIfOpen(kernel, message);
        }
        break;
      }
      case 'evidence':
        void this._check(id, this._withSession(id, message));
        break;
      case 'release-request':
        void this._onReleaseRequest(id, message);
        break;
      case 'lock-refused':
        break; // only meaningful while locking (above)
      case 'released':
        this._store.addReleased(id, {
          resource: message.resource,
          time: message.time,
          request_id: message.request_id || undefined
        });
        this._gate.settle(message.request_id);
        break;
      case 'error':
        if (message.request === 'lock' && this._pendingLocks.has(id)) {
          // Locked, but its attestation failed: this tab sends nothing until a lock verifies.
          this._refuseLock(id, `the kernel is locked but could not attest: ${message.reason}`);
          break;
        }
        // Keep any earlier verdict; say why the new attempt failed.
        this._store.update(id, {
          checking: false,
          commProblem: `the kernel could not ${message.request || 'do that'}: ${message.reason}`
        });
        break;
      case 'refused': {
        const refusals = this._store.get(id)?.refusals ?? [];
        this._store.update(id, { refusals: [...refusals, message] });
        this._gate.settle(message.request_id);
        break;
      }
    }
  }

  /**
   * Ask the analyst (the gate's dialog). In a certified session the approval is the
   * session signing key's signature over what the kernel states it asks for; that
   * statement is checked first against what this tab knows (the kernel key the session
   * was derived from, the hash of the token the dialog shows): a mismatch is declined
   * without asking, and nothing is signed.
   */
  private async _onReleaseRequest(kernelId: string, request: IReleaseRequest): Promise<void> {
    const session = this._sessions.get(kernelId);
    const certification = session?.certification ?? null;
    let mismatch = '';
    if (certification) {
      const hash = await tokenHash(request.token);
      if (request.kernel_key !== certification.kernelKey) {
        mismatch =
          `it names kernel key ${request.kernel_key || '(none)'}, but this session's kernel key ` +
          `is ${certification.kernelKey}`;
      } else if (request.token_sha256 !== hash) {
        mismatch =
          `it names token hash ${request.token_sha256.slice(0, 16) || '(none)'}…, but the token it ` +
          `shows hashes to ${hash.slice(0, 16)}…`;
      }
    }
    if (mismatch) {
      if (!this._gate.claim(request.request_id)) {
        return; // taken up already
      }
      const reason = `release request ${request.request_id} for ${request.resource} declined unsigned: ${mismatch}`;
      this._send(kernelId, approvalMessage(request.request_id, false, this._who()));
      this._store.update(kernelId, { commProblem: reason });
      this._onApprovalRefused(kernelId, reason);
      return;
    }
    await this._gate.handle(kernelId, request, approved => {
      if (!approved || !certification) {
        this._send(kernelId, approvalMessage(request.request_id, approved, this._who()));
        return;
      }
      void signApproval(certification.signingKey, {
        request_id: request.request_id,
        resource: request.resource,
        kernel_key: certification.kernelKey,
        token_sha256: request.token_sha256
      })
        .then(signature =>
          this._send(kernelId, approvalMessage(request.request_id, true, this._who(), signature))
        )
        .catch(error => {
          console.error('workbench: could not sign an approval', error);
          this._send(kernelId, approvalMessage(request.request_id, false, this._who()));
        });
    });
  }

  /** The kernel answered on the comm: it is a confidential kernel. */
  private _answered(kernel: Kernel.IKernelConnection, record: ICommRecord): void {
    if (record.answered) {
      return;
    }
    record.answered = true;
    if (record.timer) {
      clearTimeout(record.timer);
      record.timer = null;
    }
    this._store.update(kernel.id, { confidential: true, kernelName: kernel.name, commProblem: '' });
  }

  /** The kernel is locked to a session this tab does not hold: its cells are not run here. */
  private _markElsewhere(kernelId: string, session: string, broker: string): void {
    if (this._sessions.has(kernelId) || this._pendingLocks.has(kernelId)) {
      return; // this tab's own lock (or its refusal) says more
    }
    const current = this._store.get(kernelId)?.sealed;
    if (current?.phase === 'elsewhere' && current.session === session) {
      return;
    }
    const other = session.slice(0, 16);
    this._setSealed(kernelId, {
      phase: 'elsewhere',
      session,
      broker: broker || current?.broker || '',
      brokerFingerprint: '',
      firstUse: false,
      reason:
        `the kernel is locked to another sealed session${other ? ` (${other})` : ''}: only the browser tab ` +
        'that locked it can run its cells and read its outputs; restart the kernel to lock it here'
    });
  }

  /** A locked kernel's report names this tab's session key, for the server's check. */
  private _withSession(kernelId: string, report: IEvidenceReport): IEvidenceReport {
    // Also while the lock is checked: the kernel's evidence then already binds this key.
    const session = this._sessions.get(kernelId) ?? this._pendingLocks.get(kernelId)?.session;
    if (!session) {
      return report;
    }
    const certificate = session.certification?.certificate;
    return certificate
      ? { ...report, session_key: session.sessionKeyHex, session_certificate: certificate }
      : { ...report, session_key: session.sessionKeyHex };
  }

  private _setSealed(kernelId: string, sealed: ISealedState): void {
    this._store.update(kernelId, { sealed });
  }

  /** Lock a kernel that says it can be locked; note one locked by someone else. */
  private _lockIfOpen(kernel: Kernel.IKernelConnection, status: IStatusMessage): void {
    const id = kernel.id;
    if (status.sealed === undefined || this._pendingLocks.has(id)) {
      return; // a kernel without sealed sessions, or a lock under way
    }
    if (status.sealed !== null) {
      this._markElsewhere(id, status.sealed, status.broker);
      return;
    }
    void this._lock(kernel, status);
  }

  private async _lock(kernel: Kernel.IKernelConnection, status: IStatusMessage): Promise<void> {
    const id = kernel.id;
    const sealed: ISealedState = {
      phase: 'locking',
      session: '',
      broker: status.broker,
      brokerFingerprint: '',
      firstUse: false,
      reason: 'locking the kernel to this tab…'
    };
    this._setSealed(id, sealed);
    const pending: IPendingLock = { session: null as unknown as SealedSession, status, timer: null };
    // Reserved before any await, so a second status does not start a second lock.
    this._pendingLocks.set(id, pending);
    try {
      if (!status.tee_pubkey) {
        throw new Error('the kernel reported no key (tee_pubkey) to lock to');
      }
      const key = await createSessionKey();
      const channel = await SealedChannel.create({
        own: key.privateKey,
        ownPoint: key.point,
        peerPoint: pointOfJwk(status.tee_pubkey),
        sends: 'to-kernel'
      });
      // With the analyst's key, the session is certified (docs/sealed-sessions.md, "Analysts").
      const analyst = await this._analystKey().catch(() => null);
      let certification: ICertification | null = null;
      let certificate: JSONObject | undefined;
      if (analyst) {
        const signing = await createSigningKey();
        const made = await certify({
          analyst: analyst.privateKey,
          analystJwk: analyst.jwk,
          sessionPoint: key.point,
          signingPoint: signing.point,
          kernelJwk: status.tee_pubkey
        });
        certificate = made as unknown as JSONObject;
        certification = {
          certificate,
          signingKey: signing.privateKey,
          kernelKey: made.kernel_key,
          analyst: analyst.fingerprint
        };
      }
      pending.session = new SealedSession({ kernel, channel, key, outputs: this._outputs, certification });
      const record = this._comms.get(id);
      if (this._pendingLocks.get(id) !== pending || !record || record.comm.isDisposed) {
        pending.session.dispose();
        return; // the kernel restarted meanwhile
      }
      this._setSealed(id, { ...sealed, session: channel.fingerprint, analyst: certification?.analyst ?? '' });
      record.comm.send(lockMessage(toHex(key.point), certificate) as any);
      pending.timer = setTimeout(() => {
        pending.timer = null;
        if (this._pendingLocks.get(id) === pending) {
          this._refuseLock(id, `the kernel did not answer the lock within ${this._lockTimeoutMs / 1000} s`);
        }
      }, this._lockTimeoutMs);
    } catch (error) {
      this._refuseLock(id, `cannot lock the kernel: ${(error as Error).message ?? error}`);
    }
  }

  /** The sealed `locked`: check it here; only then is the session used to send. */
  private async _onLocked(kernel: Kernel.IKernelConnection, data: JSONObject): Promise<void> {
    const id = kernel.id;
    const pending = this._pendingLocks.get(id);
    if (!pending || !pending.session) {
      return;
    }
    const locked = parseLocked(data);
    let result: ILockResult;
    try {
      if (!locked) {
        throw new Error('the kernel\'s locked message is malformed');
      }
      const info = await kernel.info.catch(() => null);
      const infoTransport = (info as any)?.workbench?.transport_key;
      result = await checkLock({
        locked,
        session: pending.session.fingerprint,
        sessionPoint: pending.session.key.point,
        kernelKey: pending.status.tee_pubkey ?? {},
        transportKeys: [pending.status.transport_key, ...(typeof infoTransport === 'string' ? [infoTransport] : [])],
        pins: this._pins
      });
    } catch (error) {
      this._refuseLock(id, `the lock does not verify: ${(error as Error).message ?? error}`);
      return;
    }
    if (this._pendingLocks.get(id) !== pending) {
      return;
    }
    if (pending.timer) {
      clearTimeout(pending.timer);
    }
    this._pendingLocks.delete(id);
    this._sessions.set(id, pending.session);
    this._setSealed(id, {
      phase: 'locked',
      session: pending.session.fingerprint,
      broker: result.broker,
      brokerFingerprint: result.fingerprint,
      firstUse: result.firstUse,
      reason: '',
      analyst: pending.session.certification?.analyst ?? ''
    });
    if (result.firstUse) {
      this._onFirstUse(id, result);
    }
    // The server's verdict is a second opinion, shown as before.
    const report = parseReport(locked!.evidence);
    if (report) {
      void this._check(id, this._withSession(id, report));
    }
  }

  private _refuseLock(kernelId: string, reason: string): void {
    const pending = this._pendingLocks.get(kernelId);
    if (pending) {
      if (pending.timer) {
        clearTimeout(pending.timer);
      }
      pending.session?.dispose();
    }
    // The entry stays (without a usable session): nothing is sent to this kernel again.
    this._sessions.delete(kernelId);
    const current = this._store.get(kernelId)?.sealed;
    this._setSealed(kernelId, {
      phase: 'refused',
      session: current?.session ?? '',
      broker: current?.broker ?? '',
      brokerFingerprint: current?.brokerFingerprint ?? '',
      firstUse: false,
      reason
    });
    this._onLockRefused(kernelId, reason);
  }

  /** Send a report to the server and keep its verdict, unless a newer report came in. */
  private async _check(kernelId: string, report: IEvidenceReport): Promise<void> {
    this._store.update(kernelId, { report, checking: true, verdict: null, commProblem: '' });
    const verdict = await verifyReport(reportBody(report, undefined, kernelId), this._settings);
    const current = this._store.get(kernelId);
    if (!current || current.report?.token !== report.token) {
      return;
    }
    this._store.update(kernelId, { verdict, checking: false });
    const old = this._expiry.get(kernelId);
    if (old) {
      clearTimeout(old);
      this._expiry.delete(kernelId);
    }
    const expires = verdict.token?.expires_at ? Date.parse(verdict.token.expires_at) : NaN;
    if (!verdict.token?.expired && Number.isFinite(expires)) {
      const delay = Math.min(MAX_TIMER_MS, Math.max(0, expires - Date.now()) + EXPIRY_SLACK_MS);
      this._expiry.set(
        kernelId,
        setTimeout(() => {
          this._expiry.delete(kernelId);
          if (this._store.get(kernelId)?.report?.token === report.token) {
            void this._check(kernelId, report);
          }
        }, delay)
      );
    }
  }

  private _store: TrustStore;
  private _gate: ReleaseGate;
  private _settings: ServerConnection.ISettings;
  private _client: string;
  private _who: () => string;
  private _helloTimeoutMs: number;
  private _kernels = new Map<string, Kernel.IKernelConnection>();
  private _comms = new Map<string, ICommRecord>();
  private _noTarget = new Set<string>();
  private _opening = new Set<string>();
  private _expiry = new Map<string, ReturnType<typeof setTimeout>>();
  private _pins: BrokerPins;
  private _outputs: SealedOutputs;
  private _onFirstUse: (kernelId: string, result: ILockResult) => void;
  private _onLockRefused: (kernelId: string, reason: string) => void;
  private _lockTimeoutMs: number;
  private _analystKey: () => Promise<IAnalystKey | null>;
  private _onApprovalRefused: (kernelId: string, reason: string) => void;
  private _sessions = new Map<string, SealedSession>();
  private _pendingLocks = new Map<string, IPendingLock>();
}
