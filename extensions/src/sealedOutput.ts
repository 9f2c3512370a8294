/**
 * Sealed outputs: the hook that opens them as they arrive, and the renderer that shows
 * what was opened.
 *
 * A locked kernel sends every output as a display_data holding only
 * `application/vnd.workbench.sealed+json` (an envelope). The output model keeps that
 * bundle, so a saved notebook holds ciphertext only; the renderer draws the plaintext this
 * tab opened (kept in memory by SealedOutputs) with the notebook's own renderers. What
 * changes the output area rather than adding to it (clear_output, update_display_data)
 * cannot wait for a renderer: the hook rewrites those messages, in place, to their plain
 * routing before the output area sees them.
 */

import { KernelMessage as KM } from '@jupyterlab/services';
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Panel, Widget } from '@lumino/widgets';

import { ATTESTATION_MIME } from './protocol';
import { SealRefused } from './sealedChannel';
import { SEALED_MIME } from './sealedMessages';
import { SealedOutputs, SealedSession } from './sealedSession';

/** What the renderer needs of a rendermime registry (the notebook's). */
export interface IRendererSource {
  preferredMimeType(bundle: any, safe?: 'ensure' | 'prefer' | 'any'): string | undefined;
  createRenderer(mimeType: string): IRenderMime.IRenderer;
}

type Content = { [key: string]: any };

/** What an output area shows or changes: in a sealed execution, only sealed display_data. */
export const OUTPUT_TYPES = new Set([
  'stream',
  'display_data',
  'execute_result',
  'error',
  'clear_output',
  'update_display_data'
]);

/** Shown in the cell in place of a message that was refused. */
function refusedNote(target: { header: { msg_type: string }; content: Content }, envelope: unknown, why: string): void {
  target.header.msg_type = 'display_data';
  target.content = {
    data: { [SEALED_MIME]: typeof envelope === 'object' && envelope !== null ? envelope : {} },
    metadata: { [SEALED_MIME]: { refused: why } },
    transient: {}
  };
}

/**
 * The message hook of a sealed execution: waits for the output's open (started when it
 * arrived) and rewrites what the output area must act on. Hooks may be async; the kernel
 * connection handles its messages one at a time, so outputs stay in order.
 *
 * A locked kernel sends every output as a sealed display_data. Anything else that would
 * change the output area (stream, display_data, execute_result, error, clear_output,
 * update_display_data in the clear, or sealed data inside another outer type) did not come
 * from the kernel under this session: it is refused (kind `unsealed`), never acted on, and
 * shown in its place as a refusal note. `onRefused` records it (the trust panel).
 */
export function sealedOutputHook(
  session: SealedSession,
  onRefused?: (kind: string, message: string) => void
): (msg: KM.IIOPubMessage) => Promise<boolean> {
  return async msg => {
    const content = (msg.content ?? {}) as Content;
    const msgType = msg.header.msg_type as string;
    if (!OUTPUT_TYPES.has(msgType)) {
      return true; // status, execute_input, comm messages: not outputs of this cell
    }
    const header = msg.header as { msg_type: string };
    const target = msg as unknown as { header: { msg_type: string }; content: Content };
    const sealedData = !!content.data && typeof content.data === 'object' && SEALED_MIME in content.data;
    if (msgType !== 'display_data' || !sealedData) {
      const why =
        `unsealed: a ${msgType} message in the clear` +
        (sealedData ? ' carrying sealed data (a sealed output is only ever a display_data)' : '') +
        ' is not the kernel\'s under this sealed session; not shown';
      onRefused?.('unsealed', why);
      // Shown as a note, never acted on (a clear_output clears nothing, an update updates nothing).
      refusedNote(target, null, why);
      return true;
    }
    const envelope = content.data[SEALED_MIME];
    const result = await session.take(msg);
    if (!result) {
      const why = 'unsealed: sealed data that is not an envelope of this session; not shown';
      onRefused?.('unsealed', why);
      refusedNote(target, null, why);
      return true;
    }
    if (result instanceof SealRefused) {
      // Shown as refused, never as the output a replay would copy.
      onRefused?.(result.kind, result.message);
      refusedNote(target, envelope, `${result.kind}: ${result.message}`);
      return true;
    }
    // The mark that this output model is the one opened from this message in this cell:
    // the renderer draws kept plaintext only for a model carrying it (a splice of the
    // same envelope elsewhere carries no mark and shows the placeholder).
    const shown = { [SEALED_MIME]: { shown: session.outputs.mark(envelope) } };
    const inner = result.content;
    const displayId = inner.transient?.display_id;
    switch (result.msg_type) {
      case 'clear_output':
        header.msg_type = 'clear_output';
        target.content = { wait: inner.wait === true };
        break;
      case 'update_display_data':
        header.msg_type = 'update_display_data';
        target.content = { data: { [SEALED_MIME]: envelope }, metadata: shown, transient: { display_id: displayId } };
        break;
      case 'execute_result':
        header.msg_type = 'execute_result';
        target.content = { data: { [SEALED_MIME]: envelope }, metadata: shown, execution_count: inner.execution_count ?? null };
        break;
      default:
        target.content = {
          data: { [SEALED_MIME]: envelope },
          metadata: shown,
          transient: typeof displayId === 'string' ? { display_id: displayId } : {}
        };
        break;
    }
    return true;
  };
}

