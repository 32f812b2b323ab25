import { expect, test, type APIRequestContext, type BrowserContext, type Page } from '@playwright/test';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync, gzipSync } from 'node:zlib';

// One story against one server, in order: each test starts where the last one left off.
test.describe.configure({ mode: 'serial' });

const baseURL = process.env.ROLLWATCH_URL ?? '';
const admin = { email: process.env.E2E_ADMIN_EMAIL ?? '', password: process.env.E2E_ADMIN_PASSWORD ?? '' };
const member = { email: 'member@e2e.example', password: 'member-password-1234' };
const APP = 'editor';

const VERSIONS = ['1.0.0', '1.1.0'];
const CHANNELS = ['stable', 'beta'];
const SYSTEMS = [
  { platform: 'windows', arch: 'x86_64', reason: 'EXCEPTION_ACCESS_VIOLATION' },
  { platform: 'macos', arch: 'aarch64', reason: 'EXC_BAD_ACCESS' },
  { platform: 'linux', arch: 'x86_64', reason: 'SIGSEGV' },
];
const SESSIONS_PER_SYSTEM = 100;
/** Crashes of a version × channel × platform: 1 to 7, so every cell has its own total. */
const crashes = (v: number, c: number, p: number) => 1 + 3 * v + c + p;
/** Failed updates, only on 1.1.0 stable windows: the event filter must tell them apart. */
const UPDATE_FAILURES = 2;
const DETAILS = { stack: ['editor::save', 'editor::main'], note: 'e2e' };

let context: BrowserContext;
let page: Page;
let reportKey = '';
let appPath = '';

test.beforeAll(async ({ browser }) => {
  context = await browser.newContext({ baseURL, permissions: ['clipboard-read', 'clipboard-write'] });
  page = await context.newPage();
});

test.afterAll(async () => {
  await context.close();
});

/** Every test leaves at least one full-page screenshot in its output folder. */
async function screenshot(name: string, target: Page = page) {
  await target.screenshot({ path: test.info().outputPath(`${name}.png`), fullPage: true });
}

async function signIn(who: { email: string; password: string }) {
  await page.goto('/sign-in');
  // By keyboard only: the form must work without a mouse.
  await page.getByLabel('Email').focus();
  await page.keyboard.type(who.email);
  await page.keyboard.press('Tab');
  await page.keyboard.type(who.password);
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { name: 'Apps', exact: true })).toBeVisible();
}

function cell(version: string, channel: string) {
  return page.locator(`td[data-version="${version}"][data-channel="${channel}"]`);
}

async function post(request: APIRequestContext, path: string, data: unknown) {
  const response = await request.post(`${baseURL}${path}`, {
    headers: { Authorization: `Bearer ${reportKey}` },
    data,
  });
  expect(response.status(), `${path}: ${await response.text()}`).toBe(202);
  return response.json();
}

test('sign in', async () => {
  await page.goto('/');
  await expect(page).toHaveURL(/\/sign-in$/);
  await page.getByLabel('Email').fill(admin.email);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toBeVisible();
  await signIn(admin);
  await expect(page.getByRole('heading', { name: 'No apps yet' })).toBeVisible();
  await screenshot('01-signed-in-no-apps');
});

test('create an app and copy its key', async () => {
  await page.getByRole('link', { name: 'Create your first app' }).click();
  await page.getByLabel('New app name').fill(APP);
  await page.getByRole('button', { name: 'Create app' }).click();
  const shown = page.locator('.secret-value');
  await expect(shown).toHaveText(/^rpk_[0-9a-f]{64}$/);
  await page.getByRole('button', { name: 'Copy to clipboard' }).click();
  await expect(page.getByText('Copied.')).toBeVisible();
  reportKey = await page.evaluate(() => navigator.clipboard.readText());
  expect(reportKey).toBe(await shown.textContent());
  // The ways to send reports, with this server and the new key filled in.
  const server = new URL(baseURL);
  await expect(page.getByRole('heading', { name: `Send the reports of ${APP}` })).toBeVisible();
  await expect(page.locator('[data-way="web"] pre code')).toContainText(
    `<script src="${baseURL}/sdk/rollwatch.js"\n        data-key="${reportKey}" data-app="${APP}"`,
  );
  await expect(page.locator('[data-way="rust"] pre code')).toContainText(`"${baseURL}",\n    "${reportKey}",`);
  await expect(page.locator('[data-way="python"] pre code')).toContainText(`"${baseURL}", "${reportKey}",`);
  const dsn = new RegExp(`^${server.protocol}//${reportKey}@${server.host.replace(/\./g, '\\.')}/\\d+$`);
  await expect(page.locator('[data-way="sentry"] pre code')).toHaveText(dsn);
  await screenshot('02-app-created-key-shown-once');
});

