'use strict';
// A Node.js discount server (@grpc/grpc-js) with the same rule as ours, for scripts/interop.
//
// It loads keys/cert.pem and keys/private.key (with --client-ca it also requires a client
// certificate issued by that CA), serves the standard health service (grpc-health-check)
// and reflection (@grpc/reflection), and prints "listening address=127.0.0.1:PORT" once it
// serves. Stops on SIGTERM or SIGINT.
//
//   node discount_server.js --cert keys/cert.pem --key keys/private.key [--client-ca keys/ca.pem]

const { HealthImplementation } = require('grpc-health-check');
const { ReflectionService } = require('@grpc/reflection');
const { grpc, packageDefinition, ecommerce, parseArgs, read } = require('./common');

function applyDiscount(call, callback) {
  const { customer, product } = call.request;
  if (!product) {
    callback({ code: grpc.status.INVALID_ARGUMENT, details: 'DiscountRequest.product is required' });
    return;
  }
  const price = product.price_in_cents;
  const eligible = customer !== null && customer.id === 1 && price > 0;
  const discount_value = eligible
    ? { pct: 0.1, value_in_cents: Number((BigInt(price) * 9n) / 10n) }
    : { pct: 0, value_in_cents: 0 };
  callback(null, { product: { ...product, discount_value } });
}

function main() {
  const args = parseArgs(process.argv.slice(2), []);
  const clientCa = read(args['client-ca']);
  const credentials = grpc.ServerCredentials.createSsl(
    clientCa,
    [{ cert_chain: read(args.cert), private_key: read(args.key) }],
    clientCa !== null,
  );
  const server = new grpc.Server();
  server.addService(ecommerce.Discount.service, { ApplyDiscount: applyDiscount });
  new HealthImplementation({ '': 'SERVING', 'ecommerce.Discount': 'SERVING' }).addToServer(server);
  new ReflectionService(packageDefinition).addToServer(server);
  server.bindAsync('127.0.0.1:0', credentials, (error, port) => {
    if (error) {
      console.error(`node discount server: ${error.message}`);
      process.exit(1);
    }
    console.log(`node discount server listening address=127.0.0.1:${port}`);
  });
  const stop = () => {
    const force = setTimeout(() => server.forceShutdown(), 2000);
    server.tryShutdown(() => clearTimeout(force));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