/**
 * The bundle to draw for an opened output (as the output area would for a plain one).
 * `sessionKey`: the key of the session the output was sealed in; a locked kernel's
 * attestation report (wb.attest()) binds it, and the server's check of the card needs it.
 */
export function innerBundle(
  msgType: string,
  content: Content,
  sessionKey?: string
): { data: Content; metadata: Content } | null {
  switch (msgType) {
    case 'stream': {
      const mime = content.name === 'stderr' ? 'application/vnd.jupyter.stderr' : 'application/vnd.jupyter.stdout';
      return { data: { [mime]: String(content.text ?? '') }, metadata: {} };
    }
    case 'error': {
      const traceback = Array.isArray(content.traceback) ? content.traceback.join('\n') : '';
      return {
        data: { 'application/vnd.jupyter.stderr': traceback || `${String(content.ename)}: ${String(content.evalue)}` },
        metadata: {}
      };
    }
    case 'display_data':
    case 'execute_result':
    case 'update_display_data': {
      const data: Content = { ...(content.data ?? {}) };
      delete data[SEALED_MIME]; // never a sealed output inside a sealed output
      const report = data[ATTESTATION_MIME];
      if (sessionKey && report && typeof report === 'object' && !Array.isArray(report) && !report.session_key) {
        data[ATTESTATION_MIME] = { ...report, session_key: sessionKey };
      }
      return { data, metadata: content.metadata ?? {} };
    }
    default:
      return null;
  }
}

export const placeholderText = (session: unknown) =>
  "Sealed output: only the browser tab that ran this kernel's session can read it " +
  `(session ${String(session ?? '').slice(0, 16)})`;

export class RenderedSealed extends Panel implements IRenderMime.IRenderer {
  constructor(outputs: SealedOutputs, registry: IRendererSource | null) {
    super();
    this.addClass('jp-WorkbenchSealedOutput');
    this._outputs = outputs;
    this._registry = registry;
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    while (this.widgets.length) {
      this.widgets[0].dispose();
    }
    const envelope = model.data[SEALED_MIME] as Content | undefined;
    const refused = (model.metadata?.[SEALED_MIME] as Content | undefined)?.refused;
    if (refused) {
      this._note('refused', `Sealed output refused, not shown: ${String(refused)}`);
      return;
    }
    // Plaintext only for the output model the hook marked when it opened this envelope
    // from its own message in this cell: the same envelope anywhere else (a relay's
    // splice into another cell or another outer type) shows the placeholder.
    const mark = (model.metadata?.[SEALED_MIME] as Content | undefined)?.shown;
    const kept = this._outputs.shown(envelope, mark);
    if (!kept) {
      this._note('placeholder', placeholderText(envelope?.session));
      return;
    }
    const bundle = innerBundle(kept.opened.msg_type, kept.opened.content, kept.sessionKey);
    if (!bundle) {
      return;
    }
    // Trusted because it opened from a sealed message of this session (the kernel's output
    // of code the analyst sent sealed), whatever the cell's trust: the executor never marks
    // a sealed cell trusted, so nothing the relay delivers in the clear is ever trusted.
    const trusted = true;
    const mime = this._registry?.preferredMimeType(bundle.data, trusted ? 'any' : 'ensure');
    if (!this._registry || !mime) {
      this._note('unrenderable', `Sealed output of types ${Object.keys(bundle.data).join(', ') || '(none)'}: no renderer here`);
      return;
    }
    const renderer = this._registry.createRenderer(mime);
    this.addWidget(renderer);
    await renderer.renderModel({
      data: bundle.data as any,
      metadata: bundle.metadata as any,
      trusted,
      setData: () => undefined
    });
  }

  private _note(kind: string, text: string): void {
    const widget = new Widget();
    widget.addClass('jp-WorkbenchSealedOutput-note');
    widget.node.dataset.wb = `sealed-${kind}`;
    widget.node.textContent = text;
    this.addWidget(widget);
  }

  private _outputs: SealedOutputs;
  private _registry: IRendererSource | null;
}

/** The renderer factory for one registry (the notebook's), drawing from `outputs`. */
export function sealedRendererFactory(
  outputs: SealedOutputs,
  registry: () => IRendererSource | null
): IRenderMime.IRendererFactory {
  return {
    // Safe: it draws through the registry's own renderers, which apply the trust rules.
    safe: true,
    mimeTypes: [SEALED_MIME],
    defaultRank: 0,
    createRenderer: () => new RenderedSealed(outputs, registry())
  };
}
