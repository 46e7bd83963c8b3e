// The storefront (/shop) in a real browser: Debian's chromium, headless, driven by
// playwright-core, against the real services on ports the OS picks, TLS on, keys made in a
// temporary directory. Run by scripts/browser, which installs what this needs and sets:
//   CATALOG_BIN, DISCOUNT_BIN   the binaries under test
//   CHROMIUM                    the browser
//   SCREENSHOT_DIR              where the screenshots go (docs/ for the README's picture)
// Every scenario also checks that the page logged no console error (other than the
// browser's own line for an answer the scenario expects, such as a 400) and made no
// request to any other origin.
'use strict';

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');
const axe = require('axe-core');

const repo = path.resolve(__dirname, '../..');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shop-'));
const keys = path.join(work, 'keys');
const screenshots = process.env.SCREENSHOT_DIR || path.join(repo, 'target/browser');
const catalogData = JSON.parse(fs.readFileSync(path.join(repo, 'catalog/data/default.json')));
const children = [];

// --- The services. -------------------------------------------------------------------

/** Starts BIN with ARGS (and ENV), and resolves with the address its log line matching
 * PATTERN names (`address=…`), within 30 s; its output goes to $work/NAME.log. */
function start(name, bin, args, env, pattern) {
  const log = path.join(work, `${name}.log`);
  const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  // 'close' comes after 'exit', once its output is read to the end: the last lines a child
  // writes as it stops still go to its log, which must outlive them.
  child.closed = new Promise((resolve) => child.once('close', resolve));
  children.push(child);
  let seen = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: no '${pattern}' in 30 s:\n${seen}`)), 30_000);
    const onData = (chunk) => {
      fs.appendFileSync(log, chunk);
      seen += chunk;
      const line = seen.split('\n').find((l) => l.includes(pattern));
      const address = line && /address=(\S+)/.exec(line);
      if (address) {
        clearTimeout(timer);
        resolve({ child, address: address[1] });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}) at start:\n${seen}`));
    });
  });
}

/** SIGTERM (after a SIGCONT, in case a test froze it) to CHILD, and waits until it has
 * exited and its output has been read to the end. */
function stop(child) {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGCONT');
    child.kill('SIGTERM');
  }
  return child.closed;
}

/** SIGSTOP to CHILD, and waits until every thread of it has stopped: the signal is sent at
 * once, but a busy machine can leave the process running, answering, for a few
 * milliseconds more (seen: a call answered 10 ms after the signal). */
async function freeze(child) {
  child.kill('SIGSTOP');
  const state = (tid) => {
    try {
      // The state is the field after the command, which is in parentheses.
      return /\) (\S) /.exec(fs.readFileSync(`/proc/${child.pid}/task/${tid}/stat`, 'utf8'))[1];
    } catch {
      return 'T'; // a thread that ended meanwhile runs nothing either
    }
  };
  const stopped = () => fs.readdirSync(`/proc/${child.pid}/task`).every((tid) => state(tid) === 'T');
  await until(`process ${child.pid} to be stopped`, async () => stopped());
}

// Whatever happens, nothing this file started outlives it.
process.on('exit', () => children.forEach((child) => child.kill('SIGKILL')));

async function startDiscount(name) {
  const { child, address } = await start(name, process.env.DISCOUNT_BIN,
    ['0', '--keys-dir', keys], {}, 'gRPC server listening');
  return { child, target: `localhost:${address.split(':').pop()}` };
}

async function startCatalog(name, discount, args = [], env = {}) {
  const { child, address } = await start(name, process.env.CATALOG_BIN,
    ['0', '--bind', '127.0.0.1', '--keys-dir', keys, ...args],
    { DISCOUNT_SERVICE_HOST: discount, ...env }, 'catalog HTTP server listening');
  return { child, origin: `http://${address}` };
}

/** GET ORIGIN/PATH from the test itself (not the page), as text. */
async function get(origin, urlPath, headers = {}) {
  const response = await fetch(origin + urlPath, { headers });
  return { status: response.status, headers: response.headers, body: await response.text() };
}

