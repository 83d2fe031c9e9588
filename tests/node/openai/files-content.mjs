// A file uploaded, then its content downloaded by the id the gateway gave it.
import { base64Body, openai, report, upload } from '../lib.mjs';

const made = await upload();
const response = await openai.files.content(made.id);
report({ contentType: response.headers.get('content-type'), body: await base64Body(response) });
