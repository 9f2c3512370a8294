/**
 * A relay (the operator's Jupyter server) after the lock: what it injects, splices or
 * changes must never show as the kernel's (adapted from the security review's proofs).
 * Real SealedCellExecutor, sealedOutputHook, SealedSession, RenderedSealed, SealedChannel
 * and JupyterLab's OutputArea / CodeCellModel; only the kernel connection is faked.
 */
import { Signal } from '@lumino/signaling';
import { CodeCellModel } from '@jupyterlab/cells';
import { OutputArea, OutputAreaModel } from '@jupyterlab/outputarea';
import { RenderMimeRegistry, standardRendererFactories } from '@jupyterlab/rendermime';

import { SealedCellExecutor } from '../executor';
import { SealedChannel, fromHex, subtle } from '../sealedChannel';
import { SEALED_MIME, plaintextOf } from '../sealedMessages';
import { sealedRendererFactory } from '../sealedOutput';
import { SealedOutputs, SealedSession } from '../sealedSession';
import { TrustStore } from '../store';
import { fakeCellModel } from './kernelFakes';
import vector from './sealedVector.json';

async function channel(name: 'frontend' | 'kernel'): Promise<SealedChannel> {
  const own = await subtle().importKey('jwk', (vector as any)[name].jwk, { name: 'ECDH', namedCurve: 'P-256' }, false, [
    'deriveBits'
  ]);
  const peer = name === 'frontend' ? 'kernel' : 'frontend';
  return SealedChannel.create({
    own,
    ownPoint: fromHex((vector as any)[name].point),
    peerPoint: fromHex((vector as any)[peer].point),
    sends: name === 'frontend' ? 'to-kernel' : 'to-frontend'
  });
}
let serial = 0;
const message = (msgType: string, content: any, lane = 'iopub'): any => ({
  header: { msg_id: `m${serial++}`, msg_type: msgType },
  parent_header: {},
  metadata: {},
  content,
  channel: lane
});

/** Like KernelFutureHandler: anyMessage first, then the hooks; onIOPub only if all say true. */
class RelayKernel {
  id = 'k1';
  anyMessage = new Signal<any, any>(this);
  requests: any[] = [];
  future: any = null;
  resolveDone: (m: any) => void = () => undefined;
  requestExecute(content: any) {
    this.requests.push(content);
    const hooks: any[] = [];
    const done = new Promise(r => (this.resolveDone = r));
    this.future = {
      done,
      hooks,
      registerMessageHook: (h: any) => hooks.push(h),
      onIOPub: null,
      onStdin: null,
      sendInputReply: () => undefined,
      onReply: null,
      isDisposed: false,
      dispose: () => undefined
    };
    return this.future;
  }
  async deliver(msg: any) {
    this.anyMessage.emit({ msg, direction: 'recv' });
    if (msg.channel === 'shell') {
      this.resolveDone(msg);
      return;
    }
    for (const h of [...this.future.hooks].reverse()) {
      if (!(await h(msg))) {
        return;
      }
    }
    this.future.onIOPub?.(msg);
  }
}

async function world() {
  const kernel = new RelayKernel();
  const outputs = new SealedOutputs();
  const session = new SealedSession({
    kernel: kernel as any,
    channel: await channel('frontend'),
    key: { privateKey: null as any, point: fromHex((vector as any).frontend.point) },
    outputs
  });
  const store = new TrustStore();
  store.update('k1', {
    confidential: true,
    sealed: { phase: 'locked', session: session.fingerprint, broker: 'b', brokerFingerprint: 'x', firstUse: false, reason: '' }
  });
  const rendermime = new RenderMimeRegistry({ initialFactories: standardRendererFactories });
  rendermime.addFactory(sealedRendererFactory(outputs, () => rendermime), 0);
  const executor = new SealedCellExecutor({ store, session: () => session, fallback: async () => true });
  return { kernel, outputs, session, rendermime, executor, kernelEnd: await channel('kernel') };
}