/** Waits until CONDITION (async) is true, polling every 50 ms, for at most MS. */
async function until(what, condition, ms = 15_000) {
  const end = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// --- What the page should show, from the catalog's own data. ---------------------------

/** The reference formatting of cents, by the browser-independent Intl of Node. */
const usd = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });
const dollars = (cents) => usd.format(cents / 100);

/** The products as the page must list them: for customer 1, 10% off, truncated. */
function expectedProducts(discounted) {
  return catalogData.products.map((p) => ({
    slug: p.slug,
    description: p.description,
    now: dollars(discounted ? Math.trunc((p.price_in_cents * 9) / 10) : p.price_in_cents),
    full: discounted ? dollars(p.price_in_cents) : null,
    off: discounted ? '−10%' : null,
  }));
}

// --- The browser. ----------------------------------------------------------------------

let browser;
let main; // discount + catalog for most scenarios
let busy; // a catalog that sheds at once, for the overload scenario
let flagged; // discount following a fault flag file, a catalog in front, its metrics
let page;
let seen; // what the current page did that a scenario may not: { errors, foreign, requests }

before(async () => {
  execFileSync(process.env.DISCOUNT_BIN, ['gen-keys', '--keys-dir', keys], { stdio: 'ignore' });
  const discount = await startDiscount('discount');
  // A generous deadline: on a busy machine a debug build's calls can take longer than the
  // default 300 ms, and a slow call must not turn into a full price (the scenarios that
  // want failures stop or freeze discount: failures under test here are fast ones).
  main = {
    discount,
    catalog: await startCatalog('catalog', discount.target, [], { DISCOUNT_TIMEOUT_MS: '10000' }),
  };
  // One admitted request at a time and no queue: a second priced request while one waits
  // is answered 503 with Retry-After at once. The longest deadline the catalog takes (60 s,
  // longer than the whole scenario may run), and a health check and breaker that never
  // act, keep the waiting one admitted, and its replica called, for as long as discount is
  // frozen: the scenario ends the wait itself (SIGCONT), it does not race it.
  busy = await startCatalog('catalog-busy', discount.target,
    ['--max-inflight-calls', '1', '--admission-queue', '0', '--health-check-interval-ms', '600000',
      '--breaker-failures', '1000'],
    { DISCOUNT_TIMEOUT_MS: '60000' });
  // The failure scenarios: discount following a copy of the demo's flag file (every flag
  // off), switched by scripts/flags as a presenter would. The catalog's deadline is 1 s:
  // longer than a debug build's calls on a busy machine, shorter than the demo's too-slow
  // delay (it is 300 ms by default).
  const flagFile = path.join(work, 'flags', 'demo.flagd.json');
  fs.mkdirSync(path.dirname(flagFile));
  fs.copyFileSync(path.join(repo, 'deploy/flags/demo.flagd.json'), flagFile);
  const { child, address } = await start('discount-flags', process.env.DISCOUNT_BIN,
    ['0', '--keys-dir', keys, '--metrics-listen', '127.0.0.1:0', '--fault-flags', flagFile,
      '--replica-name', 'shop-demo'], {}, 'gRPC server listening');
  const metricsLine = fs.readFileSync(path.join(work, 'discount-flags.log'), 'utf8')
    .split('\n').find((l) => l.includes('metrics listening'));
  const discountFlagged = { child, target: `localhost:${address.split(':').pop()}` };
  flagged = {
    file: flagFile,
    metrics: `http://${/address=(\S+)/.exec(metricsLine)[1]}`,
    catalog: await startCatalog('catalog-flags', discountFlagged.target, [], { DISCOUNT_TIMEOUT_MS: '1000' }),
  };
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    // As root in a container-like sandbox; no background traffic to Google's hosts.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  fs.mkdirSync(screenshots, { recursive: true });
});

after(async () => {
  await browser?.close();
  await Promise.all(children.map(stop));
  fs.rmSync(work, { recursive: true, force: true });
});

