import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import {
  INotebookCellExecutor,
  INotebookTracker,
  KernelError,
  NotebookPanel,
  runCell
} from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';

import { AnalystKeys } from './analystKey';
import { downloadPublicKey } from './analystPanel';
import { KernelWatcher } from './connection';
import { SealedCellExecutor } from './executor';
import { BrokerPins } from './lock';
import { notebookRendererFactory, rendererFactory } from './mime';
import { ReleaseGate } from './dialog';
import { TrustPanel } from './panel';
import { sealedRendererFactory } from './sealedOutput';
import { sealedOutputs } from './sealedSession';
import { TrustStatusItem } from './statusbar';
import { TrustStore } from './store';

const PLUGIN_ID = '@confidential-workbench/labextension:trust';
const COMMAND_SHOW = 'workbench:show-trust-panel';
const COMMAND_ATTEST = 'workbench:attest';
const COMMAND_CREATE_KEY = 'workbench:create-analyst-key';
const COMMAND_EXPORT_KEY = 'workbench:export-analyst-key';
const EXECUTOR_ID = '@confidential-workbench/labextension:cell-executor';

/**
 * What the trust plugin and the cell executor share. The executor plugin is activated
 * first (the notebook plugins need it), the trust plugin fills in the watcher.
 */
const shared: { store: TrustStore; watcher: KernelWatcher | null } = {
  store: new TrustStore(),
  watcher: null
};

/**
 * The notebook cell executor: sealed cells for kernels this tab locked, JupyterLab's own
 * runCell for every other kernel. INotebookCellExecutor has exactly one provider, so
 * package.json disables @jupyterlab/notebook-extension:cell-executor.
 */
const executorPlugin: JupyterFrontEndPlugin<INotebookCellExecutor> = {
  id: EXECUTOR_ID,
  description: 'Runs cells of a locked confidential kernel sealed; other kernels as JupyterLab does.',
  autoStart: true,
  provides: INotebookCellExecutor,
  activate: (): INotebookCellExecutor =>
    new SealedCellExecutor({
      store: shared.store,
      session: kernelId => shared.watcher?.session(kernelId) ?? null,
      fallback: runCell,
      kernelError: content => new KernelError(content)
    })
};

/**
 * Kernel trust: one comm per kernel, the server's verdict per kernel, the trust panel, the
 * status bar item and the release dialog.
 */
