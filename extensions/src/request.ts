import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { IReportBody } from './protocol';
import { IVerdict, localVerdict } from './verdict';

/** The server extension's namespace under the server's base URL. */
export const API_NAMESPACE = 'workbench';
/** No request to the server may leave the UI waiting longer than this. */
export const REQUEST_TIMEOUT_MS = 20000;

/**
 * Call a route of the server extension (joined to the server's base URL, sent with the
 * server's credentials). Rejects with an Error whose message is one readable line.
 */
export async function requestAPI<T>(
  endPoint: string,
  settings: ServerConnection.ISettings,
  init: RequestInit = {},
  timeoutMs: number = REQUEST_TIMEOUT_MS
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, API_NAMESPACE, endPoint);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(
      url,
      { ...init, signal: controller.signal },
      settings
    );
  } catch (error) {
    const aborted = controller.signal.aborted;
    throw new Error(
      aborted
        ? `the server did not answer within ${timeoutMs / 1000} s`
        : `cannot reach the Jupyter server (${(error as Error).message ?? error})`
    );
  } finally {
    clearTimeout(timer);
  }
  const text = await response.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const detail =
      (data && (data.message || data.reason)) || response.statusText || text;
    throw new Error(`the server answered ${response.status}: ${detail}`);
  }
  return data as T;
}

/**
 * The server's verdict on a kernel report. Never rejects: any failure to get one becomes an
 * "unverified" verdict naming the cause, so nothing waits forever.
 */
export async function verifyReport(
  body: IReportBody,
  settings: ServerConnection.ISettings,
  timeoutMs: number = REQUEST_TIMEOUT_MS
): Promise<IVerdict> {
  try {
    const verdict = await requestAPI<IVerdict>(
      'verify',
      settings,
      { method: 'POST', body: JSON.stringify(body) },
      timeoutMs
    );
    if (!verdict || typeof verdict.state !== 'string') {
      return localVerdict('unverified', 'the server gave no verdict');
    }
    return verdict;
  } catch (error) {
    return localVerdict(
      'unverified',
      `no verdict from the server: ${(error as Error).message}`
    );
  }
}
