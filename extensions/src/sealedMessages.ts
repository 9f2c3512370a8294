/**
 * Jupyter messages as they travel in a sealed session (docs/sealed-sessions.md, "Sealed
 * messages"): the browser's half of workbench/sealed/messages.py. The plaintext of a
 * sealed message is the compact JSON {"msg_type": T, "content": C} of the message it
 * stands for; the outer message keeps only what Jupyter needs to route it.
 */

import { ISealedEnvelope, Lane, SealRefused, SealedChannel } from './sealedChannel';

export const SEALED_MIME = 'application/vnd.workbench.sealed+json';
export const SEALED_FIELD = 'sealed';

type JSONObject = { [key: string]: any };

// Requests the browser seals, and the lane each travels in.
const REQUEST_LANES: { [msgType: string]: Lane } = {
  execute_request: 'shell',
  complete_request: 'shell',
  inspect_request: 'shell',
  history_request: 'shell',
  is_complete_request: 'shell',
  comm_open: 'comm',
  comm_msg: 'comm',
  comm_close: 'comm',
  input_reply: 'stdin'
};

// The outer request's required fields, empty: Jupyter's relays see a well-formed message.
const REQUEST_STUBS: { [msgType: string]: JSONObject } = {
  execute_request: {
    code: '',
    silent: false,
    store_history: true,
    user_expressions: {},
    allow_stdin: true,
    stop_on_error: true
  },
  complete_request: { code: '', cursor_pos: 0 },
  inspect_request: { code: '', cursor_pos: 0, detail_level: 0 },
  history_request: { output: false, raw: true, hist_access_type: 'tail', n: 0 },
  is_complete_request: { code: '' },
  input_reply: { status: 'ok', value: '' }
};

export const OUTPUT_TYPES = [
  'stream',
  'display_data',
  'execute_result',
  'error',
  'update_display_data',
  'clear_output'
];
const COMM_TYPES = ['comm_open', 'comm_msg', 'comm_close'];
const REPLY_TYPES = [
  'execute_reply',
  'complete_reply',
  'inspect_reply',
  'history_reply',
  'is_complete_reply'
];

export interface IInner {
  msg_type: string;
  content: JSONObject;
}

/** What a sealed message from the kernel stands for, and where it was in its lane. */
export interface IOpened extends IInner {
  envelope: ISealedEnvelope;
}

export const isObject = (v: unknown): v is JSONObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export function plaintextOf(msgType: string, content: JSONObject): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ msg_type: msgType, content }));
}

/** Parse a plaintext; `allowed` are the types it may stand for (else: spliced). */
export function parsePlaintext(plaintext: Uint8Array, allowed: string[]): IInner {
  let inner: unknown;
  try {
    inner = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(plaintext));
  } catch {
    throw new SealRefused('malformed', "a sealed message's plaintext is not JSON");
  }
  if (
    !isObject(inner) ||
    Object.keys(inner).sort().join(',') !== 'content,msg_type' ||
    !isObject(inner.content) ||
    typeof inner.msg_type !== 'string'
  ) {
    throw new SealRefused('malformed', "a sealed message's plaintext is not {msg_type, content}");
  }
  if (!allowed.includes(inner.msg_type)) {
    throw new SealRefused(
      'spliced',
      `a sealed ${JSON.stringify(inner.msg_type)} cannot stand for ${[...allowed].sort().join(' or ')}`
    );
  }
  return { msg_type: inner.msg_type, content: inner.content };
}

/** The outer content of a sealed request standing for `content`. */
export async function sealRequest(
  channel: SealedChannel,
  msgType: string,
  content: JSONObject
): Promise<JSONObject> {
  const lane = REQUEST_LANES[msgType];
  if (!lane) {
    throw new Error(`${msgType} cannot be sealed`);
  }
  const envelope = await channel.seal(plaintextOf(msgType, content), lane);
  if (COMM_TYPES.includes(msgType)) {
    const routing: JSONObject = {};
    for (const key of ['comm_id', 'target_name']) {
      if (key in content) {
        routing[key] = content[key];
      }
    }
    return { ...routing, data: { [SEALED_FIELD]: envelope } };
  }
  return { ...(REQUEST_STUBS[msgType] ?? {}), [SEALED_FIELD]: envelope };
}

/**
 * Where a message from the kernel holds an envelope, the lane it must travel in and the
 * types its plaintext may stand for; null when it is not sealed (then it is shown as is).
 */
export function sealedPart(
  msgType: string,
  content: JSONObject
): { envelope: unknown; lane: Lane; allowed: string[] } | null {
  if (msgType === 'display_data' && isObject(content.data) && SEALED_MIME in content.data) {
    return { envelope: content.data[SEALED_MIME], lane: 'iopub', allowed: OUTPUT_TYPES };
  }
  // An envelope is an object: the plain `status` has a `sealed` member too (its fingerprint
  // or null), which does not make it a sealed message.
  if (COMM_TYPES.includes(msgType) && isObject(content.data) && isObject(content.data[SEALED_FIELD])) {
    return { envelope: content.data[SEALED_FIELD], lane: 'iopub', allowed: [msgType] };
  }
  if ((REPLY_TYPES.includes(msgType) || msgType === 'input_request') && isObject(content[SEALED_FIELD])) {
    const lane: Lane = msgType === 'input_request' ? 'stdin' : 'shell';
    return { envelope: content[SEALED_FIELD], lane, allowed: [msgType] };
  }
  return null;
}

/** Open a sealed message from the kernel: its lane and type checked, as messages.py does. */
export async function openIncoming(
  channel: SealedChannel,
  msgType: string,
  content: JSONObject
): Promise<IOpened | null> {
  const part = sealedPart(msgType, content);
  if (!part) {
    return null;
  }
  // The lane is checked before the channel opens it, but inside the same serial step would
  // be stricter than needed: a mislabelled lane cannot authenticate under this lane's key.
  const envelope = part.envelope as ISealedEnvelope;
  if (isObject(envelope) && envelope.lane !== part.lane && typeof envelope.lane === 'string') {
    throw new SealRefused('spliced', `a sealed ${msgType} travels in the ${part.lane} lane, not ${envelope.lane}`);
  }
  const inner = parsePlaintext(await channel.open(part.envelope), part.allowed);
  if (COMM_TYPES.includes(msgType) && inner.content.comm_id !== content.comm_id) {
    throw new SealRefused('spliced', 'the sealed comm message names another comm');
  }
  return { ...inner, envelope };
}

/** The key a sealed output's plaintext is kept under (in this tab's memory only). */
export function outputKey(envelope: { session?: unknown; lane?: unknown; counter?: unknown }): string {
  return `${String(envelope.session)}:${String(envelope.lane)}:${String(envelope.counter)}`;
}
