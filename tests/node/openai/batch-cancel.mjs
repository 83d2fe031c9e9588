// A batch created, then cancelled by the id the gateway gave it.
import { openai, report, startBatch, upload } from '../lib.mjs';

const batch = await startBatch(await upload());
report({ batchId: batch.id, cancelled: await openai.batches.cancel(batch.id) });
