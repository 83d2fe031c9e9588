// The model list, through the SDK's paginating iterator.
import { openai, report } from '../lib.mjs';

const ids = [];
for await (const model of openai.models.list()) ids.push(model.id);
report({ ids });