/** A new page of a new browser context (no cache, no history), watched for errors. */
async function open(origin, query = '', viewport = { width: 1100, height: 760 }) {
  const context = await browser.newContext({ viewport });
  page = await context.newPage();
  seen = { errors: [], foreign: [], statuses: [] };
  page.on('console', (message) => {
    if (message.type() === 'error') seen.errors.push({ text: message.text(), url: message.location().url });
  });
  page.on('pageerror', (error) => seen.errors.push({ text: String(error), url: '' }));
  page.on('request', (request) => {
    if (new URL(request.url()).origin !== origin) seen.foreign.push(request.url());
  });
  page.on('response', (response) => {
    if (new URL(response.url()).pathname === '/products') {
      seen.statuses.push({ status: response.status(), retryAfter: response.headers()['retry-after'] });
    }
  });
  await page.goto(`${origin}/shop${query}`);
  return page;
}

/** The page's errors, less the browser's own lines for what the scenario expects: the
 * statuses in ALLOWED for /products, and with 'network' a refused connection for any file
 * (the browser asks for the icon again when the address changes). */
function unexpectedErrors(allowed = []) {
  return seen.errors.filter(({ text, url }) => !allowed.some((a) => (a === 'network'
    ? text.startsWith('Failed to load resource: net::ERR_CONNECTION_REFUSED')
    : new URL(url || 'about:blank').pathname === '/products' &&
      text.startsWith(`Failed to load resource: the server responded with a status of ${a}`))));
}

afterEach(async () => {
  await page?.context().close();
  page = undefined;
});

/** The products as the page shows them. */
function shownProducts() {
  return page.$$eval('#products .product', (items) => items.map((item) => ({
    slug: item.querySelector('h3').textContent,
    description: item.querySelector('.description').textContent,
    now: item.querySelector('.now .amount').textContent,
    full: item.querySelector('.full .amount')?.textContent ?? null,
    off: item.querySelector('.off')?.textContent ?? null,
  })));
}

async function settled(expectedStatus) {
  await page.waitForFunction((status) =>
    document.getElementById('http-status').textContent.startsWith(status) &&
    document.getElementById('loading').hidden, expectedStatus);
}

const notice = () => page.$eval('#notice', (n) => (n.hidden ? null : n.textContent));
const text = (id) => page.$eval(`#${id}`, (e) => e.textContent);

function checkClean(allowed) {
  assert.deepEqual(unexpectedErrors(allowed), [], 'console errors');
  assert.deepEqual(seen.foreign, [], 'requests to other origins');
}

// --- Scenarios. ------------------------------------------------------------------------

test('without a customer, every product at its full price and no notice', async () => {
  await open(main.catalog.origin);
  await settled('200');
  assert.deepEqual(await shownProducts(), expectedProducts(false));
  assert.equal(await notice(), null);
  assert.equal(await text('discount-status'), 'skipped');
  assert.ok(await page.$eval('input[name="customer"][value=""]', (e) => e.checked));
  checkClean();
});

test('customer 1 sees the exact discounted prices beside the struck-through full ones', async () => {
  await open(main.catalog.origin);
  await settled('200');
  await page.getByLabel('John Snow').check();
  await page.waitForSelector('#products .off');
  await settled('200');
  assert.deepEqual(await shownProducts(), expectedProducts(true));
  // The full price is struck through: a <del>, drawn with a line.
  assert.equal(await page.$eval('.full', (e) => getComputedStyle(e).textDecorationLine), 'line-through');
  assert.equal(await text('discount-status'), 'complete');
  assert.equal(await notice(), null);
  assert.equal(new URL(page.url()).searchParams.get('customer'), '1');
  // The ids of the last answer: X-Request-ID as the catalog sent it, and the trace the
  // page started (a traceparent of its own making, 32 hex digits).
  assert.match(await text('request-id'), /^[0-9a-f-]{8,}$/);
  assert.match(await text('trace-id'), /^[0-9a-f]{32}$/);
  await page.screenshot({ path: path.join(screenshots, 'shop.png'), fullPage: true });
  checkClean();
});