function realCell(rendermime: RenderMimeRegistry, code: string) {
  const outputArea = new OutputArea({ model: new OutputAreaModel(), rendermime });
  const model = fakeCellModel(code, 'c');
  return { model, outputArea, isDisposed: false, outputHidden: false } as any;
}
const opts = (cell: any, kernel: any, calls: any[]): any => ({
  cell,
  notebook: {} as any,
  notebookConfig: {} as any,
  onCellExecuted: (a: any) => calls.push(['executed', a.success, a.error?.message]),
  onCellExecutionScheduled: () => undefined,
  sessionContext: { session: { kernel }, isTerminating: false } as any
});
const until = async (f: () => boolean) => {
  for (let i = 0; i < 200 && !f(); i++) {
    await new Promise(r => setTimeout(r, 1));
  }
};
const settle = () => new Promise(r => setTimeout(r, 20));
const sealedReply = async (kernelEnd: SealedChannel, content: any, outer: any = {}) =>
  message(
    'execute_reply',
    { status: content.status, execution_count: content.execution_count, ...outer, sealed: await kernelEnd.seal(plaintextOf('execute_reply', content), 'shell') },
    'shell'
  );
const sealedOut = async (kernelEnd: SealedChannel, msgType: string, content: any) =>
  message('display_data', { data: { [SEALED_MIME]: await kernelEnd.seal(plaintextOf(msgType, content), 'iopub') }, metadata: {}, transient: {} });

