/**
 * Sealed cells: the executor seals the request for a locked kernel and leaves every other
 * kernel to JupyterLab's runCell; outputs open in arrival order and draw from memory; a
 * tab without the session shows the placeholder.
 */
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { SealedCellExecutor, sealStdin } from '../executor';
import { SealRefused, SealedChannel, fromHex, subtle } from '../sealedChannel';
import { SEALED_MIME, plaintextOf } from '../sealedMessages';
import { RenderedSealed, placeholderText, sealedOutputHook } from '../sealedOutput';
import { SealedOutputs, SealedSession } from '../sealedSession';
import { TrustStore } from '../store';
import { fakeCellModel } from './kernelFakes';
import vector from './sealedVector.json';

async function channel(name: 'frontend' | 'kernel'): Promise<SealedChannel> {
  const own = await subtle().importKey('jwk', vector[name].jwk, { name: 'ECDH', namedCurve: 'P-256' }, false, [
    'deriveBits'
  ]);
  const peer = name === 'frontend' ? 'kernel' : 'frontend';
  return SealedChannel.create({
    own,
    ownPoint: fromHex(vector[name].point),
    peerPoint: fromHex(vector[peer].point),
    sends: name === 'frontend' ? 'to-kernel' : 'to-frontend'
  });
}

let serial = 0;
function message(msgType: string, content: any, channel = 'iopub'): any {
  return { header: { msg_id: `m${serial++}`, msg_type: msgType }, parent_header: {}, metadata: {}, content, channel };
}

class FakeKernel {
  id = 'k1';
  anyMessage = new Signal<any, any>(this);
  requests: any[] = [];
  reply: any = null;
  future: any = null;
  /** As the kernel connection does: anyMessage fires on arrival, before any handler. */
  receive(msg: any): any {
    this.anyMessage.emit({ msg, direction: 'recv' });
    return msg;
  }
  requestExecute(content: any, _disposeOnDone: boolean, metadata: any) {
    this.requests.push({ content, metadata });
    const hooks: any[] = [];
    this.future = {
      done: new Promise(resolve => setTimeout(() => resolve(this.reply), 0)),
      registerMessageHook: (hook: any) => hooks.push(hook),
      hooks,
      onStdin: null,
      sendInputReply: () => undefined
    };
    return this.future;
  }
}

async function setup() {
  const kernel = new FakeKernel();
  const outputs = new SealedOutputs();
  const frontend = await channel('frontend');
  const session = new SealedSession({
    kernel: kernel as any,
    channel: frontend,
    key: { privateKey: null as any, point: fromHex(vector.frontend.point) },
    outputs
  });
  return { kernel, outputs, session, kernelEnd: await channel('kernel') };
}

async function sealedOutput(kernelEnd: SealedChannel, msgType: string, content: any) {
  const envelope = await kernelEnd.seal(plaintextOf(msgType, content), 'iopub');
  return message('display_data', { data: { [SEALED_MIME]: envelope }, metadata: {}, transient: {} });
}

function fakeCell(code: string) {
  const model = fakeCellModel(code, 'cell-1');
  return { model, outputArea: { future: null }, isDisposed: false, outputHidden: true } as any;
}

function runOptions(cell: any, kernel: any, calls: any[]) {
  return {
    cell,
    notebook: {} as any,
    notebookConfig: {} as any,
    onCellExecuted: (args: any) => calls.push(['executed', args.success, args.error?.message]),
    onCellExecutionScheduled: () => calls.push(['scheduled']),
    sessionContext: { session: { kernel }, isTerminating: false } as any
  };
}

