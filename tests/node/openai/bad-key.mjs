// A chat completion with a key the gateway does not know (run with HXGW_BAD_KEY).
import { describeError, openai, report } from '../lib.mjs';

try {
  await openai.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] });
  report({ error: null });
} catch (error) {
  report({ error: describeError(error) });
}
