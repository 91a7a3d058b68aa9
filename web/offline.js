// The page's side of the service worker (sw.js): registers it, tells the user when a new version
// is installed and waiting ("A new version is ready — reload"), and applies it only on their
// click. The worker's version is written to <html data-app-version> once a worker controls the
// page, for support requests and tests.

const UPDATE_CHECK_GAP_MS = 60_000;  // at most one update check a minute (visible, online)

// elements: {banner, button}. Resolves with the registration, or null where service workers
// are unavailable (an insecure origin, a browser without them): the app then simply needs the
// network to load, as before.
export async function registerServiceWorker({ banner, button }) {
  const container = navigator.serviceWorker;
  if (!container || !window.isSecureContext) return null;

  let applying = false;                    // the user clicked: the next controller is the new one
  let hadController = Boolean(container.controller);
  let waiting = null;                      // the installed worker that waits for the click

  const show = (worker) => {
    waiting = worker;
    banner.hidden = false;
  };
  button.addEventListener('click', () => {
    button.disabled = true;
    if (waiting) {
      applying = true;
      waiting.postMessage({ type: 'skip-waiting' });  // its activate deletes the old cache
    } else {
      location.reload();                   // another tab applied it already
    }
  });

  container.addEventListener('controllerchange', () => {
    if (applying) { location.reload(); return; }
    // The first install claiming this tab is no update; any later change was applied by
    // another tab, and this one still runs the old code: offer the reload.
    if (hadController) show(null);
    hadController = true;
    showVersion(container.controller);
  });
  container.addEventListener('message', (event) => {
    if (event.data?.type === 'version') document.documentElement.dataset.appVersion = event.data.version;
  });

  let registration;
  try {
    registration = await container.register('/sw.js', { scope: '/', updateViaCache: 'none' });
  } catch (error) {
    console.warn('waymark: no service worker, the app will not load offline:', error);
    return null;
  }

  const watch = (worker) => {
    if (!worker) return;
    const check = () => { if (worker.state === 'installed' && container.controller) show(worker); };
    worker.addEventListener('statechange', check);
    check();
  };
  watch(registration.waiting);
  watch(registration.installing);
  registration.addEventListener('updatefound', () => watch(registration.installing));
  showVersion(container.controller);

  // Browsers look for a new sw.js on navigations; a tab left open for days looks when it comes
  // back into view or back online.
  let lastCheck = Date.now();
  const checkForUpdate = () => {
    if (Date.now() - lastCheck < UPDATE_CHECK_GAP_MS) return;
    lastCheck = Date.now();
    registration.update().catch(() => {});  // offline: the next chance will do
  };
  document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') checkForUpdate(); });
  window.addEventListener('online', checkForUpdate);
  return registration;
}

function showVersion(worker) {
  worker?.postMessage({ type: 'version' });
}
