// A batch created, read back (the fake completes it then), and its output file downloaded.
import { openai, report, startBatch, upload } from '../lib.mjs';

const batch = await startBatch(await upload());
const done = await openai.batches.retrieve(batch.id);
const output = await openai.files.content(done.output_file_id);
report({ batchId: batch.id, done, output: await output.text() });
