/**
 * One `workbench.attestation` comm per kernel, opened when a kernel starts or restarts,
 * whatever number of notebooks or session events point at it. Messages go to the store;
 * every report goes to the server for its verdict; release requests go to the gate.
 */

import { ISessionContext } from '@jupyterlab/apputils';
import { Kernel, KernelMessage as KM, ServerConnection } from '@jupyterlab/services';

import { ReleaseGate } from './dialog';
import {
  COMM_TARGET,
  IEvidenceReport,
  PROTOCOL_VERSION,
  approvalMessage,
  attestMessage,
  helloMessage,
  parseKernelMessage,
  reportBody
} from './protocol';
import { verifyReport } from './request';
import { TrustStore } from './store';

/** How long a kernel may take to answer `hello` before it counts as not answering. */
export const HELLO_TIMEOUT_MS = 15000;
// Re-check a little after the token's expiry, so the word changes when it lapses.
const EXPIRY_SLACK_MS = 1000;
const MAX_TIMER_MS = 2 ** 31 - 1;

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
}

export class KernelWatcher {
  constructor(options: IWatcherOptions) {
    this._store = options.store;
    this._gate = options.gate;
    this._settings = options.settings;
    this._client = options.client ?? 'jupyterlab';
    this._who = options.who ?? (() => 'jupyterlab');
    this._helloTimeoutMs = options.helloTimeoutMs ?? HELLO_TIMEOUT_MS;
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
    const record = this._comms.get(kernelId);
    if (!record || record.comm.isDisposed) {
      return false;
    }
    record.comm.send(attestMessage());
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
        commProblem: status === 'dead' ? 'the kernel died' : ''
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
  }

  private _open(kernel: Kernel.IKernelConnection): void {
    if (this._comms.has(kernel.id) || this._opening.has(kernel.id) || this._noTarget.has(kernel.id)) {
      return;
    }
    // Only once the kernel has answered kernel_info: it has finished starting then.
    this._opening.add(kernel.id);
    kernel.info
      .then(() => {
        this._opening.delete(kernel.id);
        if (!kernel.isDisposed && (kernel.status === 'idle' || kernel.status === 'busy')) {
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

  private _onMessage(
    kernel: Kernel.IKernelConnection,
    record: ICommRecord,
    msg: KM.ICommMsgMsg
  ): void {
    const message = parseKernelMessage(msg.content.data);
    if (!message) {
      return;
    }
    if (!record.answered) {
      record.answered = true;
      if (record.timer) {
        clearTimeout(record.timer);
        record.timer = null;
      }
      this._store.update(kernel.id, { confidential: true, kernelName: kernel.name, commProblem: '' });
    }
    const id = kernel.id;
    switch (message.type) {
      case 'status': {
        this._store.update(id, { status: message });
        for (const item of message.released) {
          this._store.addReleased(id, item);
        }
        if (message.report && message.report.token !== this._store.get(id)?.report?.token) {
          void this._check(id, message.report);
        }
        break;
      }
      case 'evidence':
        void this._check(id, message);
        break;
      case 'release-request':
        void this._gate.handle(id, message, approved => {
          const current = this._comms.get(id);
          if (current && !current.comm.isDisposed) {
            current.comm.send(approvalMessage(message.request_id, approved, this._who()));
          }
        });
        break;
      case 'released':
        this._store.addReleased(id, {
          resource: message.resource,
          time: message.time,
          request_id: message.request_id || undefined
        });
        this._gate.settle(message.request_id);
        break;
      case 'error':
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
}
