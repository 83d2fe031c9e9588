// A chat completion to the group with one model, whose upstream answers 429.
import { describeError, openai, report } from '../lib.mjs';

try {
  await openai.chat.completions.create({ model: 'solo', messages: [{ role: 'user', content: 'hi' }] });
  report({ error: null });
} catch (error) {
  report({ error: describeError(error) });
}
