// A streamed chat completion whose upstream fails after the first chunks: what the SDK
// delivered, and the error it raised.
import { describeError, openai, report } from '../lib.mjs';

const stream = await openai.chat.completions.create({
  model: 'chat',
  messages: [{ role: 'user', content: 'hi' }],
  stream: true,
});
const deltas = [];
try {
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta?.content) deltas.push(chunk.choices[0].delta.content);
  }
  report({ deltas, error: null });
} catch (error) {
  report({ deltas, error: describeError(error) });
}
