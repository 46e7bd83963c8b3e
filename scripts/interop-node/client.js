'use strict';
// A Node.js gRPC client of our discount service (@grpc/grpc-js), over TLS, trusting
// keys/cert.pem.
//
// Sends every case of scripts/interop-cases.json and checks every field of each answer
// (pct as a 32-bit float) or the status code of each error, then the standard health
// (grpc-health-check's definition) and reflection (@grpc/reflection's proto) services. With
// --client-cert and --client-key it presents a client certificate (mutual TLS). With
// --expect-refused it makes one call, presenting no certificate, which must fail with
// UNAVAILABLE. Prints one line per failure, naming the case and the field, and a closing
// "N passed, N failed" line; exits non-zero on any failure.
//
//   node client.js --target localhost:11443 --cert keys/cert.pem --cases scripts/interop-cases.json

const fs = require('fs');
const path = require('path');
const protoLoader = require('@grpc/proto-loader');
const health = require('grpc-health-check');
const { grpc, packageDefinition, parseArgs, read } = require('./common');

const METHOD = packageDefinition['ecommerce.Discount'].ApplyDiscount;
const STATUS_NAMES = Object.fromEntries(Object.entries(grpc.status).map(([k, v]) => [v, k]));

let passed = 0;
let failed = 0;

function check(name, problems) {
  if (problems.length === 0) {
    passed++;
    return;
  }
  failed++;
  for (const problem of problems) {
    console.log(`FAIL  node client, case '${name}': ${problem}`);
  }
}

function finish() {
  const version = require('@grpc/grpc-js/package.json').version;
  console.log(`node client (@grpc/grpc-js ${version}, node ${process.versions.node}): ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

function short(value) {
  const text = JSON.stringify(value);
  return text.length <= 60 ? text : `${text.slice(0, 40)}… (${text.length} characters)`;
}

/**
 * The case's request as bytes: protobufjs drops fields it does not know when it decodes,
 * so unknown fields are appended to the encoded request and the bytes sent as they are.
 */
function encodeRequest(testCase) {
  const request = structuredClone(testCase.request);
  if (testCase.description_bytes !== undefined) {
    request.product.description = 'd'.repeat(testCase.description_bytes);
  }
  const extra = Buffer.from(testCase.unknown_fields_hex || '', 'hex');
  return { request, bytes: Buffer.concat([METHOD.requestSerialize(request), extra]) };
}

function applyDiscount(client, bytes) {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      METHOD.path,
      (buffer) => buffer,
      METHOD.responseDeserialize,
      bytes,
      new grpc.Metadata(),
      { deadline: Date.now() + 10000 },
      (error, response) => resolve({ error, response }),
    );
  });
}

function differences(testCase, sent, response) {
  const got = response.product;
  if (!got) {
    return ['product is missing'];
  }
  const want = testCase.expect.discount_value;
  const value = got.discount_value || { pct: 0, value_in_cents: 0 };
  const fields = [
    ['product.id', got.id, sent.id || 0],
    ['product.slug', got.slug, sent.slug || ''],
    ['product.description', got.description, sent.description || ''],
    ['product.price_in_cents', got.price_in_cents, sent.price_in_cents || 0],
    ['product.discount_value.pct', value.pct, Math.fround(want.pct)],
    ['product.discount_value.value_in_cents', value.value_in_cents, want.value_in_cents],
  ];
  return fields
    .filter(([, actual, expected]) => actual !== expected)
    .map(([name, actual, expected]) => `${name} is ${short(actual)}, expected ${short(expected)}`);
}

function call(client, method, request) {
  return new Promise((resolve) => {
    client[method](request, { deadline: Date.now() + 5000 }, (error, response) =>
      resolve({ error, response }),
    );
  });
}

function listServices(client) {
  return new Promise((resolve) => {
    const stream = client.ServerReflectionInfo({ deadline: Date.now() + 5000 });
    const names = [];
    stream.on('data', (answer) => {
      for (const service of answer.list_services_response?.service || []) {
        names.push(service.name);
      }
      stream.end();
    });
    stream.on('error', (error) => resolve({ error, names }));
    stream.on('end', () => resolve({ names }));
    stream.write({ list_services: '' });
  });
}

async function main() {
  const args = parseArgs(process.argv.slice(2), ['expect-refused']);
  const { cases } = JSON.parse(fs.readFileSync(args.cases, 'utf8'));
  const credentials = grpc.credentials.createSsl(
    read(args.cert),
    read(args['client-key']),
    read(args['client-cert']),
  );
  const client = new grpc.Client(args.target, credentials);

  if (args['expect-refused']) {
    const { error } = await applyDiscount(client, encodeRequest(cases[0]).bytes);
    if (!error) {
      check('no client certificate', ['the call succeeded, expected UNAVAILABLE']);
    } else {
      check('no client certificate', error.code === grpc.status.UNAVAILABLE ? [] :
        [`status is ${STATUS_NAMES[error.code]} (${error.details}), expected UNAVAILABLE`]);
    }
    finish();
  }

  for (const testCase of cases) {
    const { request, bytes } = encodeRequest(testCase);
    const wanted = testCase.expect.code;
    const { error, response } = await applyDiscount(client, bytes);
    if (error) {
      const code = STATUS_NAMES[error.code];
      check(testCase.name, code === wanted ? [] :
        [`status is ${code} (${error.details}), expected ${wanted || 'an answer'}`]);
    } else if (wanted) {
      check(testCase.name, [`the call succeeded, expected status ${wanted}`]);
    } else {
      check(testCase.name, differences(testCase, request.product, response));
    }
  }

  const Health = grpc.makeGenericClientConstructor(health.service, 'Health');
  const healthClient = new Health(args.target, credentials);
  for (const service of ['', 'ecommerce.Discount']) {
    const { error, response } = await call(healthClient, 'check', { service });
    const name = `health ${JSON.stringify(service)}`;
    if (error) {
      check(name, [`status is ${STATUS_NAMES[error.code]}, expected SERVING`]);
    } else {
      check(name, response.status === 'SERVING' ? [] : [`status is ${response.status}, expected SERVING`]);
    }
  }

  const reflectionProto = path.join(
    path.dirname(require.resolve('@grpc/reflection')),
    '..', 'proto', 'grpc', 'reflection', 'v1alpha', 'reflection.proto',
  );
  const reflection = grpc.loadPackageDefinition(
    protoLoader.loadSync(reflectionProto, { keepCase: true, defaults: true }),
  ).grpc.reflection.v1alpha;
  const reflectionClient = new reflection.ServerReflection(args.target, credentials);
  const { error, names } = await listServices(reflectionClient);
  if (error) {
    check('reflection', [`status is ${STATUS_NAMES[error.code]} (${error.details})`]);
  } else {
    check('reflection', names.includes('ecommerce.Discount') ? [] :
      [`list_services is ${JSON.stringify(names)}, expected ecommerce.Discount in it`]);
  }
  finish();
}

main();
