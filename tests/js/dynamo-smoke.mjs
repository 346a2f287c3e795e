// SPDX-License-Identifier: Apache-2.0
// dynamo-smoke.mjs -- Tributary's DynamoDB API through the AWS SDK for JavaScript v3:
// the low-level DynamoDBClient and the lib-dynamodb DocumentClient.
//
// Env: TRIBUTARY_ENDPOINT (e.g. http://127.0.0.1:4567), AWS_ACCESS_KEY_ID,
//      AWS_SECRET_ACCESS_KEY, AWS_REGION (default us-east-1).
// The SDK verifies the x-amz-crc32 header of every DynamoDB response.  Prints one summary line
// "dynamo-smoke: N passed, M failed" and exits non-zero on any failure.
import {
  DynamoDBClient, CreateTableCommand, DescribeTableCommand, DeleteTableCommand,
  ListTablesCommand, waitUntilTableExists, waitUntilTableNotExists,
} from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient, PutCommand, GetCommand, UpdateCommand, DeleteCommand, QueryCommand,
  ScanCommand, BatchWriteCommand, BatchGetCommand, TransactWriteCommand, TransactGetCommand,
  paginateQuery,
} from '@aws-sdk/lib-dynamodb';
import { randomUUID } from 'node:crypto';

const endpoint = process.env.TRIBUTARY_ENDPOINT;
if (!endpoint) {
  console.error('dynamo-smoke: TRIBUTARY_ENDPOINT is not set');
  process.exit(2);
}
const client = new DynamoDBClient({
  endpoint,
  region: process.env.AWS_REGION || 'us-east-1',
  maxAttempts: 1,
  credentials: {
    accessKeyId: process.env.AWS_ACCESS_KEY_ID,
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY,
    sessionToken: process.env.AWS_SESSION_TOKEN || undefined,
  },
});
const doc = DynamoDBDocumentClient.from(client, {
  marshallOptions: { removeUndefinedValues: true },
  unmarshallOptions: { wrapNumbers: true },
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
const num = (v) => (v && typeof v === 'object' && 'value' in v ? v.value : String(v));

const TableName = `tr-js-ddb-${randomUUID().slice(0, 8)}`;
const deadline = setTimeout(() => {
  console.log(`dynamo-smoke: ${passed} passed, ${failed + 1} failed (timed out)`);
  process.exit(1);
}, 120_000);

await step('CreateTable + waitUntilTableExists', async () => {
  await client.send(new CreateTableCommand({
    TableName,
    KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }, { AttributeName: 'sk', KeyType: 'RANGE' }],
    AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' },
                           { AttributeName: 'sk', AttributeType: 'N' }],
    BillingMode: 'PAY_PER_REQUEST',
  }));
  await waitUntilTableExists({ client, maxWaitTime: 60, minDelay: 1, maxDelay: 2 }, { TableName });
  const d = await client.send(new DescribeTableCommand({ TableName }));
  assert(d.Table.TableStatus === 'ACTIVE', 'table not ACTIVE');
  const l = await client.send(new ListTablesCommand({}));
  assert(l.TableNames.includes(TableName), 'table not listed');
});

await step('Put/Get with the DocumentClient', async () => {
  const item = { pk: 'u1', sk: 1, name: 'h\u00e9llo', tags: new Set(['a', 'b']), nested: { l: [1, 'x', null], ok: true },
                 bin: new Uint8Array([0, 1, 255]) };
  await doc.send(new PutCommand({ TableName, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }));
  const r = await doc.send(new GetCommand({ TableName, Key: { pk: 'u1', sk: 1 }, ConsistentRead: true }));
  assert(r.Item.name === 'h\u00e9llo', `name ${r.Item.name}`);
  assert(r.Item.tags instanceof Set && r.Item.tags.has('b'), 'set lost');
  assert(r.Item.nested.ok === true && r.Item.nested.l[1] === 'x', 'nested lost');
  assert(Buffer.from(r.Item.bin).toString('hex') === '0001ff', 'binary lost');
});

await step('conditional Put fails with ConditionalCheckFailedException', async () => {
  try {
    await doc.send(new PutCommand({ TableName, Item: { pk: 'u1', sk: 1 }, ConditionExpression: 'attribute_not_exists(pk)' }));
  } catch (e) {
    assert(e.name === 'ConditionalCheckFailedException', `got ${e.name}`);
    assert(e.$metadata.httpStatusCode === 400, `status ${e.$metadata.httpStatusCode}`);
    return;
  }
  throw new Error('conditional put succeeded');
});

