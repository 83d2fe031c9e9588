// A chat completion sent to an embedding group: the gateway refuses it as a bad request.
import { describeError, openai, report } from '../lib.mjs';

try {
  await openai.chat.completions.create({ model: 'emb', messages: [{ role: 'user', content: 'hi' }] });
  report({ error: null });
} catch (error) {
  report({ error: describeError(error) });
}
