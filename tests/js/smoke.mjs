// SPDX-License-Identifier: Apache-2.0
// smoke.mjs -- Tributary's Kinesis API through the AWS SDK for JavaScript v3.
//
// Env: TRIBUTARY_ENDPOINT (e.g. http://127.0.0.1:4567), AWS_ACCESS_KEY_ID,
//      AWS_SECRET_ACCESS_KEY, AWS_REGION (default us-east-1),
//      SMOKE_HTTP2=1 to keep the SDK's default request handler for Kinesis, which is HTTP/2
//      (NodeHttp2Handler; cleartext h2 with prior knowledge on http:// endpoints).  By default
//      the smoke test passes an HTTP/1.1 NodeHttpHandler, as a Tributary user has to.
// Creates a stream, writes with PutRecord and PutRecords, reads everything back through shard
// iterators and compares bytes, lists streams, deletes the stream.  Prints one summary line
// "smoke: N passed, M failed" and exits non-zero on any failure.
import {
  KinesisClient, CreateStreamCommand, DescribeStreamSummaryCommand, ListShardsCommand,
  PutRecordCommand, PutRecordsCommand, GetShardIteratorCommand, GetRecordsCommand,
  ListStreamsCommand, DeleteStreamCommand, waitUntilStreamExists, waitUntilStreamNotExists,
} from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { randomBytes, randomUUID } from 'node:crypto';

const endpoint = process.env.TRIBUTARY_ENDPOINT;
if (!endpoint) {
  console.error('smoke: TRIBUTARY_ENDPOINT is not set');
  process.exit(2);
}
const client = new KinesisClient({
  endpoint,
  region: process.env.AWS_REGION || 'us-east-1',
  maxAttempts: 1,
  ...(process.env.SMOKE_HTTP2 === '1' ? {} : {
    requestHandler: new NodeHttpHandler({ connectionTimeout: 5000, requestTimeout: 60000 }),
  }),
  credentials: {
    accessKeyId: process.env.AWS_ACCESS_KEY_ID,
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY,
    sessionToken: process.env.AWS_SESSION_TOKEN || undefined,
  },
});

let passed = 0;
let failed = 0;
async function step(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.name ? e.name + ': ' : ''}${e && e.message ? e.message : e}`);
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
const hex = (b) => Buffer.from(b).toString('hex');

const streamName = `tr-js-smoke-${randomUUID().slice(0, 8)}`;
const sent = new Map(); // sequence number -> {pk, data, shard}
let created = false;

const deadline = setTimeout(() => {
  console.log(`smoke: ${passed} passed, ${failed + 1} failed (timed out)`);
  process.exit(1);
}, 120_000);

await step('CreateStream + waitUntilStreamExists', async () => {
  await client.send(new CreateStreamCommand({ StreamName: streamName, ShardCount: 2 }));
  created = true;
  await waitUntilStreamExists({ client, maxWaitTime: 60, minDelay: 1, maxDelay: 2 },
                              { StreamName: streamName });
  const s = await client.send(new DescribeStreamSummaryCommand({ StreamName: streamName }));
  assert(s.StreamDescriptionSummary.StreamStatus === 'ACTIVE', 'stream not ACTIVE');
  assert(s.StreamDescriptionSummary.OpenShardCount === 2, 'expected 2 open shards');
});

await step('PutRecord', async () => {
  for (const [i, data] of [new Uint8Array(0), new Uint8Array([0, 1, 2, 255]),
                           new Uint8Array(randomBytes(70000)),
                           new TextEncoder().encode('h\u00e9llo \u6f22')].entries()) {
    const r = await client.send(new PutRecordCommand({
      StreamName: streamName, PartitionKey: `single-${i}`, Data: data,
    }));
    assert(/^\d+$/.test(r.SequenceNumber), `bad SequenceNumber ${r.SequenceNumber}`);
    sent.set(r.SequenceNumber, { pk: `single-${i}`, data, shard: r.ShardId });
  }
});

await step('PutRecords', async () => {
  const records = Array.from({ length: 100 }, (_, i) => ({
    PartitionKey: `batch-${i}`, Data: new Uint8Array(randomBytes(i * 13)),
  }));
  const r = await client.send(new PutRecordsCommand({ StreamName: streamName, Records: records }));
  assert(r.FailedRecordCount === 0, `FailedRecordCount ${r.FailedRecordCount}`);
  assert(r.Records.length === 100, `got ${r.Records.length} result entries`);
  r.Records.forEach((e, i) => {
    assert(e.SequenceNumber && e.ShardId, `entry ${i} lacks SequenceNumber/ShardId`);
    sent.set(e.SequenceNumber, { pk: records[i].PartitionKey, data: records[i].Data, shard: e.ShardId });
  });
});

await step('GetShardIterator + GetRecords (bytes match)', async () => {
  const shards = (await client.send(new ListShardsCommand({ StreamName: streamName }))).Shards;
  assert(shards.length === 2, `expected 2 shards, got ${shards.length}`);
  const got = new Map();
  for (const sh of shards) {
    let it = (await client.send(new GetShardIteratorCommand({
      StreamName: streamName, ShardId: sh.ShardId, ShardIteratorType: 'TRIM_HORIZON',
    }))).ShardIterator;
    let lastSeq = -1n;
    for (let calls = 0; calls < 200 && it; calls++) {
      const r = await client.send(new GetRecordsCommand({ ShardIterator: it, Limit: 30 }));
      for (const rec of r.Records) {
        const seq = BigInt(rec.SequenceNumber);
        assert(seq > lastSeq, `${sh.ShardId}: sequence numbers not increasing`);
        lastSeq = seq;
        got.set(rec.SequenceNumber, { pk: rec.PartitionKey, data: rec.Data, shard: sh.ShardId });
      }
      if (r.Records.length === 0 && r.MillisBehindLatest === 0) break;
      it = r.NextShardIterator;
    }
  }
  assert(got.size === sent.size, `read ${got.size} records, sent ${sent.size}`);
  for (const [seq, want] of sent) {
    const g = got.get(seq);
    assert(g, `record ${seq} not read back`);
    assert(g.pk === want.pk, `record ${seq}: partition key ${g.pk} != ${want.pk}`);
    assert(g.shard === want.shard, `record ${seq}: in ${g.shard}, acknowledged in ${want.shard}`);
    assert(hex(g.data) === hex(want.data), `record ${seq}: data differs (${g.data.length} bytes vs ${want.data.length})`);
  }
});

await step('ListStreams', async () => {
  const r = await client.send(new ListStreamsCommand({ ExclusiveStartStreamName: 'tr-js-smoke-' }));
  assert(r.StreamNames.includes(streamName), 'stream missing from ListStreams');
});

await step('DeleteStream + waitUntilStreamNotExists', async () => {
  await client.send(new DeleteStreamCommand({ StreamName: streamName }));
  created = false;
  await waitUntilStreamNotExists({ client, maxWaitTime: 60, minDelay: 1, maxDelay: 2 },
                                 { StreamName: streamName });
});

await step('error surfaces as ResourceNotFoundException', async () => {
  try {
    await client.send(new DescribeStreamSummaryCommand({ StreamName: streamName }));
  } catch (e) {
    assert(e.name === 'ResourceNotFoundException', `got ${e.name}`);
    assert(e.$metadata.httpStatusCode === 400, `HTTP ${e.$metadata.httpStatusCode}`);
    return;
  }
  throw new Error('describing a deleted stream succeeded');
});

if (created) {
  try { await client.send(new DeleteStreamCommand({ StreamName: streamName })); } catch { /* */ }
}
clearTimeout(deadline);
console.log(`smoke: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