describe('the cell executor', () => {
  it('leaves a plain kernel to the stock runCell', async () => {
    const store = new TrustStore();
    store.update('k1', { confidential: false });
    const seen: any[] = [];
    const executor = new SealedCellExecutor({
      store,
      session: () => null,
      fallback: async options => {
        seen.push(options);
        return true;
      }
    });
    const options = runOptions(fakeCell('1 + 1'), { id: 'k1' }, []);
    await expect(executor.runCell(options)).resolves.toBe(true);
    expect(seen).toEqual([options]);
  });

  it('runs a locked kernel\'s cell sealed: empty code outside, the real request inside', async () => {
    const { kernel, session, kernelEnd } = await setup();
    const store = new TrustStore();
    store.update('k1', {
      confidential: true,
      sealed: { phase: 'locked', session: session.fingerprint, broker: 'b', brokerFingerprint: 'SHA256:x', firstUse: false, reason: '' }
    });
    const fallback = jest.fn();
    const executor = new SealedCellExecutor({ store, session: () => session, fallback });
    const envelope = await kernelEnd.seal(plaintextOf('execute_reply', { status: 'ok', execution_count: 7 }), 'shell');
    kernel.reply = message('execute_reply', { status: 'ok', execution_count: 7, sealed: envelope }, 'shell');
    const calls: any[] = [];
    const cell = fakeCell('secret = 42');
    const run = executor.runCell(runOptions(cell, kernel, calls));
    // The reply arrives (anyMessage first, as the connection does) once the request is out.
    while (!kernel.requests.length) {
      await new Promise(r => setTimeout(r, 1));
    }
    kernel.receive(kernel.reply);
    await expect(run).resolves.toBe(true);
    expect(fallback).not.toHaveBeenCalled();
    const outer = kernel.requests[0].content;
    expect(outer).toMatchObject({
      code: '',
      silent: false,
      store_history: true,
      user_expressions: {},
      allow_stdin: true,
      stop_on_error: true
    });
    expect(JSON.stringify(outer)).not.toContain('secret');
    const inner = JSON.parse(new TextDecoder().decode(await kernelEnd.open(outer.sealed)));
    expect(inner).toEqual({
      msg_type: 'execute_request',
      content: { code: 'secret = 42', silent: false, store_history: true, user_expressions: {}, allow_stdin: true, stop_on_error: true }
    });
    expect(outer.sealed.lane).toBe('shell');
    expect(cell.outputArea.future).toBe(kernel.future);
    expect(kernel.future.hooks).toHaveLength(1);
    expect(cell.model.executionCount).toBe(7);
    expect(calls).toEqual([['scheduled'], ['executed', true, undefined]]);
    // The reply was opened: the shell lane moved on.
    await expect(kernelEnd.seal(new Uint8Array(), 'shell').then(e => session.channel.open(e))).resolves.toBeTruthy();
  });

  it('does not run a cell of a kernel whose lock was refused', async () => {
    const store = new TrustStore();
    store.update('k1', {
      confidential: true,
      sealed: { phase: 'refused', session: '', broker: '', brokerFingerprint: '', firstUse: false, reason: 'the kernel refused the lock: ran code before' }
    });
    const fallback = jest.fn();
    const executor = new SealedCellExecutor({ store, session: () => null, fallback });
    const calls: any[] = [];
    await expect(executor.runCell(runOptions(fakeCell('x'), { id: 'k1' }, calls))).rejects.toThrow(/ran code before/);
    expect(fallback).not.toHaveBeenCalled();
    expect(calls[0][1]).toBe(false);
  });

  it('runs a kernel never identified as confidential as JupyterLab would, after waiting', async () => {
    const executor = new SealedCellExecutor({ store: new TrustStore(), session: () => null, fallback: async () => true, waitMs: 20 });
    await expect(executor.runCell(runOptions(fakeCell('x'), { id: 'unknown' }, []))).resolves.toBe(true);
  });

  it('waits for a lock under way, then runs sealed or not at all', async () => {
    const store = new TrustStore();
    store.update('k1', {
      confidential: true,
      sealed: { phase: 'locking', session: '', broker: '', brokerFingerprint: '', firstUse: false, reason: '' }
    });
    const fallback = jest.fn();
    const executor = new SealedCellExecutor({ store, session: () => null, fallback, waitMs: 1000 });
    const run = executor.runCell(runOptions(fakeCell('x'), { id: 'k1' }, []));
    setTimeout(() => store.update('k1', { sealed: { ...store.get('k1')!.sealed!, phase: 'refused', reason: 'token expired' } }), 10);
    await expect(run).rejects.toThrow(/token expired/);
    expect(fallback).not.toHaveBeenCalled();
  });
});

