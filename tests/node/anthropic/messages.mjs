// A message from the official anthropic SDK through the gateway (its base URL, the key as
// x-api-key): plain, or streamed with HXGW_STREAM=1 (every event's type, the text deltas
// and the final message the SDK assembles).
import Anthropic from '@anthropic-ai/sdk';
import { key, report, url } from '../lib.mjs';

const anthropic = new Anthropic({ baseURL: url, apiKey: key, maxRetries: 0, timeout: 10_000 });
const request = { model: 'chat', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] };

if (process.env.HXGW_STREAM) {
  const stream = anthropic.messages.stream(request);
  const types = [];
  const deltas = [];
  for await (const event of stream) {
    types.push(event.type);
    if (event.type === 'content_block_delta') deltas.push(event.delta.text);
  }
  report({ types, deltas, message: await stream.finalMessage() });
} else {
  report({ message: await anthropic.messages.create(request) });
}