await step('UpdateCommand ADD exact decimals', async () => {
  for (let i = 0; i < 10; i++) {
    await doc.send(new UpdateCommand({ TableName, Key: { pk: 'u1', sk: 1 }, UpdateExpression: 'ADD amount :v',
                                       ExpressionAttributeValues: { ':v': 0.1 } }));
  }
  const r = await doc.send(new UpdateCommand({ TableName, Key: { pk: 'u1', sk: 1 }, UpdateExpression: 'SET seen = :t',
                                               ExpressionAttributeValues: { ':t': true }, ReturnValues: 'ALL_NEW' }));
  assert(num(r.Attributes.amount) === '1', `amount ${num(r.Attributes.amount)}`);
});

await step('BatchWrite + Query paginator + Scan', async () => {
  await doc.send(new BatchWriteCommand({ RequestItems: { [TableName]: Array.from({ length: 20 }, (_, i) => (
    { PutRequest: { Item: { pk: 'q', sk: i, v: `v${i}` } } })) } }));
  const seen = [];
  for await (const page of paginateQuery({ client: doc, pageSize: 6 }, {
    TableName, KeyConditionExpression: 'pk = :p AND sk >= :s', ExpressionAttributeValues: { ':p': 'q', ':s': 5 },
    ScanIndexForward: false })) {
    for (const it of page.Items) seen.push(Number(num(it.sk)));
  }
  assert(seen.length === 15 && seen[0] === 19 && seen[14] === 5, `query saw ${seen}`);
  const s = await doc.send(new ScanCommand({ TableName, FilterExpression: 'begins_with(v, :p)',
                                             ExpressionAttributeValues: { ':p': 'v1' } }));
  assert(s.Count === 11, `scan count ${s.Count}`);
  const g = await doc.send(new BatchGetCommand({ RequestItems: { [TableName]: { Keys: [{ pk: 'q', sk: 3 }, { pk: 'q', sk: 99 }] } } }));
  assert(g.Responses[TableName].length === 1, 'batch get');
});

await step('TransactWrite canceled, then applied; TransactGet', async () => {
  try {
    await doc.send(new TransactWriteCommand({ TransactItems: [
      { Put: { TableName, Item: { pk: 'tx', sk: 1 } } },
      { ConditionCheck: { TableName, Key: { pk: 'nope', sk: 0 }, ConditionExpression: 'attribute_exists(pk)' } },
    ] }));
    throw new Error('transaction should have been canceled');
  } catch (e) {
    assert(e.name === 'TransactionCanceledException', `got ${e.name}: ${e.message}`);
    assert(Array.isArray(e.CancellationReasons) && e.CancellationReasons[1].Code === 'ConditionalCheckFailed',
           `reasons ${JSON.stringify(e.CancellationReasons)}`);
  }
  await doc.send(new TransactWriteCommand({ ClientRequestToken: randomUUID(), TransactItems: [
    { Put: { TableName, Item: { pk: 'tx', sk: 1, n: 1 } } },
    { Update: { TableName, Key: { pk: 'u1', sk: 1 }, UpdateExpression: 'ADD amount :v', ExpressionAttributeValues: { ':v': 1 } } },
  ] }));
  const r = await doc.send(new TransactGetCommand({ TransactItems: [
    { Get: { TableName, Key: { pk: 'tx', sk: 1 } } }, { Get: { TableName, Key: { pk: 'u1', sk: 1 } } }] }));
  assert(num(r.Responses[0].Item.n) === '1' && num(r.Responses[1].Item.amount) === '2', 'transact get');
});

await step('Delete + DeleteTable + waitUntilTableNotExists', async () => {
  await doc.send(new DeleteCommand({ TableName, Key: { pk: 'u1', sk: 1 } }));
  const r = await doc.send(new GetCommand({ TableName, Key: { pk: 'u1', sk: 1 } }));
  assert(r.Item === undefined, 'item not deleted');
  await client.send(new DeleteTableCommand({ TableName }));
  await waitUntilTableNotExists({ client, maxWaitTime: 60, minDelay: 1, maxDelay: 2 }, { TableName });
});

clearTimeout(deadline);
console.log(`dynamo-smoke: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