test('money is formatted from integer cents, without floating point', async () => {
  await open(main.catalog.origin);
  const formatted = await page.evaluate(async () => {
    const { money } = await import('/shop/shop.js');
    return [89999, 0, 5, 99, 100, 150000, 2147483647, -1, 123456789].map(money);
  });
  assert.deepEqual(formatted, ['$899.99', '$0.00', '$0.05', '$0.99', '$1.00', '$1,500.00',
    '$21,474,836.47', '−$0.01', '$1,234,567.89']);
  checkClean();
});

test('customer 2 and an unknown id see full prices; a malformed id shows the server message', async () => {
  await open(main.catalog.origin, '?customer=2');
  await settled('200');
  assert.ok(await page.getByLabel('Daenerys Targaryen').isChecked());
  assert.deepEqual(await shownProducts(), expectedProducts(false));
  assert.equal(await text('discount-status'), 'complete');

  await page.getByLabel('Customer id').fill('42');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.getElementById('discount-status').textContent === 'skipped');
  assert.deepEqual(await shownProducts(), expectedProducts(false));
  assert.equal(await notice(), null);

  await page.getByLabel('Customer id').fill('abc');
  await page.getByRole('button', { name: 'Show prices' }).click();
  await settled('400');
  const server = await get(main.catalog.origin, '/products', { 'X-USER-ID': 'abc' });
  assert.equal(server.status, 400);
  assert.equal(await notice(), server.body.trim());
  assert.deepEqual(await shownProducts(), []);
  checkClean([400]);
});