describe('a relay after the lock (lab extension)', () => {
  beforeEach(() => jest.spyOn(console, 'warn').mockImplementation(() => undefined));
  afterEach(() => jest.restoreAllMocks());

  it('refuses unsealed stream / display_data / error outputs, showing why instead', async () => {
    const { kernel, session, rendermime, executor, kernelEnd } = await world();
    const cell = realCell(rendermime, 'df.describe()');
    const run = executor.runCell(opts(cell, kernel, []));
    await until(() => kernel.requests.length > 0);
    await kernel.deliver(message('stream', { name: 'stdout', text: 'FORGED: all 0 patients have cancer\n' }));
    await kernel.deliver(message('display_data', { data: { 'text/html': '<b id="forged">FORGED html</b>' }, metadata: {} }));
    await kernel.deliver(message('error', { ename: 'PolicyDeny', evalue: 'FORGED: call 555-0100', traceback: ['FORGED tb'] }));
    await kernel.deliver(await sealedOut(kernelEnd, 'stream', { name: 'stdout', text: 'genuine\n' }));
    await kernel.deliver(await sealedReply(kernelEnd, { status: 'ok', execution_count: 1 }));
    await expect(run).resolves.toBe(true);
    await settle();
    const text = cell.outputArea.node.textContent;
    expect(text).not.toContain('FORGED');
    expect(cell.outputArea.node.querySelector('#forged')).toBeNull();
    expect(text).toContain('genuine');
    const notes = cell.outputArea.node.querySelectorAll("[data-wb='sealed-refused']");
    expect(notes.length).toBe(3);
    expect(notes[0].textContent).toMatch(/unsealed: a stream message in the clear/);
    expect(notes[2].textContent).toMatch(/unsealed: a error message in the clear/);
    expect(session.refused.map(r => r.kind)).toEqual(['unsealed', 'unsealed', 'unsealed']);
    expect(JSON.stringify(cell.outputArea.model.toJSON())).not.toContain('FORGED');
  });

  it('an unsealed clear_output / update_display_data changes nothing', async () => {
    const { kernel, session, rendermime, executor, kernelEnd } = await world();
    const cell = realCell(rendermime, 'print(risk)');
    const run = executor.runCell(opts(cell, kernel, []));
    await until(() => kernel.requests.length > 0);
    await kernel.deliver(
      await sealedOut(kernelEnd, 'display_data', { data: { 'text/plain': 'HIGH RISK: patient 17' }, metadata: {}, transient: { display_id: 'd1' } })
    );
    await settle();
    expect(cell.outputArea.node.textContent).toContain('HIGH RISK');
    await kernel.deliver(message('clear_output', { wait: false }));
    await kernel.deliver(message('update_display_data', { data: { 'text/plain': 'low risk' }, metadata: {}, transient: { display_id: 'd1' } }));
    await kernel.deliver(message('stream', { name: 'stdout', text: 'low risk: patient 17\n' }));
    await kernel.deliver(await sealedReply(kernelEnd, { status: 'ok', execution_count: 1 }));
    await run;
    await settle();
    expect(cell.outputArea.node.textContent).toContain('HIGH RISK');
    expect(cell.outputArea.node.textContent).not.toContain('low risk');
    expect(session.refused.length).toBe(3);
  });

  it.each(['execute_result', 'update_display_data', 'stream'])(
    "refuses an earlier cell's sealed envelope spliced into another cell as %s",
    async outerType => {
      const { kernel, rendermime, executor, kernelEnd } = await world();
      const cell1 = realCell(rendermime, 'score(patient=17)');
      const run1 = executor.runCell(opts(cell1, kernel, []));
      await until(() => kernel.requests.length > 0);
      const out1 = await sealedOut(kernelEnd, 'display_data', {
        data: { 'text/plain': 'patient 17: malignant (0.97)' },
        metadata: {},
        transient: { display_id: 'p' }
      });
      await kernel.deliver(out1);
      await kernel.deliver(await sealedReply(kernelEnd, { status: 'ok', execution_count: 1 }));
      await run1;
      await settle();
      expect(cell1.outputArea.node.textContent).toContain('patient 17: malignant');
      const envelope = out1.content.data[SEALED_MIME];
      const cell2 = realCell(rendermime, 'score(patient=42)');
      const run2 = executor.runCell(opts(cell2, kernel, []));
      await until(() => kernel.requests.length > 1);
      // The relay even copies the genuine output's metadata (its mark, saved in the notebook).
      const stolen = JSON.parse(JSON.stringify(out1.content.metadata));
      await kernel.deliver(
        message(outerType, { data: { [SEALED_MIME]: envelope }, metadata: stolen, execution_count: 2, transient: { display_id: 'q' } })
      );
      await kernel.deliver(await sealedReply(kernelEnd, { status: 'ok', execution_count: 2 }));
      await run2;
      await settle();
      expect(cell2.outputArea.node.textContent).not.toContain('patient 17');
      expect(cell2.outputArea.node.textContent).toMatch(/refused/);
      // Cell 1 still shows its own output.
      expect(cell1.outputArea.node.textContent).toContain('patient 17: malignant');
    }
  );

  it('renders kept plaintext only for the output the hook opened, not for another model of the same envelope', async () => {
    const { kernel, rendermime, executor, kernelEnd } = await world();
    const cell = realCell(rendermime, 'x');
    const run = executor.runCell(opts(cell, kernel, []));
    await until(() => kernel.requests.length > 0);
    const out = await sealedOut(kernelEnd, 'stream', { name: 'stdout', text: 'secret 17\n' });
    await kernel.deliver(out);
    await kernel.deliver(await sealedReply(kernelEnd, { status: 'ok', execution_count: 1 }));
    await run;
    const other = new OutputArea({ model: new OutputAreaModel(), rendermime });
    other.model.add({ output_type: 'display_data', data: { [SEALED_MIME]: out.content.data[SEALED_MIME] }, metadata: {} } as any);
    other.model.add({
      output_type: 'execute_result',
      execution_count: 2,
      data: { [SEALED_MIME]: out.content.data[SEALED_MIME] },
      metadata: { [SEALED_MIME]: { shown: 'a guessed mark' } }
    } as any);
    await settle();
    expect(other.node.textContent).not.toContain('secret 17');
    expect(other.node.querySelectorAll("[data-wb='sealed-placeholder']").length).toBe(2);
  });

  it('takes status and execution count from the sealed reply, not the outer one', async () => {
    const { kernel, rendermime, executor, kernelEnd } = await world();
    const cell = realCell(rendermime, '1/0');
    const calls: any[] = [];
    const run = executor.runCell(opts(cell, kernel, calls));
    await until(() => kernel.requests.length > 0);
    await kernel.deliver(
      await sealedReply(
        kernelEnd,
        { status: 'error', ename: 'ZeroDivisionError', evalue: 'x', traceback: [], execution_count: 1 },
        { status: 'ok', execution_count: 99 }
      )
    );
    await expect(run).rejects.toThrow('ZeroDivisionError: x');
    expect(calls).toEqual([['executed', false, 'ZeroDivisionError: x']]);
    expect(cell.model.executionCount).toBe(1);
  });

  it('fails the cell on an unsealed reply, as a sealed-session violation (stops Run-All)', async () => {
    const { kernel, session, rendermime, executor } = await world();
    const cell = realCell(rendermime, 'x = 1');
    const calls: any[] = [];
    const run = executor.runCell(opts(cell, kernel, calls));
    await until(() => kernel.requests.length > 0);
    await kernel.deliver(message('execute_reply', { status: 'ok', execution_count: 2 }, 'shell'));
    await expect(run).rejects.toThrow(/Sealed-session violation.*unsealed: the execute_reply came in the clear/);
    expect(calls[0][1]).toBe(false);
    expect(calls[0][2]).toMatch(/Sealed-session violation/);
    expect(cell.model.executionCount).toBeNull();
    expect(session.refused.map(r => r.kind)).toEqual(['unsealed']);
    // A forged unsealed error reply is not shown as the kernel's error either.
    const cell2 = realCell(rendermime, 'y = 1');
    const calls2: any[] = [];
    const run2 = executor.runCell(opts(cell2, kernel, calls2));
    await until(() => kernel.requests.length > 1);
    await kernel.deliver(message('execute_reply', { status: 'error', ename: 'FORGED', evalue: 'lost', execution_count: 2 }, 'shell'));
    await expect(run2).rejects.toThrow(/Sealed-session violation/);
    expect(calls2[0][2]).not.toMatch(/FORGED/);
  });

  it('fails the cell when the sealed reply is refused (a replay of an earlier reply)', async () => {
    const { kernel, rendermime, executor, kernelEnd } = await world();
    const cell = realCell(rendermime, 'a');
    const run = executor.runCell(opts(cell, kernel, []));
    await until(() => kernel.requests.length > 0);
    const reply = await sealedReply(kernelEnd, { status: 'ok', execution_count: 1 });
    await kernel.deliver(reply);
    await expect(run).resolves.toBe(true);
    const cell2 = realCell(rendermime, 'b');
    const calls: any[] = [];
    const run2 = executor.runCell(opts(cell2, kernel, calls));
    await until(() => kernel.requests.length > 1);
    await kernel.deliver({ ...reply, header: { ...reply.header, msg_id: 'again' } });
    await expect(run2).rejects.toThrow(/Sealed-session violation.*replayed/);
  });
});

