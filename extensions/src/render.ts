/**
 * DOM for the evidence card: the trust panel, the notebook renderer and the release dialog
 * all draw with these functions. Text only ever goes in through textContent.
 * `data-wb` attributes name the parts a reader (and the browser tests) look for.
 */

import {
  IEvidenceReport,
  IRefusedMessage,
  IReleaseRequest,
  IReleased,
  IStatusMessage
} from './protocol';
import {
  ICertificate,
  IRule,
  IVerdict,
  STATE_LABELS,
  TEE_FIELDS,
  TEE_NAMES,
  TrustState,
  allowsRelease,
  measurementOf
} from './verdict';

const SVG_NS = 'http://www.w3.org/2000/svg';
// A glyph inside the shield per state, so the state reads without colour too.
const SHIELD_GLYPHS: { [state in TrustState]: string } = {
  verified: '✓',
  simulated: 'S',
  unverified: '?',
  refused: '✗',
  'not-confidential': '–'
};

export function el(
  tag: string,
  attrs: { [name: string]: string } = {},
  ...children: Array<Node | string | null | undefined>
): HTMLElement {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) {
      continue;
    }
    node.appendChild(
      typeof child === 'string' ? document.createTextNode(child) : child
    );
  }
  return node;
}

export function shield(state: TrustState): SVGElement {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 16 18');
  svg.setAttribute('width', '14');
  svg.setAttribute('height', '16');
  svg.setAttribute('aria-hidden', 'true');
  svg.classList.add('jp-WorkbenchShield');
  const path = document.createElementNS(SVG_NS, 'path');
  path.setAttribute('d', 'M8 0.5 L15 3 V8.5 C15 12.8 12 15.8 8 17.5 C4 15.8 1 12.8 1 8.5 V3 Z');
  svg.appendChild(path);
  const text = document.createElementNS(SVG_NS, 'text');
  text.setAttribute('x', '8');
  text.setAttribute('y', '12.5');
  text.setAttribute('text-anchor', 'middle');
  text.textContent = SHIELD_GLYPHS[state];
  svg.appendChild(text);
  return svg;
}