test('the page is keyboard-usable and has no serious or critical accessibility violation', async () => {
  await open(main.catalog.origin, '?customer=1');
  await settled('200');
  // Tab to the radio group, arrow to the next customer: the page follows.
  await page.focus('input[name="customer"]:checked');
  await page.keyboard.press('ArrowDown');
  await page.waitForFunction(() => document.getElementById('discount-status').textContent === 'complete' &&
    new URL(location.href).searchParams.get('customer') === '2');
  for (const view of ['?customer=1', '?customer=abc']) {
    await page.goto(`${main.catalog.origin}/shop${view}`);
    await page.waitForFunction(() => document.getElementById('loading').hidden &&
      document.getElementById('http-status').textContent !== '–');
    await page.evaluate(axe.source);
    const results = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    const grave = results.violations.filter((v) => ['serious', 'critical'].includes(v.impact));
    assert.deepEqual(grave.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target).join(', ')})`), [], view);
  }
  checkClean([400]);
});

test('on a phone-sized screen, one column and nothing wider than the screen', async () => {
  await open(main.catalog.origin, '?customer=1', { width: 360, height: 740 });
  await settled('200');
  const layout = await page.evaluate(() => ({
    overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    lefts: Array.from(document.querySelectorAll('.product'), (p) => Math.round(p.getBoundingClientRect().left)),
  }));
  assert.equal(layout.overflow, 0);
  assert.equal(new Set(layout.lefts).size, 1, `one column: ${layout.lefts}`);
  await page.screenshot({ path: path.join(screenshots, 'shop-phone.png'), fullPage: true });
  checkClean();
});

/** scripts/flags ARGS on the failure scenarios' flag file, as docs/failure-scenarios.md shows. */
function flags(...args) {
  execFileSync('python3', [path.join(repo, 'scripts/flags'), ...args],
    { env: { ...process.env, FLAGS_FILE: flagged.file }, stdio: 'ignore' });
}

/** How many calls discount injected FAULT into so far. */
async function injected(fault) {
  const { body } = await get(flagged.metrics, '/metrics');
  const match = new RegExp(`^discount_faults_injected_total\\{fault="${fault}"\\} (\\d+)`, 'm').exec(body);
  return match ? Number(match[1]) : 0;
}

// Each scenario of docs/failure-scenarios.md: the flag switched on, the page reloaded until
// it shows the fault's effect (within the flag's reload time and, for a hang, the health
// check's), a screenshot for the docs, the flag off, and complete discounts again.
const failureScenarios = [
  {
    name: 'an error for one product: that product at its full price, the others discounted',
    flags: ['set', 'discountError', 'internal', '--product', '2'],
    status: 'partial',
    shot: 'failure-error.png',
    products: () => expectedProducts(true).map((p, i) => (i === 1 ? expectedProducts(false)[i] : p)),
  },
  {
    name: 'answers later than the deadline: every product at its full price',
    flags: ['set', 'discountDelayMs', 'too-slow'],
    status: 'unavailable',
    shot: 'failure-delay.png',
    products: () => expectedProducts(false),
  },
  {
    name: 'a replica that hangs: full prices, at once when its health check has marked it',
    flags: ['set', 'discountHang', 'on', '--replica', 'shop-demo'],
    status: 'unavailable',
    shot: 'failure-hang.png',
    products: () => expectedProducts(false),
    // The first answers wait out the 1 s deadline; then the replica is marked and skipped.
    seen: async () => Number.parseInt(await text('answer-time'), 10) < 500,
  },
  {
    name: 'CPU burnt for each call: the prices are right, a little later',
    flags: ['set', 'discountCpuMs', 'hot'],
    status: 'complete',
    shot: 'failure-cpu.png',
    products: () => expectedProducts(true),
    seen: async () => (await injected('cpu')) > 0,
  },
];

for (const scenario of failureScenarios) {
  test(`fault flag: ${scenario.name}`, async () => {
    flags(...scenario.flags);
    try {
      await until(`X-Discount-Status: ${scenario.status}`, async () => {
        await page?.context().close();
        await open(flagged.catalog.origin, '?customer=1');
        await settled('200');
        return (await text('discount-status')) === scenario.status && (!scenario.seen || scenario.seen());
      });
      assert.deepEqual(await shownProducts(), scenario.products());
      assert.equal(await notice(), scenario.status === 'complete'
        ? null
        : 'Some prices could not be discounted just now; they are shown at full price.');
      await page.screenshot({ path: path.join(screenshots, scenario.shot), fullPage: true });
      checkClean();
    } finally {
      flags('off');
    }
    // Off again: complete discounts (a breaker the fault opened closes on a health check).
    await until('complete discounts again', async () => {
      const { headers } = await get(flagged.catalog.origin, '/products', { 'X-USER-ID': '1' });
      return headers.get('x-discount-status') === 'complete';
    });
  });
}

test('an overloaded catalog: the 503 becomes a retry notice, then the prices', async () => {
  await open(busy.origin, '?customer=1');
  await settled('200');
  assert.deepEqual(await shownProducts(), expectedProducts(true));

  // Freeze discount: a priced request from elsewhere is admitted and waits for it, until
  // this scenario thaws discount (its deadline is longer than the scenario may take). The
  // page's own request must have given its admission back first: a permit can outlive the
  // answer by a moment, and the held request would then be refused, not admitted.
  const inFlight = async () => Number(
    /^catalog_admission_in_flight_calls (\d+)/m.exec((await get(busy.origin, '/metrics')).body)[1]);
  await until('the page\'s request to give its admission back', async () => (await inFlight()) === 0);
  await freeze(main.discount.child);
  let holding;
  let answered = null;
  const held = async () => !answered && (await inFlight()) > 0;
  // What the held request came to, and the busy catalog's last words, for a failure.
  const why = async () => `held request answered: ${answered}; admission permits in use: ` +
    `${await inFlight()}; the busy catalog's log ends:\n` +
    fs.readFileSync(path.join(work, 'catalog-busy.log'), 'utf8').split('\n').slice(-15).join('\n');
  try {
    holding = get(busy.origin, '/products', { 'X-USER-ID': '1' });
    holding.then((r) => { answered = `${r.status} ${r.headers.get('x-discount-status')}`; },
      (e) => { answered = String(e); });
    await until('the held request to be admitted', held);
    await page.getByLabel('No customer').check();
    await settled('200');
    // The state the page meets, checked rather than assumed: the one slot is taken.
    assert.ok(await held(), await why());
    const refused = page.waitForResponse((r) =>
      new URL(r.url()).pathname === '/products' && r.status() === 503);
    await page.getByLabel('John Snow').check();
    await refused;
    // While discount stays frozen, every retry is refused too: the notice stays.
    await page.waitForFunction(() => /busy/.test(document.getElementById('notice').textContent),
      null, { polling: 50 });
    assert.equal(await notice(), 'The shop is busy just now; trying again in 1 s.');
    assert.equal(await text('http-status'), '503 Service Unavailable');
    // What a shedding catalog looks like in the shop, for docs/failure-scenarios.md's flood.
    await page.screenshot({ path: path.join(screenshots, 'failure-shedding.png'), fullPage: true });
    assert.ok(await held(), await why());
  } finally {
    main.discount.child.kill('SIGCONT');
  }
  assert.equal((await holding).status, 200);
  // The page asks again by itself, after Retry-After.
  await page.waitForFunction(() => document.querySelectorAll('#products .off').length > 0 &&
    document.getElementById('notice').hidden, null, { timeout: 15_000 });
  assert.deepEqual(await shownProducts(), expectedProducts(true));
  assert.ok(seen.statuses.some((s) => s.status === 503 && s.retryAfter === '1'), JSON.stringify(seen.statuses));
  checkClean([503]);
});

