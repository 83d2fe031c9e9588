// streamText with the provider's default model (the Responses API): the text, then the usage.
import { streamText } from 'ai';
import { provider, report } from '../lib.mjs';

const errors = [];
const result = streamText({
  model: provider('chat'),
  prompt: 'hi',
  maxRetries: 0,
  onError: ({ error }) => errors.push(String(error)),
});
const parts = [];
for await (const part of result.textStream) parts.push(part);
report({ parts, text: parts.join(''), finishReason: await result.finishReason, usage: await result.usage, errors });
