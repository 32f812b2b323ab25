import { expect, test, type APIRequestContext, type Page, type Route } from '@playwright/test';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

// The browser client (sdk/browser/rollwatch.js) in the real Chromium: a shop's page on another
// origin than Rollwatch includes the one script tag, and what it sends is read back through
// the GraphQL API. Its app is deleted at the end, so the web app's story (rollout.spec.ts)
// still starts with no apps.
test.describe.configure({ mode: 'serial' });

const baseURL = process.env.ROLLWATCH_URL ?? '';
const admin = { email: process.env.E2E_ADMIN_EMAIL ?? '', password: process.env.E2E_ADMIN_PASSWORD ?? '' };
const APP = 'webshop';

let api: APIRequestContext;
let token = '';
let appId = '';
let reportKey = '';
let site: Server;
let siteURL = '';
/** path → HTML served by the shop's own server. */
const pages = new Map<string, string>();

async function graphql(query: string, variables: Record<string, unknown> = {}) {
  const response = await api.post(`${baseURL}/graphql`, {
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    data: { query, variables },
  });
  expect(response.status()).toBe(200);
  const body = await response.json();
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return body.data;
}

test.beforeAll(async ({ playwright }) => {
  api = await playwright.request.newContext();
  const signedIn = await graphql(
    'mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }',
    { e: admin.email, p: admin.password },
  );
  token = signedIn.login.token;
  const created = await graphql('mutation($n: String!) { createApp(name: $n) { id newReportKey { key } } }', {
    n: APP,
  });
  appId = created.createApp.id;
  reportKey = created.createApp.newReportKey.key;
  expect(reportKey).toMatch(/^rpk_[0-9a-f]{64}$/);

  site = createServer((request, response) => {
    const html = pages.get(new URL(request.url ?? '/', 'http://shop').pathname);
    response.writeHead(html ? 200 : 404, { 'Content-Type': 'text/html; charset=utf-8' });
    response.end(html ?? 'not found');
  });
  await new Promise<void>((listening) => site.listen(0, '127.0.0.1', listening));
  siteURL = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
  expect(new URL(siteURL).origin).not.toBe(new URL(baseURL).origin);
});

test.afterAll(async () => {
  if (appId) await graphql('mutation($id: ID!) { deleteApp(id: $id) }', { id: appId });
  await new Promise((closed) => site?.close(closed));
  await api?.dispose();
});

/** A page of the shop at `path`: the one script tag, then the shop's own script. */
function shopPage(path: string, version: string, channel: string, script = '') {
  pages.set(
    path,
    `<!doctype html><html><head><meta charset="utf-8"><title>Shop</title>
<script src="${baseURL}/sdk/rollwatch.js" data-key="${reportKey}" data-app="${APP}"
        data-version="${version}" data-channel="${channel}"></script>
</head><body><h1>Shop</h1><script>${script}</script></body></html>`,
  );
  return `${siteURL}${path}`;
}

/** The script's own warnings ("rollwatch: …"), which mean a report was dropped or refused. */
function warningsOf(page: Page) {
  const warnings: string[] = [];
  page.on('console', (message) => {
    if (message.text().startsWith('rollwatch:')) warnings.push(message.text());
  });
  return warnings;
}

type Group = { eventType: string; reason: string; count: number; platform: string; arch: string; channel: string; groupHash: string };

async function release(version: string) {
  const data = await graphql(
    `query($app: ID!, $v: String!) {
      reportGroups(appId: $app, filter: { version: $v }, first: 50) {
        nodes { eventType reason count platform arch channel groupHash }
      }
      rolloutHealth(appId: $app, groupBy: [VERSION], filter: { version: $v }) {
        sessions crashes updateFailures updatesSucceeded installFailures updateFailureRate
      }
    }`,
    { app: appId, v: version },
  );
  const groups: Group[] = data.reportGroups.nodes;
  const counts = Object.fromEntries(groups.map((g) => [`${g.eventType} ${g.reason}`, g.count]));
  const health = data.rolloutHealth[0] ?? { sessions: 0, crashes: 0 };
  return { groups, counts, health };
}

function pending(page: Page) {
  return page.evaluate(() => (window as unknown as { Rollwatch: { pending(): number } }).Rollwatch.pending());
}

test('an uncaught error and a rejected promise become crash reports; each page load is one session', async ({ page }) => {
  const warnings = warningsOf(page);
  const url = shopPage(
    '/checkout',
    '2.0.0',
    'beta',
    `setTimeout(function () { var cart = null; cart.total(); }, 0);
     Promise.reject(new RangeError('quantity out of range'));`,
  );
  for (let load = 1; load <= 3; load++) {
    await page.goto(url);
    await expect
      .poll(async () => {
        const { counts, health } = await release('2.0.0');
        return { counts, sessions: health.sessions };
      })
      .toEqual({ counts: { 'CRASH TypeError': load, 'CRASH RangeError': load }, sessions: load });
    await expect.poll(() => pending(page)).toBe(0);
  }
  const { groups } = await release('2.0.0');
  for (const group of groups) {
    expect([group.platform, group.arch, group.channel]).toEqual(['web', 'other', 'beta']);
  }
  expect(warnings).toEqual([]);
});

