/*
 * Generated from workbench/verdict/verdict.schema.json by
 * `python -m workbench.verdict.typescript`; do not edit by hand.
 */

export interface ICheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface IBrokerInfo {
  url: string;
  key_source: string;
  kid: string | null;
}

export interface ITrustClaim {
  code: number;
  meaning: string;
}

export interface ITokenSummary {
  issuer: string | null;
  issued_at: string | null;
  expires_at: string | null;
  expired: boolean;
  age_s: number;
  nonce: string | null;
  kid: string | null;
  verifier: { [key: string]: string } | null;
  trust_vector: { [key: string]: ITrustClaim };
}

/** one policy rule's outcome as the token states it (another verifier's token may leave members out) */
export interface IRule {
  name: string;
  passed: boolean;
  warning?: boolean;
  expected?: unknown;
  actual?: unknown;
  reason?: string;
  [key: string]: unknown;
}

export interface IAppraisalSummary {
  status: string | null;
  policy_id: string | null;
  rules: IRule[];
  failed_rules: string[];
}

export interface ICertificate {
  subject: string;
  issuer: string;
  not_before: string;
  not_after: string;
  sha256: string;
}

export interface IVerifiedEvidence {
  tee: string;
  simulated: boolean;
  claims: { [key: string]: unknown };
  report_data: string;
  tcb_status: string | null;
  advisory_ids: string[];
  checks: ICheck[];
  chain: ICertificate[];
  evidence_time: string | null;
}

export interface IBinding {
  ok: boolean;
  expected: string;
  actual: string;
}

export interface ITransportNote {
  source: string;
  bound: string;
  server_key: string | null;
}

export interface IResourceVerdict {
  status: string;
  policy_id?: string | null;
  failed_rules?: string[];
  [key: string]: unknown;
}

/** The lab server's answer to POST workbench/verify: its own verdict on a kernel's report. */
export interface IVerdict {
  v: number;
  state: 'verified' | 'simulated' | 'unverified' | 'refused';
  /** the first failed check's detail; empty when every check held */
  reason: string;
  checked_at: string;
  checks: ICheck[];
  broker: IBrokerInfo;
  /** thumbprint of the kernel's key, once compared */
  kernel_key: string | null;
  token: ITokenSummary | null;
  appraisal: IAppraisalSummary | null;
  evidence: IVerifiedEvidence | null;
  binding: IBinding | null;
  transport: ITransportNote | null;
  resources: { [key: string]: IResourceVerdict };
}
