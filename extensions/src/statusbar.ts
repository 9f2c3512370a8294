/** The status bar item: a shield and a word for the active notebook's kernel. */

import { Widget } from '@lumino/widgets';

import { el, shield } from './render';
import { TrustStore, isSealed, trustState } from './store';
import { STATE_LABELS } from './verdict';

export class TrustStatusItem extends Widget {
  constructor(options: { store: TrustStore; onClick?: () => void }) {
    super();
    this.addClass('jp-WorkbenchStatus');
    this.node.setAttribute('role', 'button');
    this.node.tabIndex = 0;
    this._store = options.store;
    const click = options.onClick;
    if (click) {
      this.node.addEventListener('click', click);
      this.node.addEventListener('keydown', event => {
        if (event.key === 'Enter' || event.key === ' ') {
          event.preventDefault();
          click();
        }
      });
    }
    this._store.changed.connect((_, kernelId) => {
      if (kernelId === this._kernelId) {
        this.render();
      }
    }, this);
    this.render();
  }

  showKernel(kernelId: string | null): void {
    this._kernelId = kernelId;
    this.render();
  }

  render(): void {
    const trust = this._store.get(this._kernelId);
    const { state, reason } = this._kernelId
      ? trustState(trust)
      : { state: 'unverified' as const, reason: 'no notebook with a kernel is active' };
    const label = STATE_LABELS[state];
    // "Sealed" only for a lock this tab verified itself (docs/sealed-sessions.md).
    const sealed = isSealed(trust) && state !== 'refused';
    const word = sealed ? `${label.word} · Sealed` : label.word;
    this.node.textContent = '';
    this.node.dataset.state = state;
    this.node.className = `jp-WorkbenchStatus lm-Widget jp-mod-${state}`;
    const session = sealed ? ` (sealed session ${trust?.sealed?.session.slice(0, 16)})` : '';
    const text = `Kernel trust: ${word} — ${reason || label.meaning}${session}`;
    this.node.title = text;
    this.node.setAttribute('aria-label', text);
    this.node.appendChild(shield(state));
    this.node.dataset.sealed = sealed ? 'true' : 'false';
    this.node.appendChild(el('span', { class: 'jp-WorkbenchStatus-word' }, word));
  }

  private _store: TrustStore;
  private _kernelId: string | null = null;
}
