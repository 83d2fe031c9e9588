// A streamed response (the provider's default model), then a follow-up to it by the
// responseId the AI SDK read from the stream (providerOptions.openai.previousResponseId).
import { generateText, streamText } from 'ai';
import { provider, report } from '../lib.mjs';

const first = streamText({ model: provider('chat'), prompt: 'hi', maxRetries: 0 });
const firstText = await first.text;
const firstId = (await first.providerMetadata)?.openai?.responseId ?? null;
const second = await generateText({
  model: provider('chat'),
  prompt: 'and?',
  maxRetries: 0,
  providerOptions: { openai: { previousResponseId: firstId } },
});
report({
  firstText,
  firstId,
  secondId: second.providerMetadata?.openai?.responseId ?? null,
  previous: second.response.body?.previous_response_id ?? null,
  turns: second.response.body?.metadata?.turns ?? null,
});
