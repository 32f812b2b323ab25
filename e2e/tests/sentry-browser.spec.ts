import { expect, test } from '@playwright/test';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';
import { groups, health, newApp } from './sentry-support';

// @sentry/browser, unchanged, on a page of another origin than Rollwatch (issue 14):
// e2e/sentry/shop.html loads the npm package's ES modules through an import map, README's
// snippet in it. The page is served by a real local server (Chromium refuses a page with no
// address posting to the loopback), so the SDK's posts are true cross-origin requests.

const E2E = join(__dirname, '..');
let site: Server;
let siteURL = '';

test.beforeAll(async () => {
  site = createServer(async (req, res) => {
    const path = normalize(new URL(req.url ?? '/', 'http://x').pathname);
    const file = path.startsWith('/node_modules/') ? join(E2E, path) : join(E2E, 'sentry', 'shop.html');
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'Content-Type': /\.m?js$/.test(file) ? 'text/javascript' : 'text/html' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((up) => site.listen(0, '127.0.0.1', up));
  siteURL = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
});

test.afterAll(async () => {
  await new Promise((down) => site.close(down));
});

test('@sentry/browser: an unhandled error is a crash of platform web, each page load a session', async ({
  page,
  request,
}) => {
  const app = await newApp(request, 'shop');
  const refused: string[] = [];
  // A post still in flight when the test navigates away is aborted by the browser, not refused
  // by the server (net::ERR_ABORTED); a CORS refusal or a reset would be another error.
  page.on(
    'requestfailed',
    (r) =>
      r.url().includes('/envelope/') &&
      r.failure()?.errorText !== 'net::ERR_ABORTED' &&
      refused.push(`${r.url()}: ${r.failure()?.errorText}`),
  );
  page.on('response', (r) => r.url().includes('/envelope/') && r.status() !== 200 && refused.push(`${r.url()}: ${r.status()}`));
  // The error the page throws on purpose is not a failure of the test.
  page.on('pageerror', () => {});

  const shop = `${siteURL}/shop.html?dsn=${encodeURIComponent(app.dsn)}`;
  const sent = () => page.waitForResponse((r) => r.url().includes('/envelope/') && r.request().postData()?.includes('"type":"event"') === true);

  // First visit: a handled error, then the unhandled one.
  await page.goto(shop);
  await page.waitForFunction(() => (window as unknown as { sentryReady?: boolean }).sentryReady === true);
  await Promise.all([sent(), page.click('#save')]);
  await Promise.all([sent(), page.click('#pay')]);
  // Second visit: a new session, a handled error only.
  await page.goto(shop);
  await page.waitForFunction(() => (window as unknown as { sentryReady?: boolean }).sentryReady === true);
  await Promise.all([sent(), page.click('#save')]);
  await page.screenshot({ path: test.info().outputPath('shop-after-errors.png') });

  expect(refused, 'every envelope was taken, across origins').toEqual([]);
  // The browser SDK sends no OS or arch context: platform `web`, arch `other` (as our own script says).
  await expect.poll(() => groups(request, app.token, app.id)).toEqual([
    {
      version: '2.0.1',
      channel: 'beta',
      platform: 'web',
      arch: 'other',
      eventType: 'CRASH',
      reason: 'TypeError',
      count: 1,
    },
  ]);
  // Sessions of the browser SDK are `web` too, so the rate holds per platform.
  await expect
    .poll(() => health(request, app.token, app.id, ['VERSION', 'CHANNEL', 'PLATFORM']))
    .toEqual([{ version: '2.0.1', channel: 'beta', platform: 'web', arch: null, crashes: 1, sessions: 2, crashRate: 0.5 }]);
});
