import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { FullConfig } from '@playwright/test';

const STARTUP_TIMEOUT_MS = 60_000;

/**
 * Starts `rollwatch serve` (the binary `ROLLWATCH_BIN`, by default the workspace's debug
 * build) on a fresh data dir and a port the OS picks, with a first admin whose password is
 * made up for this run. The tests find the server and the admin in the environment.
 */
export default async function globalSetup(config: FullConfig) {
  const root = resolve(__dirname, '..');
  const binary = process.env.ROLLWATCH_BIN ?? join(root, 'target', 'debug', 'rollwatch');
  const dataDir = mkdtempSync(join(tmpdir(), 'rollwatch-e2e-'));
  const outputDir = config.projects[0]?.outputDir ?? join(__dirname, 'test-results');
  mkdirSync(outputDir, { recursive: true });
  const logPath = join(outputDir, 'rollwatch-serve.log');
  const log = createWriteStream(logPath);

  process.env.E2E_ADMIN_EMAIL = 'admin@e2e.example';
  process.env.E2E_ADMIN_PASSWORD = randomBytes(18).toString('base64url');

  const server = spawn(binary, ['serve'], {
    env: {
      ...process.env,
      BIND_ADDR: '127.0.0.1:0',
      ROLLWATCH_DATA_DIR: dataDir,
      ROLLWATCH_WEB_DIR: process.env.ROLLWATCH_WEB_DIR ?? join(root, 'dist'),
      ROLLWATCH_ADMIN_EMAIL: process.env.E2E_ADMIN_EMAIL,
      ROLLWATCH_ADMIN_PASSWORD: process.env.E2E_ADMIN_PASSWORD,
      // The story sends a few dozen reports in a burst; the default limit is per minute.
      REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE: '10000',
      // The alerts story posts to a receiver on this host.
      ALERTS_ALLOW_PRIVATE_DESTINATIONS: 'true',
      RUST_LOG: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stderr.pipe(log);

  const url = await new Promise<string>((found, failed) => {
    const timer = setTimeout(
      () => failed(new Error(`rollwatch did not start within ${STARTUP_TIMEOUT_MS} ms; see ${logPath}`)),
      STARTUP_TIMEOUT_MS,
    );
    server.once('error', (error) => failed(new Error(`cannot start ${binary}: ${error.message}`)));
    server.once('exit', (code) => failed(new Error(`rollwatch exited with ${code}; see ${logPath}`)));
    createInterface({ input: server.stdout }).on('line', (line) => {
      log.write(`${line}\n`);
      const listening = /Rollwatch listening on (http:\/\/\S+)/.exec(line);
      if (listening) {
        clearTimeout(timer);
        found(listening[1]);
      }
    });
  });
  process.env.ROLLWATCH_URL = url;
  console.log(`rollwatch serve is up at ${url} (data in ${dataDir}, log in ${logPath})`);

  return async () => {
    server.removeAllListeners('exit');
    const exited = new Promise((done) => server.once('exit', done));
    server.kill('SIGTERM');
    await exited;
    log.end();
    rmSync(dataDir, { recursive: true, force: true });
  };
}
