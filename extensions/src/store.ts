/**
 * What the extension knows about each kernel, by kernel id: what the kernel said (its
 * status, last evidence report, releases, refusals) kept apart from what the server
 * concluded (the verdict). Views read from here and redraw on `changed`.
 */

import { ISignal, Signal } from '@lumino/signaling';

import {
  IEvidenceReport,
  IRefusedMessage,
  IReleased,
  IStatusMessage
} from './protocol';
import { IVerdict, TrustState } from './verdict';

/**
 * The sealed session of a kernel, as this tab sees it. `locking`: the lock was sent and
 * the browser is checking the answer (nothing sealed is sent yet); `locked`: this tab
 * verified the broker's token itself and runs the kernel's cells sealed; `refused`: the
 * kernel or the check refused the lock, cells are not run; `elsewhere`: the kernel was
 * locked by another tab or client, whose session this tab cannot read or use.
 */
export interface ISealedState {
  phase: 'locking' | 'locked' | 'refused' | 'elsewhere';
  /** The session fingerprint (hex), when known. */
  session: string;
  broker: string;
  /** `SHA256:<thumbprint>` of the pinned broker key that verified the lock. */
  brokerFingerprint: string;
  /** True when this lock pinned the broker key (first use). */
  firstUse: boolean;
  reason: string;
  /** The fingerprint of the analyst key that certified this tab's session ('' or absent: none). */
  analyst?: string;
}

export interface IKernelTrust {
  kernelId: string;
  kernelName: string;
  /** null until known; false for kernels without the workbench.attestation comm. */
  confidential: boolean | null;
  status: IStatusMessage | null;
  report: IEvidenceReport | null;
  verdict: IVerdict | null;
  checking: boolean;
  /** Kernel-reported; shown as such. */
  released: IReleased[];
  refusals: IRefusedMessage[];
  /** Why the comm could not be used, when it could not. */
  commProblem: string;
  /** null: no lock was attempted (not a confidential kernel, or one without sealed sessions). */
  sealed: ISealedState | null;
}

function blank(kernelId: string): IKernelTrust {
  return {
    kernelId,
    kernelName: '',
    confidential: null,
    status: null,
    report: null,
    verdict: null,
    checking: false,
    released: [],
    refusals: [],
    commProblem: '',
    sealed: null
  };
}

/** The state word for a kernel: the server's verdict, or why there is none. */
export function trustState(trust: IKernelTrust | null): {
  state: TrustState;
  reason: string;
} {
  if (!trust || trust.confidential === null) {
    return { state: 'unverified', reason: 'waiting for the kernel' };
  }
  if (trust.sealed?.phase === 'refused' || trust.sealed?.phase === 'elsewhere') {
    // The browser's own check decides for sealing; the server's verdict only advises.
    return { state: 'refused', reason: trust.sealed.reason };
  }
  if (trust.confidential === false) {
    return {
      state: 'not-confidential',
      reason: trust.commProblem || 'the kernel has no workbench.attestation comm'
    };
  }
  if (trust.verdict) {
    return { state: trust.verdict.state, reason: trust.verdict.reason };
  }
  if (trust.checking) {
    return { state: 'unverified', reason: 'checking with the server…' };
  }
  if (trust.commProblem) {
    return { state: 'unverified', reason: trust.commProblem };
  }
  return {
    state: 'unverified',
    reason: 'the kernel has not attested yet (run wb.attest())'
  };
}

/** Whether the word is followed by "Sealed": a lock this tab verified. */
export function isSealed(trust: IKernelTrust | null): boolean {
  return trust?.sealed?.phase === 'locked';
}

/** How a kernel's cells run now; `pending` until the lock (or its absence) is settled. */
export function sealMode(trust: IKernelTrust | null): 'plain' | 'sealed' | 'refused' | 'pending' {
  if (!trust) {
    return 'pending';
  }
  switch (trust.sealed?.phase) {
    case 'locked':
      return 'sealed';
    case 'refused':
    case 'elsewhere':
      return 'refused';
    case 'locking':
      return 'pending';
    default:
      break;
  }
  if (trust.confidential === false) {
    return 'plain';
  }
  if (trust.confidential === true && trust.status && trust.status.sealed === undefined) {
    return 'plain'; // a kernel that does not speak sealed sessions runs as it always did
  }
  if (trust.confidential === true && !trust.status && trust.commProblem) {
    return 'plain'; // it never answered hello: there is no lock to wait for
  }
  return 'pending';
}

export class TrustStore {
  get changed(): ISignal<this, string> {
    return this._changed;
  }

  get(kernelId: string | null | undefined): IKernelTrust | null {
    return kernelId ? this._kernels.get(kernelId) ?? null : null;
  }

  update(kernelId: string, patch: Partial<IKernelTrust>): IKernelTrust {
    const next = { ...(this._kernels.get(kernelId) ?? blank(kernelId)), ...patch };
    this._kernels.set(kernelId, next);
    this._changed.emit(kernelId);
    return next;
  }

  /** Record a release once, even when the kernel reports it again in a status. */
  addReleased(kernelId: string, item: IReleased): void {
    const current = this.get(kernelId) ?? blank(kernelId);
    const seen = current.released.some(
      r =>
        r.resource === item.resource &&
        r.time === item.time &&
        (r.request_id ?? '') === (item.request_id ?? '')
    );
    if (!seen) {
      this.update(kernelId, { released: [...current.released, item] });
    }
  }

  forget(kernelId: string): void {
    if (this._kernels.delete(kernelId)) {
      this._changed.emit(kernelId);
    }
  }

  private _kernels = new Map<string, IKernelTrust>();
  private _changed = new Signal<this, string>(this);
}
