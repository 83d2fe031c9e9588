// A transcription of a file made by the SDK's toFile, in HXGW_FORMAT (default json), of
// HXGW_REPEAT (default 1) times the test's sound. The SDK adds a File's form part in the
// body's key order: `file` first, as its README writes it, so the file comes before `model`.
import { toFile } from 'openai';
import { openai, report, sound } from '../lib.mjs';

const format = process.env.HXGW_FORMAT;
const file = await toFile(sound(Number(process.env.HXGW_REPEAT ?? 1)), 'hello.wav', { type: 'audio/wav' });
const result = await openai.audio.transcriptions.create({
  file, model: 'stt', ...(format ? { response_format: format } : {}),
});
report({ type: typeof result, result });
