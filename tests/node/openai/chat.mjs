// A chat completion, not streamed.
import { openai, report } from '../lib.mjs';

const reply = await openai.chat.completions.create({
  model: 'chat',
  messages: [{ role: 'user', content: 'hi' }],
});
report({ content: reply.choices[0].message.content, finishReason: reply.choices[0].finish_reason, usage: reply.usage });