describe('sealed outputs', () => {
  it('open in arrival order and are kept in memory for the renderer', async () => {
    const { kernel, outputs, session, kernelEnd } = await setup();
    const hook = sealedOutputHook(session);
    const first = await sealedOutput(kernelEnd, 'stream', { name: 'stdout', text: 'one\n' });
    const second = await sealedOutput(kernelEnd, 'error', { ename: 'ValueError', evalue: 'bad', traceback: ['tb'] });
    kernel.receive(first);
    kernel.receive(second);
    // Hooks may run late and in any order: each collects what was opened on arrival.
    expect(await hook(second)).toBe(true);
    expect(await hook(first)).toBe(true);
    expect(outputs.get(first.content.data[SEALED_MIME])?.opened.content.text).toBe('one\n');
    expect(outputs.get(second.content.data[SEALED_MIME])?.opened.msg_type).toBe('error');
    // The message the output area sees still holds only the ciphertext.
    expect(JSON.stringify(first.content)).not.toContain('one');
  });

  it('rewrite clear_output and update_display_data so the output area acts on them', async () => {
    const { kernel, session, kernelEnd } = await setup();
    const hook = sealedOutputHook(session);
    const clear = kernel.receive(await sealedOutput(kernelEnd, 'clear_output', { wait: true }));
    const update = kernel.receive(
      await sealedOutput(kernelEnd, 'update_display_data', { data: { 'text/plain': '50%' }, metadata: {}, transient: { display_id: 'p1' } })
    );
    const result = kernel.receive(
      await sealedOutput(kernelEnd, 'execute_result', { data: { 'text/plain': '4' }, metadata: {}, execution_count: 3 })
    );
    await hook(clear);
    await hook(update);
    await hook(result);
    expect(clear.header.msg_type).toBe('clear_output');
    expect(clear.content).toEqual({ wait: true });
    expect(update.header.msg_type).toBe('update_display_data');
    expect(update.content.transient).toEqual({ display_id: 'p1' });
    expect(Object.keys(update.content.data)).toEqual([SEALED_MIME]);
    expect(result.header.msg_type).toBe('execute_result');
    expect(result.content.execution_count).toBe(3);
  });

  it('mark a refused output (a replay) instead of showing it', async () => {
    const { kernel, session, kernelEnd } = await setup();
    const hook = sealedOutputHook(session);
    const original = await sealedOutput(kernelEnd, 'stream', { name: 'stdout', text: 'once' });
    const replay = message('display_data', JSON.parse(JSON.stringify(original.content)));
    kernel.receive(original);
    kernel.receive(replay);
    await hook(original);
    await hook(replay);
    expect(replay.content.metadata[SEALED_MIME].refused).toMatch(/^replayed/);
    expect(typeof original.content.metadata[SEALED_MIME].shown).toBe('string');
    expect(original.content.metadata[SEALED_MIME].refused).toBeUndefined();
  });

  it('a comm message and an output share the IOPub lane, opened in arrival order', async () => {
    const { kernel, session, kernelEnd } = await setup();
    const comm = kernel.receive(
      message('comm_msg', {
        comm_id: 'c1',
        data: { sealed: await kernelEnd.seal(plaintextOf('comm_msg', { comm_id: 'c1', data: { type: 'status' } }), 'iopub') }
      })
    );
    const output = kernel.receive(await sealedOutput(kernelEnd, 'stream', { name: 'stdout', text: 'x' }));
    const [a, b] = await Promise.all([session.take(output), session.take(comm)]);
    expect(a instanceof SealRefused).toBe(false);
    expect((b as any).content.data).toEqual({ type: 'status' });
    expect(session.dropped).toBe(0);
  });
});

