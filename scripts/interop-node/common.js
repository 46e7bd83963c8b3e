'use strict';
// What the Node.js client and server share: ecommerce.proto loaded with proto-loader, the
// same way a TypeScript service built on @grpc/grpc-js loads it, and the TLS files.

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO = path.join(__dirname, '..', '..', 'ecommerce.proto');

// keepCase: proto field names (price_in_cents), as the cases file and the JSON contract
// use; defaults: absent scalars read as zero, absent messages as null.
const packageDefinition = protoLoader.loadSync(PROTO, {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
});
const ecommerce = grpc.loadPackageDefinition(packageDefinition).ecommerce;

/** Parses "--name value" and "--flag" arguments into an object. */
function parseArgs(argv, flags) {
  const args = {};
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, '');
    if (flags.includes(name)) {
      args[name] = true;
    } else {
      args[name] = argv[++i];
    }
  }
  return args;
}

function read(file) {
  return file ? fs.readFileSync(file) : null;
}

module.exports = { grpc, packageDefinition, ecommerce, parseArgs, read };
