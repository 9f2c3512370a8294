import { ServerConnection } from '@jupyterlab/services';

import { IReleaseRequest } from '../protocol';
import { IVerdict } from '../verdict';

/** A verdict of the shape the server extension answers, for a simulated kernel. */
export function simulatedVerdict(overrides: Partial<IVerdict> = {}): IVerdict {
  return {
    v: 1,
    state: 'simulated',
    reason: '',
    checked_at: '2026-01-01T00:00:00+00:00',
    checks: [
      { name: 'token-signature', ok: true, detail: 'ES256 signature by broker key abc' },
      { name: 'evidence', ok: true, detail: 'simulated TEE evidence verified (3 checks)' }
    ],
    broker: { url: 'http://127.0.0.1:8080', key_source: 'pinned jwks.json', kid: 'abc' },
    kernel_key: 'kernelthumb',
    token: {
      issuer: 'http://127.0.0.1:8080',
      issued_at: '2026-01-01T00:00:00+00:00',
      expires_at: '2026-01-01T00:05:00+00:00',
      expired: false,
      age_s: 12,
      nonce: 'bm9uY2U=',
      kid: 'abc',
      verifier: { developer: 'https://github.com/confidential-workbench', build: 'workbench 0.1.0' },
      trust_vector: {}
    },
    appraisal: {
      status: 'warning',
      policy_id: 'demo',
      rules: [
        { name: 'verified', passed: true, expected: true, actual: true, reason: '' },
        {
          name: 'simulated.measurement',
          passed: true,
          expected: ['ab'.repeat(48)],
          actual: 'ab'.repeat(48),
          reason: ''
        }
      ],
      failed_rules: []
    },
    evidence: {
      tee: 'simulated',
      simulated: true,
      claims: { measurement: 'ab'.repeat(48), platform_key: 'pk', runtime: 'python', debug: false },
      report_data: 'cd'.repeat(64),
      tcb_status: null,
      advisory_ids: [],
      checks: [],
      chain: [],
      evidence_time: '2026-01-01T00:00:00+00:00'
    },
    binding: { ok: true, expected: 'cd'.repeat(64), actual: 'cd'.repeat(64) },
    transport: null,
    resources: {},
    ...overrides
  };
}

export function releaseRequest(id = 'req-1'): IReleaseRequest {
  return {
    type: 'release-request',
    request_id: id,
    resource: 'cohort/table-key/phi',
    dataset: 'cohort',
    broker: 'http://127.0.0.1:8080',
    summary: { status: 'warning', failed_rules: [] },
    token: 'a.b.c',
    kernel_key: '',
    token_sha256: ''
  };
}

/** A server answering with a fixed status and body, and counting requests. */
export function server(status: number, body: unknown, delayMs = 0) {
  const calls: Array<{ url: string; body: string }> = [];
  const fetch = (async (input: RequestInfo, init?: RequestInit) => {
    const request = input as Request;
    const sent = init?.body ? String(init.body) : await request.clone().text();
    calls.push({ url: (request.url ?? String(input)).split('?')[0], body: sent });
    await new Promise((resolve, reject) => {
      const timer = setTimeout(resolve, delayMs);
      request.signal?.addEventListener('abort', () => {
        clearTimeout(timer);
        reject(new DOMException('aborted', 'AbortError'));
      });
    });
    return new Response(JSON.stringify(body), { status });
  }) as unknown as typeof window.fetch;
  const settings = ServerConnection.makeSettings({
    baseUrl: 'http://127.0.0.1:8888/user/ana/',
    fetch,
    Request: Request as any,
    Headers: Headers as any
  });
  return { settings, calls };
}