test('an app without reports tells how to send one', async () => {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Apps', exact: true }).click();
  await page.getByRole('link', { name: APP }).click();
  await expect(page.getByRole('heading', { name: 'No reports yet' })).toBeVisible();
  appPath = new URL(page.url()).pathname;
  const appId = appPath.split('/').pop();
  expect(appId).toMatch(/^\d+$/);
  const server = new URL(baseURL);
  // Just after the key was shown, the empty state fills it in: the DSN, copied, is the real one.
  const sentry = page.locator('[data-way="sentry"]');
  const dsn = `${server.protocol}//${reportKey}@${server.host}/${appId}`;
  await expect(sentry.locator('pre code')).toHaveText(dsn);
  await sentry.getByRole('button', { name: 'Copy DSN' }).click();
  await expect(sentry.getByText('Copied.')).toBeVisible();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(dsn);
  await expect(page.locator('[data-way="web"] pre code')).toContainText(`data-key="${reportKey}" data-app="${APP}"`);
  await expect(page.locator('[data-way="curl"] pre code').first()).toContainText(`curl -sS ${baseURL}/reports/ingest`);
  await screenshot('03-no-reports-yet-integrations');
  // Loaded afresh, the page no longer knows the key: a placeholder, and where to get the key.
  await page.reload();
  await expect(sentry.locator('pre code')).toHaveText(`${server.protocol}//rpk_…@${server.host}/${appId}`);
  await expect(page.locator('[data-way="web"] pre code')).toContainText(`data-key="rpk_…"`);
  await expect(page.locator('section.integrations')).toContainText('Replace rpk_… with the app\'s report key.');
  await expect(page.locator('section.integrations').getByRole('link', { name: 'Manage apps' })).toBeVisible();
  await screenshot('03-no-reports-yet-placeholder');
});

test('reports ingested through REST show in the matrix', async ({ request }) => {
  const reports = [];
  const usage = [];
  for (const [v, version] of VERSIONS.entries()) {
    for (const [c, channel] of CHANNELS.entries()) {
      for (const [p, system] of SYSTEMS.entries()) {
        const application = { name: APP, version, channel };
        const os = { platform: system.platform, arch: system.arch, os_version: '1.0' };
        for (let n = 0; n < crashes(v, c, p); n++) {
          reports.push({ application, system: os, event: { type: 'crash', reason: system.reason } });
        }
        usage.push({ application, system: os, kind: 'session', count: SESSIONS_PER_SYSTEM });
      }
    }
  }
  const windows = { platform: 'windows', arch: 'x86_64', os_version: '10.0.22631' };
  const latest = { name: APP, version: '1.1.0', channel: 'stable' };
  for (let n = 0; n < UPDATE_FAILURES; n++) {
    reports.push({ application: latest, system: windows, event: { type: 'update_failed', reason: 'disk full' } });
  }
  const batch = await post(request, '/reports/ingest/batch', { reports });
  expect(JSON.stringify(batch)).not.toContain('error');
  for (const counts of usage) {
    await post(request, '/reports/usage', counts);
  }
  const details = gzipSync(Buffer.from(JSON.stringify(DETAILS))).toString('base64');
  await post(request, '/reports/ingest', {
    application: latest,
    system: windows,
    event: { type: 'crash', reason: 'EXCEPTION_ACCESS_VIOLATION' },
    details: { encoding: 'gzip', data: details },
  });

  await page.reload();
  // 1.1.0 stable: crashes 4 + 5 + 6, one more with details, and 2 failed updates.
  await expect(cell('1.1.0', 'stable').locator('.total .reports')).toHaveText('18 reports');
  await expect(cell('1.1.0', 'beta').locator('.total .reports')).toHaveText('18 reports');
  await expect(cell('1.0.0', 'stable').locator('.total .reports')).toHaveText('6 reports');
  await expect(cell('1.0.0', 'beta').locator('.total .reports')).toHaveText('9 reports');
  await expect(cell('1.0.0', 'stable').locator('.total .usage')).toHaveText('300 sessions');
  // 16 crashes in 300 sessions is 5.33 %, over the default 2 % limit as a point estimate,
  // but 300 sessions are under the policy's 1000: the gate says undecided, and so does the
  // cell, with the bounds behind it.
  await expect(cell('1.1.0', 'stable').locator('.total .rate')).toHaveText('5.33 %');
  await expect(cell('1.1.0', 'stable').locator('.total .tier-label')).toHaveText('undecided');
  await expect(cell('1.1.0', 'stable').locator('.total .bounds')).toContainText(' to ');
  await expect(cell('1.0.0', 'stable').locator('.total .rate')).toHaveText('2 %');
  await expect(cell('1.0.0', 'stable').locator('.total .tier-label')).toHaveText('undecided');
  // Newest version first.
  await expect(page.locator('table.matrix tbody th')).toHaveText(['1.1.0', '1.0.0']);
  await expect(page.locator('figure.chart rect')).toHaveCount(8);
  await screenshot('04-matrix');
  await page.setViewportSize({ width: 390, height: 844 });
  await screenshot('04-matrix-phone');
  await page.setViewportSize({ width: 1366, height: 860 });
});

