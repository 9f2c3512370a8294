import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';

import { KernelWatcher } from './connection';
import { notebookRendererFactory, rendererFactory } from './mime';
import { ReleaseGate } from './dialog';
import { TrustPanel } from './panel';
import { TrustStatusItem } from './statusbar';
import { TrustStore } from './store';

const PLUGIN_ID = '@confidential-workbench/labextension:trust';
const COMMAND_SHOW = 'workbench:show-trust-panel';
const COMMAND_ATTEST = 'workbench:attest';

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
    const store = new TrustStore();
    const gate = new ReleaseGate({ store, settings });
    const watcher = new KernelWatcher({
      store,
      gate,
      settings,
      client: `jupyterlab ${app.version}`,
      who: () => {
        const name = app.serviceManager.user?.identity?.username;
        return name ? `jupyterlab:${name}` : 'jupyterlab';
      }
    });

    const panel = new TrustPanel({ store, attest: id => watcher.attest(id) });
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
    if (palette) {
      for (const command of [COMMAND_SHOW, COMMAND_ATTEST]) {
        palette.addItem({ command, category: 'Confidential Workbench' });
      }
    }
  }
};

export default plugin;
