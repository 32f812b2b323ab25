import { expect, test } from '@playwright/test';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { groups, health, newApp } from './sentry-support';

// @sentry/node, unchanged, pointed at Rollwatch's DSN (issue 14): e2e/sentry/node-app.cjs is
// the app, README's snippet in it. One run exits, one dies of an uncaught exception.

function runApp(dsn: string, mode: 'crash' | 'exit'): Promise<{ code: number; stderr: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [join(__dirname, '..', 'sentry', 'node-app.cjs'), dsn, mode],
      { timeout: 30_000 },
      (error, _stdout, stderr) => done({ code: error ? Number(error.code ?? 1) : 0, stderr }),
    );
  });
}

test('@sentry/node: an uncaught exception is a crash, each run a session', async ({ request }) => {
  const app = await newApp(request, 'node-editor');

  const clean = await runApp(app.dsn, 'exit');
  expect(clean.code, clean.stderr).toBe(0);
  const crashed = await runApp(app.dsn, 'crash');
  expect(crashed.code).toBe(1);
  expect(crashed.stderr).toContain('TypeError');

  // The handled SyntaxErrors are accepted and not counted: one group, the crash.
  // Node's context integration says `os.name: "Debian"` (the distro) and `device.arch: "x64"`.
  await expect.poll(() => groups(request, app.token, app.id)).toEqual([
    {
      version: '1.4.2',
      channel: 'beta',
      platform: 'linux',
      arch: 'x86_64',
      eventType: 'CRASH',
      reason: 'TypeError',
      count: 1,
    },
  ]);
  // Node's sessions say nothing of the OS: the rate is the release's, crashes / sessions.
  await expect
    .poll(() => health(request, app.token, app.id, ['VERSION', 'CHANNEL']))
    .toEqual([{ version: '1.4.2', channel: 'beta', platform: null, arch: null, crashes: 1, sessions: 2, crashRate: 0.5 }]);
});
