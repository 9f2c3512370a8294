/**
 * The trust panel's analyst key section: this browser's analyst key (analystKey.ts), its
 * fingerprint, and the actions to make it and to export its public part for registration.
 */

import { EXPORT_FILENAME, IAnalystKey, exportText } from './analystKey';
import { el, list, row, section } from './render';

export interface IAnalystActions {
  create: () => void;
  export: () => void;
}

/** Offer the public JWK as a download (the file the data owner registers). */
export function downloadPublicKey(key: IAnalystKey, doc: Document = document): void {
  const blob = new Blob([exportText(key)], { type: 'application/jwk+json' });
  const url = URL.createObjectURL(blob);
  const link = doc.createElement('a');
  link.href = url;
  link.download = EXPORT_FILENAME;
  link.style.display = 'none';
  doc.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function button(label: string, key: string, action: () => void): HTMLElement {
  const node = el('button', { class: 'jp-mod-styled jp-WorkbenchTrust-analystAction', type: 'button', 'data-wb': key }, label);
  node.addEventListener('click', action);
  return node;
}

export function analystSection(key: IAnalystKey | null, problem: string, actions: IAnalystActions): HTMLElement {
  if (!key) {
    return section(
      'Your analyst key',
      'analyst',
      el(
        'p',
        { class: 'jp-WorkbenchTrust-note', 'data-wb': 'analyst-none' },
        'This browser has no analyst key: sealed sessions are not certified, and data restricted to ' +
          'registered analysts is not released to them.'
      ),
      problem ? el('p', { class: 'jp-WorkbenchTrust-problem', 'data-wb': 'analyst-problem' }, problem) : null,
      button('Create my analyst key', 'analyst-create', actions.create)
    );
  }
  return section(
    'Your analyst key',
    'analyst',
    list([row('Your analyst key', key.fingerprint, 'analyst-key'), row('Made', key.createdAt, 'analyst-made')]),
    el(
      'p',
      { class: 'jp-WorkbenchTrust-note', 'data-wb': 'analyst-note' },
      'Kept by this browser (IndexedDB); its private part cannot be exported. Every kernel locked ' +
        'from now on is certified by it. Give the public key to the data owner, who registers it: ' +
        `workbench kbs analyst add NAME --public-key ${EXPORT_FILENAME}`
    ),
    button('Export public key', 'analyst-export', actions.export)
  );
}
