// A chat completion read with .withResponse(): the raw response's headers beside the data.
// HXGW_REQUEST_ID, when set, is sent as the caller's X-Request-ID.
import { openai, report } from '../lib.mjs';

const sent = process.env.HXGW_REQUEST_ID;
const { data, response, request_id: requestId } = await openai.chat.completions
  .create(
    { model: 'chat', messages: [{ role: 'user', content: 'hi' }] },
    sent ? { headers: { 'X-Request-ID': sent } } : {},
  )
  .withResponse();
report({
  status: response.status,
  header: response.headers.get('x-request-id'),
  requestId,
  dataRequestId: data._request_id,
  content: data.choices[0].message.content,
});
