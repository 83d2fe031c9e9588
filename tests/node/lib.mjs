// What every script shares: the gateway it talks to (HXGW_URL, HXGW_KEY; HXGW_BAD_KEY
// replaces the key when set), clients that never retry, and one JSON line on stdout.
import { createOpenAI } from '@ai-sdk/openai';
import OpenAI, { toFile } from 'openai';
import { File } from 'node:buffer';

// Node 18 (Debian 12's) has no global File, which the SDK's uploads and toFile need; its
// error says to set it from node:buffer, as a user on node 18 does. Node >= 20 has it.
globalThis.File ??= File;

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

export const url = required('HXGW_URL');
export const key = process.env.HXGW_BAD_KEY || required('HXGW_KEY');

/** The official openai SDK, as a user points it at the gateway. */
export const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0, timeout: 10_000 });

/** The Vercel AI SDK's OpenAI provider, pointed at the gateway. */
export const provider = createOpenAI({ baseURL: `${url}/v1`, apiKey: key });

/** The AI SDK model a script uses: the provider's default, which speaks the Responses
 * API, when the test sets HXGW_AI_API=responses; else its chat model (/v1/chat/completions). */
export function aiModel(id) {
  return process.env.HXGW_AI_API === 'responses' ? provider(id) : provider.chat(id);
}

/** Print the result as one line of JSON: the test reads it. */
export function report(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/** An openai SDK error as the test checks it: every SDK error class it is an instance of. */
export function describeError(error) {
  const classes = Object.entries(OpenAI)
    .filter(([name, value]) => name.endsWith('Error') && typeof value === 'function' && error instanceof value)
    .map(([name]) => name);
  const header = (name) => error.headers?.get(name) ?? null;
  return {
    classes,
    status: error.status ?? null,
    type: error.type ?? null,
    code: error.code ?? null,
    message: error.message,
    requestId: error.requestID ?? null,
    retryAfter: header('retry-after'),
    remainingRequests: header('x-ratelimit-remaining-requests'),
  };
}

/** The test's "audio": RIFF, then the bytes 0..255 64 times, `repeat` times over (tests.e2e's SOUND). */
export function sound(repeat = 1) {
  const bytes = Buffer.from(Array.from({ length: 256 * 64 }, (_, i) => i % 256));
  const one = Buffer.concat([Buffer.from('RIFF'), bytes]);
  return Buffer.concat(Array(repeat).fill(one));
}

/** A fetch Response's body as base64, for the test to compare byte for byte. */
export async function base64Body(response) {
  return Buffer.from(await response.arrayBuffer()).toString('base64');
}

/** The batch input the file tests upload: three requests, one a line (tests.e2e's LINES). */
export const LINES = '{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
  .repeat(3);

/** LINES uploaded for a batch, as a user uploads a file: the SDK's file object. */
export async function upload() {
  const file = await toFile(Buffer.from(LINES), 'input.jsonl');
  return openai.files.create({ file, purpose: 'batch' });
}

/** A batch of the chat completions in an uploaded file. */
export async function startBatch(file) {
  return openai.batches.create({
    input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h',
  });
}