test('filters change the numbers and stay in the URL', async () => {
  await page.getByLabel('Events').selectOption({ label: 'Crashes' });
  await expect(page).toHaveURL(/event=crash/);
  await expect(cell('1.1.0', 'stable').locator('.total .reports')).toHaveText('16 reports');
  await page.getByLabel('Events').selectOption({ label: 'Failed updates' });
  await expect(cell('1.1.0', 'stable').locator('.total .reports')).toHaveText('2 reports');
  // Its sessions keep the cell, with no failed update and no update attempt to divide by.
  await expect(cell('1.0.0', 'stable').locator('.total .reports')).toHaveText('0 reports');
  await expect(cell('1.0.0', 'stable').locator('.total .rate')).toHaveText('—');
  await page.getByLabel('Events').selectOption({ label: 'Crashes' });
  await page.getByLabel('Breakdown').selectOption({ label: 'By platform' });
  await expect(page).toHaveURL(/by=platform/);
  const stable = cell('1.1.0', 'stable');
  await expect(stable.locator('li[data-part="windows"] .reports')).toHaveText('5 reports');
  await expect(stable.locator('li[data-part="linux"] .reports')).toHaveText('6 reports');
  await expect(stable.locator('li[data-part="macos"] .reports')).toHaveText('5 reports');
  // A shared link opens the same view.
  await page.goto(page.url());
  await expect(page.getByLabel('Breakdown')).toHaveValue('platform');
  await expect(stable.locator('li[data-part="linux"] .reports')).toHaveText('6 reports');
  await screenshot('05-filtered-by-crashes-per-platform');
});

test('the rollout page downloads the groups and the releases as CSV', async () => {
  const downloading = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Groups (CSV)' }).click();
  const download = await downloading;
  expect(download.suggestedFilename()).toBe('groups.csv');
  const lines = readFileSync(await download.path()).toString('utf8').trim().split('\r\n');
  expect(lines[0]).toBe('group_hash,version,channel,platform,arch,event_type,reason,count,first_seen,last_seen,blob_count');
  // Every group of the app, whatever the page's filters: 2 versions × 2 channels × 3
  // platforms of crashes, and the failed updates.
  expect(lines.length - 1).toBe(13);
  const releases = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Releases (CSV)' }).click();
  const health = readFileSync(await (await releases).path()).toString('utf8');
  expect(health).toContain('1.1.0,stable,16,2,0,300,0,0,');
});

test('a group page downloads its details', async () => {
  const row = page
    .locator('table.groups tbody tr')
    .filter({ hasText: 'EXCEPTION_ACCESS_VIOLATION' })
    .filter({ hasText: '1.1.0' })
    .filter({ hasText: 'stable' });
  await row.getByRole('link').click();
  await expect(page.getByRole('heading', { name: 'EXCEPTION_ACCESS_VIOLATION' })).toBeVisible();
  await expect(page.locator('dl.dimensions')).toContainText('windows');
  await expect(page.locator('dl.dimensions dd.count')).toHaveText('5');
  const downloading = page.waitForEvent('download');
  await page.getByRole('link', { name: /Download details/ }).click();
  const download = await downloading;
  const saved = await download.path();
  expect(JSON.parse(gunzipSync(readFileSync(saved)).toString('utf8'))).toEqual(DETAILS);
  await screenshot('06-group-with-blob');
});

test('the release gate of a version says why', async () => {
  await page.locator('p.crumbs').getByRole('link', { name: APP }).click();
  await page.getByRole('link', { name: 'Release gate of 1.1.0 on stable' }).click();
  await expect(page.getByRole('heading', { name: 'Release gate: 1.1.0 on stable' })).toBeVisible();
  // 300 sessions are fewer than the default policy's 1 000: no verdict either way.
  await expect(page.locator('p.verdict')).toHaveText(/INSUFFICIENT DATA/);
  await expect(page.getByRole('row', { name: /Crash rate/ })).toContainText('16 of 300');
  // Each platform, arch and pair with data is judged too, against the same budget.
  const slices = page.getByRole('table', { name: /Each platform and architecture/ });
  await expect(slices.locator('tbody tr')).toHaveCount(8);
  await expect(slices.locator('tr[data-slice="macos/aarch64"]')).toContainText('insufficient data');
  await expect(slices.locator('tr[data-slice="x86_64"]')).toContainText('of 200');
  await expect(page.locator('p.hint').first()).toContainText('each FAIL claim 97.5 %');
  await screenshot('07-release-gate');
});