test('the manual API records failed updates and installs, and successful updates', async ({ page }) => {
  const warnings = warningsOf(page);
  await page.goto(shopPage('/updater', '2.1.0', 'stable'));
  await page.evaluate(async () => {
    const rollwatch = (window as unknown as { Rollwatch: Record<string, (...args: unknown[]) => unknown> }).Rollwatch;
    await rollwatch.updateFailed('E_DISK_FULL', {
      from: '2.0.0',
      log: 'no space left on /home/alice/.cache/shop; tell bob@example.com',
    });
    rollwatch.updateSucceeded();
    rollwatch.updateSucceeded();
    await rollwatch.installFailed('E_PERMISSION');
  });
  await expect
    .poll(async () => {
      const { counts, health } = await release('2.1.0');
      return { counts, health };
    })
    .toEqual({
      counts: { 'UPDATE_FAILED E_DISK_FULL': 1, 'INSTALL_FAILED E_PERMISSION': 1 },
      health: {
        sessions: 1,
        crashes: 0,
        updateFailures: 1,
        updatesSucceeded: 2,
        installFailures: 1,
        updateFailureRate: 1 / 3,
      },
    });

  // The details arrived, scrubbed in the page before they left it.
  const { groups } = await release('2.1.0');
  const failed = groups.find((g) => g.reason === 'E_DISK_FULL');
  // The count commits before the details are kept (the answer waits for both), so a read
  // between the two sees the group without its blob yet.
  const groupBlobs = () =>
    graphql('query($app: ID!, $g: String!) { groupBlobs(appId: $app, groupHash: $g) { url } }', {
      app: appId,
      g: failed?.groupHash,
    });
  await expect.poll(async () => (await groupBlobs()).groupBlobs.length).toBe(1);
  const blobs = await groupBlobs();
  const download = await api.get(new URL(blobs.groupBlobs[0].url, baseURL).toString());
  expect(download.status()).toBe(200);
  const details = JSON.parse(gunzipSync(await download.body()).toString('utf8'));
  expect(details).toEqual({ from: '2.0.0', log: 'no space left on /home/<user>/.cache/shop; tell <email>' });
  expect(warnings).toEqual([]);
});

test('reports queued while the server refuses them are delivered later, exactly once', async ({ context }) => {
  const url = shopPage('/offline', '3.0.0', 'stable');
  const reports = `${baseURL}/reports/**`;

  // The first page load: Rollwatch answers 503 to everything, and the reports wait in localStorage.
  const first = await context.newPage();
  let refused = 0;
  await first.route(reports, (route: Route) => {
    const cors = { 'Access-Control-Allow-Origin': '*' };
    if (route.request().method() === 'OPTIONS') {
      const allow = { 'Access-Control-Allow-Headers': '*', 'Access-Control-Allow-Methods': 'POST' };
      return route.fulfill({ status: 204, headers: { ...cors, ...allow } });
    }
    refused++;
    return route.fulfill({
      status: 503,
      headers: {
        'Access-Control-Allow-Origin': '*',
        'Access-Control-Expose-Headers': 'Retry-After',
        'Retry-After': '1',
        'Content-Type': 'application/json',
      },
      body: JSON.stringify({ error: { code: 'store_unavailable', message: 'the store is unavailable; retry later' } }),
    });
  });
  await first.goto(url);
  await first.evaluate(async () => {
    const rollwatch = (window as unknown as { Rollwatch: { crash(r: string, d: string): Promise<void> } }).Rollwatch;
    for (const d of ['first', 'second', 'third']) await rollwatch.crash('E_OFFLINE', d);
  });
  // Retried after each Retry-After, and still kept.
  await expect.poll(() => refused, { timeout: 15_000 }).toBeGreaterThanOrEqual(3);
  expect(await pending(first)).toBe(4); // a session and three crashes
  const stored = await first.evaluate(() =>
    Object.keys(localStorage).filter((key) => key.startsWith('rollwatch:queue:')),
  );
  expect(stored).toHaveLength(1);
  expect((await release('3.0.0')).counts).toEqual({});
  await first.close();

  // The next load: the server is back, but the answer to its first request is lost after
  // the server counted it. The script resends under the same Idempotency-Key.
  const second = await context.newPage();
  const lost: number[] = [];
  await second.route(reports, async (route: Route) => {
    if (route.request().method() !== 'POST' || lost.length > 0) return route.continue();
    const response = await route.fetch();
    lost.push(response.status());
    return route.abort('connectionreset');
  });
  await second.goto(url);
  await expect.poll(() => lost).toEqual([202]);
  await expect.poll(() => pending(second), { timeout: 15_000 }).toBe(0);
  const { counts, health } = await release('3.0.0');
  expect({ counts, sessions: health.sessions }).toEqual({ counts: { 'CRASH E_OFFLINE': 3 }, sessions: 2 });
  await second.close();
});
