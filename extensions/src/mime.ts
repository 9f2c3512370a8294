/**
 * Renderer for `application/vnd.workbench.attestation+json` (the output of `wb.attest()`):
 * the output holds what the kernel reported; the card shows what the server concludes
 * about it, checked again every time the output is drawn (also after save and reload).
 *
 * In a notebook the card names the notebook's kernel to the server (`kernel_id`), so the
 * server compares the transport key the evidence binds with its own connection to that
 * kernel: a card replayed from another kernel is refused, as in the panel and the dialog.
 */

import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { ATTESTATION_MIME, parseReport, reportBody } from './protocol';
import { el, renderState, renderVerdict } from './render';
import { verifyReport } from './request';
import { SEALED_MIME } from './sealedMessages';
import { sealedRendererFactory } from './sealedOutput';
import { sealedOutputs } from './sealedSession';

/** The id of the kernel whose outputs a renderer draws (null: none, or not known). */
export type KernelIdSource = () => string | null;

export class RenderedAttestation extends Widget implements IRenderMime.IRenderer {
  constructor(
    options: IRenderMime.IRendererOptions,
    settings?: ServerConnection.ISettings,
    kernelId?: KernelIdSource
  ) {
    super();
    this._mimeType = options.mimeType;
    this._settings = settings;
    this._kernelId = kernelId;
    this.addClass('jp-WorkbenchTrust');
    this.addClass('jp-WorkbenchAttestationOutput');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const report = parseReport(model.data[this._mimeType]);
    this.node.textContent = '';
    if (!report) {
      this.node.appendChild(
        renderState('unverified', 'this output holds no attestation report the server can check')
      );
      return;
    }
    this.node.appendChild(
      el('p', { class: 'jp-WorkbenchTrust-note', 'data-wb': 'checking' }, 'Checking with the server…')
    );
    const settings = this._settings ?? ServerConnection.makeSettings();
    const kernelId = this._kernelId?.() ?? undefined;
    const verdict = await verifyReport(reportBody(report, undefined, kernelId), settings);
    this.node.textContent = '';
    this.node.appendChild(renderVerdict(verdict, { report }));
  }

  private _mimeType: string;
  private _settings?: ServerConnection.ISettings;
  private _kernelId?: KernelIdSource;
}

export const rendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [ATTESTATION_MIME],
  // Ahead of text/html (50), which the kernel sends alongside as a fallback.
  defaultRank: 0,
  createRenderer: options => new RenderedAttestation(options)
};

/** The same renderer for one notebook: its cards name the notebook's current kernel. */
export function notebookRendererFactory(
  kernelId: KernelIdSource,
  settings?: ServerConnection.ISettings
): IRenderMime.IRendererFactory {
  return {
    ...rendererFactory,
    createRenderer: options => new RenderedAttestation(options, settings, kernelId)
  };
}

const extension: IRenderMime.IExtension = {
  id: '@confidential-workbench/labextension:attestation-renderer',
  rendererFactory,
  rank: 0,
  dataType: 'json'
};

/**
 * Sealed outputs, registered app-wide so a notebook opened from disk shows the
 * placeholder rather than nothing; each notebook then gets a factory that draws what this
 * tab opened with that notebook's renderers (index.ts).
 */
const sealedExtension: IRenderMime.IExtension = {
  id: '@confidential-workbench/labextension:sealed-renderer',
  rendererFactory: sealedRendererFactory(sealedOutputs, () => null),
  rank: 0,
  dataType: 'json'
};

export { SEALED_MIME };
export default [extension, sealedExtension];
