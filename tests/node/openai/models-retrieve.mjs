// One model described by id (HXGW_MODEL): a group of the gateway's or an upstream's model.
import { describeError, openai, report } from '../lib.mjs';

try {
  const model = await openai.models.retrieve(process.env.HXGW_MODEL);
  report({ model, error: null });
} catch (error) {
  report({ model: null, error: describeError(error) });
}
