// generateText with a key the gateway does not know (run with HXGW_BAD_KEY).
import { APICallError, generateText } from 'ai';
import { provider, report } from '../lib.mjs';

try {
  await generateText({ model: provider.chat('chat'), prompt: 'hi', maxRetries: 0 });
  report({ error: null });
} catch (error) {
  report({
    error: {
      isAPICallError: APICallError.isInstance(error),
      statusCode: error.statusCode ?? null,
      isRetryable: error.isRetryable ?? null,
      message: error.message,
    },
  });
}
