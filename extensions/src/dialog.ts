/**
 * The release dialog: one per release request, whatever number of times the request
 * arrives (several comms to one kernel, duplicate session events). The analyst answers
 * Release or Refuse; Release is offered only on a verdict the server confirmed.
 */

import { Dialog } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { IReleaseRequest, reportBody } from './protocol';
import { renderReleasePrompt } from './render';
import { verifyReport } from './request';
import { TrustStore } from './store';
import { IVerdict, allowsRelease, localVerdict } from './verdict';

export interface IReleasePrompt {
  kernelId: string;
  request: IReleaseRequest;
  verdict: IVerdict;
}

/** Shows a prompt and resolves true only for Release; `close` withdraws it. */
export interface IAsker {
  ask(prompt: IReleasePrompt): { answer: Promise<boolean>; close: () => void };
}

export const dialogAsker: IAsker = {
  ask(prompt) {
    const release = allowsRelease(prompt.verdict);
    const buttons = [
      Dialog.cancelButton({ label: 'Refuse', ariaLabel: 'Refuse the release' }),
      ...(release
        ? [Dialog.okButton({ label: 'Release', ariaLabel: 'Release the key to this kernel' })]
        : [])
    ];
    const dialog = new Dialog({
      title: `Release ${prompt.request.dataset} to this kernel?`,
      body: new Widget({ node: renderReleasePrompt(prompt.request, prompt.verdict) }),
      buttons,
      // Focus starts on the verdict: a stray Enter does nothing, and releasing takes a
      // deliberate Tab to the button (or a click); Enter on a focused button presses it.
      defaultButton: 0,
      focusNodeSelector: '[data-wb-focus]',
      // Escape (and the close button) refuse.
      hasClose: true
    });
    dialog.addClass('jp-WorkbenchRelease-dialog');
    const answer = dialog
      .launch()
      .then(result => release && result.button.accept === true);
    return { answer, close: () => dialog.isDisposed || dialog.reject() };
  }
};

export class ReleaseGate {
  constructor(options: {
    store: TrustStore;
    settings: ServerConnection.ISettings;
    asker?: IAsker;
  }) {
    this._store = options.store;
    this._settings = options.settings;
    this._asker = options.asker ?? dialogAsker;
  }

  /** Whether a request with this id was already taken up. */
  seen(requestId: string): boolean {
    return this._seen.has(requestId);
  }

  /**
   * Take up a request without asking anyone (it is declined unasked); false when it was
   * taken up already.
   */
  claim(requestId: string): boolean {
    if (this._seen.has(requestId)) {
      return false;
    }
    this._seen.add(requestId);
    this._settled.add(requestId);
    return true;
  }

  /**
   * Ask the analyst about ``request`` (once per request id) and pass the answer to
   * ``reply``. Resolves when answered, or at once for a request already taken up.
   */
  async handle(
    kernelId: string,
    request: IReleaseRequest,
    reply: (approved: boolean) => void
  ): Promise<void> {
    if (this._seen.has(request.request_id)) {
      return;
    }
    this._seen.add(request.request_id);
    const verdict = await this._verdictFor(kernelId, request);
    if (this._settled.has(request.request_id)) {
      return; // the kernel or broker decided while the server was checking
    }
    const { answer, close } = this._asker.ask({ kernelId, request, verdict });
    this._open.set(request.request_id, close);
    let approved = false;
    try {
      approved = await answer;
    } finally {
      this._open.delete(request.request_id);
    }
    if (!this._settled.has(request.request_id)) {
      this._settled.add(request.request_id);
      reply(approved && allowsRelease(verdict));
    }
  }

  /** The kernel says the request is over (released, refused, timed out): drop its dialog. */
  settle(requestId: string | undefined): void {
    if (!requestId) {
      return;
    }
    this._settled.add(requestId);
    const close = this._open.get(requestId);
    if (close) {
      close();
    }
  }

  private async _verdictFor(
    kernelId: string,
    request: IReleaseRequest
  ): Promise<IVerdict> {
    const trust = this._store.get(kernelId);
    const report = trust?.report;
    if (!request.token) {
      return localVerdict('unverified', 'the release request carries no attestation token');
    }
    if (!report) {
      return localVerdict(
        'unverified',
        'the kernel sent no evidence for this request, so the server cannot check it'
      );
    }
    return verifyReport(reportBody(report, request.token, kernelId), this._settings);
  }

  private _store: TrustStore;
  private _settings: ServerConnection.ISettings;
  private _asker: IAsker;
  private _seen = new Set<string>();
  private _settled = new Set<string>();
  private _open = new Map<string, () => void>();
}
