import {
  approvalMessage,
  helloMessage,
  parseKernelMessage,
  parseReport,
  reportBody
} from '../protocol';

const report = {
  evidence: 'ZXZpZGVuY2U=',
  tee: 'simulated',
  claims: { measurement: 'ab' },
  nonce: 'n',
  nonce_issued_at: '2026-01-01T00:00:00Z',
  token: 'a.b.c',
  broker: 'http://127.0.0.1:1',
  tee_pubkey: { kty: 'EC', crv: 'P-256', x: 'x', y: 'y' }
};

describe('parseKernelMessage', () => {
  it('reads every message type of the contract', () => {
    expect(parseKernelMessage({ type: 'evidence', v: 1, ...report })).toMatchObject({
      type: 'evidence',
      token: 'a.b.c',
      nonce: 'n'
    });
    const status = parseKernelMessage({
      type: 'status',
      v: 1,
      runtime: 'simulated',
      tee: 'simulated',
      simulated: true,
      broker: 'http://b',
      tee_pubkey: report.tee_pubkey,
      transport_key: '',
      report,
      released: [{ resource: 'r/t/x', time: 't1' }, { nonsense: 1 }]
    });
    expect(status).toMatchObject({ type: 'status', simulated: true });
    expect(status && status.type === 'status' && status.released).toEqual([
      { resource: 'r/t/x', time: 't1', request_id: undefined }
    ]);
    expect(
      parseKernelMessage({
        type: 'release-request',
        v: 1,
        request_id: 'id',
        resource: 'cohort/table-key/phi',
        dataset: 'cohort',
        broker: 'http://b',
        summary: { status: 'warning', failed_rules: ['x', 3] },
        token: 'a.b.c'
      })
    ).toMatchObject({ dataset: 'cohort', summary: { failed_rules: ['x'] } });
    expect(
      parseKernelMessage({ type: 'released', v: 1, request_id: 'id', resource: 'r', time: 't' })
    ).toMatchObject({ type: 'released', resource: 'r' });
    expect(
      parseKernelMessage({ type: 'error', v: 1, request: 'attest', reason: 'cannot reach' })
    ).toEqual({ type: 'error', request: 'attest', reason: 'cannot reach' });
    expect(parseKernelMessage({ type: 'refused', v: 1, resource: 'r' })).toMatchObject({
      type: 'refused',
      reason: 'no reason given',
      failed_rules: []
    });
  });

  it('ignores what this version does not understand', () => {
    expect(parseKernelMessage(null)).toBeNull();
    expect(parseKernelMessage('status')).toBeNull();
    expect(parseKernelMessage({ type: 'unknown', v: 1 })).toBeNull();
    expect(parseKernelMessage({ type: 'status', v: 2 })).toBeNull();
    expect(parseKernelMessage({ type: 'release-request', v: 1, resource: 'r' })).toBeNull();
    expect(parseKernelMessage({ type: 'evidence', v: 1, token: 'a.b.c' })).toBeNull();
  });
});

describe('reports', () => {
  it('needs a token and a key', () => {
    expect(parseReport({ ...report, token: '' })).toBeNull();
    expect(parseReport({ ...report, tee_pubkey: 'key' })).toBeNull();
    expect(parseReport(report)).not.toBeNull();
  });

  it('forwards exactly what the server checks', () => {
    const parsed = parseReport({ ...report, transport_key: 'abcd', certs: ['Y2VydA=='] })!;
    expect(reportBody(parsed)).toEqual({
      token: 'a.b.c',
      tee_pubkey: report.tee_pubkey,
      evidence: 'ZXZpZGVuY2U=',
      nonce: 'n',
      transport_key: 'abcd',
      certs: ['Y2VydA==']
    });
    expect(reportBody(parsed, 'other.token.x').token).toBe('other.token.x');
    expect(reportBody(parsed, undefined, 'kernel-1').kernel_id).toBe('kernel-1');
    expect(reportBody(parsed).kernel_id).toBeUndefined();
  });
});

describe('messages to the kernel', () => {
  it('carry the protocol version', () => {
    expect(helloMessage('lab')).toEqual({ type: 'hello', v: 1, client: 'lab' });
    expect(approvalMessage('id', false)).toEqual({
      type: 'approval',
      v: 1,
      request_id: 'id',
      approved: false
    });
    expect(approvalMessage('id', true, 'jupyterlab:ana').by).toBe('jupyterlab:ana');
  });
});
