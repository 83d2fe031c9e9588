// streamText with the provider's chat model, or (HXGW_AI_API=responses) its default
// model, which speaks the Responses API: the text as it streams, then the usage.
import { streamText } from 'ai';
import { aiModel, report } from '../lib.mjs';

const errors = [];
const result = streamText({
  model: aiModel('chat'),
  prompt: 'hi',
  maxRetries: 0,
  onError: ({ error }) => errors.push(String(error)),
});
const parts = [];
for await (const part of result.textStream) parts.push(part);
report({ parts, text: parts.join(''), finishReason: await result.finishReason, usage: await result.usage, errors });
