// Speech: the SDK hands back the raw response; its binary body is read whole.
import { base64Body, openai, report } from '../lib.mjs';

const response = await openai.audio.speech.create({ model: 'voice', voice: 'alloy', input: 'hello' });
report({ contentType: response.headers.get('content-type'), body: await base64Body(response) });
