// The files the upstream holds, through the SDK's paginating iterator (HXGW_LIMIT a page).
import { openai, report } from '../lib.mjs';

const ids = [];
const limit = Number(process.env.HXGW_LIMIT ?? 20);
for await (const file of openai.files.list({ limit })) ids.push(file.id);
report({ ids });