describe('the sealed output renderer', () => {
  const registry = {
    preferredMimeType: (bundle: any) => Object.keys(bundle)[0],
    createRenderer: (mime: string) => {
      const widget: any = new Widget();
      widget.renderModel = async (model: any) => {
        widget.node.textContent = `${mime}|${JSON.stringify(model.data[mime])}`;
      };
      return widget;
    }
  };

  it('shows the placeholder for an output this tab cannot read (reload, another session)', async () => {
    const renderer = new RenderedSealed(new SealedOutputs(), registry);
    await renderer.renderModel({
      data: { [SEALED_MIME]: vector.messages[5].envelope },
      metadata: {},
      trusted: false,
      setData: () => undefined
    } as any);
    expect(renderer.node.textContent).toBe(placeholderText(vector.fingerprint));
    expect(renderer.node.textContent).toBe(
      `Sealed output: only the browser tab that ran this kernel's session can read it (session ${vector.fingerprint.slice(0, 16)})`
    );
  });

  it('draws an opened output with the registry\'s renderers (stderr for streams to stderr)', async () => {
    const outputs = new SealedOutputs();
    const envelope = vector.messages[5].envelope;
    outputs.keep(envelope, { opened: { msg_type: 'stream', content: { name: 'stderr', text: 'warn' }, envelope: envelope as any } });
    const renderer = new RenderedSealed(outputs, registry);
    const metadata = { [SEALED_MIME]: { shown: outputs.mark(envelope) } };
    await renderer.renderModel({ data: { [SEALED_MIME]: envelope }, metadata, trusted: false, setData: () => undefined } as any);
    expect(renderer.node.textContent).toBe('application/vnd.jupyter.stderr|"warn"');
  });

  it('gives a sealed attestation report the key of the session it was sealed in (for the server\'s check)', async () => {
    const outputs = new SealedOutputs();
    const envelope = vector.messages[5].envelope;
    const mime = 'application/vnd.workbench.attestation+json';
    const report = { token: 't', tee_pubkey: { kty: 'EC' } };
    outputs.keep(envelope, {
      opened: { msg_type: 'execute_result', content: { data: { [mime]: report }, metadata: {} }, envelope: envelope as any },
      sessionKey: vector.frontend.point
    });
    const bundle: any = {};
    const renderer = new RenderedSealed(outputs, {
      preferredMimeType: (data: any) => Object.keys(data)[0],
      createRenderer: (m: string) => {
        const widget: any = new Widget();
        widget.renderModel = async (model: any) => {
          bundle[m] = model.data[m];
        };
        return widget;
      }
    });
    const metadata = { [SEALED_MIME]: { shown: outputs.mark(envelope) } };
    await renderer.renderModel({ data: { [SEALED_MIME]: envelope }, metadata, trusted: false, setData: () => undefined } as any);
    expect(bundle[mime]).toEqual({ ...report, session_key: vector.frontend.point });
    // What was kept is not changed.
    expect(outputs.get(envelope)?.opened.content.data[mime]).toEqual(report);
  });
});

describe('input() in a sealed cell', () => {
  it('shows the opened prompt and answers sealed on the stdin lane', async () => {
    const { kernel, session, kernelEnd } = await setup();
    const shown: any[] = [];
    const replies: any[] = [];
    const future: any = {
      onStdin: (msg: any) => shown.push(msg.content),
      sendInputReply: (content: any, parent: any) => replies.push({ content, parent })
    };
    sealStdin(future, session);
    const envelope = await kernelEnd.seal(plaintextOf('input_request', { prompt: 'Patient id? ', password: false }), 'stdin');
    const request = kernel.receive(message('input_request', { prompt: '', password: false, sealed: envelope }, 'stdin'));
    await future.onStdin(request);
    expect(shown).toEqual([{ prompt: 'Patient id? ', password: false }]);
    future.sendInputReply({ status: 'ok', value: 'P-17' }, request.header);
    for (let i = 0; i < 100 && !replies.length; i++) {
      await new Promise(r => setTimeout(r, 1));
    }
    const outer = replies[0].content;
    expect(outer).toMatchObject({ status: 'ok', value: '' });
    expect(replies[0].parent).toBe(request.header);
    const inner = JSON.parse(new TextDecoder().decode(await kernelEnd.open(outer.sealed)));
    expect(inner).toEqual({ msg_type: 'input_reply', content: { status: 'ok', value: 'P-17' } });
  });
});
