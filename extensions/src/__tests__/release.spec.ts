import { IAsker, IReleasePrompt, ReleaseGate, dialogAsker } from '../dialog';
import { verifyReport } from '../request';
import { TrustStore } from '../store';
import { localVerdict } from '../verdict';
import { releaseRequest, server, simulatedVerdict } from './fixtures';

class Recorder implements IAsker {
  prompts: IReleasePrompt[] = [];
  closed = 0;
  constructor(private answer: boolean) {}
  ask(prompt: IReleasePrompt) {
    this.prompts.push(prompt);
    return { answer: Promise.resolve(this.answer), close: () => void this.closed++ };
  }
}

const report = {
  evidence: 'ZQ==',
  tee: 'simulated',
  claims: {},
  nonce: 'n',
  token: 'a.b.c',
  broker: 'http://127.0.0.1:8080',
  tee_pubkey: { kty: 'EC' }
};

describe('verifyReport', () => {
  it('posts to the route under the base URL', async () => {
    const { settings, calls } = server(200, simulatedVerdict());
    const verdict = await verifyReport({ token: 't', tee_pubkey: {} }, settings);
    expect(verdict.state).toBe('simulated');
    expect(calls[0].url).toBe('http://127.0.0.1:8888/user/ana/workbench/verify');
  });

  it('turns a refusal of the request into an unverified verdict with the reason', async () => {
    const { settings } = server(400, { message: 'token is missing' });
    const verdict = await verifyReport({ token: '', tee_pubkey: {} }, settings);
    expect(verdict.state).toBe('unverified');
    expect(verdict.reason).toBe(
      'no verdict from the server: the server answered 400: token is missing'
    );
  });

  it('gives up after its timeout instead of waiting forever', async () => {
    const { settings } = server(200, simulatedVerdict(), 5000);
    const verdict = await verifyReport({ token: 't', tee_pubkey: {} }, settings, 50);
    expect(verdict.state).toBe('unverified');
    expect(verdict.reason).toContain('did not answer within 0.05 s');
  });
});

describe('ReleaseGate', () => {
  it('asks once per request id, and replies once', async () => {
    const store = new TrustStore();
    store.update('k', { confidential: true, report });
    const { settings, calls } = server(200, simulatedVerdict());
    const asker = new Recorder(true);
    const gate = new ReleaseGate({ store, settings, asker });
    const replies: boolean[] = [];
    await Promise.all([
      gate.handle('k', releaseRequest('r1'), a => replies.push(a)),
      gate.handle('k', releaseRequest('r1'), a => replies.push(a)),
      gate.handle('other-comm', releaseRequest('r1'), a => replies.push(a))
    ]);
    expect(asker.prompts).toHaveLength(1);
    expect(calls).toHaveLength(1);
    expect(JSON.parse(calls[0].body)).toMatchObject({
      token: 'a.b.c',
      evidence: 'ZQ==',
      kernel_id: 'k'
    });
    expect(replies).toEqual([true]);
    await gate.handle('k', releaseRequest('r2'), a => replies.push(a));
    expect(replies).toEqual([true, true]);
  });

  it('never approves on a verdict the server did not confirm', async () => {
    const store = new TrustStore();
    store.update('k', { confidential: true, report });
    const { settings } = server(200, localVerdict('refused', 'signature does not verify'));
    const asker = new Recorder(true);
    const gate = new ReleaseGate({ store, settings, asker });
    const replies: boolean[] = [];
    await gate.handle('k', releaseRequest(), a => replies.push(a));
    expect(asker.prompts[0].verdict.reason).toBe('signature does not verify');
    expect(replies).toEqual([false]);
  });

  it('asks without a server round trip when the kernel sent no evidence', async () => {
    const store = new TrustStore();
    const { settings, calls } = server(200, simulatedVerdict());
    const asker = new Recorder(false);
    const gate = new ReleaseGate({ store, settings, asker });
    const replies: boolean[] = [];
    await gate.handle('k', releaseRequest(), a => replies.push(a));
    expect(calls).toHaveLength(0);
    expect(asker.prompts[0].verdict.state).toBe('unverified');
    expect(replies).toEqual([false]);
  });

  it('closes the dialog when the kernel settles the request, without replying', async () => {
    const store = new TrustStore();
    store.update('k', { confidential: true, report });
    const { settings } = server(200, simulatedVerdict());
    let resolve: (value: boolean) => void = () => undefined;
    let closed = 0;
    const asker: IAsker = {
      ask: () => ({
        answer: new Promise<boolean>(r => (resolve = r)),
        close: () => {
          closed++;
          resolve(false);
        }
      })
    };
    const gate = new ReleaseGate({ store, settings, asker });
    const replies: boolean[] = [];
    const handled = gate.handle('k', releaseRequest('r9'), a => replies.push(a));
    await new Promise(r => setTimeout(r, 0));
    await new Promise(r => setTimeout(r, 0));
    gate.settle('r9');
    await handled;
    expect(closed).toBe(1);
    expect(replies).toEqual([]);
  });
});

describe('the release dialog', () => {
  const buttons = () =>
    Array.from(document.querySelectorAll('.jp-Dialog-footer button')).map(b => b.textContent);
  // Dialogs attach once the ones before them are done; wait until this one is there.
  const shown = async () => {
    for (let i = 0; i < 200 && !document.querySelector('.jp-Dialog-footer button'); i++) {
      await new Promise(r => setTimeout(r, 10));
    }
    return document.querySelector('.jp-Dialog')!;
  };

  afterEach(() => {
    document.body.innerHTML = '';
  });

  it('offers Release and Refuse, and Escape refuses', async () => {
    const { answer } = dialogAsker.ask({
      kernelId: 'k',
      request: releaseRequest(),
      verdict: simulatedVerdict()
    });
    const dialog = await shown();
    expect(buttons()).toEqual(['Refuse', 'Release']);
    expect(dialog.textContent).toContain('cohort');
    dialog.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape', keyCode: 27, bubbles: true }));
    await expect(answer).resolves.toBe(false);
  });

  it('Enter on the focused Release button releases', async () => {
    const { answer } = dialogAsker.ask({
      kernelId: 'k',
      request: releaseRequest(),
      verdict: simulatedVerdict()
    });
    const dialog = await shown();
    const release = Array.from(document.querySelectorAll<HTMLButtonElement>('.jp-Dialog-footer button')).find(
      b => b.textContent === 'Release'
    )!;
    release.focus();
    dialog.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', keyCode: 13, bubbles: true }));
    await expect(answer).resolves.toBe(true);
  });

  it('ignores a stray Enter: focus starts on the verdict, not on a button', async () => {
    const { answer, close } = dialogAsker.ask({
      kernelId: 'k',
      request: releaseRequest(),
      verdict: simulatedVerdict()
    });
    const dialog = await shown();
    const focused = document.activeElement as HTMLElement;
    expect(focused.hasAttribute('data-wb-focus')).toBe(true);
    let settled = false;
    void answer.then(() => (settled = true));
    focused.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', keyCode: 13, bubbles: true }));
    await new Promise(r => setTimeout(r, 20));
    expect(settled).toBe(false);
    expect(dialog.isConnected).toBe(true);
    close();
    await expect(answer).resolves.toBe(false);
  });

  it('offers only Refuse when the server refused the kernel', async () => {
    const { answer, close } = dialogAsker.ask({
      kernelId: 'k',
      request: releaseRequest(),
      verdict: localVerdict('refused', 'signature does not verify')
    });
    await shown();
    expect(buttons()).toEqual(['Refuse']);
    close();
    await expect(answer).resolves.toBe(false);
  });
});
