/**
 * The notebook cell executor (JupyterLab's INotebookCellExecutor, of which there is one):
 * cells of a kernel this tab locked run sealed; every other kernel's cells go to the stock
 * `runCell`, unchanged. The analyst does nothing different.
 *
 * A sealed execution sends an execute_request whose code is empty and whose `sealed`
 * envelope holds the real request; outputs come back sealed and are opened by the hook of
 * sealedOutput.ts; the reply is opened too (it advances the shell lane, and its error
 * names the exception for "stop on error").
 */

import type { INotebookCellExecutor } from '@jupyterlab/notebook';
import { KernelMessage as KM } from '@jupyterlab/services';

import { SealRefused } from './sealedChannel';
import { sealedOutputHook } from './sealedOutput';
import { SealedSession } from './sealedSession';
import { TrustStore, sealMode } from './store';

type RunCell = (options: INotebookCellExecutor.IRunCellOptions) => Promise<boolean>;

/** How long a first cell waits for the lock to settle before it is not run. */
export const LOCK_WAIT_MS = 45000;

export interface IExecutorOptions {
  store: TrustStore;
  /** The session this tab holds for a kernel it locked and verified. */
  session: (kernelId: string) => SealedSession | null;
  /** The stock executor (runCell of @jupyterlab/notebook). */
  fallback: RunCell;
  /** Builds the error a failed cell throws (KernelError of @jupyterlab/notebook). */
  kernelError?: (content: KM.IExecuteReplyMsg['content']) => Error;
  waitMs?: number;
}

export class SealedCellExecutor implements INotebookCellExecutor {
  constructor(options: IExecutorOptions) {
    this._store = options.store;
    this._session = options.session;
    this._fallback = options.fallback;
    this._kernelError =
      options.kernelError ?? (content => new Error(`${(content as any).ename}: ${(content as any).evalue}`));
    this._waitMs = options.waitMs ?? LOCK_WAIT_MS;
  }

  async runCell(options: INotebookCellExecutor.IRunCellOptions): Promise<boolean> {
    const kernel = options.sessionContext?.session?.kernel;
    if (options.cell.model.type !== 'code' || !kernel || options.sessionContext?.isTerminating) {
      return this._fallback(options);
    }
    let mode = await this._settled(kernel.id);
    const trust = this._store.get(kernel.id);
    if (mode === 'pending' && !trust?.sealed && trust?.confidential !== true) {
      mode = 'plain'; // never identified as a confidential kernel: run it as JupyterLab would
    }
    if (mode === 'plain') {
      return this._fallback(options);
    }
    const session = mode === 'sealed' ? this._session(kernel.id) : null;
    if (!session) {
      const reason =
        this._store.get(kernel.id)?.sealed?.reason ||
        (mode === 'pending' ? 'the kernel was not locked in time' : 'this tab holds no sealed session for it');
      const error = new Error(`Not run: this confidential kernel runs only sealed cells, and ${reason}`);
      options.onCellExecuted({ cell: options.cell, success: false, error: error as any });
      throw error;
    }
    return this._runSealed(options, session);
  }

  /** The kernel's mode once settled, waiting (up to waitMs) while the lock is under way. */
  private _settled(kernelId: string): Promise<'plain' | 'sealed' | 'refused' | 'pending'> {
    const now = sealMode(this._store.get(kernelId));
    if (now !== 'pending') {
      return Promise.resolve(now);
    }
    return new Promise(resolve => {
      const check = (_: unknown, id: string) => {
        if (id !== kernelId) {
          return;
        }
        const mode = sealMode(this._store.get(kernelId));
        if (mode !== 'pending') {
          done(mode);
        }
      };
      const done = (mode: 'plain' | 'sealed' | 'refused' | 'pending') => {
        clearTimeout(timer);
        this._store.changed.disconnect(check);
        resolve(mode);
      };
      const timer = setTimeout(() => done('pending'), this._waitMs);
      this._store.changed.connect(check);
    });
  }

