/**
 * The `workbench.attestation` comm between the confidential kernel and this extension
 * (docs/comm-protocol.md). What the kernel sends is input to the server's check, never a
 * verdict: parsing here only makes sure the fields have the types the contract names.
 */

export const COMM_TARGET = 'workbench.attestation';
export const PROTOCOL_VERSION = 1;
export const ATTESTATION_MIME = 'application/vnd.workbench.attestation+json';

export type JSONObject = { [key: string]: unknown };
/** Messages to the kernel: flat JSON objects. */
export type OutgoingMessage = { [key: string]: string | number | boolean };
/** The lock, which may carry the session certificate (an object). */
export type LockMessage = { [key: string]: string | number | boolean | JSONObject };

export interface IReleased {
  resource: string;
  time: string;
  request_id?: string;
}

/** What the kernel reports after each attestation (also the `wb.attest()` output). */
export interface IEvidenceReport {
  evidence: string;
  tee: string;
  claims: JSONObject;
  nonce: string;
  nonce_issued_at?: string;
  token: string;
  broker: string;
  tee_pubkey: JSONObject;
  transport_key?: string;
  certs?: string[];
  /** Hex of the sealed-session key the evidence binds (a locked kernel's; this tab's). */
  session_key?: string;
  /** The analyst's certificate of that session, which the evidence binds too (if certified). */
  session_certificate?: JSONObject;
}

export interface IStatusMessage {
  type: 'status';
  runtime: string;
  tee: string;
  simulated: boolean;
  broker: string;
  tee_pubkey: JSONObject | null;
  transport_key: string;
  report: IEvidenceReport | null;
  released: IReleased[];
  /**
   * The fingerprint of the kernel's sealed session: null when it is not locked (it may
   * be), undefined when the kernel does not speak sealed sessions at all.
   */
  sealed?: string | null;
}

export interface IEvidenceMessage extends IEvidenceReport {
  type: 'evidence';
}

export interface IReleaseRequest {
  type: 'release-request';
  request_id: string;
  resource: string;
  dataset: string;
  broker: string;
  summary: { status: string; failed_rules: string[] };
  token: string;
  /** What a certified session signs (the kernel's statement; checked before signing). */
  kernel_key: string;
  token_sha256: string;
}

export interface IReleasedMessage {
  type: 'released';
  request_id: string;
  resource: string;
  time: string;
}

export interface IRefusedMessage {
  type: 'refused';
  request_id?: string;
  resource: string;
  reason: string;
  failed_rules: string[];
}

/** The kernel refused the lock (plain: it has no session to seal with). */
export interface ILockRefusedMessage {
  type: 'lock-refused';
  reason: string;
}

/** The kernel could not do what was asked (e.g. `attest`: the broker is unreachable). */
export interface IErrorMessage {
  type: 'error';
  request: string;
  reason: string;
}

export type KernelMessage =
  | IErrorMessage
  | IStatusMessage
  | IEvidenceMessage
  | IReleaseRequest
  | IReleasedMessage
  | IRefusedMessage
  | ILockRefusedMessage;

/** The body the server's `workbench/verify` route takes. */
export interface IReportBody {
  token: string;
  tee_pubkey: JSONObject;
  evidence?: string;
  nonce?: string;
  transport_key?: string;
  certs?: string[];
  /** For live reports: the server compares the bound transport key with its connection's. */
  kernel_id?: string;
  /** A locked kernel's session key (hex): the server checks the token and evidence bind it. */
  session_key?: string;
  /** The session's certificate, whose digest the evidence binds after the session key. */
  session_certificate?: JSONObject;
}

function isObject(value: unknown): value is JSONObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];

function released(v: unknown): IReleased[] {
  if (!Array.isArray(v)) {
    return [];
  }
  return v
    .filter(isObject)
    .filter(item => typeof item.resource === 'string')
    .map(item => ({
      resource: str(item.resource),
      time: str(item.time),
      request_id: str(item.request_id) || undefined
    }));
}

/** An evidence report, or null when a required field is missing or of the wrong type. */
export function parseReport(v: unknown): IEvidenceReport | null {
  if (!isObject(v)) {
    return null;
  }
  if (typeof v.token !== 'string' || !v.token || !isObject(v.tee_pubkey)) {
    return null;
  }
  return {
    evidence: str(v.evidence),
    tee: str(v.tee),
    claims: isObject(v.claims) ? v.claims : {},
    nonce: str(v.nonce),
    nonce_issued_at: str(v.nonce_issued_at) || undefined,
    token: v.token,
    broker: str(v.broker),
    tee_pubkey: v.tee_pubkey,
    transport_key: str(v.transport_key) || undefined,
    certs: Array.isArray(v.certs) ? strings(v.certs) : undefined,
    session_key: str(v.session_key) || undefined,
    session_certificate: isObject(v.session_certificate) ? v.session_certificate : undefined
  };
}

