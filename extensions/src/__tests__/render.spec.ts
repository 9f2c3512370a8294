import { renderReleasePrompt, renderState, renderVerdict } from '../render';
import { TrustStatusItem } from '../statusbar';
import { IKernelTrust, TrustStore, trustState } from '../store';
import { STATE_LABELS, TrustState, localVerdict } from '../verdict';
import { releaseRequest, simulatedVerdict } from './fixtures';

const text = (node: Element | null): string => node?.textContent ?? '';

describe('evidence card', () => {
  it('shows the simulated marker, the measurement and every rule', () => {
    const card = renderVerdict(simulatedVerdict());
    expect(text(card.querySelector('[data-wb="state"]'))).toBe('Simulated');
    expect(text(card.querySelector('[data-wb="simulated-marker"]'))).toContain('SIMULATED');
    expect(text(card.querySelector('[data-wb="measurement"]'))).toBe('ab'.repeat(48));
    const rules = card.querySelectorAll('[data-wb="rules"] tr[data-rule]');
    expect(rules).toHaveLength(2);
    rules.forEach(row => {
      expect(row.getAttribute('data-passed')).toBe('true');
      expect(text(row)).toContain('pass');
    });
    expect(text(card.querySelector('[data-wb="binding"]'))).toContain('holds');
    expect(text(card.querySelector('[data-wb="nonce-age"]'))).toContain('12 s ago');
    expect(text(card.querySelector('[data-wb="issuer"]'))).toBe('http://127.0.0.1:8080');
    expect(text(card.querySelector('[data-wb="debug"]'))).toBe('no');
    expect(text(card.querySelector('[data-wb="tcb-status"]'))).toContain('not assessed');
    expect(card.querySelectorAll('[data-check]')).toHaveLength(2);
  });

  it('names failed rules and has no simulated marker on hardware evidence', () => {
    const base = simulatedVerdict();
    const verdict = simulatedVerdict({
      state: 'refused',
      reason: "policy 'demo' refuses this kernel: debug: debug enclave",
      evidence: {
        ...base.evidence!,
        tee: 'sgx',
        simulated: false,
        claims: { mrenclave: '11'.repeat(32), mrsigner: '22'.repeat(32), isvsvn: 3, debug: true },
        tcb_status: 'OutOfDate',
        advisory_ids: ['INTEL-SA-00001'],
        chain: [
          {
            subject: 'CN=Intel SGX PCK Certificate',
            issuer: 'CN=Intel SGX PCK Platform CA',
            not_before: '2025-01-01',
            not_after: '2032-01-01',
            sha256: 'ee'.repeat(32)
          }
        ]
      },
      appraisal: {
        status: 'contraindicated',
        policy_id: 'demo',
        rules: [{ name: 'debug', passed: false, expected: false, actual: true, reason: 'debug enclave' }],
        failed_rules: ['debug']
      }
    });
    const card = renderVerdict(verdict);
    expect(card.querySelector('[data-wb="simulated-marker"]')).toBeNull();
    expect(text(card.querySelector('[data-wb="state"]'))).toBe('Refused');
    expect(text(card.querySelector('[data-wb="reason"]'))).toContain('debug enclave');
    expect(text(card.querySelector('[data-wb="measurement"]'))).toBe('11'.repeat(32));
    expect(text(card.querySelector('[data-wb="claim-mrsigner"]'))).toBe('22'.repeat(32));
    expect(text(card.querySelector('[data-wb="debug"]'))).toContain('yes');
    expect(text(card.querySelector('[data-wb="tcb-status"]'))).toBe('OutOfDate');
    expect(text(card.querySelector('[data-wb="advisories"]'))).toBe('INTEL-SA-00001');
    expect(text(card.querySelector('[data-wb="chain"]'))).toContain('Intel SGX PCK Platform CA');
    const row = card.querySelector('tr[data-rule="debug"]');
    expect(row?.getAttribute('data-passed')).toBe('false');
    expect(text(row)).toContain('FAIL');
  });

  it('puts kernel-supplied text in as text, never as markup', () => {
    const verdict = localVerdict('unverified', '<img src=x onerror="alert(1)">');
    const card = renderVerdict(verdict, {
      released: [{ resource: '<b>x</b>', time: 't' }],
      refusals: []
    });
    expect(card.querySelector('img')).toBeNull();
    expect(card.querySelector('b')).toBeNull();
    expect(text(card.querySelector('[data-wb="reason"]'))).toContain('<img');
    expect(text(card.querySelector('[data-wb="released"]'))).toContain('<b>x</b>');
  });

  it('says every state in words, not only in colour', () => {
    for (const state of Object.keys(STATE_LABELS) as TrustState[]) {
      const card = renderState(state, '');
      const header = card.querySelector('[role="status"]')!;
      expect(text(card.querySelector('[data-wb="state"]'))).toBe(STATE_LABELS[state].word);
      expect(header.getAttribute('aria-label')).toContain(STATE_LABELS[state].word);
      // The shield's glyph differs per state, too.
      expect(text(card.querySelector('svg text'))).not.toBe('');
    }
    const words = Object.values(STATE_LABELS).map(l => l.word);
    expect(words).toEqual(['Verified', 'Simulated', 'Unverified', 'Refused', 'Not confidential']);
  });
});