  private async _runSealed(options: INotebookCellExecutor.IRunCellOptions, session: SealedSession): Promise<boolean> {
    const { cell, onCellExecuted, onCellExecutionScheduled } = options;
    const codeCell = cell as any; // a CodeCell: model.type is 'code'
    const model = codeCell.model;
    const code: string = model.sharedModel.getSource();
    if (!code.trim()) {
      model.sharedModel.transact(() => model.clearExecution(), false);
      onCellExecuted({ cell, success: true });
      return true;
    }
    onCellExecutionScheduled({ cell });
    const metadata = { ...model.metadata, cellId: model.sharedModel.getId() };
    const tags: unknown = model.metadata?.tags;
    const stopOnError = !(Array.isArray(tags) && tags.includes('raises-exception'));
    model.sharedModel.transact(
      () => {
        model.clearExecution();
        codeCell.outputHidden = false;
      },
      false,
      'silent-change'
    );
    model.executionState = 'running';
    // clearExecution() (stock JupyterLab) marks the emptied cell trusted: undone here.
    model.trusted = false;
    // The cell is never marked trusted. Its outputs arrive through the relay (the operator's
    // server), and JupyterLab runs the scripts of trusted HTML: trusting the cell would trust
    // whatever the relay slips in. Only what opened from a sealed message of this session is
    // drawn trusted, by the sealed renderer (sealedOutput.ts), which decides per output from
    // the opened plaintext itself, not from a flag on the cell. Everything else in a sealed
    // execution is refused by the hook before the output area sees it.
    try {
      const outer = await session.seal('execute_request', {
        code,
        silent: false,
        store_history: true,
        user_expressions: {},
        allow_stdin: true,
        stop_on_error: stopOnError
      });
      const future = session.kernel.requestExecute(outer as KM.IExecuteRequestMsg['content'], false, metadata);
      codeCell.outputArea.future = future;
      future.registerMessageHook(sealedOutputHook(session, (kind, message) => session.recordRefusal(kind, message)));
      sealStdin(future, session);
      const reply = await future.done;
      // Status and execution count come from the opened sealed reply only: the outer ones
      // are the relay's to change. A reply that is not sealed, or does not open under this
      // session, fails the cell (and so stops Run-All) as a sealed-session violation.
      const opened = await session.take(reply);
      if (!opened || opened instanceof SealRefused || opened.msg_type !== 'execute_reply') {
        const why = !opened
          ? 'unsealed: the execute_reply came in the clear'
          : opened instanceof SealRefused
            ? `${opened.kind}: ${opened.message}`
            : `unsealed: a sealed ${opened.msg_type} came as the execute_reply`;
        session.recordRefusal(opened instanceof SealRefused ? opened.kind : 'unsealed', why);
        if (cell.isDisposed) {
          return false;
        }
        model.executionCount = null;
        // Thrown as the notebook's KernelError (ename SealedSessionViolation), so Run-All
        // treats it as a failed cell, as it does a kernel error.
        throw this._kernelError({
          status: 'error',
          ename: 'SealedSessionViolation',
          evalue: `Sealed-session violation: the reply to this cell was refused (${why})`,
          traceback: []
        } as any);
      }
      const content = opened.content as KM.IExecuteReplyMsg['content'];
      if (cell.isDisposed) {
        return false;
      }
      const count = (content as any).execution_count;
      model.executionCount = typeof count === 'number' ? count : null;
      if (content.status === 'ok') {
        onCellExecuted({ cell, success: true });
        return true;
      }
      throw this._kernelError(content);
    } catch (reason) {
      model.executionState = 'idle';
      if (cell.isDisposed || String((reason as Error)?.message ?? '').startsWith('Canceled')) {
        return false;
      }
      onCellExecuted({ cell, success: false, error: reason as any });
      throw reason;
    }
  }

  private _store: TrustStore;
  private _session: (kernelId: string) => SealedSession | null;
  private _fallback: RunCell;
  private _kernelError: (content: KM.IExecuteReplyMsg['content']) => Error;
  private _waitMs: number;
}

/**
 * input() in a sealed cell: the kernel's input_request arrives sealed (its prompt inside);
 * the output area shows the opened prompt, and its answer leaves sealed on the stdin lane.
 */
export function sealStdin(future: any, session: SealedSession): void {
  const show = future.onStdin;
  const plainReply = future.sendInputReply.bind(future);
  future.onStdin = async (msg: KM.IStdinMessage) => {
    if (msg.header.msg_type === 'input_request') {
      const opened = await session.take(msg);
      if (opened instanceof SealRefused) {
        return; // not shown: a refused request is not the kernel's
      }
      if (opened) {
        (msg as any).content = {
          prompt: String(opened.content.prompt ?? ''),
          password: opened.content.password === true
        };
      }
    }
    return show?.(msg);
  };
  future.sendInputReply = (content: KM.IInputReplyMsg['content'], parent: KM.IHeader<'input_request'>) => {
    void session
      .seal('input_reply', content as any)
      .then(outer => plainReply(outer, parent))
      .catch((error: unknown) => console.error('workbench: could not seal the input reply', error));
  };
}
