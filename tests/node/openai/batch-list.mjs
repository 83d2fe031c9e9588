// Two batches created, then listed through the SDK's paginating iterator.
import { openai, report, startBatch, upload } from '../lib.mjs';

const file = await upload();
const made = [(await startBatch(file)).id, (await startBatch(file)).id];
const listed = [];
for await (const batch of openai.batches.list()) listed.push(batch.id);
report({ made, listed });