test('discount stopped: a notice, full prices, every product shown', async () => {
  await stop(main.discount.child);
  await open(main.catalog.origin, '?customer=1');
  await settled('200');
  assert.deepEqual(await shownProducts(), expectedProducts(false));
  assert.equal(await text('discount-status'), 'unavailable');
  assert.equal(await notice(), 'Some prices could not be discounted just now; they are shown at full price.');
  checkClean();
});

test('the catalog gone: the page says it could not reach it', async () => {
  await open(busy.origin);
  await settled('200');
  await stop(busy.child);
  await page.getByLabel('Daenerys Targaryen').check();
  await settled('no answer');
  assert.match(await notice(), /could not be reached \(a network error\)/);
  checkClean(['network']);
});

test('page weight and time to first render, from the browser\'s own timing (printed, not asserted)', async () => {
  const rounds = [];
  for (let i = 0; i < 5; i++) {
    await open(main.catalog.origin, '?customer=1');
    await settled('200');
    rounds.push(await page.evaluate(() => {
      const navigation = performance.getEntriesByType('navigation')[0];
      const resources = performance.getEntriesByType('resource');
      const paint = performance.getEntriesByName('first-contentful-paint')[0];
      const bytes = [navigation, ...resources].reduce((sum, e) => sum + e.transferSize, 0);
      const files = [navigation, ...resources].filter((e) => !e.name.includes('/products'));
      return {
        requests: 1 + resources.length,
        bytes,
        pageBytes: files.reduce((sum, e) => sum + e.encodedBodySize, 0),
        firstPaint: paint ? paint.startTime : NaN,
        response: navigation.responseEnd,
        domReady: navigation.domContentLoadedEventEnd,
        productsShown: performance.getEntriesByName('shop:products-shown')[0]?.startTime ?? NaN,
      };
    }));
    await page.context().close();
    page = undefined;
  }
  const median = (key) => rounds.map((r) => r[key]).sort((a, b) => a - b)[2];
  const ms = (key) => `${median(key).toFixed(0)} ms`;
  console.log(`shop: ${median('requests')} requests, ${median('pageBytes')} bytes of page files, ` +
    `${median('bytes')} bytes transferred in all; HTML received ${ms('response')}, ` +
    `DOM ready ${ms('domReady')}, first contentful paint ${ms('firstPaint')}, ` +
    `products shown ${ms('productsShown')} (median of 5 cold loads)`);
  assert.equal(rounds.length, 5);
});