describe('trust in a sealed cell (real CodeCellModel)', () => {
  beforeEach(() => jest.spyOn(console, 'warn').mockImplementation(() => undefined));
  afterEach(() => jest.restoreAllMocks());

  it('never marks the cell trusted; relay HTML is not rendered, sealed HTML still is', async () => {
    const { kernel, rendermime, executor, kernelEnd } = await world();
    const model = new CodeCellModel({});
    model.sharedModel.setSource('df.head()');
    const outputArea = new OutputArea({ model: model.outputs, rendermime });
    const cell: any = { model, outputArea, isDisposed: false, outputHidden: false };
    const run = executor.runCell(opts(cell, kernel, []));
    await until(() => kernel.requests.length > 0);
    await kernel.deliver(
      message('display_data', {
        data: { 'text/html': '<img id="x" src="x" onerror="window.__stolen=1"><script id="s">window.__stolen=2</script>' },
        metadata: {}
      })
    );
    await kernel.deliver(
      await sealedOut(kernelEnd, 'display_data', { data: { 'text/html': '<b id="genuine">table</b>' }, metadata: {}, transient: {} })
    );
    await kernel.deliver(await sealedReply(kernelEnd, { status: 'ok', execution_count: 1 }));
    await run;
    await new Promise(r => setTimeout(r, 50));
    expect(model.trusted).toBe(false);
    expect(model.outputs.trusted).toBe(false);
    expect(outputArea.node.querySelector('img#x')).toBeNull();
    expect(outputArea.node.querySelectorAll('script').length).toBe(0);
    expect(outputArea.node.querySelector('#genuine')?.textContent).toBe('table');
  });
});
