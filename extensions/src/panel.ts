/**
 * The trust panel (right sidebar): for the active notebook's kernel, the server's verdict
 * in full, what was released, and a button to attest again; and this browser's analyst
 * key, with its fingerprint and the export of its public part.
 */

import { Widget } from '@lumino/widgets';

import { AnalystKeys } from './analystKey';
import { IAnalystActions, analystSection } from './analystPanel';
import { el, releasesSection, renderState, renderVerdict, sealedSection } from './render';
import { IKernelTrust, TrustStore, isSealed, trustState } from './store';

export class TrustPanel extends Widget {
  constructor(options: {
    store: TrustStore;
    attest: (kernelId: string) => boolean;
    analyst?: { keys: AnalystKeys; actions: IAnalystActions };
  }) {
    super();
    this.id = 'workbench-trust-panel';
    this.addClass('jp-WorkbenchTrust');
    this.title.caption = 'Kernel trust: evidence and verdict';
    this._store = options.store;
    this._attest = options.attest;
    this._analyst = options.analyst ?? null;
    this._analyst?.keys.changed.connect(() => this.render(), this);
    this._store.changed.connect((_, kernelId) => {
      if (kernelId === this._kernelId) {
        this.render();
      }
    }, this);
    this.render();
  }

  get kernelId(): string | null {
    return this._kernelId;
  }

  /** Show the kernel with this id (the active notebook's), or none. */
  showKernel(kernelId: string | null, label = ''): void {
    this._kernelId = kernelId;
    this._label = label;
    this.render();
  }

  render(): void {
    const trust = this._store.get(this._kernelId);
    const node = this.node;
    node.textContent = '';
    node.appendChild(
      el('h2', { class: 'jp-WorkbenchTrust-title' }, this._label ? `Kernel trust — ${this._label}` : 'Kernel trust')
    );
    if (!this._kernelId) {
      node.appendChild(renderState('unverified', 'no notebook with a kernel is active'));
    } else {
      node.appendChild(this._body(trust));
    }
    if (this._analyst) {
      const { keys, actions } = this._analyst;
      node.appendChild(analystSection(keys.current, keys.problem, actions));
    }
  }

  private _body(trust: IKernelTrust | null): HTMLElement {
    const { state, reason } = trustState(trust);
    const body = el('div', { class: 'jp-WorkbenchTrust-body' });
    if (trust?.verdict && trust.commProblem) {
      body.appendChild(el('p', { class: 'jp-WorkbenchTrust-problem', 'data-wb': 'problem' }, trust.commProblem));
    }
    if (trust?.verdict && trust.sealed && trust.sealed.phase !== 'locked' && trust.sealed.phase !== 'locking') {
      // The browser's own check refused the lock: that decides, whatever the server says.
      body.appendChild(renderState(state, reason));
    }
    if (trust?.verdict) {
      body.appendChild(
        renderVerdict(trust.verdict, {
          report: trust.report,
          status: trust.status,
          released: trust.released,
          refusals: trust.refusals
        })
      );
    } else {
      body.appendChild(renderState(state, reason));
      if (trust?.confidential) {
        body.appendChild(releasesSection(trust.released, trust.refusals));
      }
    }
    if (isSealed(trust) && state !== 'refused') {
      // "Sealed" next to the word, as in the status bar.
      const word = body.querySelector('[data-wb="state"]');
      if (word) {
        word.textContent = `${word.textContent} · Sealed`;
      }
    }
    if (trust?.sealed) {
      body.appendChild(sealedSection(trust.sealed));
    }
    if (trust?.confidential) {
      const button = el(
        'button',
        { class: 'jp-mod-styled jp-WorkbenchTrust-attest', type: 'button' },
        trust.checking ? 'Checking…' : 'Attest again'
      ) as HTMLButtonElement;
      button.disabled = trust.checking;
      button.addEventListener('click', () => {
        if (this._kernelId) {
          this._attest(this._kernelId);
        }
      });
      body.appendChild(button);
    }
    return body;
  }

  private _store: TrustStore;
  private _attest: (kernelId: string) => boolean;
  private _analyst: { keys: AnalystKeys; actions: IAnalystActions } | null;
  private _kernelId: string | null = null;
  private _label = '';
}