test('an admin adds a webhook and a rule, sends a test and sees it delivered, signed', async () => {
  // A real receiver: every request it gets, with its headers and raw body.
  const received: { headers: IncomingHttpHeaders; body: Buffer }[] = [];
  const receiver = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({ headers: request.headers, body: Buffer.concat(chunks) });
      response.writeHead(200).end();
    });
  });
  await new Promise<void>((listening) => receiver.listen(0, '127.0.0.1', listening));
  const { port } = receiver.address() as AddressInfo;
  try {
    await page.goto(appPath);
    await page.getByRole('link', { name: 'Alerts' }).click();
    await expect(page.getByRole('heading', { name: 'Alerts', exact: true })).toBeVisible();
    await page.locator('#destination-name').fill('ops hook');
    await page.getByLabel('Webhook URL').fill(`http://127.0.0.1:${port}/hooks/rollwatch`);
    await page.getByRole('button', { name: 'Add destination' }).click();
    const secretBox = page.getByRole('region', { name: 'Signing secret of ops hook' });
    const secret = (await secretBox.locator('code.secret-value').textContent()) ?? '';
    expect(secret).toMatch(/^rwh_[0-9a-f]{64}$/);
    const row = page.locator('tr[data-destination="ops hook"]');
    // The path is the credential of many webhooks: not shown again.
    await expect(row).toContainText(`http://127.0.0.1:${port}/…`);

    await page.locator('#rule-name').fill('stable goes bad');
    await page.getByLabel('Alert when').selectOption('GATE_FAIL');
    await page.getByRole('group', { name: 'Send to' }).getByLabel('ops hook').check();
    await page.getByRole('button', { name: 'Add rule' }).click();
    await expect(page.locator('tr[data-rule="stable goes bad"]')).toContainText('The gate says FAIL');
    await expect(page.locator('tr[data-rule="stable goes bad"]')).toContainText('ops hook');

    await row.getByRole('button', { name: 'Send test' }).click();
    const log = page.getByRole('region', { name: 'Delivery log of ops hook' });
    await expect
      .poll(async () => {
        await log.getByRole('button', { name: 'Refresh log' }).click();
        return log.locator('td.delivery-state').first().textContent();
      })
      .toBe('delivered');
    await expect(log.locator('tr').nth(1)).toContainText('test');
    await expect(log.locator('tr').nth(1)).toContainText('1 (200 in');
    expect(received).toHaveLength(1);
    const { headers, body } = received[0];
    expect(headers['rollwatch-event']).toBe('test');
    // The documented check (docs/alerts.md): HMAC-SHA256 of "<t>.<body>" with the secret.
    const signature = String(headers['rollwatch-signature']);
    const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(signature) ?? [];
    expect(Math.abs(Date.now() / 1000 - Number(t))).toBeLessThan(300);
    expect(createHmac('sha256', secret).update(`${t}.`).update(body).digest('hex')).toBe(v1);
    expect(JSON.parse(body.toString('utf8')).event).toBe('test');
    await screenshot('07-alerts');
  } finally {
    receiver.close();
  }
});

test('a member without access cannot see the app', async () => {
  await page.getByRole('link', { name: 'Users' }).click();
  await page.getByLabel('Email', { exact: true }).fill(member.email);
  await page.getByLabel('Initial password').fill(member.password);
  await page.getByRole('button', { name: 'Add user' }).click();
  await expect(page.locator(`tr[data-user="${member.email}"]`)).toBeVisible();
  await screenshot('08-users');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await signIn(member);
  await expect(page.getByRole('heading', { name: 'No apps shared with you' })).toBeVisible();
  await expect(page.getByRole('link', { name: APP })).toHaveCount(0);
  await page.goto(appPath);
  await expect(page.getByRole('alert')).toHaveText('This app does not exist or is not shared with you.');
  await screenshot('08-member-without-access');
});

test('a session the server refuses returns to sign-in', async () => {
  await page.evaluate(() => {
    const key = 'rollwatch.session';
    const session = JSON.parse(localStorage.getItem(key) ?? '{}');
    localStorage.setItem(key, JSON.stringify({ ...session, token: 'revoked.or.forged' }));
  });
  await page.goto('/');
  await expect(page).toHaveURL(/\/sign-in\?reason=expired$/);
  await expect(page.getByText('Your session expired or was revoked')).toBeVisible();
  await screenshot('09-session-ended');
});

test('sign out', async () => {
  await signIn(admin);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/sign-in\?reason=signed-out$/);
  await expect(page.getByText('You have signed out.')).toBeVisible();
  await page.goto(appPath);
  await expect(page).toHaveURL(/\/sign-in$/);
  await screenshot('10-signed-out');
});
