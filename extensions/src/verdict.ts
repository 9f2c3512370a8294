/**
 * The server's verdict on a kernel (the `workbench/verify` route's answer) and how each
 * state is named. The frontend shows these; it never derives trust from the kernel's words.
 */

import { ITeeClaims, TEE_CLAIMS } from './teeClaims';
import { IVerdict, IVerifiedEvidence } from './verdictTypes';

export type TrustState =
  | 'verified'
  | 'simulated'
  | 'unverified'
  | 'refused'
  | 'not-confidential';

// The verdict's JSON, as generated from the schema the server's answers are tested against.
export type {
  IAppraisalSummary,
  IBinding,
  IBrokerInfo,
  ICertificate,
  ICheck,
  IResourceVerdict,
  IRule,
  ITokenSummary,
  ITransportNote,
  ITrustClaim,
  IVerdict,
  IVerifiedEvidence
} from './verdictTypes';

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
    transport: null,
    resources: {}
  };
}

/** Whether a release may be offered at all on this verdict. */
export function allowsRelease(verdict: IVerdict): boolean {
  return verdict.state === 'verified' || verdict.state === 'simulated';
}

// Which claim is "the measurement" and which identify signer, product and version, per TEE:
// read from the Python declaration (workbench/attestation/verify/claims.py) through the
// generated teeClaims.ts, so the panel and the verifier name the same claims.
function perTee<T>(pick: (claims: ITeeClaims) => T): { [tee: string]: T } {
  const table: { [tee: string]: T } = {};
  for (const [tee, claims] of Object.entries(TEE_CLAIMS)) {
    table[tee] = pick(claims);
  }
  return table;
}

export const TEE_FIELDS: {
  [tee: string]: { measurement: string; identity: Array<[string, string]> };
} = perTee(claims => ({
  measurement: claims.measurement,
  identity: claims.panel
}));

export const TEE_NAMES: { [tee: string]: string } = perTee(
  claims => claims.name
);

export function measurementOf(evidence: IVerifiedEvidence): string {
  const field = TEE_CLAIMS[evidence.tee]?.measurement ?? 'measurement';
  const value = evidence.claims[field];
  return typeof value === 'string' ? value : '';
}
