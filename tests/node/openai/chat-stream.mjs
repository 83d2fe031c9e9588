// A streamed chat completion with stream_options.include_usage: the deltas, then the usage chunk.
import { openai, report } from '../lib.mjs';

const stream = await openai.chat.completions.create({
  model: 'chat',
  messages: [{ role: 'user', content: 'hi' }],
  stream: true,
  stream_options: { include_usage: true },
});
const deltas = [];
let finishReason = null;
let usage = null;
let usageChunkChoices = null;
for await (const chunk of stream) {
  const choice = chunk.choices[0];
  if (choice?.delta?.content) deltas.push(choice.delta.content);
  if (choice?.finish_reason) finishReason = choice.finish_reason;
  if (chunk.usage) {
    usage = chunk.usage;
    usageChunkChoices = chunk.choices.length;
  }
}
report({ deltas, text: deltas.join(''), finishReason, usage, usageChunkChoices });