const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Shows what a confidential kernel is, what the server concluded, and asks before data is released.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILabShell, IStatusBar, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    labShell: ILabShell | null,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null
  ) => {
    const settings = app.serviceManager.serverSettings;
    const store = shared.store;
    const gate = new ReleaseGate({ store, settings });
    // This browser profile's analyst key, read from IndexedDB at once (a lock waits for it).
    const analystKeys = new AnalystKeys();
    void analystKeys.load();
    const watcher = new KernelWatcher({
      analystKey: () => analystKeys.load().then(() => analystKeys.current),
      onApprovalRefused: (_, reason) => {
        Notification.error(`Release declined without asking: ${reason}`, { autoClose: false });
      },
      store,
      gate,
      settings,
      client: `jupyterlab ${app.version}`,
      who: () => {
        const name = app.serviceManager.user?.identity?.username;
        return name ? `jupyterlab:${name}` : 'jupyterlab';
      },
      pins: new BrokerPins(),
      outputs: sealedOutputs,
      onFirstUse: (_, result) => {
        Notification.warning(
          `First use of the key broker ${result.broker}: its key ${result.fingerprint} is now pinned in ` +
            'this browser. Compare it with the fingerprint the data owner published ' +
            '(workbench kbs fingerprint); a different key later will be refused.',
          { autoClose: false }
        );
      },
      onLockRefused: (_, reason) => {
        // A toast shows the first 140 characters only: the panel has the whole reason
        // (e.g. both broker key fingerprints).
        Notification.error(`Confidential kernel not sealed, cells will not run: ${reason}`, {
          autoClose: false,
          actions: [
            {
              label: 'Show details',
              caption: 'The whole reason, in the Kernel Trust panel',
              callback: () => void app.commands.execute(COMMAND_SHOW)
            }
          ]
        });
      }
    });
    shared.watcher = watcher;

    const panel = new TrustPanel({
      store,
      attest: id => watcher.attest(id),
      analyst: {
        keys: analystKeys,
        actions: {
          create: () => void app.commands.execute(COMMAND_CREATE_KEY),
          export: () => void app.commands.execute(COMMAND_EXPORT_KEY)
        }
      }
    });
    panel.title.label = 'Trust';
    panel.title.caption = 'Kernel trust: evidence and verdict';
    app.shell.add(panel, 'right', { rank: 200 });

    const status = new TrustStatusItem({
      store,
      onClick: () => void app.commands.execute(COMMAND_SHOW)
    });
    if (statusBar) {
      statusBar.registerStatusItem('workbench:trust-status', {
        item: status,
        align: 'left',
        rank: 3,
        isActive: () => notebooks.currentWidget !== null
      });
    }

    const follow = () => {
      const current: NotebookPanel | null = notebooks.currentWidget;
      const kernel = current?.sessionContext.session?.kernel ?? null;
      panel.showKernel(kernel?.id ?? null, current?.title.label ?? '');
      status.showKernel(kernel?.id ?? null);
    };
    notebooks.widgetAdded.connect((_, nb) => {
      // This notebook's evidence cards name its kernel to the server (transport-key check).
      nb.content.rendermime.addFactory(
        notebookRendererFactory(() => nb.sessionContext.session?.kernel?.id ?? null),
        rendererFactory.defaultRank
      );
      // Sealed outputs drawn with this notebook's own renderers (replaces the app-wide one).
      nb.content.rendermime.addFactory(
        sealedRendererFactory(sealedOutputs, () => nb.content.rendermime),
        0
      );
      watcher.watch(nb.sessionContext);
      nb.sessionContext.kernelChanged.connect(follow);
      nb.sessionContext.ready.then(follow).catch(() => undefined);
    });
    notebooks.currentChanged.connect(follow);
    follow();

    app.commands.addCommand(COMMAND_SHOW, {
      label: 'Show Kernel Trust Panel',
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(COMMAND_ATTEST, {
      label: 'Attest the Kernel Again',
      isEnabled: () => panel.kernelId !== null,
      execute: () => {
        if (panel.kernelId) {
          watcher.attest(panel.kernelId);
        }
      }
    });
    app.commands.addCommand(COMMAND_CREATE_KEY, {
      label: 'Create My Analyst Key',
      caption: 'A key kept by this browser that certifies your sealed sessions',
      execute: async () => {
        const had = analystKeys.current;
        try {
          const key = await analystKeys.getOrCreate();
          Notification.info(
            had
              ? `This browser already has your analyst key ${key.fingerprint}.`
              : `Your analyst key ${key.fingerprint} was made and is kept by this browser. Kernels ` +
                  'locked from now on are certified by it; export its public key for the data owner to register.',
            { autoClose: 8000 }
          );
        } catch (error) {
          Notification.error(`Could not make an analyst key: ${(error as Error).message ?? error}`);
        }
      }
    });
    app.commands.addCommand(COMMAND_EXPORT_KEY, {
      label: 'Export My Analyst Public Key',
      caption: 'Download analyst-key.pub.jwk for the data owner to register (workbench kbs analyst add)',
      execute: async () => {
        try {
          downloadPublicKey(await analystKeys.getOrCreate());
        } catch (error) {
          Notification.error(`Could not export the analyst key: ${(error as Error).message ?? error}`);
        }
      }
    });
    if (palette) {
      for (const command of [COMMAND_SHOW, COMMAND_ATTEST, COMMAND_CREATE_KEY, COMMAND_EXPORT_KEY]) {
        palette.addItem({ command, category: 'Confidential Workbench' });
      }
    }
  }
};

export default [executorPlugin, plugin];
