/**
 * The server's verdict on a kernel (the `workbench/verify` route's answer) and how each
 * state is named. The frontend shows these; it never derives trust from the kernel's words.
 */

import { JSONObject } from './protocol';

export type TrustState =
  | 'verified'
  | 'simulated'
  | 'unverified'
  | 'refused'
  | 'not-confidential';

export interface ICheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface IRule {
  name: string;
  passed: boolean;
  warning?: boolean;
  expected?: unknown;
  actual?: unknown;
  reason?: string;
}

export interface ICertificate {
  subject: string;
  issuer: string;
  not_before: string;
  not_after: string;
  sha256?: string;
}

export interface IVerifiedEvidence {
  tee: string;
  simulated: boolean;
  claims: JSONObject;
  report_data: string;
  tcb_status: string | null;
  advisory_ids: string[];
  checks: ICheck[];
  chain: ICertificate[];
  evidence_time: string | null;
}

export interface IVerdict {
  v: number;
  state: Exclude<TrustState, 'not-confidential'>;
  reason: string;
  checked_at: string;
  checks: ICheck[];
  broker: { url: string; key_source: string; kid: string | null };
  kernel_key: string | null;
  token: {
    issuer: string;
    issued_at: string | null;
    expires_at: string | null;
    expired: boolean;
    age_s: number;
    nonce: string;
    kid: string | null;
    trust_vector: { [claim: string]: { code: number; meaning: string } };
  } | null;
  appraisal: {
    status: string;
    policy_id: string;
    rules: IRule[];
    failed_rules: string[];
  } | null;
  evidence: IVerifiedEvidence | null;
  binding: { ok: boolean; expected: string; actual: string } | null;
  resources: { [path: string]: JSONObject };
}

export interface IStateLabel {
  word: string;
  /** Said to screen readers and in tooltips along with the reason. */
  meaning: string;
}

/** Word and meaning per state: the word is always shown, colour only adds to it. */
export const STATE_LABELS: { [state in TrustState]: IStateLabel } = {
  verified: {
    word: 'Verified',
    meaning: 'the server verified the evidence and the broker accepted this kernel'
  },
  simulated: {
    word: 'Simulated',
    meaning:
      'verified, but the TEE is SIMULATED: no hardware protects this kernel'
  },
  unverified: {
    word: 'Unverified',
    meaning: 'the server could not confirm what this kernel is'
  },
  refused: {
    word: 'Refused',
    meaning: 'a check failed: do not trust this kernel with data'
  },
  'not-confidential': {
    word: 'Not confidential',
    meaning: 'an ordinary kernel: it runs in no TEE and cannot attest'
  }
};

/** A verdict made by the frontend when the server could not be asked or gave no answer. */
export function localVerdict(
  state: 'unverified' | 'refused',
  reason: string
): IVerdict {
  return {
    v: 1,
    state,
    reason,
    checked_at: new Date().toISOString(),
    checks: [],
    broker: { url: '', key_source: '', kid: null },
    kernel_key: null,
    token: null,
    appraisal: null,
    evidence: null,
    binding: null,
    resources: {}
  };
}

/** Whether a release may be offered at all on this verdict. */
export function allowsRelease(verdict: IVerdict): boolean {
  return verdict.state === 'verified' || verdict.state === 'simulated';
}

// Which claim is "the measurement" and which identify signer, product and version, per TEE.
export const TEE_FIELDS: {
  [tee: string]: { measurement: string; identity: Array<[string, string]> };
} = {
  simulated: {
    measurement: 'measurement',
    identity: [
      ['Platform key', 'platform_key'],
      ['Runtime', 'runtime']
    ]
  },
  sgx: {
    measurement: 'mrenclave',
    identity: [
      ['Signer (MRSIGNER)', 'mrsigner'],
      ['Product ID', 'isvprodid'],
      ['SVN', 'isvsvn'],
      ['FMSPC', 'fmspc']
    ]
  },
  tdx: {
    measurement: 'mrtd',
    identity: [
      ['RTMR0', 'rtmr0'],
      ['RTMR1', 'rtmr1'],
      ['RTMR2', 'rtmr2'],
      ['RTMR3', 'rtmr3'],
      ['TEE TCB SVN', 'tee_tcb_svn'],
      ['FMSPC', 'fmspc']
    ]
  },
  snp: {
    measurement: 'measurement',
    identity: [
      ['Signer', 'signer'],
      ['Product', 'product'],
      ['Guest SVN', 'guest_svn'],
      ['Reported TCB', 'reported_tcb'],
      ['VMPL', 'vmpl']
    ]
  }
};

export const TEE_NAMES: { [tee: string]: string } = {
  simulated: 'Simulated TEE',
  sgx: 'Intel SGX enclave',
  tdx: 'Intel TDX confidential VM',
  snp: 'AMD SEV-SNP confidential VM'
};

export function measurementOf(evidence: IVerifiedEvidence): string {
  const field = TEE_FIELDS[evidence.tee]?.measurement ?? 'measurement';
  const value = evidence.claims[field];
  return typeof value === 'string' ? value : '';
}
