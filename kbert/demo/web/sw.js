// Service worker: the demo keeps working offline once it has been opened online.
//
// The app shell is cached at install; everything else the page fetches (demo.json,
// the export's model_card/vocab/labels/.tflite, LiteRT's js and wasm) is cached as it
// goes by. Requests go to the network first, so a re-export under the same name is
// picked up, and fall back to the cache when the network fails or is slow to answer.
// Service workers need a secure context: https or localhost (see `kbert demo --help`).

const CACHE = 'kbert-demo-v3';
const SHELL = ['./', 'index.html', 'app.js', 'page.js', 'tokenizer.js', 'manifest.webmanifest', 'icon.svg',
  'icon-192.png', 'icon-512.png', 'litert/core/index.js', 'litert/wasm-utils/index.js',
  'search.html', 'search.js', 'search_index.js'];
const NETWORK_WAIT_MS = 4000;

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(SHELL);
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key !== CACHE) await caches.delete(key);
    }
    await self.clients.claim();
  })());
});

async function fromCache(request) {
  const cache = await caches.open(CACHE);
  return cache.match(request, {ignoreSearch: true});
}

async function networkFirst(request) {
  const cache = await caches.open(CACHE);
  const network = fetch(request).then(async (response) => {
    if (response.ok && response.status === 200) await cache.put(request, response.clone());
    return response;
  });
  network.catch(() => {}); // answered from the cache: a late network failure is no error
  if (self.navigator && self.navigator.onLine === false) {
    const cached = await fromCache(request);
    if (cached) return cached;
  }
  // A phone that left the LAN may wait long for a connection that never comes:
  // after NETWORK_WAIT_MS answer from the cache when it can.
  let timer;
  const slow = new Promise((resolve) => { timer = setTimeout(resolve, NETWORK_WAIT_MS, 'slow'); });
  try {
    const first = await Promise.race([network, slow]);
    if (first !== 'slow') return first;
    const cached = await fromCache(request);
    return cached || await network;
  } catch (error) {
    const cached = await fromCache(request);
    if (cached) return cached;
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin ||
      event.request.headers.has('range')) {
    return;
  }
  event.respondWith(networkFirst(event.request));
});