// The status's `sealed`: the session fingerprint (a string; an object naming `session`
// is read the same), null when unlocked, undefined when the kernel has no such member.
function sealedOf(v: unknown): string | null | undefined {
  if (v === undefined) {
    return undefined;
  }
  if (typeof v === 'string' && v) {
    return v;
  }
  if (isObject(v) && typeof v.session === 'string' && v.session) {
    return v.session;
  }
  return null;
}

type Parser = (d: JSONObject) => KernelMessage | null;

// One parser per message type: a table, so an unknown type is simply not in it.
const PARSERS: { [type: string]: Parser } = {
  status: d => ({
    type: 'status',
    runtime: str(d.runtime),
    tee: str(d.tee),
    simulated: d.simulated === true,
    broker: str(d.broker),
    tee_pubkey: isObject(d.tee_pubkey) ? d.tee_pubkey : null,
    transport_key: str(d.transport_key),
    report: parseReport(d.report),
    released: released(d.released),
    sealed: sealedOf(d.sealed)
  }),
  evidence: d => {
    const report = parseReport(d);
    return report ? { type: 'evidence', ...report } : null;
  },
  'release-request': d => {
    if (!str(d.request_id) || !str(d.resource)) {
      return null;
    }
    const summary = isObject(d.summary) ? d.summary : {};
    return {
      type: 'release-request',
      request_id: str(d.request_id),
      resource: str(d.resource),
      dataset: str(d.dataset) || str(d.resource),
      broker: str(d.broker),
      summary: {
        status: str(summary.status),
        failed_rules: strings(summary.failed_rules)
      },
      token: str(d.token),
      kernel_key: str(d.kernel_key),
      token_sha256: str(d.token_sha256)
    };
  },
  released: d =>
    str(d.resource)
      ? {
          type: 'released',
          request_id: str(d.request_id),
          resource: str(d.resource),
          time: str(d.time)
        }
      : null,
  error: d => ({
    type: 'error',
    request: str(d.request),
    reason: str(d.reason) || 'no reason given'
  }),
  'lock-refused': d => ({ type: 'lock-refused', reason: str(d.reason) || 'no reason given' }),
  refused: d => ({
    type: 'refused',
    request_id: str(d.request_id) || undefined,
    resource: str(d.resource),
    reason: str(d.reason) || 'no reason given',
    failed_rules: strings(d.failed_rules)
  })
};

/** A typed kernel message, or null for anything this version does not understand. */
export function parseKernelMessage(data: unknown): KernelMessage | null {
  if (!isObject(data) || typeof data.type !== 'string') {
    return null;
  }
  if (data.v !== undefined && data.v !== PROTOCOL_VERSION) {
    return null;
  }
  const parse = PARSERS[data.type];
  return parse ? parse(data) : null;
}

export function helloMessage(client: string): OutgoingMessage {
  return { type: 'hello', v: PROTOCOL_VERSION, client };
}

export function approvalMessage(
  requestId: string,
  approved: boolean,
  by?: string,
  signature?: string
): OutgoingMessage {
  const message: OutgoingMessage = {
    type: 'approval',
    v: PROTOCOL_VERSION,
    request_id: requestId,
    approved
  };
  if (by) {
    message.by = by;
  }
  if (signature) {
    message.signature = signature;
  }
  return message;
}

/**
 * The lock: this tab's session key, the hex of its uncompressed P-256 point, and the
 * analyst's certificate of the session when this tab has an analyst key.
 */
export function lockMessage(sessionKeyHex: string, certificate?: JSONObject): LockMessage {
  const lock: LockMessage = { type: 'lock', v: PROTOCOL_VERSION, session_key: sessionKeyHex };
  if (certificate) {
    lock.certificate = certificate;
  }
  return lock;
}

export function attestMessage(): OutgoingMessage {
  return { type: 'attest', v: PROTOCOL_VERSION };
}

/** What is forwarded to the server: the kernel's own words, for the server to check. */
export function reportBody(
  report: IEvidenceReport,
  token?: string,
  kernelId?: string
): IReportBody {
  const body: IReportBody = {
    token: token ?? report.token,
    tee_pubkey: report.tee_pubkey
  };
  if (kernelId) {
    body.kernel_id = kernelId;
  }
  if (report.evidence) {
    body.evidence = report.evidence;
  }
  if (report.nonce) {
    body.nonce = report.nonce;
  }
  if (report.transport_key) {
    body.transport_key = report.transport_key;
  }
  if (report.certs && report.certs.length) {
    body.certs = report.certs;
  }
  if (report.session_key) {
    body.session_key = report.session_key;
  }
  if (report.session_certificate) {
    body.session_certificate = report.session_certificate;
  }
  return body;
}
