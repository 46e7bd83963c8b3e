// The storefront's behaviour: asks GET /products for the chosen customer and shows what
// the answer and its headers say. A client of the public API like any other; no framework.

const form = document.getElementById('customer-form');
const otherId = document.getElementById('other-id');
const notice = document.getElementById('notice');
const loading = document.getElementById('loading');
const list = document.getElementById('products');

/** The customer's radio buttons, including "Another id". */
const choices = () => form.querySelectorAll('input[name="customer"]');

/** Money from integer cents, by string only: 89999 → "$899.99" (no floating point). */
export function money(cents) {
  if (!Number.isSafeInteger(cents)) return '?';
  const digits = String(Math.abs(cents)).padStart(3, '0');
  const dollars = digits.slice(0, -2).replace(/\B(?=(\d{3})+$)/g, ',');
  return `${cents < 0 ? '−' : ''}$${dollars}.${digits.slice(-2)}`;
}

/** "−10%" from a discount's pct (0.1). */
export function percentOff(pct) {
  return `−${Math.round(pct * 100)}%`;
}

/** How long to wait before asking again, from Retry-After (seconds or an HTTP date). */
export function retryAfterSeconds(value) {
  let seconds = Number.parseInt(value ?? '', 10);
  if (!/^\s*\d+\s*$/.test(value ?? '')) {
    const date = Date.parse(value ?? '');
    seconds = Number.isNaN(date) ? 1 : Math.ceil((date - Date.now()) / 1000);
  }
  return Math.min(Math.max(seconds, 1), 60);
}

/** Random lowercase hex of `bytes` bytes, never all zeros (W3C Trace Context). */
function randomHex(bytes) {
  const values = crypto.getRandomValues(new Uint8Array(bytes));
  if (values.every((b) => b === 0)) values[bytes - 1] = 1;
  return Array.from(values, (b) => b.toString(16).padStart(2, '0')).join('');
}

function setText(id, text) {
  document.getElementById(id).textContent = text;
}

function showNotice(kind, text) {
  notice.className = `notice notice-${kind}`;
  notice.textContent = text;
  notice.hidden = false;
}

function clearNotice() {
  notice.hidden = true;
  notice.textContent = '';
}

/** <TAG class=CLASS>, with SPOKEN for screen readers only, then the money in .amount. */
function amount(tag, className, spoken, cents) {
  const element = document.createElement(tag);
  element.className = className;
  if (spoken) {
    const hidden = document.createElement('span');
    hidden.className = 'visually-hidden';
    hidden.textContent = spoken;
    element.append(hidden);
  }
  const value = document.createElement('span');
  value.className = 'amount';
  value.textContent = money(cents);
  element.append(value);
  return element;
}

function render(products) {
  list.replaceChildren(...products.map((product) => {
    const item = document.createElement('li');
    item.className = 'product';
    item.dataset.slug = product.slug;
    const name = document.createElement('h3');
    name.textContent = product.slug;
    const description = document.createElement('p');
    description.className = 'description';
    description.textContent = product.description;
    const price = document.createElement('p');
    price.className = 'price';
    const discount = product.discount_value;
    if (discount && Number.isSafeInteger(discount.value_in_cents)) {
      const off = document.createElement('span');
      off.className = 'off';
      off.textContent = percentOff(discount.pct);
      price.append(
        amount('del', 'full', 'was ', product.price_in_cents), ' ',
        amount('strong', 'now', 'now ', discount.value_in_cents), ' ', off,
      );
    } else {
      price.append(amount('strong', 'now', '', product.price_in_cents));
    }
    item.append(name, description, price);
    return item;
  }));
}

let generation = 0;
let retryTimer;

/** Asks for the products as `customer` ('' for none) and shows the answer. */
async function load(customer) {
  clearTimeout(retryTimer);
  const mine = ++generation;
  const traceId = randomHex(16);
  const headers = { traceparent: `00-${traceId}-${randomHex(8)}-01` };
  if (customer !== '') headers['X-USER-ID'] = customer;
  loading.hidden = false;
  let response;
  let body;
  const sent = performance.now();
  try {
    response = await fetch('/products', { headers, cache: 'no-store' });
    body = await response.text();
  } catch {
    if (mine !== generation) return;
    loading.hidden = true;
    setText('http-status', 'no answer');
    setText('discount-status', '–');
    setText('answer-time', '–');
    setText('request-id', '–');
    setText('trace-id', traceId);
    showNotice('error', 'The catalog could not be reached (a network error). Is it running? Pick a customer to try again.');
    return;
  }
  // A newer choice was made while this one was on its way: it has the page now.
  if (mine !== generation) return;
  loading.hidden = true;
  setText('http-status', `${response.status} ${response.statusText}`.trim());
  setText('discount-status', response.headers.get('X-Discount-Status') ?? '–');
  // Time to the whole answer, as this page saw it: what a slow discount costs a visitor.
  setText('answer-time', `${Math.round(performance.now() - sent)} ms`);
  setText('request-id', response.headers.get('X-Request-ID') ?? '–');
  setText('trace-id', traceId);

  if (response.status === 503) {
    const seconds = retryAfterSeconds(response.headers.get('Retry-After'));
    showNotice('busy', `The shop is busy just now; trying again in ${seconds} s.`);
    retryTimer = setTimeout(() => load(customer), seconds * 1000);
    return;
  }
  if (!response.ok) {
    render([]);
    const message = body.trim() || response.statusText;
    showNotice('error', response.status === 400
      ? message
      : `The catalog answered ${response.status}: ${message}`);
    return;
  }
  let products;
  try {
    products = JSON.parse(body);
  } catch {
    showNotice('error', 'The catalog sent an answer this page cannot read.');
    return;
  }
  render(products);
  performance.mark('shop:products-shown'); // for the page's measurements (BENCHMARKS.md)
  const status = response.headers.get('X-Discount-Status');
  if (status === 'partial' || status === 'unavailable') {
    showNotice('degraded', 'Some prices could not be discounted just now; they are shown at full price.');
  } else {
    clearNotice();
  }
}

/** The customer the form names now: '' for none. */
function chosenCustomer() {
  const chosen = form.querySelector('input[name="customer"]:checked')?.value ?? '';
  return chosen === 'other' ? otherId.value : chosen;
}

/** Shows the choice in the address bar (?customer=…), so a view can be shared or reloaded. */
function remember(customer) {
  const url = new URL(window.location.href);
  if (customer === '') url.searchParams.delete('customer');
  else url.searchParams.set('customer', customer);
  window.history.replaceState(null, '', url);
}

function choose() {
  const customer = chosenCustomer();
  remember(customer);
  load(customer);
}

for (const choice of choices()) {
  choice.addEventListener('change', () => {
    if (choice.value === 'other') otherId.focus();
    else choose();
  });
}
otherId.addEventListener('input', () => {
  form.querySelector('input[value="other"]').checked = true;
});
form.addEventListener('submit', (event) => {
  event.preventDefault();
  choose();
});

// The first view: the customer in the address bar, if any.
const initial = new URL(window.location.href).searchParams.get('customer') ?? '';
const known = Array.from(choices()).find((choice) => choice.value === initial && initial !== 'other');
if (known) {
  known.checked = true;
} else {
  form.querySelector('input[value="other"]').checked = true;
  otherId.value = initial;
}
load(initial);