/** JSON values shown as text: strings as they are, anything else as compact JSON. */
export function show(value: unknown): string {
  if (value === undefined || value === null || value === '') {
    return '—';
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

// Long values (digests) in table cells: both ends shown, the whole value in the tooltip.
const BRIEF_MAX = 24;

export function brief(value: unknown): string {
  const text = show(value);
  return text.length > BRIEF_MAX ? `${text.slice(0, 10)}…${text.slice(-8)}` : text;
}

function briefCell(value: unknown): HTMLElement {
  return el('td', { title: show(value) }, brief(value));
}

export function age(seconds: number): string {
  if (seconds < 90) {
    return `${seconds} s ago`;
  }
  if (seconds < 5400) {
    return `${Math.round(seconds / 60)} min ago`;
  }
  return `${Math.round(seconds / 3600)} h ago`;
}

export function row(label: string, value: unknown, key?: string): HTMLElement[] {
  const attrs: { [name: string]: string } = key ? { 'data-wb': key } : {};
  return [el('dt', {}, label), el('dd', attrs, show(value))];
}

export function section(title: string, key: string, ...body: Array<Node | null>): HTMLElement {
  return el(
    'section',
    { class: 'jp-WorkbenchTrust-section', 'data-wb-section': key },
    el('h3', {}, title),
    ...body
  );
}

export function list(rows: HTMLElement[][]): HTMLElement {
  return el(
    'dl',
    { class: 'jp-WorkbenchTrust-fields' },
    ...rows.reduce<HTMLElement[]>((all, pair) => all.concat(pair), [])
  );
}

/** The header: shield, word, reason. */
export function stateHeader(state: TrustState, reason: string): HTMLElement {
  const label = STATE_LABELS[state];
  return el(
    'div',
    {
      class: `jp-WorkbenchTrust-header jp-mod-${state}`,
      role: 'status',
      'aria-label': `${label.word}: ${reason || label.meaning}`
    },
    shield(state),
    el('span', { class: 'jp-WorkbenchTrust-word', 'data-wb': 'state' }, label.word),
    el(
      'div',
      { class: 'jp-WorkbenchTrust-reason', 'data-wb': 'reason' },
      reason || label.meaning
    )
  );
}

export function simulatedMarker(): HTMLElement {
  return el(
    'div',
    { class: 'jp-WorkbenchTrust-simulated', 'data-wb': 'simulated-marker', role: 'note' },
    el('strong', {}, 'SIMULATED'),
    ' — no TEE hardware protects this kernel; its evidence is signed by a development key.'
  );
}

function kernelSection(verdict: IVerdict, status: IStatusMessage | null): HTMLElement {
  const evidence = verdict.evidence;
  const rows: HTMLElement[][] = [];
  if (status) {
    rows.push(row('Runtime (reported by the kernel)', status.runtime, 'runtime'));
  }
  if (!evidence) {
    rows.push(row('Evidence', 'not verified by the server', 'evidence'));
    return section('Kernel', 'kernel', list(rows));
  }
  const fields = TEE_FIELDS[evidence.tee];
  rows.push(row('TEE', TEE_NAMES[evidence.tee] ?? evidence.tee, 'tee'));
  rows.push(row('Measurement', measurementOf(evidence), 'measurement'));
  for (const [label, claim] of fields?.identity ?? []) {
    if (claim in evidence.claims) {
      rows.push(row(label, evidence.claims[claim], `claim-${claim}`));
    }
  }
  rows.push(
    row('Debug', evidence.claims.debug === true ? 'yes (debug mode!)' : 'no', 'debug')
  );
  rows.push(
    row(
      'TCB status',
      evidence.tcb_status ?? 'not assessed (no collateral for this TEE)',
      'tcb-status'
    )
  );
  rows.push(
    row(
      'Advisories',
      evidence.advisory_ids.length ? evidence.advisory_ids.join(', ') : 'none',
      'advisories'
    )
  );
  if (evidence.evidence_time) {
    rows.push(row('Evidence time', evidence.evidence_time, 'evidence-time'));
  }
  return section('Kernel', 'kernel', list(rows));
}

function chainSection(chain: ICertificate[] | undefined): HTMLElement {
  if (!chain || chain.length === 0) {
    return section(
      'Certificate chain',
      'chain',
      el('p', { 'data-wb': 'chain' }, 'none (this evidence is not signed through a certificate chain)')
    );
  }
  const head = el(
    'tr',
    {},
    el('th', {}, 'Subject'),
    el('th', {}, 'Issuer'),
    el('th', {}, 'Valid from'),
    el('th', {}, 'Valid until')
  );
  const rows = chain.map(c =>
    el(
      'tr',
      {},
      el('td', {}, c.subject),
      el('td', {}, c.issuer),
      el('td', {}, c.not_before),
      el('td', {}, c.not_after)
    )
  );
  return section(
    'Certificate chain',
    'chain',
    el('table', { class: 'jp-WorkbenchTrust-table', 'data-wb': 'chain' }, head, ...rows)
  );
}

function bindingSection(verdict: IVerdict, report: IEvidenceReport | null): HTMLElement {
  const rows: HTMLElement[][] = [];
  const binding = verdict.binding;
  rows.push(
    row(
      'Report-data binding',
      binding
        ? binding.ok
          ? 'holds: the evidence binds the nonce and this kernel’s key'
          : 'DOES NOT HOLD'
        : 'not checked',
      'binding'
    )
  );
  if (binding) {
    rows.push(row('Report data', binding.actual, 'report-data'));
  }
  rows.push(row('Kernel key (thumbprint)', verdict.kernel_key, 'kernel-key'));
  if (verdict.token) {
    rows.push(row('Nonce', verdict.token.nonce, 'nonce'));
    rows.push(
      row(
        'Nonce age',
        `appraised ${age(verdict.token.age_s)} (${verdict.token.issued_at})`,
        'nonce-age'
      )
    );
  }
  if (report?.nonce_issued_at) {
    rows.push(row('Nonce issued (reported by the kernel)', report.nonce_issued_at));
  }
  return section('Binding and freshness', 'binding', list(rows));
}

function ruleRow(rule: IRule): HTMLElement {
  const verdictText = rule.passed ? (rule.warning ? '✓ pass (warning)' : '✓ pass') : '✗ FAIL';
  return el(
    'tr',
    {
      'data-rule': rule.name,
      'data-passed': String(rule.passed),
      class: rule.passed ? 'jp-mod-passed' : 'jp-mod-failed'
    },
    el('td', {}, rule.name),
    briefCell(rule.expected),
    briefCell(rule.actual),
    el('td', { title: rule.reason ?? '' }, verdictText)
  );
}

function rulesSection(verdict: IVerdict): HTMLElement {
  const appraisal = verdict.appraisal;
  if (!appraisal) {
    return section('Policy rules', 'rules', el('p', {}, 'no appraisal the server could verify'));
  }
  const head = el(
    'tr',
    {},
    el('th', {}, 'Rule'),
    el('th', {}, 'Expected'),
    el('th', {}, 'Actual'),
    el('th', {}, 'Result')
  );
  const passed = appraisal.rules.filter(r => r.passed).length;
  return section(
    'Policy rules',
    'rules',
    el(
      'p',
      { 'data-wb': 'rules-summary' },
      `policy ${appraisal.policy_id}: ${passed} of ${appraisal.rules.length} rules pass; broker verdict ${appraisal.status}`
    ),
    el(
      'table',
      { class: 'jp-WorkbenchTrust-table', 'data-wb': 'rules' },
      head,
      ...appraisal.rules.map(ruleRow)
    )
  );
}

function tokenSection(verdict: IVerdict): HTMLElement {
  const token = verdict.token;
  const rows: HTMLElement[][] = [row('Broker', verdict.broker.url, 'broker')];
  rows.push(row('Broker key source', verdict.broker.key_source, 'key-source'));
  if (token) {
    rows.push(row('Issuer', token.issuer, 'issuer'));
    rows.push(row('Issued', token.issued_at, 'issued'));
    rows.push(
      row(
        'Expires',
        token.expired ? `${token.expires_at} (EXPIRED)` : token.expires_at,
        'expires'
      )
    );
    rows.push(row('Signed by key', token.kid, 'kid'));
  }
  return section('Attestation token', 'token', list(rows));
}

function checksSection(verdict: IVerdict): HTMLElement {
  const items = verdict.checks.map(c =>
    el(
      'li',
      { 'data-check': c.name, 'data-ok': String(c.ok) },
      c.ok ? '✓ ' : '✗ ',
      el('strong', {}, c.name),
      `: ${c.detail}`
    )
  );
  return section(
    'Checked by the server',
    'checks',
    items.length ? el('ul', { class: 'jp-WorkbenchTrust-checks' }, ...items) : el('p', {}, 'nothing could be checked'),
    el('p', { class: 'jp-WorkbenchTrust-note' }, `checked ${verdict.checked_at}`)
  );
}

export function releasesSection(
  released: IReleased[],
  refusals: IRefusedMessage[]
): HTMLElement {
  const items = released.map(r =>
    el('li', { 'data-released': r.resource }, `${r.resource} — released ${r.time}`)
  );
  const refused = refusals.map(r =>
    el('li', { 'data-refused': r.resource }, `${r.resource} — refused: ${r.reason}`)
  );
  return section(
    'Released to this kernel',
    'released',
    items.length
      ? el('ul', { 'data-wb': 'released' }, ...items)
      : el('p', { 'data-wb': 'released' }, 'nothing released yet'),
    refused.length ? el('ul', { 'data-wb': 'refusals' }, ...refused) : null,
    el('p', { class: 'jp-WorkbenchTrust-note' }, 'as reported by the kernel')
  );
}

export interface ICardOptions {
  report?: IEvidenceReport | null;
  status?: IStatusMessage | null;
  released?: IReleased[];
  refusals?: IRefusedMessage[];
}

/** The full evidence card for a server verdict. */
export function renderVerdict(verdict: IVerdict, options: ICardOptions = {}): HTMLElement {
  const simulated = verdict.evidence?.simulated === true || verdict.state === 'simulated';
  const card = el(
    'div',
    { class: 'jp-WorkbenchTrust-card', 'data-state': verdict.state },
    stateHeader(verdict.state, verdict.reason),
    simulated ? simulatedMarker() : null,
    kernelSection(verdict, options.status ?? null),
    rulesSection(verdict),
    bindingSection(verdict, options.report ?? null),
    chainSection(verdict.evidence?.chain),
    tokenSection(verdict),
    checksSection(verdict)
  );
  if (options.released || options.refusals) {
    card.appendChild(releasesSection(options.released ?? [], options.refusals ?? []));
  }
  return card;
}

/** A card with no verdict (yet): the state word and why. */
/** The sealed session of a kernel: what this tab checked itself, apart from the server. */
export function sealedSection(sealed: {
  phase: string;
  session: string;
  broker: string;
  brokerFingerprint: string;
  firstUse: boolean;
  reason: string;
  analyst?: string;
}): HTMLElement {
  const phases: { [phase: string]: string } = {
    locking: 'locking (checking the broker\'s token in this browser)',
    locked: 'Sealed: cells and outputs travel encrypted to and from the attested kernel',
    refused: 'not sealed: cells are not run',
    elsewhere: 'locked by another tab: cells are not run here'
  };
  const rows = [
    row('Sealed session', phases[sealed.phase] ?? sealed.phase, 'sealed-phase'),
    row('Session', sealed.session ? sealed.session.slice(0, 16) : '', 'sealed-session'),
    row('Broker', sealed.broker, 'sealed-broker'),
    row('Broker key (pinned here)', sealed.brokerFingerprint, 'sealed-broker-key')
  ];
  if (sealed.phase === 'locking' || sealed.phase === 'locked') {
    rows.push(
      row(
        'Certified by',
        sealed.analyst ? `your analyst key ${sealed.analyst}` : 'nobody: this browser has no analyst key',
        'sealed-analyst'
      )
    );
  }
  if (sealed.reason) {
    rows.push(row('Why', sealed.reason, 'sealed-reason'));
  }
  const note = sealed.firstUse
    ? el(
        'p',
        { class: 'jp-WorkbenchTrust-note', 'data-wb': 'sealed-first-use' },
        'First use of this broker in this browser: its key was pinned now. Compare the fingerprint ' +
          'with the one the data owner published (workbench kbs fingerprint).'
      )
    : null;
  return section('Sealed session', 'sealed', list(rows), note);
}

export function renderState(state: TrustState, reason: string): HTMLElement {
  return el(
    'div',
    { class: 'jp-WorkbenchTrust-card', 'data-state': state },
    stateHeader(state, reason)
  );
}

/** The body of the release dialog: what is asked for, by whom, and the server's verdict. */
export function renderReleasePrompt(
  request: IReleaseRequest,
  verdict: IVerdict
): HTMLElement {
  const evidence = verdict.evidence;
  const rows: HTMLElement[][] = [
    row('Dataset', request.dataset, 'dataset'),
    row('Key', request.resource, 'resource'),
    row('Key broker', request.broker || verdict.broker.url, 'broker'),
    row(
      'Broker verdict',
      verdict.appraisal
        ? `${verdict.appraisal.status} (policy ${verdict.appraisal.policy_id})`
        : 'not verified',
      'broker-verdict'
    )
  ];
  if (evidence) {
    rows.push(row('TEE', TEE_NAMES[evidence.tee] ?? evidence.tee, 'tee'));
    rows.push(row('Measurement', measurementOf(evidence), 'measurement'));
  }
  const failed = verdict.appraisal?.failed_rules ?? request.summary.failed_rules;
  if (failed.length) {
    rows.push(row('Failed rules', failed.join(', '), 'failed-rules'));
  }
  const offer = allowsRelease(verdict)
    ? 'Release sends the key to this kernel only, encrypted to its attested key.'
    : 'The server could not confirm this kernel, so a release is not offered.';
  // The dialog focuses the verdict first (read out by screen readers), not a button, so an
  // Enter already on its way (Shift+Enter to run the next cell) answers nothing.
  const header = stateHeader(verdict.state, verdict.reason);
  header.setAttribute('tabindex', '-1');
  header.setAttribute('data-wb-focus', '');
  return el(
    'div',
    { class: 'jp-WorkbenchRelease', 'data-request': request.request_id },
    header,
    verdict.state === 'simulated' ? simulatedMarker() : null,
    list(rows),
    el('p', { class: 'jp-WorkbenchRelease-offer' }, offer)
  );
}