describe('release prompt', () => {
  it('names the dataset, the key, the broker and the verdict', () => {
    const prompt = renderReleasePrompt(releaseRequest(), simulatedVerdict());
    expect(text(prompt.querySelector('[data-wb="dataset"]'))).toBe('cohort');
    expect(text(prompt.querySelector('[data-wb="resource"]'))).toBe('cohort/table-key/phi');
    expect(text(prompt.querySelector('[data-wb="broker"]'))).toBe('http://127.0.0.1:8080');
    expect(text(prompt.querySelector('[data-wb="broker-verdict"]'))).toContain('warning');
    expect(text(prompt)).toContain('SIMULATED');
  });

  it('says why no release is offered on an unconfirmed kernel', () => {
    const prompt = renderReleasePrompt(
      releaseRequest(),
      localVerdict('refused', 'the broker’s token is not valid: signature does not verify')
    );
    expect(text(prompt)).toContain('release is not offered');
    expect(text(prompt.querySelector('[data-wb="state"]'))).toBe('Refused');
  });
});

describe('trust state and status bar', () => {
  const trust = (patch: Partial<IKernelTrust>): IKernelTrust => {
    const store = new TrustStore();
    return store.update('k', patch);
  };

  it('follows the server verdict, never the kernel', () => {
    expect(trustState(null).state).toBe('unverified');
    expect(trustState(trust({ confidential: false })).state).toBe('not-confidential');
    expect(trustState(trust({ confidential: true })).reason).toContain('not attested');
    expect(trustState(trust({ confidential: true, checking: true })).reason).toContain('checking');
    expect(trustState(trust({ confidential: true, verdict: simulatedVerdict() })).state).toBe(
      'simulated'
    );
  });

  it('shows a shield and the word for the active kernel', () => {
    const store = new TrustStore();
    const item = new TrustStatusItem({ store });
    item.showKernel('k');
    expect(item.node.textContent).toBe('?Unverified');
    store.update('k', { confidential: true, verdict: simulatedVerdict() });
    expect(item.node.querySelector('.jp-WorkbenchStatus-word')?.textContent).toBe('Simulated');
    expect(item.node.dataset.state).toBe('simulated');
    store.update('k', { verdict: localVerdict('refused', 'signature does not verify') });
    expect(item.node.getAttribute('aria-label')).toBe(
      'Kernel trust: Refused — signature does not verify'
    );
    store.update('other', { confidential: false });
    expect(item.node.dataset.state).toBe('refused');
  });

  it('records a release once however often the kernel reports it', () => {
    const store = new TrustStore();
    store.addReleased('k', { resource: 'r', time: 't' });
    store.addReleased('k', { resource: 'r', time: 't' });
    store.addReleased('k', { resource: 'r', time: 't2' });
    expect(store.get('k')?.released).toHaveLength(2);
  });
});
